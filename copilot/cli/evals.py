"""Offline evals: ``copilot eval run | review | approve | export-approved | list``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from copilot.cli.common import WorkspaceOption, console, load_settings, open_store, workspace_slug

eval_app = typer.Typer(
    help="Offline evals: golden suites, metrics, reports and human-approved baselines.", no_args_is_help=True
)

SuiteOption = Annotated[
    list[str] | None,
    typer.Option("--suite", "-s", help="Suite name (see `copilot eval list`) or path to a suite .yaml; repeatable."),
]
ReportOption = Annotated[
    Path | None, typer.Option("--report", help="Report JSON to use (default: the last run's, under the data dir).")
]
BaselinesOption = Annotated[
    Path | None, typer.Option("--baselines", help="Folder of baselines (default: each suite's own baseline path).")
]


@eval_app.command("run")
def run_command(
    suite: SuiteOption = None,
    task: Annotated[
        list[str] | None, typer.Option("--task", "-t", help="Only suites of this task; repeatable.")
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Model(s) to evaluate; several print a side-by-side table."),
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(help="Override every suite's task strategy (auto, model, extractive, retrieval, rules)."),
    ] = None,
    public: Annotated[
        bool, typer.Option("--public", help="Also run the suites on public dev data (skipped when absent).")
    ] = False,
    limit: Annotated[int | None, typer.Option(help="At most N cases per suite.")] = None,
    concurrency: Annotated[
        int, typer.Option(help="Cases run at the same time (on Ray actors with COPILOT_RAY_ADDRESS).")
    ] = 4,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not use the model response cache.")] = False,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Response cache folder (default: $COPILOT_CACHE_DIR or <data dir>/evals/cache).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Where report.json, report.html and junit.xml go (default: <data dir>/evals/last-run)."
        ),
    ] = None,
    baselines: BaselinesOption = None,
    no_baseline: Annotated[
        bool, typer.Option("--no-baseline", help="Do not compare with the approved baselines.")
    ] = False,
    prompts_dir: Annotated[
        Path | None, typer.Option(help="Evaluate the prompt templates in this folder instead of the shipped ones.")
    ] = None,
    judge_model: Annotated[
        str | None, typer.Option(help="Add the LLM-as-judge metric, graded by this model (off by default).")
    ] = None,
) -> None:
    """Run eval suites (default: every golden suite) and fail when a metric is below its threshold or regressed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from evals.report import print_report, write_all
    from evals.runner import RunOptions, default_out_dir, run_evals
    from evals.suite import select_suites

    settings = load_settings()
    suites = select_suites(suite, task, public=public)
    if settings.ray_address:
        console.print(
            escape(f"cases run on Ray at {settings.ray_address}: {concurrency} actor(s) per suite"), style="dim"
        )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        bars: dict[str, int] = {}

        def progress(label: str, done: int, total: int) -> None:
            if label not in bars:
                bars[label] = bar.add_task(escape(label), total=total)
            bar.update(bars[label], completed=done, total=total)

        options = RunOptions(
            models=model or None,
            strategy=strategy,
            limit=limit,
            concurrency=concurrency,
            cache=not no_cache,
            cache_dir=cache_dir,
            baselines_dir=baselines,
            compare_baseline=not no_baseline,
            prompts_dir=prompts_dir,
            judge_model=judge_model,
            progress=progress,
        )
        report = run_evals(suites, settings, options)
    print_report(report, console)
    paths = write_all(report, out or default_out_dir(settings))
    console.print(
        escape(f"reports: {paths['json']} · {paths['html']} · {paths['junit']}"),
        style="dim",
        highlight=False,
        soft_wrap=True,
    )
    if not report.passed:
        raise typer.Exit(code=1)


@eval_app.command("review")
def review_command(
    report: ReportOption = None,
    suite: Annotated[list[str] | None, typer.Option("--suite", "-s", help="Only these suites; repeatable.")] = None,
    baselines: BaselinesOption = None,
    all_cases: Annotated[bool, typer.Option("--all", help="Also list unchanged cases.")] = False,
) -> None:
    """Show what changed in the last run against the approved baselines, case by case (new failures first)."""
    from evals.baseline import review
    from evals.report import print_review
    from evals.results import EvalReport
    from evals.runner import default_out_dir

    settings = load_settings()
    loaded = EvalReport.load(report or default_out_dir(settings) / "report.json")
    console.print(f"report {loaded.run_id} ({loaded.started_at})", highlight=False)
    print_review(review(loaded, suites=suite, baselines_dir=baselines), console, show_unchanged=all_cases)


@eval_app.command("approve")
def approve_command(
    report: ReportOption = None,
    suite: Annotated[
        list[str] | None,
        typer.Option("--suite", "-s", help="Only these suites (default: every suite in the report); repeatable."),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="The model whose run to approve, when the report has several.")
    ] = None,
    by: Annotated[str | None, typer.Option(help="Who approves (default: $COPILOT_APPROVER or the OS user).")] = None,
    baselines: BaselinesOption = None,
) -> None:
    """Promote the last run to the approved baseline (records who approved it and when); review it first."""
    from evals.baseline import approve
    from evals.results import EvalReport
    from evals.runner import default_out_dir

    settings = load_settings()
    loaded = EvalReport.load(report or default_out_dir(settings) / "report.json")
    if loaded.prompts_dir:
        console.print(
            f"[yellow]note:[/] this run used prompts from {escape(loaded.prompts_dir)}, not the shipped ones",
            highlight=False,
        )
    for run, path in approve(loaded, suites=suite, model=model, by=by, baselines_dir=baselines):
        warn = f" [yellow](approved with {len(run.failures)} failing check(s))[/]" if run.failures else ""
        console.print(
            f"approved [bold]{escape(run.suite)}[/] ({escape(run.model)}) -> {escape(str(path))}{warn}",
            highlight=False,
            soft_wrap=True,
        )


@eval_app.command("export-approved")
def export_approved_command(
    task: Annotated[
        str, typer.Option("--task", "-t", help="reply_draft, ticket_summary or tone_rewrite.")
    ] = "reply_draft",
    workspace: WorkspaceOption = None,
    out_dir: Annotated[
        Path, typer.Option("--out-dir", "-o", help="Folder for <name>.jsonl and the suite <name>.yaml.")
    ] = Path("."),
    name: Annotated[str | None, typer.Option(help="Suite name (default: <task>_approved).")] = None,
    limit: Annotated[int | None, typer.Option(help="At most N cases.")] = None,
) -> None:
    """Turn outputs humans approved or edited into eval cases (their final text is the reference), PII redacted."""
    from evals.export import export_approved, write_export

    settings = load_settings()
    slug = workspace_slug(settings, workspace)
    with open_store(settings).repo(slug) as repo:
        cases = export_approved(repo, task, limit=limit)
    data, suite_file = write_export(cases, task, out_dir, name=name, workspace=slug)
    console.print(
        escape(f"{len(cases)} case(s) -> {data}\nsuite -> {suite_file}\nrun it: copilot eval run --suite {suite_file}"),
        highlight=False,
        soft_wrap=True,
    )


@eval_app.command("list")
def list_command(
    public: Annotated[bool, typer.Option("--public/--golden-only", help="Include the public-data suites.")] = True,
) -> None:
    """The project's suites: name, task, dataset and the metrics that have thresholds."""
    from rich.table import Table

    from evals.suite import discover

    table = Table("suite", "task", "dataset", "thresholds")
    for item in discover(public=public):
        bounded = [
            name
            + (f" >= {spec.min:g}" if spec.min is not None else "")
            + (f" <= {spec.max:g}" if spec.max is not None else "")
            for name, spec in item.metrics.items()
            if spec.min is not None or spec.max is not None
        ]
        reported = len(item.metrics) - len(bounded)
        table.add_row(
            escape(item.name) + (" (public)" if item.public else ""),
            item.task,
            escape(item.dataset),
            ", ".join(bounded) + (f" (+{reported} reported)" if reported else ""),
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
