"""Eval adapter of the deal brief: risk recall and precision against the demo's labelled deals.

Cases name a deal of the demo workspace (seeded once per run, same seed and anchor day as the insight suites) and
list the risk kinds a rep would flag on it (stalled, overdue_action_items, price_objection, competitor, ...); the
brief runs as of the anchor day, and what it wrote is rolled back. The labels come from reading each deal's records
(stage history, call transcripts with the promised dates, tickets, NPS answers), not from the brief's output.
"""

from __future__ import annotations

from copilot.errors import InvalidInput
from evals import metrics as m
from evals.adapters import EvalEnv, adapter, from_outcome, need
from evals.insights_adapters import NOW, _run_on_record, _seed_demo
from evals.metrics import CaseOutput
from evals.suite import Case

JUDGED = ("stalled", "overdue_action_items", "competitor")  # and every <topic>_objection: what the labels cover
HARD = {"stalled", "overdue_action_items", "price_objection"}  # the cases a brief must never miss


def _kinds(output: CaseOutput) -> set[str]:
    return {k for k in output.data.get("risk_kinds") or [] if k in JUDGED or k.endswith("_objection")}


def _recall(expected: set[str], output: CaseOutput) -> float | None:
    if not expected:
        return None
    return 0.0 if output.error else round(len(expected & _kinds(output)) / len(expected), 4)


def _risk_precision(case: Case, output: CaseOutput) -> float | None:
    if output.error:
        return 0.0
    found = _kinds(output)
    return round(len(found & set(case.references)) / len(found), 4) if found else None


m.register(
    m.Metric(
        "risk_recall",
        "share of the labelled risks (stalled, overdue items, objections, competitor) the brief flagged",
        True,
        lambda case, output: _recall(set(case.references), output),
        m.mean,
    )
)
m.register(
    m.Metric(
        "hard_risk_recall",
        "share of the labelled stalled-deal, overdue-item and price-objection risks the brief flagged",
        True,
        lambda case, output: _recall(set(case.references) & HARD, output),
        m.mean,
    )
)
m.register(
    m.Metric(
        "risk_precision",
        "share of the brief's flagged risks of the labelled kinds that are labelled",
        True,
        _risk_precision,
        m.mean,
    )
)


def _deal_id(repo, case: Case) -> int:
    from copilot.store.models import Deal

    reference = str(need(case, "deal"))
    deal = repo.by_external_id(Deal, reference)
    if deal is None:
        raise InvalidInput(f"case {case.id}: inputs.deal: no deal '{reference}' in the demo workspace")
    return deal.id


@adapter(
    "deal_brief",
    prepare=_seed_demo,
    metrics=("risk_recall", "hard_risk_recall", "risk_precision", "guard_pass_rate", "fallback_rate", "latency_ms"),
)
def deal_brief(env: EvalEnv, case: Case) -> CaseOutput:
    """Inputs: deal (a demo deal's external id). Expected: the risk kinds a rep would flag (a list; may be empty)."""
    outcome = _run_on_record(
        env, "deal_brief", lambda repo: _deal_id(repo, case), lambda i: {"deal_id": i, "as_of": NOW}
    )
    brief = outcome.result
    kinds = sorted({r.kind for r in brief.facts.risks})
    output = from_outcome(outcome, text=brief.narrative)
    output.data.update(risk_kinds=kinds, next_step=brief.suggested_next_step.text)
    return output
