"""Eval metrics: reference-based ones from well-kept libraries, plus the product's own checks.

Reference-based: ROUGE-1/2/L F1 with stemming (rouge-score; max over a case's references),
chrF (sacrebleu; corpus score over all references, sentence score per case), accuracy,
macro-F1 and macro-recall (scikit-learn). Product: JSON/schema validity, guard pass rate,
citation validity, evidence-id validity, fact preservation, case checks, fallback rate, and
the costs: latency, tokens, USD. ``judge`` is the optional LLM-as-judge score (evals/judge.py).

Every metric has a per-case value (used to name failing and regressed cases) and a suite
value computed from :class:`Row` objects, so the same code scores a run and a stored baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field

ERROR_LABEL = "(error)"


class CaseOutput(BaseModel):
    """What an adapter returns for one case: the output plus the signals metrics need."""

    text: str | None = None
    label: str | None = None
    data: dict[str, Any] = Field(
        default_factory=dict, description="The task's typed result as JSON, for checks and the report."
    )
    verdicts: list[dict[str, Any]] = Field(default_factory=list)
    schema_valid: bool | None = None
    evidence_valid: bool | None = None
    citations_valid: bool | None = None
    facts_preserved: bool | None = None
    used_fallback: bool = False
    fallback_reason: str | None = None
    model: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = None
    latency_ms: float = 0.0
    judge: float | None = None
    judge_reason: str | None = None
    check_failures: list[str] = Field(default_factory=list)
    checks_run: int = 0
    error: str | None = None

    @property
    def guards_passed(self) -> bool:
        return not any(not v.get("passed", True) and v.get("severity", "block") == "block" for v in self.verdicts)

    def guard_failures(self) -> list[str]:
        return [
            f"{v['name']}: {'; '.join(v.get('details') or []) or 'failed'}"
            for v in self.verdicts
            if not v.get("passed", True) and v.get("severity", "block") == "block"
        ]


class Row(BaseModel):
    """One case as a suite-level metric sees it (rebuildable from a stored baseline)."""

    value: float | None = None
    text: str | None = None
    label: str | None = None
    references: list[str] = Field(default_factory=list)
    error: bool = False


@dataclass(frozen=True)
class Metric:
    name: str
    description: str
    higher_is_better: bool | None  # None: reported only, never compared with a baseline by default
    case: Callable[[Any, CaseOutput], float | None]  # (Case, CaseOutput) -> per-case value
    aggregate: Callable[[Sequence[Row]], float | None]
    binary: bool = False  # per-case value is 0 or 1 (a case fails it at 0)
    scale: float = 1.0  # 1 for rates and F-scores, 100 for chrF: used to print values
    volatile: bool = False  # differs from run to run (wall time): not kept per case in baselines

    @property
    def quality(self) -> bool:
        return self.higher_is_better is True


# -- helpers ---------------------------------------------------------------------------------------


def mean(rows: Sequence[Row]) -> float | None:
    values = [r.value for r in rows if r.value is not None]
    return round(sum(values) / len(values), 4) if values else None


def total(rows: Sequence[Row]) -> float | None:
    values = [r.value for r in rows if r.value is not None]
    return round(sum(values), 6) if values else None


def _binary(flag: Callable[[Any, CaseOutput], bool | None]) -> Callable[[Any, CaseOutput], float | None]:
    def value(case: Any, output: CaseOutput) -> float | None:
        if output.error:
            return 0.0
        result = flag(case, output)
        return None if result is None else float(bool(result))

    return value


@lru_cache(maxsize=1)
def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def rouge(prediction: str, references: Sequence[str], kind: str = "rougeL") -> float:
    """ROUGE F1 (rouge-score, stemmed), the best over the references."""
    if not references:
        return 0.0
    scorer = _rouge_scorer()
    return max(scorer.score(ref, prediction or "")[kind].fmeasure for ref in references)


def _rouge_case(kind: str) -> Callable[[Any, CaseOutput], float | None]:
    def value(case: Any, output: CaseOutput) -> float | None:
        if not case.references:
            return None
        return 0.0 if output.error else round(rouge(output.text or "", case.references, kind), 4)

    return value


def sentence_chrf(prediction: str, references: Sequence[str]) -> float:
    from sacrebleu.metrics import CHRF

    return CHRF().sentence_score(prediction or "", list(references)).score if references else 0.0


def corpus_chrf(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """sacrebleu's corpus chrF with a variable number of references per case (short lists padded with the first)."""
    from sacrebleu.metrics import CHRF

    if not predictions:
        return 0.0
    width = max(len(refs) for refs in references)
    streams = [[refs[i] if i < len(refs) else refs[0] for refs in references] for i in range(width)]
    return CHRF().corpus_score(list(predictions), streams).score


def _chrf_case(case: Any, output: CaseOutput) -> float | None:
    if not case.references:
        return None
    return 0.0 if output.error else round(sentence_chrf(output.text or "", case.references), 2)


def _chrf_aggregate(rows: Sequence[Row]) -> float | None:
    scored = [r for r in rows if r.references]
    if not scored:
        return None
    return round(corpus_chrf([r.text or "" for r in scored], [r.references for r in scored]), 2)


def _labelled(rows: Sequence[Row]) -> tuple[list[str], list[str]]:
    scored = [r for r in rows if r.references]
    return [r.references[0] for r in scored], [r.label or ERROR_LABEL for r in scored]


def macro_f1(gold: Sequence[str], predicted: Sequence[str]) -> float:
    from sklearn.metrics import f1_score

    labels = sorted(set(gold))
    return float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0))


def macro_recall(gold: Sequence[str], predicted: Sequence[str]) -> float:
    from sklearn.metrics import recall_score

    labels = sorted(set(gold))
    return float(recall_score(gold, predicted, labels=labels, average="macro", zero_division=0))


def _label_metric(score: Callable[[Sequence[str], Sequence[str]], float]) -> Callable[[Sequence[Row]], float | None]:
    def aggregate(rows: Sequence[Row]) -> float | None:
        gold, predicted = _labelled(rows)
        return round(score(gold, predicted), 4) if gold else None

    return aggregate


def _correct(case: Any, output: CaseOutput) -> float | None:
    if not case.references:
        return None
    return 0.0 if output.error else float((output.label or "") == case.references[0])


def _info(get: Callable[[CaseOutput], float | None]) -> Callable[[Any, CaseOutput], float | None]:
    return lambda case, output: get(output)


# -- the registry ----------------------------------------------------------------------------------

METRICS: dict[str, Metric] = {}


def _final_passed(output: CaseOutput, names: tuple[str, ...]) -> bool | None:
    """Whether the final output passed these guards (verdicts on a replaced model answer do not count)."""
    final = [
        v
        for v in output.verdicts
        if v.get("name") in names and not any("(replaced)" in d for d in v.get("details") or [])
    ]
    return None if not final else all(v.get("passed", True) for v in final)


def register(metric: Metric) -> Metric:
    METRICS[metric.name] = metric
    return metric


for _kind, _label in (("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L")):
    register(
        Metric(
            _kind,
            f"{_label} F1 against the references (rouge-score, stemmed; best reference per case)",
            True,
            _rouge_case(_kind),
            mean,
        )
    )
register(
    Metric(
        "chrF",
        "chrF against the references (sacrebleu; corpus score, 0-100)",
        True,
        _chrf_case,
        _chrf_aggregate,
        scale=100.0,
    )
)
register(Metric("accuracy", "share of cases whose label equals the expected one", True, _correct, mean, binary=True))
register(
    Metric(
        "macro_f1",
        "macro-averaged F1 over the expected labels (scikit-learn)",
        True,
        _correct,
        _label_metric(macro_f1),
        binary=True,
    )
)
register(
    Metric(
        "macro_recall",
        "macro-averaged recall over the expected labels (scikit-learn)",
        True,
        _correct,
        _label_metric(macro_recall),
        binary=True,
    )
)
register(
    Metric(
        "schema_validity",
        "share of outputs that were valid JSON for the task's schema",
        True,
        _binary(lambda c, o: o.schema_valid),
        mean,
        binary=True,
    )
)
register(
    Metric(
        "guard_pass_rate",
        "share of cases where no blocking guard failed (including on a discarded model answer)",
        True,
        _binary(lambda c, o: o.guards_passed),
        mean,
        binary=True,
    )
)
register(
    Metric(
        "citation_validity",
        "share of outputs whose every [S#] citation maps to a real source",
        True,
        _binary(lambda c, o: o.citations_valid),
        mean,
        binary=True,
    )
)
register(
    Metric(
        "evidence_id_validity",
        "share of outputs whose cited message / turn ids all exist in the input",
        True,
        _binary(lambda c, o: o.evidence_valid),
        mean,
        binary=True,
    )
)
register(
    Metric(
        "fact_preservation",
        "share of rewrites that kept every number, date, email, URL, name and the signature",
        True,
        _binary(lambda c, o: o.facts_preserved),
        mean,
        binary=True,
    )
)
register(
    Metric(
        "changed_rate",
        "share of rewrites that differ from their input (an unchanged rewrite is reported, not a success)",
        True,
        _binary(lambda c, o: None if "unchanged" not in o.data else not o.data["unchanged"]),
        mean,
    )
)
register(
    Metric(
        "intent_addressed",
        "share of drafts whose cited answer is an answer to the request's intent (a holding reply counts as not)",
        True,
        _binary(lambda c, o: o.data.get("intent_addressed")),
        mean,
        binary=True,
    )
)
register(
    Metric(
        "intent_judged",
        "share of drafts an intent classifier (fitted on other Bitext replies) reads as answering the request's "
        "intent, cited or not",
        True,
        _binary(lambda c, o: o.data.get("intent_judged")),
        mean,
        binary=True,
    )
)
register(
    Metric(
        "direction_rate",
        "share of rewrites moved the asked way: more polite (politeness judge) for friendly, empathetic and "
        "formal; shorter for concise; longer for expand",
        True,
        _binary(lambda c, o: o.data.get("moved")),
        mean,
        binary=True,
    )
)
register(
    Metric(
        "grounded_rate",
        "share of outputs whose final text has no ungrounded fact (number, date, price, id, link, name)",
        True,
        _binary(lambda c, o: _final_passed(o, ("grounded_facts", "grounded_names"))),
        mean,
        binary=True,
    )
)
register(
    Metric(
        "signature_free",
        "share of summaries with no signature, sign-off or greeting in a bullet",
        True,
        _binary(lambda c, o: _final_passed(o, ("no_signatures",))),
        mean,
        binary=True,
    )
)
register(
    Metric(
        "checks_pass_rate",
        "share of cases that pass their own checks (must_include, must_not_include, expect)",
        True,
        _binary(lambda c, o: None if not o.checks_run else not o.check_failures),
        mean,
        binary=True,
    )
)
register(
    Metric(
        "judge",
        "LLM-as-judge rubric score, 0-1 (optional: needs --judge-model)",
        True,
        lambda c, o: 0.0 if o.error else o.judge,
        mean,
    )
)
register(
    Metric(
        "fallback_rate",
        "share of cases where the task fell back from the model path",
        None,
        lambda c, o: None if o.error else float(o.used_fallback),
        mean,
    )
)
register(
    Metric(
        "latency_ms", "mean wall time per case, ms", None, _info(lambda o: round(o.latency_ms, 1)), mean, volatile=True
    )
)
register(
    Metric(
        "tokens",
        "mean model tokens (in + out) per case",
        None,
        _info(lambda o: float(o.tokens_in + o.tokens_out)),
        mean,
    )
)
register(
    Metric(
        "cost_usd",
        "total model cost in USD where the provider's price is known",
        None,
        _info(lambda o: o.cost_usd),
        total,
    )
)


def get(name: str) -> Metric:
    if name not in METRICS:
        raise KeyError(name)
    return METRICS[name]


def row(metric: Metric, case: Any, output: CaseOutput) -> Row:
    return Row(
        value=metric.case(case, output),
        text=output.text,
        label=output.label,
        references=case.references,
        error=bool(output.error),
    )


def fmt(metric_name: str, value: float | None) -> str:
    if value is None:
        return "-"
    metric = METRICS.get(metric_name)
    if metric is not None and metric.scale > 1 or metric_name in ("latency_ms", "tokens"):
        return f"{value:.1f}"
    if metric_name == "cost_usd":
        return f"{value:.4f}"
    return f"{value:.4f}"
