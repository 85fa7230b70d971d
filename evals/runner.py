"""The eval runner: cases run concurrently through the task adapters (model calls go through the response cache),
metrics and thresholds are applied, and each suite run is compared with its approved baseline."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from copilot.errors import InvalidInput
from copilot.guards import normalise
from copilot.settings import Settings
from evals import metrics as m
from evals.adapters import EvalEnv, get_adapter, scratch_dir
from evals.baseline import Baseline, comparable, regressions
from evals.data import DataUnavailable
from evals.results import CaseResult, EvalReport, Failure, SuiteRun
from evals.suite import Case, MetricSpec, Suite, SuiteError, load_cases

if TYPE_CHECKING:
    from copilot.gateway.fake import FakeModel
    from evals.on_ray import EvalActors

Progress = Callable[[str, int, int], None]  # (suite label, cases done, cases total)
NAMED_CASES = 8


@dataclass
class RunOptions:
    models: list[str] | None = None  # default: the configured model
    strategy: str | None = None  # overrides every suite's strategy
    limit: int | None = None  # at most this many cases per suite
    concurrency: int = 4
    cache: bool = True
    cache_dir: Path | None = None  # default: $COPILOT_CACHE_DIR, else <data dir>/evals/cache
    baselines_dir: Path | None = None  # default: each suite's own baseline path
    compare_baseline: bool = True
    prompts_dir: Path | None = None  # evaluate an edited copy of prompts/
    judge_model: str | None = None  # adds the LLM-as-judge metric
    progress: Progress | None = None
    fake: FakeModel | None = None  # answers fake/... models (tests hand in their own)


def default_cache_dir(settings: Settings) -> Path:
    return settings.cache_dir or settings.data_dir / "evals" / "cache"


def default_out_dir(settings: Settings) -> Path:
    return settings.data_dir / "evals" / "last-run"


@contextmanager
def prompts_override(directory: Path | None) -> Iterator[None]:
    """Render every prompt from ``directory`` for the duration (``$COPILOT_PROMPTS_DIR``)."""
    if directory is None:
        yield
        return
    directory = Path(directory).expanduser().resolve()
    if not directory.is_dir():
        raise InvalidInput(f"prompts dir: {directory} is not a folder")
    from copilot.tasks.tones import builtin_tones

    previous = os.environ.get("COPILOT_PROMPTS_DIR")
    os.environ["COPILOT_PROMPTS_DIR"] = str(directory)
    builtin_tones.cache_clear()
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("COPILOT_PROMPTS_DIR", None)
        else:
            os.environ["COPILOT_PROMPTS_DIR"] = previous
        builtin_tones.cache_clear()


def run_evals(suites: list[Suite], settings: Settings, options: RunOptions | None = None) -> EvalReport:
    """Run every suite with every model; the report holds one SuiteRun per (suite, model)."""
    options = options or RunOptions()
    models = options.models or [settings.model]
    cache_dir = default_cache_dir(settings) if options.cache else None
    if options.cache and options.cache_dir is not None:
        cache_dir = options.cache_dir
    started = time.perf_counter()
    report = EvalReport(
        run_id=datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6],
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        models=models,
        prompts_dir=str(options.prompts_dir) if options.prompts_dir else None,
        cache_dir=str(cache_dir) if cache_dir else None,
    )
    with prompts_override(options.prompts_dir), ray_actors(settings, options) as actors:
        for entry in models:
            model, strategy = split_model_entry(entry)
            run_settings = settings.model_copy(update={"model": model, "cache_dir": cache_dir})
            for suite in suites:
                run = run_suite(suite, run_settings, options, label=entry, strategy=strategy, actors=actors)
                report.runs.append(run)
    report.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    report.wall_s = round(time.perf_counter() - started, 2)
    return report


def ray_actors(settings: Settings, options: RunOptions) -> AbstractContextManager[EvalActors | None]:
    """The run's Ray actors when ``COPILOT_RAY_ADDRESS`` is set (cases then run there), else nothing."""
    if not settings.ray_address:
        return nullcontext()
    from evals.on_ray import EvalActors

    return EvalActors(settings, options)


def split_model_entry(entry: str) -> tuple[str, str | None]:
    """``model@strategy`` (``local/qwen2.5-coder-1.5b@extractive``, ``fake/echo@lead2``) -> (model, strategy)."""
    model, _, strategy = entry.partition("@")
    return model, strategy or None


def metric_names(suite: Suite, default: tuple[str, ...], judge: bool) -> list[str]:
    names = list(suite.metrics) or list(default)
    if judge and "judge" not in names:
        names.append("judge")
    unknown = [n for n in names if n not in m.METRICS]
    if unknown:
        raise SuiteError(
            f"{suite.path or suite.name}: metrics: unknown metric(s) {', '.join(unknown)} "
            f"(known: {', '.join(m.METRICS)})"
        )
    return names


def run_suite(
    suite: Suite,
    settings: Settings,
    options: RunOptions,
    *,
    label: str | None = None,
    strategy: str | None = None,
    actors: EvalActors | None = None,
) -> SuiteRun:
    """Run one suite with the model in ``settings`` (its cases on ``actors`` when given, else on threads here);
    never raises for a failing case (the case records its error)."""
    started = time.perf_counter()
    adapter = get_adapter(suite.task)
    strategy = strategy or options.strategy or suite.strategy
    names = metric_names(suite, adapter.metrics, options.judge_model is not None)
    specs = {name: suite.metrics.get(name) or MetricSpec() for name in names}
    baseline_path = suite.baseline_path(options.baselines_dir)
    run = SuiteRun(
        suite=suite.name,
        task=suite.task,
        model=label or settings.model,
        strategy=strategy,
        description=suite.description,
        suite_path=str(suite.path) if suite.path else None,
        dataset=suite.dataset,
        specs=specs,
        baseline_path=str(baseline_path),
    )
    try:
        cases = load_cases(suite)
    except DataUnavailable as error:
        run.skipped = str(error)
        return run
    if options.limit is not None:
        cases = cases[: options.limit]
    label = suite.name if len(options.models or []) <= 1 else f"{suite.name} [{label or settings.model}]"
    if actors is not None:
        outputs, (run.model_calls, run.cache_hits) = actors.run_cases(settings, strategy, suite, cases, options, label)
    else:
        with scratch_dir() as workdir:
            env = EvalEnv.create(settings, strategy, Path(workdir), fake=options.fake, judge_model=options.judge_model)
            try:
                outputs = _run_cases(env, adapter, suite, cases, options, label)
            finally:
                env.close()
            run.model_calls, run.cache_hits = env.calls.model_calls, env.calls.cache_hits  # the judge's calls too
    score(run, cases, outputs)
    run.failures = threshold_failures(run)
    if options.compare_baseline:
        baseline = Baseline.load(baseline_path)
        if baseline is not None:
            found, note = regressions(run, baseline, specs)
            run.failures += found
            run.baseline = baseline.info(baseline_path, compared=comparable(run, baseline) is None, note=note)
    run.wall_s = round(time.perf_counter() - started, 2)
    return run


def _run_cases(
    env: EvalEnv,
    adapter: Any,
    suite: Suite,
    cases: list[Case],
    options: RunOptions,
    label: str,
) -> list[m.CaseOutput]:
    progress = options.progress or (lambda *_: None)
    progress(label, 0, len(cases))
    if adapter.prepare is not None:
        adapter.prepare(env, cases)
    done, counting = 0, threading.Lock()

    def one(case: Case) -> m.CaseOutput:
        nonlocal done
        output = run_case(env, adapter, suite.task, case)
        with counting:  # cases finish on several threads; each count is reported once, in order
            done += 1
            progress(label, done, len(cases))
        return output

    with ThreadPoolExecutor(max_workers=max(1, options.concurrency), thread_name_prefix="eval") as pool:
        return list(pool.map(one, cases))


def run_case(env: EvalEnv, adapter: Any, task: str, case: Case) -> m.CaseOutput:
    """One case through its adapter, judged when there is a judge, with its own checks; a broken case is a failing
    case, not a crashed run."""
    started = time.perf_counter()
    try:
        output = adapter.runner_for(env.strategy)(env, case)
    except Exception as error:
        output = m.CaseOutput(error=f"{type(error).__name__}: {error}")
    output.latency_ms = round((time.perf_counter() - started) * 1000, 1)
    if env.judge is not None and not output.error:
        from evals.judge import judge_case

        try:
            output.judge, output.judge_reason = judge_case(env.judge, task, case, output)
        except Exception as error:
            output.judge_reason = f"judge failed: {type(error).__name__}: {error}"
    output.check_failures, output.checks_run = run_checks(case, output)
    return output


# -- case checks --------------------------------------------------------------------------------------


def run_checks(case: Case, output: m.CaseOutput) -> tuple[list[str], int]:
    """A case's own assertions: must_include / must_not_include (case-insensitive), expect {field: value}, max_chars."""
    if not case.checks:
        return [], 0
    if output.error:
        return [f"error: {output.error}"], 1
    text = normalise(output.text or output.label or "")
    failures, count = [], 0
    for key, value in case.checks.items():
        if key == "must_include":
            for needle in _as_list(value):
                count += 1
                if normalise(str(needle)) not in text:
                    failures.append(f"output lacks '{needle}'")
        elif key == "must_not_include":
            for needle in _as_list(value):
                count += 1
                if normalise(str(needle)) in text:
                    failures.append(f"output contains '{needle}'")
        elif key == "expect":
            for field, want in (value or {}).items():
                count += 1
                got = _lookup(output, field)
                if got != want:
                    failures.append(f"{field} is {got!r}, expected {want!r}")
        elif key == "max_chars":
            count += 1
            if len(output.text or "") > int(value):
                failures.append(f"output has {len(output.text or '')} characters, more than {value}")
        else:
            count += 1
            failures.append(f"unknown check '{key}' (use must_include, must_not_include, expect, max_chars)")
    return failures, count


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _lookup(output: m.CaseOutput, field: str) -> Any:
    if field in ("label", "text", "used_fallback", "model"):
        return getattr(output, field)
    value: Any = output.data
    for part in field.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


# -- scoring -------------------------------------------------------------------------------------------


def case_fails(metric: m.Metric, spec: MetricSpec, value: float | None) -> bool:
    if value is None:
        return False
    if spec.case_min is not None:
        return value < spec.case_min
    return metric.binary and value < 1


def score(run: SuiteRun, cases: list[Case], outputs: list[m.CaseOutput]) -> None:
    """Per-case metric values, suite values, case verdicts and problems."""
    rows: dict[str, list[m.Row]] = {name: [] for name in run.specs}
    for case, output in zip(cases, outputs, strict=True):
        result = CaseResult(
            id=case.id,
            inputs=case.inputs,
            expected=case.expected,
            checks=case.checks,
            tags=case.tags,
            note=case.note,
            output=output,
        )
        for name, spec in run.specs.items():
            metric = m.METRICS[name]
            row = m.row(metric, case, output)
            rows[name].append(row)
            result.metrics[name] = row.value
            if case_fails(metric, spec, row.value):
                result.failed_metrics.append(name)
        if output.error:
            result.problems.append(f"error: {output.error}")
        elif output.label is not None and case.references and output.label != case.references[0]:
            result.problems.append(f"label {output.label}, expected {case.references[0]}")
        result.problems += [f"guard {g}" for g in output.guard_failures()]
        result.problems += [f"check: {c}" for c in output.check_failures if not output.error]
        if output.used_fallback and output.fallback_reason:
            result.problems.append(f"fallback: {output.fallback_reason}")
        if output.judge_reason and output.judge is not None and output.judge < 0.5:
            result.problems.append(f"judge: {output.judge_reason}")
        result.passed = not output.error and not result.failed_metrics
        run.cases.append(result)
        if output.prompt_name and output.prompt_version:
            run.prompt_versions[output.prompt_name] = output.prompt_version
    run.metrics = {name: m.METRICS[name].aggregate(rows[name]) for name in run.specs}


def _named(ids: list[str]) -> str:
    more = f" (+{len(ids) - NAMED_CASES} more)" if len(ids) > NAMED_CASES else ""
    return ", ".join(ids[:NAMED_CASES]) + more


def threshold_failures(run: SuiteRun) -> list[Failure]:
    failures = []
    errored = [c.id for c in run.cases if c.output.error]
    if errored:
        first = next(c.output.error for c in run.cases if c.output.error)
        failures.append(
            Failure(
                suite=run.suite,
                model=run.model,
                kind="suite_error",
                cases=errored,
                message=f"[{run.suite}] {len(errored)} of {len(run.cases)} cases raised an error: "
                f"{_named(errored)}; first: {first}",
            )
        )
    for name, spec in run.specs.items():
        value = run.metrics.get(name)
        if spec.min is not None and (value is None or value < spec.min - 1e-12):
            cases = [c.id for c in run.cases if name in c.failed_metrics]
            if not cases:  # a corpus-level metric: name the weakest cases
                scored = sorted(
                    (c for c in run.cases if c.metrics.get(name) is not None), key=lambda c: c.metrics[name]
                )
                cases = [c.id for c in scored[:5]]
            failures.append(
                Failure(
                    suite=run.suite,
                    model=run.model,
                    kind="below_threshold",
                    metric=name,
                    value=value,
                    bound=spec.min,
                    cases=cases,
                    message=f"[{run.suite}] {name} {m.fmt(name, value)} "
                    f"is below the threshold {m.fmt(name, spec.min)}; failing cases: {_named(cases) or 'none'}",
                )
            )
        if spec.max is not None and value is not None and value > spec.max + 1e-12:
            scored = sorted(
                (c for c in run.cases if c.metrics.get(name) is not None), key=lambda c: -(c.metrics[name] or 0)
            )
            cases = [c.id for c in scored if (c.metrics[name] or 0) > spec.max] or [c.id for c in scored[:5]]
            failures.append(
                Failure(
                    suite=run.suite,
                    model=run.model,
                    kind="above_threshold",
                    metric=name,
                    value=value,
                    bound=spec.max,
                    cases=cases,
                    message=f"[{run.suite}] {name} {m.fmt(name, value)} is above the limit {m.fmt(name, spec.max)}; "
                    f"highest cases: {_named(cases)}",
                )
            )
    return failures
