"""Sales-rep commands: call summary (with action items) and deal brief."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from copilot.cli.common import WorkspaceOption, console, open_services, run_task, workspace_slug
from copilot.cli.support import show_outcome

if TYPE_CHECKING:
    from copilot.store import Repo
    from copilot.store.models import Call, Deal

CallArgument = Annotated[str, typer.Argument(help="Call id or external id (e.g. CALL-1234).")]
DealArgument = Annotated[str, typer.Argument(help="Deal id or external id (e.g. D-3311).")]


def resolve_call(repo: Repo, reference: str) -> Call:
    from copilot.store.models import Call

    return repo.resolve(Call, reference)


def resolve_deal(repo: Repo, reference: str) -> Deal:
    from copilot.store.models import Deal

    return repo.resolve(Deal, reference)


def _ids(ids: list[int]) -> str:
    return f"[dim](turns {', '.join(map(str, ids))})[/]" if ids else ""


def summarize_call_command(
    call: CallArgument,
    workspace: WorkspaceOption = None,
    strategy: Annotated[str, typer.Option(help="auto, model or extractive.")] = "auto",
) -> None:
    services = open_services()
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        record = resolve_call(repo, call)
        title = f"Call {record.external_id or record.id}: {record.title}"
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task("summarising windows (models load on first use)", total=None)
        outcome = run_task(
            services,
            workspace,
            "call_summary",
            {"call_id": record.id, "strategy": strategy},
            progress=lambda done, total: progress.update(bar, completed=done, total=total),
        )
    s = outcome.result
    minutes = int(s.duration_s // 60)
    lines = [
        f"[dim]{s.turn_count} turns · {minutes} min · {s.windows} window(s)[/]",
        f"[bold]Summary:[/] {escape(s.summary)} {_ids(s.summary_turn_ids)}",
    ]
    for heading, points in (("Key points", s.key_points), ("Objections", s.objections), ("Decisions", s.decisions)):
        if points:
            lines.append(f"[bold]{heading}:[/]")
            lines += [f"  • {escape(p.text)} {_ids(p.turn_ids)}" for p in points]
    if s.action_items:
        lines.append("[bold]Action items:[/]")
        for item in s.action_items:
            extra = " · ".join(
                x for x in (item.owner and f"owner {escape(item.owner)}", item.due and f"due {escape(item.due)}") if x
            )
            lines.append(
                f"  • {escape(item.what)}" + (f" [cyan]({extra})[/]" if extra else "") + f" {_ids(item.turn_ids)}"
            )
    lines.append(
        f"[bold]Next step:[/] {escape(s.next_step.text)} {_ids(s.next_step.turn_ids)}"
        if s.next_step
        else "[bold]Next step:[/] none proposed on the call"
    )
    show_outcome(title, outcome, "\n".join(lines))


def deal_brief_command(
    deal: DealArgument,
    workspace: WorkspaceOption = None,
    strategy: Annotated[str, typer.Option(help="auto, model or template.")] = "auto",
) -> None:
    services = open_services()
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        record = resolve_deal(repo, deal)
        title = f"Deal {record.external_id or record.id}: {record.name}"
    outcome = run_task(services, workspace, "deal_brief", {"deal_id": record.id, "strategy": strategy})
    brief, facts = outcome.result, outcome.result.facts
    timing = f" · {facts.days_in_stage} days in stage" if facts.days_in_stage is not None else ""
    lines = [
        f"[bold]{facts.stage}[/]{timing} · {facts.amount_text()} · close {facts.close_date or '-'} · "
        f"owner {escape(facts.owner or '-')}",
        f"[bold]Next step on record:[/] {escape(facts.next_step or 'none')}",
        "",
        escape(brief.narrative),
        "",
    ]
    if facts.stakeholders:
        lines.append(
            "[bold]Stakeholders:[/] "
            + "; ".join(
                escape(f"{s.name}" + (f", {s.title}" if s.title else "") + (f" ({s.role})" if s.role else ""))
                + f" [dim]{s.source_id}[/]"
                for s in facts.stakeholders
            )
        )
    if facts.last_touch:
        lines.append(
            f"[bold]Last touch:[/] {escape(facts.last_touch.text)}, {facts.last_touch.days_ago} days ago "
            f"[dim]{facts.last_touch.source_id}[/]"
        )
    lines.append("[bold]Risks:[/]" if facts.risks else "[bold]Risks:[/] none found")
    lines += [f"  [red]•[/] {escape(r.text)} [dim](evidence {', '.join(r.evidence_ids)})[/]" for r in facts.risks]
    if facts.action_items:
        lines.append("[bold]Action items from recent calls:[/]")
        for item in facts.action_items:
            extra = " · ".join(
                x for x in (item.owner and f"owner {escape(item.owner)}", item.due and f"due {escape(item.due)}") if x
            )
            lines.append(
                f"  • {escape(item.what)}"
                + (f" [cyan]({extra})[/]" if extra else "")
                + f" [dim]{', '.join(item.source_ids)}[/]"
            )
    if brief.previous_brief_id is None:
        lines.append("[bold]Since the last brief:[/] this is the first brief of this deal")
    else:
        lines.append(
            f"[bold]Since the last brief[/] [dim](AI result {brief.previous_brief_id})[/][bold]:[/]"
            + ("" if brief.changes else " nothing changed")
        )
        lines += [
            f"  • {escape(c.text)}" + (f" [dim]{', '.join(c.source_ids)}[/]" if c.source_ids else "")
            for c in brief.changes
        ]
    for note in facts.notes:
        lines.append(f"[yellow]note:[/] {escape(note)}")
    step = brief.suggested_next_step
    lines.append(
        f"[bold green]Suggested next step:[/] {escape(step.text)} "
        f"[dim]({escape(step.reason)}; {', '.join(step.source_ids) or '-'})[/]"
    )
    show_outcome(title, outcome, "\n".join(lines))


def register(app: typer.Typer) -> None:
    app.command(
        "summarize-call",
        help="Summarise a sales call: summary, key points, objections, decisions, action items "
        "and next step (with turn ids).",
    )(summarize_call_command)
    app.command(
        "deal-brief",
        help="Brief me on a deal: stage and time in stage, amount, stakeholders, last touch, "
        "risks with evidence, changes, next step.",
    )(deal_brief_command)
