"""`copilot advocacy ...`: promoters to thank (with a review or referral ask) and detractors to follow up with, from
NPS answers; every draft waits in the review queue and is sent only once approved."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from copilot.cli.common import WorkspaceOption, console, open_services, run_task, task_strategy, workspace_slug

advocacy_app = typer.Typer(
    help="NPS advocacy and recovery: thank promoters and ask for a review or referral; follow up with detractors.",
    no_args_is_help=True,
)
BANDS = ("promoters", "detractors")
BandOption = Annotated[str, typer.Option("--band", help="promoters (9-10) or detractors (0-6).")]
StrategyOption = Annotated[
    str, typer.Option(help="auto (the model unless it is a small one), model, or template (no model).")
]


def _band(band: str) -> str:
    if band not in BANDS:
        raise typer.BadParameter(f"use {' or '.join(BANDS)}", param_hint="--band")
    return band


@advocacy_app.command("list")
def list_command(
    band: BandOption = "promoters",
    not_asked: Annotated[bool, typer.Option("--not-asked", help="Only respondents not asked yet.")] = False,
    commented: Annotated[bool, typer.Option("--commented", help="Only responses with a comment.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Rows to show, most recent first.")] = 20,
    workspace: WorkspaceOption = None,
) -> None:
    """Promoters or detractors: score, comment, theme, account, who sends their message, asked or not, draft."""
    from copilot.tasks.nps_respondents import RespondentFilters, list_respondents

    filters = RespondentFilters(band=_band(band), asked=False if not_asked else None, commented=commented or None)
    services = open_services()
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        listed = list_respondents(repo, filters, limit=limit)
    table = Table("response", "score", "comment · theme", "account · contact", "lang", "sent by", "asked", "draft")
    for r in listed.items:
        comment = f"“{r.comment}”" if r.comment else "[dim]no comment[/]"
        theme = f"\n[dim]theme: {r.theme}[/]" if r.theme else ""
        draft = f"#{r.draft.ai_result_id} {r.draft.status.value}" if r.draft else "-"
        table.add_row(
            r.response_ref or str(r.response_id),
            str(r.score),
            comment + theme,
            f"{r.account or '-'}\n[dim]{r.contact or 'no contact'}[/]",
            r.language,
            f"{r.owner or ('support queue' if r.route == 'support' else 'the team')}\n[dim]{r.route_reason}[/]",
            f"{r.asked_at:%Y-%m-%d}" if r.asked_at else "no",
            draft,
        )
    table.title = f"{listed.band}: {len(listed.items)} of {listed.total}"
    console.print(table)


@advocacy_app.command("draft")
def draft_command(
    response: Annotated[str, typer.Argument(help="NPS response id or external id (e.g. NPS-1042).")],
    strategy: StrategyOption = "auto",
    again: Annotated[bool, typer.Option("--again", help="Draft for a respondent who was already asked.")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Draft a promoter's thank-you or a detractor's follow-up (by their score); it waits for review."""
    from copilot.store.models import NpsResponse
    from copilot.tasks.nps_respondents import TASK_OF_KIND, kind_for

    services = open_services()
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        row = repo.resolve(NpsResponse, response)
        task, response_id = TASK_OF_KIND[kind_for(row)], row.id
    params = {"response_id": response_id, "strategy": task_strategy(task, strategy), "again": again}
    outcome = run_task(services, workspace, task, params)
    result = outcome.result
    console.print(
        f"[bold]{task}[/] for response {result.response_ref or result.response_id} (score {result.score}) · "
        f"{result.language} · sent by {result.owner or 'the team'} ({result.route_reason})",
        highlight=False,
    )
    console.print(result.text, highlight=False)
    for verdict in outcome.verdicts:
        if not verdict.passed:
            console.print(f"[yellow]{verdict.name}[/] {'; '.join(verdict.details)}", highlight=False)
    if outcome.used_fallback:
        console.print(f"[yellow]note:[/] {outcome.fallback_reason}", highlight=False)
    console.print(f"[dim]AI result {outcome.ai_result_id}: pending review; nothing is sent before it is approved[/]")


@advocacy_app.command("draft-all")
def draft_all_command(
    band: BandOption = "promoters",
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many drafts, most recent first.")] = 20,
    strategy: StrategyOption = "auto",
    workspace: WorkspaceOption = None,
) -> None:
    """Draft for commented respondents of a band not asked yet and with no draft waiting."""
    from copilot.tasks.nps_respondents import KIND_OF_BAND, TASK_OF_KIND, not_yet_asked

    task = TASK_OF_KIND[KIND_OF_BAND[_band(band)]]
    task_strategy(task, strategy)
    services = open_services()
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        ids = not_yet_asked(repo, band, limit)
    drafted = []
    for response_id in ids:
        outcome = run_task(services, workspace, task, {"response_id": response_id, "strategy": strategy})
        drafted.append(outcome.ai_result_id)
    if not drafted:
        console.print(f"every commented {band[:-1]} was asked already or has a draft waiting")
        return
    console.print(f"{len(drafted)} {task} draft(s) waiting for review: AI results {', '.join(map(str, drafted))}")


def register(app: typer.Typer) -> None:
    app.add_typer(advocacy_app, name="advocacy")
