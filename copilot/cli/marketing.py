"""Marketing commands: NPS themes over any filter (date range, campaign, segment, score band)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from copilot.cli.common import WorkspaceOption, console, open_services, run_task, workspace_slug

BANDS = ("all", "promoters", "passives", "detractors")


def _day(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"'{value}' is not a date (use YYYY-MM-DD)", param_hint=option) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%"


def _change(theme) -> str:
    change = theme.change
    if change is None:
        return "[dim]-[/]"
    if not change.previous_responses:
        return "[cyan]new[/]"
    colour = "green" if change.share_delta > 0 else "red" if change.share_delta < 0 else "white"
    parts = [f"[{colour}]{change.share_delta:+.1f} pp[/]"]
    if change.avg_score_delta is not None:
        parts.append(f"score {change.avg_score_delta:+.1f}")
    if change.sentiment_delta is not None:
        parts.append(f"sent. {change.sentiment_delta:+.2f}")
    return "\n".join(parts)


def show_report(report, *, title: str) -> None:
    period = f"{report.since:%Y-%m-%d}" if report.since else "the start"
    lines = [
        f"period {period} → {report.until:%Y-%m-%d} · {report.filters.describe()}",
        f"{report.responses} responses · {report.commented} with a comment ({report.sentences} sentences) · NPS "
        + (f"{report.nps:+.1f}" if report.nps is not None else "-")
        + f" · {report.k} themes ({report.k_mode}) · seed {report.seed}",
    ]
    if report.previous_since is not None:
        sampled = " (sampled)" if report.previous_sampled else ""
        lines.append(
            f"previous period {report.previous_since:%Y-%m-%d} → {report.previous_until:%Y-%m-%d}: "
            f"{report.previous_commented} commented responses{sampled}"
        )
    table = Table(
        "#",
        "theme · keywords · quotes (response id, score)",
        "responses",
        "prom / pass / detr",
        "avg",
        "sentiment",
        "vs previous",
        title=title,
        show_lines=True,
        caption="\n".join(lines),
    )
    for theme in report.themes:
        colour = {"negative": "red", "neutral": "white", "positive": "green"}[theme.sentiment_label]
        source = " [dim](model)[/]" if theme.label_source == "model" else ""
        body = [f"[bold]{theme.label}[/]{source}", f"[dim]{', '.join(theme.keywords)}[/]"]
        body += [
            f"“{q.text}” [dim]#{q.response_id}{f' {q.external_id}' if q.external_id else ''} · {q.score}[/]"
            for q in theme.quotes
        ]
        table.add_row(
            str(theme.id),
            "\n".join(body),
            f"{theme.responses}\n[dim]{_percent(theme.share)}[/]",
            f"{_percent(theme.promoters)} / {_percent(theme.passives)} / {_percent(theme.detractors)}",
            f"{theme.avg_score:.1f}",
            f"[{colour}]{theme.sentiment:+.2f}[/]",
            _change(theme),
        )
    console.print(table)


def nps_themes_command(
    since: Annotated[str | None, typer.Option(help="First day (YYYY-MM-DD). Default: --days before --until.")] = None,
    until: Annotated[
        str | None, typer.Option(help="Day after the last one (YYYY-MM-DD, exclusive). Default: now.")
    ] = None,
    days: Annotated[
        int, typer.Option(help="Window length when --since is not given; 0 = all time (no previous period).")
    ] = 90,
    campaign: Annotated[str | None, typer.Option(help="Only this campaign.")] = None,
    segment: Annotated[str | None, typer.Option(help="Only this account segment.")] = None,
    score_band: Annotated[
        str, typer.Option("--score-band", help="promoters (9-10), passives (7-8), detractors (0-6) or all.")
    ] = "all",
    seed: Annotated[int, typer.Option(help="Random seed: same data and seed give the same themes.")] = 0,
    k: Annotated[
        int | None, typer.Option("--k", min=1, max=200, help="Number of themes (default: chosen from the data).")
    ] = None,
    label: Annotated[
        str, typer.Option(help="auto (model names unless it is the small local one), model or keywords.")
    ] = "auto",
    assign_new: Annotated[
        int | None,
        typer.Option("--assign-new", help="Instead of a new run: assign new responses to the themes of this run id."),
    ] = None,
    workspace: WorkspaceOption = None,
) -> None:
    from copilot.tasks.nps_themes import ThemeFilters, assign_new_responses, load_report

    if score_band not in BANDS:
        raise typer.BadParameter(f"use {', '.join(BANDS)}", param_hint="--score-band")
    if days < 0:
        raise typer.BadParameter("must be 0 or more", param_hint="--days")
    start, end = _day(since, "--since"), _day(until, "--until")
    if start is None and days:
        start = (end or datetime.now(UTC)) - timedelta(days=days)
    try:
        filters = ThemeFilters(since=start, until=end, campaign=campaign, segment=segment, score_band=score_band)
    except ValidationError as error:
        raise typer.BadParameter(error.errors()[0]["msg"].removeprefix("Value error, "), param_hint="--until") from None

    services = open_services()
    slug = workspace_slug(services.settings, workspace)
    columns = (TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("loading the embedding model", total=None)
        services.embedder  # noqa: B018 - load it under the progress bar

        def report_progress(done: int, total: int) -> None:
            progress.update(task, description="embedding and clustering", completed=done, total=total)

        if assign_new is not None:
            with services.store.repo(slug) as repo:
                added = assign_new_responses(
                    services.context(repo, task="nps_themes"), assign_new, progress=report_progress
                )
                report = load_report(repo, assign_new)
            title = f"NPS themes · run {assign_new} · {added} new response(s) assigned"
        else:
            params = {"filters": filters.model_dump(), "seed": seed, "k": k, "strategy": label}
            outcome = run_task(services, workspace, "nps_themes", params, progress=report_progress)
            report = outcome.result
            title = f"NPS themes · run {report.run_id} · AI result {outcome.ai_result_id}"
            if outcome.used_fallback:
                console.print(f"[yellow]note:[/] {outcome.fallback_reason}")
    show_report(report, title=title)
    if assign_new is None:
        console.print(
            f"[dim]saved; `copilot nps-themes --assign-new {report.run_id}` "
            "adds new responses to these themes without refitting[/]"
        )


def register(app: typer.Typer) -> None:
    app.command(
        "nps-themes",
        help="Find what NPS comments talk about: themes with shares by score band, sentiment, quotes "
        "and change vs the previous period.",
    )(nps_themes_command)
