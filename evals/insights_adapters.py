"""Eval adapters of the insight scoring tasks: reply QA, CSAT prediction, account health and deal scores.

Reply QA cases are one reply in its context, graded in memory. The other three learn from a workspace's history, so
their suites run against the demo workspace (seeded once per run, same seed and anchor day, so identical every time):
each case writes its own record (a solved thread, an account with its signals, an open deal) into it and the task
scores that record as the product would. Expected outputs are labels the team set: pass / fail, good / bad, the risk
band, low / medium / high win probability. ``auc`` is the area under the ROC curve of the scores behind the labels.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from copilot.errors import InvalidInput
from evals import metrics as m
from evals.adapters import EvalEnv, adapter, need
from evals.metrics import CaseOutput
from evals.suite import Case

DEMO = "evals-demo"
DEMO_ANCHOR = date(2026, 11, 22)
NOW = datetime.combine(DEMO_ANCHOR, time(12), tzinfo=UTC)
_WRITE_LOCK = threading.Lock()


def _auc(rows: Sequence[m.Row]) -> float | None:
    from sklearn.metrics import roc_auc_score

    scored = [(r.references[0], r.value) for r in rows if r.references and r.value is not None and not r.error]
    positives = {"pass", "good", "high"}
    truth = [int(label in positives) for label, _ in scored]
    if not scored or len(set(truth)) < 2:
        return None
    return round(float(roc_auc_score(truth, [value for _, value in scored])), 4)


m.register(
    m.Metric(
        "auc",
        "area under the ROC curve of the case scores against the expected labels (pass, good, high = positive)",
        True,
        lambda case, output: None if output.error else output.data.get("score_for_auc"),
        _auc,
    )
)


def _when(value: Any) -> datetime:
    """Case times are days before the run's fixed 'now' (e.g. 3.5), so the cases never age."""
    return NOW - timedelta(days=float(value))


# -- reply QA -------------------------------------------------------------------------------------
def _load_classifier(env: EvalEnv, cases: list[Case]) -> None:
    env.services.sentiment.classify(["warm up"])


@adapter(
    "reply_qa",
    kind="label",
    prepare=_load_classifier,
    metrics=("accuracy", "macro_f1", "auc", "checks_pass_rate", "fallback_rate", "latency_ms", "tokens"),
)
def reply_qa(env: EvalEnv, case: Case) -> CaseOutput:
    """Inputs: subject, question (or questions), reply, optional follow_up, notes, kb. Expected: pass or fail."""
    from copilot.guards import find_injection
    from copilot.insights.quality import DEFAULT_SCORECARD, Reply, grade_rules, reply_sentiment, scored
    from copilot.store.models import Ticket
    from copilot.tasks.reply_qa import grade_model, shown_texts

    questions = case.inputs["questions"] if "questions" in case.inputs else [need(case, "question")]
    ticket = Ticket(id=1, subject=str(case.inputs.get("subject") or ""))
    reply = Reply(
        ticket=ticket,
        text=str(need(case, "reply")),
        sent_at=NOW,
        author="agent",
        message_id=1,
        question=[str(q) for q in questions],
        follow_up=case.inputs.get("follow_up"),
        notes=list(case.inputs.get("notes") or []),
        earlier=[ticket.subject, *questions],
        kb=list(case.inputs.get("kb") or []),
    )
    card = DEFAULT_SCORECARD
    rules = grade_rules(reply, card, reply_sentiment(env.services.sentiment, [reply]))
    strategy, fell_back, provenance = env.task_strategy("reply_qa"), None, None
    graded = rules
    if strategy == "model" and not any(find_injection(text) for _, text in shown_texts(reply)):
        verdicts, problems, provenance = grade_model(env.context(), reply, card, rules)
        graded, fell_back = (verdicts, None) if verdicts else (rules, "; ".join(problems))
    score = scored(reply, graded, card, "model" if graded is not rules else "rules")
    return CaseOutput(
        label="pass" if score.passed else "fail",
        text="pass" if score.passed else "fail",
        data={
            "passed": score.passed,
            "score_for_auc": score.score,
            "method": score.method,
            "verdicts": {v.criterion: v.verdict for v in score.verdicts},
            "evidence": {v.criterion: v.evidence for v in score.verdicts},
        },
        used_fallback=fell_back is not None,
        fallback_reason=fell_back,
        model=provenance.model if provenance else "rules",
        prompt_name=provenance.prompt_name if provenance else None,
        prompt_version=provenance.prompt_version if provenance else None,
        tokens_in=provenance.tokens_in if provenance else 0,
        tokens_out=provenance.tokens_out if provenance else 0,
    )


# -- the demo-backed suites -----------------------------------------------------------------------
def _seed_demo(env: EvalEnv, cases: list[Case]) -> None:
    """The demo workspace (history to learn from), once per run; the sentiment classifier warmed up."""
    from copilot.demo.generator import seed_demo, workspace_has_records

    if not workspace_has_records(env.store, DEMO):
        seed_demo(env.store, DEMO, seed=7, anchor=DEMO_ANCHOR)
    env.services.sentiment.classify(["warm up"])


def _run_on_record(env: EvalEnv, task: str, write, params) -> Any:
    """Write the case's record and run the task on it, in one transaction that is rolled back (cases stay apart)."""
    with _WRITE_LOCK, env.store.repo(DEMO) as repo:
        record_id = write(repo)
        outcome = env.services.run_task(repo, task, {**params(record_id), "strategy": env.task_strategy(task)})
        repo.session.rollback()
    return outcome


def _thread(repo, case: Case) -> int:
    from copilot.store.models import AuthorKind, Message, Priority, Ticket, TicketStatus

    messages = case.inputs.get("messages") or []
    if not messages:
        raise InvalidInput(f"case {case.id}: inputs.messages: a solved thread is required")
    opened = _when(messages[0]["days_ago"])
    ticket = repo.add(
        Ticket(
            subject=str(need(case, "subject")),
            status=TicketStatus(case.inputs.get("status", "solved")),
            priority=Priority(case.inputs.get("priority", "normal")),
            opened_at=opened,
            closed_at=_when(case.inputs.get("closed_days_ago", 0)),
            reopen_count=int(case.inputs.get("reopen_count", 0)),
        )
    )
    repo.session.flush()
    for item in messages:
        repo.add(
            Message(
                ticket_id=ticket.id,
                author_kind=AuthorKind(item["author_kind"]),
                body=item["text"],
                sent_at=_when(item["days_ago"]),
                author=item.get("author"),
            )
        )
    repo.session.flush()
    return ticket.id


@adapter("csat_prediction", kind="label", prepare=_seed_demo, metrics=("accuracy", "macro_f1", "auc", "latency_ms"))
def csat_prediction(env: EvalEnv, case: Case) -> CaseOutput:
    """Inputs: subject, priority, reopen_count, closed_days_ago, messages [{author_kind, text, days_ago}].
    Expected: good or bad (a rating of 4-5, or 1-3)."""
    outcome = _run_on_record(env, "csat_prediction", lambda repo: _thread(repo, case), lambda i: {"ticket_id": i})
    result = outcome.result
    if result.prediction is None:
        return CaseOutput(error=result.refusal.reason if result.refusal else "no prediction")
    p = result.prediction.probability_good
    return CaseOutput(
        label="good" if p >= 0.5 else "bad",
        text=f"{p:.3f}",
        model="csat model",
        data={"probability_good": p, "score_for_auc": p, "signals": [s.text for s in result.prediction.top_signals]},
    )


def _account(repo, case: Case) -> int:
    from copilot.store.models import Account, AuthorKind, Deal, DealStage, Message, NpsResponse, Priority, Ticket

    inputs = case.inputs
    renewal = inputs.get("renewal_in_days")
    account = repo.add(
        Account(
            name=str(need(case, "name")),
            arr=Decimal(str(inputs.get("arr", 20000))),
            renewal_date=(NOW + timedelta(days=renewal)).date() if renewal is not None else None,
        )
    )
    repo.session.flush()
    for item in inputs.get("tickets") or []:
        opened = _when(item["days_ago"])
        closed = _when(item["closed_days_ago"]) if item.get("closed_days_ago") is not None else None
        ticket = repo.add(
            Ticket(
                subject=item["subject"],
                account_id=account.id,
                opened_at=opened,
                closed_at=closed,
                priority=Priority(item.get("priority", "normal")),
                status="solved" if closed else "open",
            )
        )
        repo.session.flush()
        for n, text in enumerate(item.get("customer") or []):
            repo.add(
                Message(
                    ticket_id=ticket.id, author_kind=AuthorKind.customer, body=text, sent_at=opened + timedelta(hours=n)
                )
            )
    for n, score in enumerate(inputs.get("nps") or []):
        repo.add(NpsResponse(score=int(score), account_id=account.id, submitted_at=_when(10 + 7 * n)))
    for item in inputs.get("deals") or []:
        steps = [{"stage": item["stage"], "at": _when(item.get("days_in_stage", 10)).isoformat()}]
        repo.add(
            Deal(
                name=item.get("name", "deal"),
                account_id=account.id,
                stage=DealStage(item["stage"]),
                deal_type=item.get("deal_type", "expansion"),
                stage_history=steps,
            )
        )
    repo.session.flush()
    return account.id


@adapter("account_health", kind="label", prepare=_seed_demo, metrics=("accuracy", "macro_f1", "auc", "latency_ms"))
def account_health(env: EvalEnv, case: Case) -> CaseOutput:
    """Inputs: name, arr, renewal_in_days, tickets [{subject, priority, days_ago, closed_days_ago, customer: [...]}],
    nps [scores], deals [{stage, deal_type, days_in_stage}]. Expected: high, medium or low risk."""
    outcome = _run_on_record(
        env, "account_health", lambda repo: _account(repo, case), lambda i: {"account_id": i, "as_of": NOW}
    )
    health = outcome.result
    return CaseOutput(
        label=health.band,
        text=f"{health.risk} {health.band}",
        model="health rules",
        data={
            "risk": health.risk,
            "score_for_auc": health.risk,
            "band": health.band,
            "reasons": [r.kind for r in health.reasons],
        },
    )


def _deal(repo, case: Case) -> int:
    from copilot.store.models import Call, CallTurn, Deal, DealStage, Note

    inputs = case.inputs
    stage = DealStage(need(case, "stage"))
    entered = _when(inputs.get("days_in_stage", 10))
    steps = [{"stage": "prospecting", "at": (entered - timedelta(days=20)).isoformat()}]
    if stage is not DealStage.prospecting:
        steps.append({"stage": stage.value, "at": entered.isoformat()})
    deal = repo.add(
        Deal(
            name=str(need(case, "name")),
            stage=stage,
            amount=Decimal(str(inputs.get("amount", 20000))),
            lead_source=inputs.get("source"),
            stage_history=steps,
            close_date=(NOW + timedelta(days=30)).date(),
        )
    )
    repo.session.flush()
    quiet = inputs.get("days_since_activity")
    if inputs.get("champion"):
        repo.add(
            Note(
                deal_id=deal.id,
                body="Champion is Ana (CFO); very engaged, pushes internally.",
                noted_at=_when(quiet if quiet is not None else 5),
            )
        )
    for n in range(int(inputs.get("calls", 0))):
        call = repo.add(
            Call(
                deal_id=deal.id,
                title="Call",
                started_at=_when((quiet or 5) + 7 * n),
                participants=[{"name": "Ana Lima", "role": "customer"}],
            )
        )
        repo.session.flush()
        for k, text in enumerate(inputs.get("objections") or [] if n == 0 else []):
            repo.add(CallTurn(call_id=call.id, position=k, speaker="Ana Lima", text=text))
    repo.session.flush()
    return deal.id


@adapter("deal_score", kind="label", prepare=_seed_demo, metrics=("accuracy", "macro_f1", "auc", "latency_ms"))
def deal_score(env: EvalEnv, case: Case) -> CaseOutput:
    """Inputs: name, stage, days_in_stage, days_since_activity, calls, objections [...], champion, source, amount.
    Expected: low (< 0.35), medium or high (> 0.65) win probability, learned from the demo's closed deals."""
    outcome = _run_on_record(env, "deal_score", lambda repo: _deal(repo, case), lambda i: {"deal_id": i, "as_of": NOW})
    result = outcome.result
    if result.score is None:
        return CaseOutput(error=result.refusal.reason if result.refusal else "no score")
    p = result.score.win_probability
    band = "low" if p < 0.35 else "high" if p > 0.65 else "medium"
    return CaseOutput(
        label=band,
        text=f"{p:.3f} {band}",
        model="bayesian logistic",
        data={"win_probability": p, "score_for_auc": p, "signals": [s.name for s in result.score.top_signals]},
    )
