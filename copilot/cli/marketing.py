"""Marketing commands: NPS themes over any filter (date range, campaign, survey, segment, plan, score band), with
their praise and complaint sides and driver impact, and the NPS over time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from copilot.cli.common import WorkspaceOption, console, open_services, run_task, task_strategy, workspace_slug

BANDS = ("all", "promoters", "passives", "detractors")
SENTIMENT_COLOURS = {"negative": "red", "neutral": "white", "positive": "green", "mixed": "yellow"}
SIDE_NAMES = {"positive": ("[green]+ praise[/]"), "negative": ("[red]- complaints[/]")}


def _day(value: str | None, option: str) -> datetime | None:
    from copilot.store.models import utc

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"'{value}' is not a date (use YYYY-MM-DD)", param_hint=option) from None
    return utc(parsed, keep_offset=True)


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


def _points(value: float | None) -> str:
    if value is None:
        return "-"
    colour = "green" if value > 0 else "red" if value < 0 else "white"
    return f"[{colour}]{value:+.1f}[/]"


def _side_lines(theme) -> list[str]:
    lines = []
    for side in theme.sides:
        head = (
            f"{SIDE_NAMES[side.polarity]} {_percent(side.share)} · NPS {side.nps:+.0f} · impact {_points(side.impact)}"
        )
        lines.append(head + (f": “{side.quotes[0].text}”" if side.quotes else ""))
    return lines


def show_drivers(report) -> None:
    if not report.drivers:
        return
    table = Table(
        "theme", "responses", "impact (NPS points)", "NPS without it", title="Drivers: NPS(all) - NPS(without)"
    )
    for driver in report.drivers:
        table.add_row(driver.label, str(driver.responses), _points(driver.impact), f"{driver.nps_without:+.1f}")
    console.print(table)


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
        "impact",
        "vs previous",
        title=title,
        show_lines=True,
        caption="\n".join(lines),
    )
    for theme in report.themes:
        colour = SENTIMENT_COLOURS.get(theme.sentiment_label, "white")
        source = " [dim](model)[/]" if theme.label_source == "model" else ""
        body = [f"[bold]{theme.label}[/]{source}", f"[dim]{', '.join(theme.keywords)}[/]"]
        body += [
            f"“{q.text}” [dim]#{q.response_id}{f' {q.external_id}' if q.external_id else ''} · {q.score}[/]"
            for q in theme.quotes
        ]
        body += _side_lines(theme) if theme.mixed else []
        table.add_row(
            str(theme.id),
            "\n".join(body),
            f"{theme.responses}\n[dim]{_percent(theme.share)}[/]",
            f"{_percent(theme.promoters)} / {_percent(theme.passives)} / {_percent(theme.detractors)}",
            f"{theme.avg_score:.1f}",
            f"[{colour}]{theme.sentiment:+.2f}[/]" + ("\n[yellow]mixed[/]" if theme.mixed else ""),
            _points(theme.impact),
            _change(theme),
        )
    console.print(table)
    show_drivers(report)


def nps_themes_command(
    since: Annotated[str | None, typer.Option(help="First day (YYYY-MM-DD). Default: --days before --until.")] = None,
    until: Annotated[
        str | None, typer.Option(help="Day after the last one (YYYY-MM-DD, exclusive). Default: now.")
    ] = None,
    days: Annotated[
        int, typer.Option(help="Window length when --since is not given; 0 = all time (no previous period).")
    ] = 90,
    campaign: Annotated[str | None, typer.Option(help="Only this campaign.")] = None,
    survey: Annotated[str | None, typer.Option(help="Only this survey.")] = None,
    segment: Annotated[str | None, typer.Option(help="Only this account segment.")] = None,
    plan: Annotated[str | None, typer.Option(help="Only responses from accounts on this plan.")] = None,
    score_band: Annotated[
        str, typer.Option("--score-band", help="promoters (9-10), passives (7-8), detractors (0-6) or all.")
    ] = "all",
    seed: Annotated[int, typer.Option(help="Random seed: same data and seed give the same themes.")] = 0,
    k: Annotated[
        int | None, typer.Option("--k", min=1, max=200, help="Number of themes (default: chosen from the data).")
    ] = None,
    label: Annotated[
        str,
        typer.Option(help="auto (model names with a capable model), model, phrases (noun phrases) or keywords."),
    ] = "auto",
    assign_new: Annotated[
        int | None,
        typer.Option("--assign-new", help="Instead of a new run: assign new responses to the themes of this run id."),
    ] = None,
    workspace: WorkspaceOption = None,
) -> None:
    from copilot.tasks.nps_themes import TASK, ScoreBand, assign_new_responses, load_report

    if score_band not in BANDS:
        raise typer.BadParameter(f"use {', '.join(BANDS)}", param_hint="--score-band")
    task_strategy(TASK, label, "--label")
    filters = _filters(since, until, days, campaign=campaign, survey=survey, segment=segment, plan=plan)
    filters = filters.model_copy(update={"score_band": ScoreBand(score_band)})

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
                added = assign_new_responses(services.context(repo, task=TASK), assign_new, progress=report_progress)
                report = load_report(repo, assign_new)
            title = f"NPS themes · run {assign_new} · {added} new response(s) assigned"
        else:
            params = {"filters": filters.model_dump(), "seed": seed, "k": k, "strategy": label}
            outcome = run_task(services, workspace, TASK, params, progress=report_progress)
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


def _filters(since: str | None, until: str | None, days: int, **values: str | None):
    """ThemeFilters from the command's options; a bad value is a one-line error naming the option."""
    from pydantic import ValidationError

    from copilot.tasks.nps_themes import ThemeFilters

    if days < 0:
        raise typer.BadParameter("must be 0 or more", param_hint="--days")
    start, end = _day(since, "--since"), _day(until, "--until")
    if start is None and days:
        start = (end or datetime.now(UTC)) - timedelta(days=days)
    try:
        return ThemeFilters(since=start, until=end, **values)
    except ValidationError as error:
        first = error.errors()[0]
        where = f"--{first['loc'][0]}" if first["loc"] else "--until"
        raise typer.BadParameter(first["msg"].removeprefix("Value error, "), param_hint=where) from None


def nps_trend_command(
    since: Annotated[str | None, typer.Option(help="First day (YYYY-MM-DD). Default: --days before --until.")] = None,
    until: Annotated[str | None, typer.Option(help="Day after the last one (YYYY-MM-DD, exclusive).")] = None,
    days: Annotated[int, typer.Option(help="Window length when --since is not given; 0 = all time.")] = 365,
    bucket: Annotated[str, typer.Option(help="month or week.")] = "month",
    campaign: Annotated[str | None, typer.Option(help="Only this campaign.")] = None,
    survey: Annotated[str | None, typer.Option(help="Only this survey.")] = None,
    segment: Annotated[str | None, typer.Option(help="Only this account segment.")] = None,
    plan: Annotated[str | None, typer.Option(help="Only responses from accounts on this plan.")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    from copilot.tasks.nps_themes import nps_trend

    if bucket not in ("month", "week"):
        raise typer.BadParameter("use month or week", param_hint="--bucket")
    filters = _filters(since, until, days, campaign=campaign, survey=survey, segment=segment, plan=plan)
    services = open_services()
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        trend = nps_trend(repo, filters, bucket)  # type: ignore[arg-type]
    table = Table(bucket, "responses", "promoters", "detractors", "NPS", title=f"NPS by {bucket}")
    for point in trend.points:
        table.add_row(
            f"{point.start:%Y-%m-%d}",
            str(point.responses),
            str(point.promoters),
            str(point.detractors),
            _points(point.nps),
        )
    overall = f"{trend.nps:+.1f}" if trend.nps is not None else "-"
    table.caption = f"{filters.describe()} · {trend.responses} responses · NPS {overall}"
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command(
        "nps-themes",
        help="Find what NPS comments talk about: themes with shares by score band, sentiment, quotes "
        "and change vs the previous period.",
    )(nps_themes_command)
    app.command("nps-trend", help="The NPS by month or week over any filter (campaign, survey, segment, plan).")(
        nps_trend_command
    )
