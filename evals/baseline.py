"""Human-approved baselines: the last approved run of a suite, the diff against it, and the regression check.

``evals/baselines/<suite>.json`` (for a user's suite: ``baselines/<suite>.json`` next to the suite
file, or the suite's ``baseline`` path) holds the approved run's metrics and per-case outputs,
who approved it and when. A run fails CI when a metric drops more than its tolerance below the
baseline; :func:`diff_run` returns the typed case-by-case diff that ``copilot eval review`` prints
(new failures first) and that a web page can render.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from copilot.errors import InvalidInput, NotFound
from evals import metrics as m
from evals.results import BaselineInfo, CaseResult, EvalReport, Failure, SuiteRun
from evals.suite import MetricSpec

ChangeKind = Literal[
    "new_failure", "worse", "new_case", "still_failing", "changed", "fixed", "removed_case", "unchanged"
]
CHANGE_ORDER: dict[str, int] = {
    k: i
    for i, k in enumerate(
        ("new_failure", "worse", "new_case", "still_failing", "changed", "fixed", "removed_case", "unchanged")
    )
}
EPSILON = 1e-9


def expected_hash(expected: Any) -> str:
    """Fingerprint of a case's reference: a case whose reference changed is not compared with its baseline score."""
    return hashlib.sha256(json.dumps(expected, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:12]


class BaselineCase(BaseModel):
    expected: str | None = Field(
        default=None, description="expected_hash() of the reference the case was scored against."
    )
    text: str | None = None
    label: str | None = None
    metrics: dict[str, float | None] = Field(default_factory=dict)
    passed: bool = True
    error: str | None = None


class Baseline(BaseModel):
    suite: str
    task: str
    model: str
    strategy: str
    approved_by: str
    approved_at: str
    run_id: str
    prompt_versions: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float | None] = Field(default_factory=dict)
    cases: dict[str, BaselineCase] = Field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Baseline | None:
        if not path.is_file():
            return None
        return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))

    def save(self, path: Path) -> Path:
        """Header fields one per line, then one line per case: small, reviewable diffs in git."""
        data = self.model_dump(mode="json")
        cases = data.pop("cases")
        head = json.dumps(data, indent=1, ensure_ascii=False)[:-2]
        lines = [
            f"  {json.dumps(case_id, ensure_ascii=False)}: {json.dumps(case, ensure_ascii=False, sort_keys=True)}"
            for case_id, case in cases.items()
        ]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(head + ',\n "cases": {\n' + ",\n".join(lines) + "\n }\n}\n", encoding="utf-8")
        return path

    def info(self, path: Path, *, compared: bool, note: str | None) -> BaselineInfo:
        return BaselineInfo(
            path=str(path),
            approved_by=self.approved_by,
            approved_at=self.approved_at,
            model=self.model,
            metrics=self.metrics,
            compared=compared,
            note=note,
        )


def default_tolerance(metric: m.Metric) -> float:
    return 0.01 * metric.scale


def comparable(run: SuiteRun, baseline: Baseline) -> str | None:
    """Why a run cannot be compared with a baseline (None: it can)."""
    if baseline.model != run.model:
        return f"baseline approved for model {baseline.model}; this run used {run.model}: not compared"
    if baseline.strategy != run.strategy:
        return f"baseline approved for strategy {baseline.strategy}; this run used {run.strategy}: not compared"
    if not comparable_cases(run, baseline):
        return "no case in common with the baseline (same id and reference): not compared"
    return None


def reference_changed(case: Any, old: BaselineCase) -> bool:
    return old.expected is not None and old.expected != expected_hash(case.expected)


def comparable_cases(run: SuiteRun, baseline: Baseline) -> list[str]:
    """Ids of the cases in both, scored against the same reference."""
    return [c.id for c in run.cases if c.id in baseline.cases and not reference_changed(c, baseline.cases[c.id])]


def _rows(run: SuiteRun, baseline: Baseline, metric: m.Metric, ids: list[str]) -> tuple[list[m.Row], list[m.Row]]:
    """Current and baseline rows over the same cases (references from the current suite)."""
    by_id = {c.id: c for c in run.cases}
    now, before = [], []
    for case_id in ids:
        case = by_id[case_id]
        refs = _references(case.expected)
        now.append(
            m.Row(
                value=case.metrics.get(metric.name),
                text=case.output.text,
                label=case.output.label,
                references=refs,
                error=bool(case.output.error),
            )
        )
        old = baseline.cases[case_id]
        before.append(
            m.Row(
                value=old.metrics.get(metric.name),
                text=old.text,
                label=old.label,
                references=refs,
                error=bool(old.error),
            )
        )
    return now, before


def _references(expected: Any) -> list[str]:
    if expected is None:
        return []
    if isinstance(expected, list):
        return [str(e) for e in expected if str(e).strip()]
    return [str(expected)] if str(expected).strip() else []


def regressions(run: SuiteRun, baseline: Baseline, specs: dict[str, MetricSpec]) -> tuple[list[Failure], str | None]:
    """Failures for metrics that dropped more than their tolerance below the approved baseline,
    naming the cases that got worse."""
    reason = comparable(run, baseline)
    if reason:
        return [], reason
    common = comparable_cases(run, baseline)
    note = None
    if len(common) != len(run.cases) or len(common) != len(baseline.cases):
        shared = sum(1 for c in run.cases if c.id in baseline.cases)
        note = (
            f"compared on the {len(common)} cases the run shares with the baseline "
            f"({len(run.cases) - shared} new, {len(baseline.cases) - shared} no longer in the suite, "
            f"{shared - len(common)} with a changed reference)"
        )
    failures = []
    for name, spec in specs.items():
        metric = m.METRICS[name]
        if metric.higher_is_better is None and spec.tolerance is None:
            continue
        tolerance = spec.tolerance if spec.tolerance is not None else default_tolerance(metric)
        now_rows, old_rows = _rows(run, baseline, metric, common)
        now, before = metric.aggregate(now_rows), metric.aggregate(old_rows)
        if now is None or before is None:
            continue
        if metric.higher_is_better is None:
            worse = now > before + tolerance + EPSILON
            direction = "rose"
        else:
            worse = now < before - tolerance - EPSILON
            direction = "dropped"
        if not worse:
            continue
        sign = 1 if metric.higher_is_better is not False and metric.higher_is_better is not None else -1
        changes = []
        for case_id, new_row, old_row in zip(common, now_rows, old_rows, strict=True):
            if (
                new_row.value is not None
                and old_row.value is not None
                and (old_row.value - new_row.value) * sign > EPSILON
            ):
                changes.append((abs(old_row.value - new_row.value), case_id, old_row.value, new_row.value))
        changes.sort(key=lambda c: -c[0])
        named = ", ".join(f"{cid} ({m.fmt(name, old)} -> {m.fmt(name, new)})" for _, cid, old, new in changes[:8])
        more = f" (+{len(changes) - 8} more)" if len(changes) > 8 else ""
        failures.append(
            Failure(
                suite=run.suite,
                model=run.model,
                kind="baseline_regression",
                metric=name,
                value=now,
                bound=before,
                cases=[c[1] for c in changes],
                message=(
                    f"[{run.suite}] {name} {m.fmt(name, now)} {direction} {m.fmt(name, abs(now - before))} "
                    f"from the approved baseline {m.fmt(name, before)} (tolerance {m.fmt(name, tolerance)}; "
                    f"approved by {baseline.approved_by} on {baseline.approved_at[:10]})"
                    f"; cases that got worse: {named or 'none individually (corpus-level change)'}{more}"
                ),
            )
        )
    return failures, note


# -- review: the typed diff --------------------------------------------------------------------------


class MetricChange(BaseModel):
    metric: str
    baseline: float | None
    current: float | None
    delta: float | None
    status: Literal["ok", "improved", "regressed", "new"]


class CaseChange(BaseModel):
    case_id: str
    kind: ChangeKind
    baseline_output: str | None = None
    current_output: str | None = None
    expected: Any = None
    baseline_metrics: dict[str, float | None] = Field(default_factory=dict)
    current_metrics: dict[str, float | None] = Field(default_factory=dict)
    worse_metrics: list[str] = Field(default_factory=list)
    better_metrics: list[str] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)
    passed: bool | None = None


class SuiteDiff(BaseModel):
    """What changed in one suite run against its approved baseline (cases ordered: new failures first)."""

    suite: str
    task: str
    model: str
    baseline_path: str | None
    has_baseline: bool
    approved_by: str | None = None
    approved_at: str | None = None
    note: str | None = None
    passed: bool
    failures: list[str] = Field(default_factory=list)
    metrics: list[MetricChange] = Field(default_factory=list)
    cases: list[CaseChange] = Field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for change in self.cases:
            out[change.kind] = out.get(change.kind, 0) + 1
        return out


def diff_run(run: SuiteRun, baseline: Baseline | None) -> SuiteDiff:
    diff = SuiteDiff(
        suite=run.suite,
        task=run.task,
        model=run.model,
        baseline_path=run.baseline_path,
        has_baseline=baseline is not None,
        passed=run.passed,
        failures=[f.message for f in run.failures],
        note=run.skipped,
    )
    if baseline is None:
        return _diff_without_baseline(diff, run)
    diff.approved_by, diff.approved_at = baseline.approved_by, baseline.approved_at
    diff.note = diff.note or comparable(run, baseline)
    diff.metrics = [_metric_change(name, value, baseline.metrics) for name, value in run.metrics.items()]
    seen = set()
    for case in run.cases:
        seen.add(case.id)
        diff.cases.append(_case_change(case, baseline.cases.get(case.id)))
    for case_id, old in baseline.cases.items():
        if case_id not in seen:
            diff.cases.append(
                CaseChange(
                    case_id=case_id,
                    kind="removed_case",
                    baseline_output=old.text if old.text is not None else old.label,
                    baseline_metrics=old.metrics,
                )
            )
    diff.cases.sort(key=lambda c: (CHANGE_ORDER[c.kind], c.passed is not False))
    return diff


def _diff_without_baseline(diff: SuiteDiff, run: SuiteRun) -> SuiteDiff:
    diff.note = diff.note or "no approved baseline yet: `copilot eval approve` makes this run the baseline"
    diff.metrics = [
        MetricChange(metric=k, baseline=None, current=v, delta=None, status="new") for k, v in run.metrics.items()
    ]
    ordered = sorted(run.cases, key=lambda c: c.passed)  # failing cases first
    diff.cases = [
        CaseChange(
            case_id=c.id,
            kind="new_case",
            current_output=c.output.text if c.output.text is not None else c.output.label,
            expected=c.expected,
            current_metrics=c.metrics,
            problems=c.problems,
            passed=c.passed,
        )
        for c in ordered
    ]
    return diff


def _metric_change(name: str, value: float | None, baseline_metrics: dict[str, float | None]) -> MetricChange:
    metric = m.METRICS[name]
    before = baseline_metrics.get(name)
    if before is None or value is None:
        if name not in baseline_metrics or (before is None and value is not None):
            status = "new"
        else:
            status = "ok" if value is None and before is None else "regressed"
        return MetricChange(metric=name, baseline=before, current=value, delta=None, status=status)
    delta = round(value - before, 6)
    good = delta if metric.higher_is_better is not False else -delta
    status = (
        "ok" if metric.higher_is_better is None or abs(delta) <= EPSILON else ("improved" if good > 0 else "regressed")
    )
    return MetricChange(metric=name, baseline=before, current=value, delta=delta, status=status)


def _case_change(case: CaseResult, old: BaselineCase | None) -> CaseChange:
    change = CaseChange(
        case_id=case.id,
        kind="unchanged",
        current_output=case.output.text if case.output.text is not None else case.output.label,
        expected=case.expected,
        current_metrics=case.metrics,
        problems=case.problems,
        passed=case.passed,
    )
    if old is None:
        change.kind = "new_case"
    elif reference_changed(case, old):
        change.kind = "changed"
        change.baseline_output = old.text if old.text is not None else old.label
        change.problems = ["the reference changed since the baseline: scores are not compared", *change.problems]
    else:
        change.baseline_output = old.text if old.text is not None else old.label
        change.baseline_metrics = old.metrics
        _compare_case_metrics(change, case.metrics, old.metrics)
        change.kind = _compared_case_kind(change, was_passing=old.passed, passing=case.passed)
    return change


def _compare_case_metrics(
    change: CaseChange, metrics: dict[str, float | None], baseline_metrics: dict[str, float | None]
) -> None:
    for name, value in metrics.items():
        metric = m.METRICS.get(name)
        before = baseline_metrics.get(name)
        if metric is None or not metric.quality or value is None or before is None:
            continue
        if value < before - EPSILON:
            change.worse_metrics.append(name)
        elif value > before + EPSILON:
            change.better_metrics.append(name)


def _compared_case_kind(change: CaseChange, *, was_passing: bool, passing: bool) -> ChangeKind:
    if was_passing and not passing:
        return "new_failure"
    if not was_passing and passing:
        return "fixed"
    if not passing:
        return "still_failing"
    if change.worse_metrics:
        return "worse"
    if change.current_output != change.baseline_output or change.better_metrics:
        return "changed"
    return "unchanged"


def review(
    report: EvalReport, *, suites: list[str] | None = None, baselines_dir: Path | None = None
) -> list[SuiteDiff]:
    """The diff of every suite run in a report against its approved baseline."""
    diffs = []
    for run in report.runs:
        if suites and run.suite not in suites:
            continue
        path = _baseline_path(run, baselines_dir)
        diffs.append(diff_run(run, Baseline.load(path) if path else None))
    return diffs


def _baseline_path(run: SuiteRun, baselines_dir: Path | None) -> Path | None:
    if baselines_dir is not None:
        return baselines_dir / f"{run.suite}.json"
    return Path(run.baseline_path) if run.baseline_path else None


# -- approve ----------------------------------------------------------------------------------------


def approver() -> str:
    """Who approves: $COPILOT_APPROVER, else the OS user."""
    return os.environ.get("COPILOT_APPROVER") or getpass.getuser()


def make_baseline(run: SuiteRun, *, by: str, at: datetime | None = None, run_id: str) -> Baseline:
    return Baseline(
        suite=run.suite,
        task=run.task,
        model=run.model,
        strategy=run.strategy,
        approved_by=by,
        approved_at=(at or datetime.now(UTC)).isoformat(timespec="seconds"),
        run_id=run_id,
        prompt_versions=run.prompt_versions,
        metrics={k: (round(v, 1) if v is not None and m.METRICS[k].volatile else v) for k, v in run.metrics.items()},
        cases={
            c.id: BaselineCase(
                expected=expected_hash(c.expected),
                text=c.output.text,
                label=c.output.label,
                passed=c.passed,
                error=c.output.error,
                metrics={k: v for k, v in c.metrics.items() if not m.METRICS[k].volatile},
            )
            for c in run.cases
        },
    )


def approve(
    report: EvalReport,
    *,
    suites: list[str] | None = None,
    model: str | None = None,
    by: str | None = None,
    baselines_dir: Path | None = None,
) -> list[tuple[SuiteRun, Path]]:
    """Promote the report's suite runs to baselines; returns what was written where."""
    runs = [
        r
        for r in report.runs
        if not r.skipped and (not suites or r.suite in suites) and (model is None or r.model == model)
    ]
    if suites:
        missing = sorted(set(suites) - {r.suite for r in runs})
        if missing:
            raise NotFound(f"suite(s) {', '.join(missing)} not in the report {report.run_id} (or skipped there)")
    if not runs:
        raise NotFound("nothing to approve: the report has no suite run that matches")
    per_suite: dict[str, list[SuiteRun]] = {}
    for run in runs:
        per_suite.setdefault(run.suite, []).append(run)
    ambiguous = [name for name, group in per_suite.items() if len(group) > 1]
    if ambiguous:
        raise InvalidInput(f"model: the report ran {', '.join(ambiguous)} with several models; choose one with --model")
    written = []
    who = by or approver()
    for run in runs:
        path = _baseline_path(run, baselines_dir)
        if path is None:
            raise InvalidInput(f"suite {run.suite}: the report does not say where its baseline lives; pass --baselines")
        make_baseline(run, by=who, run_id=report.run_id).save(path)
        written.append((run, path))
    return written
