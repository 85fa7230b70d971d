"""`copilot triage ...` and `copilot kb ...`: triage tickets, apply suggestions, manage the label set, train the
topic head, routing stats; KB drafts from recurring questions and the knowledge-gap report."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from copilot.cli.common import WorkspaceOption, console, load_settings, open_services, run_task, workspace_slug
from copilot.cli.support import resolve_ticket  # the store loads inside the command, not for --help

triage_app = typer.Typer(help="Ticket triage: topic, urgency, language and routing suggestions.", no_args_is_help=True)
labels_app = typer.Typer(help="The workspace's label set: the only topics triage may give.", no_args_is_help=True)
kb_app = typer.Typer(
    help="The knowledge loop: KB drafts from resolved tickets, and the gap report.", no_args_is_help=True
)
triage_app.add_typer(labels_app, name="labels")
TicketArgument = Annotated[str, typer.Argument(help="Ticket id or external id (e.g. T-1179).")]


def actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def show_triage(result, ai_result_id: int | None) -> None:
    topic, urgency, routing = result.topic, result.urgency, result.routing
    sure = "unsure" if topic.unsure else "sure"
    console.print(f"[bold]topic[/] {topic.label or 'none'} ({topic.confidence:.0%}, {sure}) · [dim]{topic.head}[/]")
    if topic.note:
        console.print(f"  [dim]{topic.note}[/]")
    console.print(f"[bold]urgency[/] {urgency.priority.value} (score {urgency.score})")
    for reason in urgency.reasons:
        where = f" [dim](message {reason.message_id})[/]" if reason.message_id else ""
        console.print(f"  • {reason.signal}: {reason.detail}{where}", highlight=False)
    console.print(
        f"[bold]language[/] {result.language.code} ({result.language.method}, {result.language.confidence:.2f})"
    )
    console.print(f"[bold]routing[/] queue {routing.queue or '-'} · assignee {routing.assignee or '-'}")
    for e in routing.evidence:
        console.print(
            f"  • ticket {e.external_id or e.ticket_id} ({e.similarity:.2f}) resolved by {e.resolved_by or '-'}",
            highlight=False,
        )
    if routing.note:
        console.print(f"  [dim]{routing.note}[/]")
    for item in result.ignored:
        console.print(f"[yellow]ignored[/] {item}", highlight=False)
    console.print(f"[dim]AI result {ai_result_id}: a suggestion; `copilot triage apply {ai_result_id}` applies it[/]")


@triage_app.command("ticket")
def triage_ticket(ticket: TicketArgument, workspace: WorkspaceOption = None) -> None:
    """Triage a ticket now (a suggestion: the ticket does not change)."""
    services = open_services()
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        record = resolve_ticket(repo, ticket)
    outcome = run_task(services, workspace, "ticket_triage", {"ticket_id": record.id})
    console.print(f"[bold]Ticket {record.external_id or record.id}[/]: {record.subject}", highlight=False)
    show_triage(outcome.result, outcome.ai_result_id)


@triage_app.command("apply")
def triage_apply(
    result_id: Annotated[int, typer.Argument(help="The triage result (AI result id).")],
    topic: Annotated[str | None, typer.Option(help="A label of the set, instead of the suggested one.")] = None,
    queue: Annotated[str | None, typer.Option(help="A queue of the label set.")] = None,
    assignee: Annotated[str | None, typer.Option()] = None,
    priority: Annotated[str | None, typer.Option(help="low, normal, high or urgent.")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Apply a triage suggestion to its ticket (audited; sends the ticket.updated event)."""
    from copilot.tasks.triage_apply import ApplyRequest, apply_triage

    request = ApplyRequest.model_validate({"topic": topic, "queue": queue, "assignee": assignee, "priority": priority})
    services = open_services()
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        applied = apply_triage(repo, result_id, request, actor=actor())
    for field, change in applied.changes.items():
        console.print(f"{field}: {change.before or '-'} -> [bold]{change.after}[/]", highlight=False)
    console.print(
        "applied as suggested" if applied.accepted else f"applied with changes: {', '.join(applied.changed_fields)}"
    )


@triage_app.command("settings")
def triage_settings_command(
    auto_apply: Annotated[bool | None, typer.Option("--auto-apply/--no-auto-apply")] = None,
    on_arrival: Annotated[bool | None, typer.Option("--on-arrival/--no-on-arrival")] = None,
    unsure_below: Annotated[float | None, typer.Option(help="Confidence below which a topic is unsure (0-1).")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Show or change the workspace's triage settings."""
    from copilot.tasks.triage_labels import set_triage_settings, triage_settings

    changes = {
        k: v
        for k, v in {"auto_apply": auto_apply, "on_arrival": on_arrival, "unsure_below": unsure_below}.items()
        if v is not None
    }
    settings = load_settings()
    services = open_services(settings)
    with services.store.repo(workspace_slug(settings, workspace)) as repo:
        current = set_triage_settings(repo, changes, actor()) if changes else triage_settings(repo)
    for key, value in current.model_dump().items():
        console.print(f"{key}: [bold]{value}[/]")


@triage_app.command("train")
def triage_train(
    path: Annotated[Path | None, typer.Argument(help="Labelled tickets: JSONL, or CSV with a header row.")] = None,
    from_tickets: Annotated[
        bool, typer.Option("--from-tickets", help="Train on the tickets the team gave a topic.")
    ] = False,
    text_field: Annotated[str, typer.Option()] = "text",
    label_field: Annotated[str, typer.Option()] = "label",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Cross-validate and report; save nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Save even when it scores below the head in use.")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Train the workspace's own topic head (cross-validated against the head in use before it replaces it)."""
    from copilot.errors import InvalidInput
    from copilot.tasks.triage_train import file_source, labelled_tickets, read_labelled, train_workspace_head

    if (path is None) == (not from_tickets):
        raise InvalidInput("give a labelled file or --from-tickets")
    services = open_services()
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        examples = labelled_tickets(repo) if from_tickets else read_labelled(path, text_field, label_field)
        source = "labelled tickets" if from_tickets else file_source(path)
        with console.status("embedding the examples (the model loads on first use)..."):
            info = train_workspace_head(
                repo, services.embedder, examples, source=source, actor=actor(), dry_run=dry_run, force=force
            )
    show_head(info)


def show_head(info) -> None:
    console.print(f"[bold]{info.name}[/] · {info.examples} examples, {len(info.labels)} labels · from {info.source}")
    table = Table(
        "head",
        "accuracy",
        "macro-F1",
        "unsure",
        "accuracy when sure",
        "rows",
        title=f"{info.evaluation.folds}-fold cross-validation for the new head",
    )
    rows = [("new head (CV)", info.evaluation.new_head)]
    if info.evaluation.current_head is not None:
        rows.append((info.evaluation.current_head_name or "head in use", info.evaluation.current_head))
    for name, s in rows:
        sure = f"{s.confident_accuracy:.3f}" if s.confident_accuracy is not None else "-"
        table.add_row(name, f"{s.accuracy:.3f}", f"{s.macro_f1:.3f}", f"{s.unsure_rate:.1%}", sure, str(s.rows))
    console.print(table)


@triage_app.command("head")
def triage_head(workspace: WorkspaceOption = None) -> None:
    """Which topic head the workspace uses."""
    from copilot.tasks.triage_model import SHIPPED_HEAD
    from copilot.tasks.triage_train import workspace_head

    services = open_services()
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        info = workspace_head(repo)
    if info is None:
        console.print(f"{SHIPPED_HEAD} (train the workspace's own: `copilot triage train --from-tickets`)")
    else:
        show_head(info)


@triage_app.command("reset-head")
def triage_reset_head(workspace: WorkspaceOption = None) -> None:
    """Go back to the shipped topic head."""
    from copilot.tasks.triage_train import reset_workspace_head

    services = open_services()
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        dropped = reset_workspace_head(repo, actor())
    console.print("workspace head dropped" if dropped else "nothing to reset: the workspace uses the shipped head")


@triage_app.command("stats")
def triage_stats_command(workspace: WorkspaceOption = None) -> None:
    """How often triage suggestions were accepted, changed or dismissed, per suggested topic."""
    from copilot.tasks.triage_apply import triage_stats

    services = open_services()
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        stats = triage_stats(repo)
    table = Table(
        "topic",
        "suggested",
        "accepted",
        "changed",
        "dismissed",
        "auto-applied",
        "corrected after auto",
        "acceptance",
        "fields changed",
    )
    for s in stats:
        rate = f"{s.acceptance_rate:.0%}" if s.acceptance_rate is not None else "-"
        fields = ", ".join(f"{k} {v}" for k, v in s.changed_fields.items())
        table.add_row(
            s.label,
            str(s.suggested),
            str(s.accepted),
            str(s.changed),
            str(s.dismissed),
            str(s.auto_applied),
            str(s.changed_after_auto_apply),
            rate,
            fields,
        )
    console.print(table)


@labels_app.command("list")
def labels_list(workspace: WorkspaceOption = None) -> None:
    from copilot.tasks.triage_labels import workspace_labels

    services = open_services()
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        labels = workspace_labels(repo)
    table = Table("label", "queue", "description")
    for label in labels:
        table.add_row(label.name, label.queue, label.description)
    console.print(table)


@labels_app.command("add")
def labels_add(
    name: str,
    queue: Annotated[str, typer.Option(help="The team or queue its tickets go to.")],
    description: Annotated[str, typer.Option()] = "",
    workspace: WorkspaceOption = None,
) -> None:
    """Add a label (or change a label's queue and description)."""
    from copilot.errors import InvalidInput
    from copilot.tasks.triage_labels import LabelSpec, add_label

    try:
        spec = LabelSpec(name=name, queue=queue, description=description)
    except ValueError as error:
        raise InvalidInput(f"label: {error.errors()[0]['loc'][0]}: {error.errors()[0]['msg']}") from None
    services = open_services()
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        labels = add_label(repo, spec, actor())
    console.print(f"label [bold]{name}[/] saved; the set has {len(labels)} labels")


@labels_app.command("remove")
def labels_remove(name: str, workspace: WorkspaceOption = None) -> None:
    from copilot.tasks.triage_labels import remove_label

    services = open_services()
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        labels = remove_label(repo, name, actor())
    console.print(f"label [bold]{name}[/] removed; the set has {len(labels)} labels")


@labels_app.command("reset")
def labels_reset(workspace: WorkspaceOption = None) -> None:
    from copilot.tasks.triage_labels import reset_labels

    services = open_services()
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        labels = reset_labels(repo, actor())
    console.print(f"back to the shipped label set ({len(labels)} labels)")


@kb_app.command("drafts")
def kb_drafts(
    limit: Annotated[int, typer.Option(help="At most this many drafts.")] = 5,
    days: Annotated[int, typer.Option(help="Resolved tickets opened in the last N days.")] = 365,
    include_covered: Annotated[bool, typer.Option("--include-covered", help="Also questions the KB answers.")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Draft KB articles for the top recurring questions of resolved tickets; they wait in the review queue."""
    from copilot.tasks.kb_draft import draft_recurring_questions

    services = open_services()
    slug = workspace_slug(services.settings, workspace)
    with console.status("finding recurring questions (the embedding model loads on first use)..."):
        summary = draft_recurring_questions(
            services, slug, {"limit": limit, "days": days, "include_covered": include_covered}
        )
    console.print(f"{summary['clusters']} recurring questions, {summary['covered']} already answered by the KB")
    for draft in summary["drafted"]:
        console.print(
            f"  • AI result {draft['ai_result_id']}: [bold]{draft['title']}[/] ({draft['tickets']} tickets)",
            highlight=False,
        )


@kb_app.command("draft")
def kb_draft(ticket: TicketArgument, workspace: WorkspaceOption = None) -> None:
    """Draft a KB article from a ticket and the resolved tickets that ask the same."""
    services = open_services()
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        record = resolve_ticket(repo, ticket)
    outcome = run_task(services, workspace, "kb_article_draft", {"ticket_id": record.id})
    console.print(outcome.result.text, highlight=False)
    console.print(
        f"[dim]from tickets {', '.join(map(str, outcome.result.source_ticket_ids))}; "
        f"removed {outcome.result.removed or 'nothing'}[/]"
    )
    for verdict in outcome.verdicts:
        mark = (
            "[green]pass[/]"
            if verdict.passed
            else "[yellow]flag[/]"
            if verdict.severity.value == "flag"
            else "[red]fail[/]"
        )
        console.print(f"{verdict.name}: {mark} {'; '.join(verdict.details)}", highlight=False)
    console.print(f"[dim]AI result {outcome.ai_result_id}: waiting for review[/]")


@kb_app.command("gaps")
def kb_gaps(
    days: Annotated[int, typer.Option(help="Tickets opened in the last N days.")] = 90,
    min_tickets: Annotated[int, typer.Option(help="Topics with at least this many tickets.")] = 3,
    workspace: WorkspaceOption = None,
) -> None:
    """Topics with many recent tickets and no KB passage answering them (or drafts reviewers reject)."""
    from copilot.tasks.knowledge_gaps import knowledge_gaps

    services = open_services()
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        with console.status("comparing questions with the help center..."):
            report = knowledge_gaps(services.embedder, repo, days=days, min_tickets=min_tickets)
    table = Table("topic", "tickets", "unanswered", "closest article", "why", title=f"knowledge gaps, last {days} days")
    for gap in report.gaps:
        closest = f"{gap.closest_article.title} ({gap.closest_article.similarity:.2f})" if gap.closest_article else "-"
        table.add_row(gap.topic, str(gap.tickets), str(gap.unanswered), closest, "; ".join(gap.reasons))
    console.print(table)
    console.print(f"covered: {', '.join(f'{c.topic} ({c.tickets})' for c in report.covered) or '-'}")


def register(app: typer.Typer) -> None:
    app.add_typer(triage_app, name="triage")
    app.add_typer(kb_app, name="kb")
