"""Support-agent commands: ticket summary, reply draft, tone rewrite, sentiment."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from copilot.cli.common import (
    WorkspaceOption,
    console,
    load_settings,
    loading,
    open_services,
    open_store,
    run_task,
    workspace_slug,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

    from copilot.store import Repo
    from copilot.store.models import Ticket
    from copilot.tasks.base import TaskOutcome

SENTIMENT_LOAD = "classifying (the first use loads the sentiment model)"
TicketArgument = Annotated[str, typer.Argument(help="Ticket id or external id (e.g. T-1179).")]


def resolve_ticket(repo: Repo, reference: str) -> Ticket:
    from copilot.store.models import Ticket

    return repo.resolve(Ticket, reference)


def show_outcome(title: str, outcome: TaskOutcome[BaseModel], body: str) -> None:
    provenance = outcome.provenance
    console.print(Panel(body, title=title, subtitle=f"AI result {outcome.ai_result_id} · {outcome.status.value}"))
    verdicts = Table("guard", "verdict", "details", title="guard verdicts")
    for verdict in outcome.verdicts:
        mark = (
            "[green]pass[/]"
            if verdict.passed
            else ("[yellow]flag[/]" if verdict.severity.value == "flag" else "[red]fail[/]")
        )
        verdicts.add_row(verdict.name, mark, "; ".join(verdict.details))
    console.print(verdicts)
    if outcome.used_fallback:
        console.print(f"[yellow]fallback used:[/] {outcome.fallback_reason}")
    console.print(
        f"[dim]model {provenance.model} · prompt {provenance.prompt_name}@{provenance.prompt_version} · "
        f"{provenance.tokens_in}+{provenance.tokens_out} tokens · {provenance.latency_ms:.0f} ms · "
        f"inputs {len(provenance.input_ids)}"
        f" · sources {', '.join(provenance.source_ids) or '-'}[/]"
    )


def run_on_ticket(ticket: str, workspace: str | None, task: str, strategy: str) -> tuple[Ticket, TaskOutcome]:
    """Resolve the ticket in the workspace and run a task on it; returns (ticket, outcome)."""
    services = open_services()
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        record = resolve_ticket(repo, ticket)
    return record, run_task(services, workspace, task, {"ticket_id": record.id, "strategy": strategy})


def summarize_ticket_command(
    ticket: TicketArgument,
    workspace: WorkspaceOption = None,
    strategy: Annotated[str, typer.Option(help="auto, model or extractive.")] = "auto",
) -> None:
    """Summarise a ticket: intent, what happened, commitments, open questions, status (with message ids)."""
    record, outcome = run_on_ticket(ticket, workspace, "ticket_summary", strategy)
    summary = outcome.result
    lines = [f"[bold]Intent:[/] {summary.intent}"]
    for heading, bullets in (
        ("What happened", summary.what_happened),
        ("Agent commitments", summary.agent_commitments),
        ("Open questions", summary.open_questions),
    ):
        if bullets:
            lines.append(f"[bold]{heading}:[/]")
            lines += [f"  • {b.text} [dim](messages {', '.join(map(str, b.message_ids))})[/]" for b in bullets]
    lines.append(f"[bold]Status:[/] {summary.status}")
    show_outcome(f"Ticket {record.external_id or record.id}: {record.subject}", outcome, "\n".join(lines))


def draft_reply_command(
    ticket: TicketArgument,
    workspace: WorkspaceOption = None,
    strategy: Annotated[str, typer.Option(help="auto, model or retrieval.")] = "auto",
) -> None:
    """Draft a reply grounded in the thread, the account's history and the KB; it waits for human review."""
    record, outcome = run_on_ticket(ticket, workspace, "reply_draft", strategy)
    draft = outcome.result
    lines = [draft.text, ""]
    lines += [f"[bold][{s.label}][/] {s.record_kind} {s.record_id}: [dim]{s.text[:160]}[/]" for s in draft.sources]
    if draft.needs_explicit_approval:
        lines.append(f"[yellow]needs explicit approval:[/] {', '.join(draft.needs_explicit_approval)}")
    show_outcome(
        f"Draft reply to {record.external_id or record.id} ({draft.channel}, {draft.language}) — not sent",
        outcome,
        "\n".join(lines),
    )


def rewrite_command(
    text: Annotated[str | None, typer.Argument(help="Text to rewrite (or use --draft).")] = None,
    tone: Annotated[
        str,
        typer.Option(help="friendly, formal, empathetic, concise, expand, fix_grammar, neutral or a workspace tone."),
    ] = "friendly",
    draft: Annotated[int | None, typer.Option(help="Rewrite this stored draft (AI result id) instead.")] = None,
    workspace: WorkspaceOption = None,
    strategy: Annotated[str, typer.Option(help="auto, model or rules.")] = "auto",
) -> None:
    """Rewrite a reply in another tone; numbers, dates, links, names and the signature must survive."""
    outcome = run_task(
        open_services(),
        workspace,
        "tone_rewrite",
        {"text": text, "tone": tone, "draft_id": draft, "strategy": strategy},
    )
    result = outcome.result
    note = "[yellow]unchanged: the rewrite is identical to the input[/]\n" if result.unchanged else ""
    note += f"[red]rejected, lost: {'; '.join(result.lost)}[/]\n" if result.lost else ""
    show_outcome(f"Rewrite ({result.tone})", outcome, note + result.text)


tones_app = typer.Typer(help="List, add and reset the workspace's rewrite tones.", no_args_is_help=True)


@tones_app.command("list")
def tones_list(workspace: WorkspaceOption = None) -> None:
    """Show every tone the rewrite task knows in this workspace."""
    from copilot.tasks.tones import builtin_tones, workspace_tones

    settings = load_settings()
    with open_store(settings).repo(workspace_slug(settings, workspace)) as repo:
        table = Table("tone", "instruction", "source")
        for name, instruction in sorted(workspace_tones(repo).items()):
            table.add_row(name, instruction, "built-in" if builtin_tones().get(name) == instruction else "workspace")
    console.print(table)


@tones_app.command("add")
def tones_add(name: str, instruction: str, workspace: WorkspaceOption = None) -> None:
    """Add or override a tone for this workspace."""
    from copilot.tasks.tones import set_custom_tone

    settings = load_settings()
    with open_store(settings).repo(workspace_slug(settings, workspace)) as repo:
        set_custom_tone(repo, name, instruction)
    console.print(f"tone [bold]{name}[/] saved")


@tones_app.command("reset")
def tones_reset(workspace: WorkspaceOption = None) -> None:
    """Drop the workspace's custom tones and go back to the built-in ones."""
    from copilot.tasks.tones import reset_tones

    settings = load_settings()
    with open_store(settings).repo(workspace_slug(settings, workspace)) as repo:
        reset_tones(repo)
    console.print("tones reset to the built-in set")


sentiment_app = typer.Typer(
    help="Sentiment per message, per ticket and per customer (a classifier: fast, offline).", no_args_is_help=True
)


def _sentiment_table(points) -> Table:
    table = Table("message", "sent", "label", "score", "confidence", "signals")
    for point in points:
        s = point.sentiment
        colour = {"negative": "red", "neutral": "white", "positive": "green"}[s.label]
        signals = ", ".join(name for name, on in (("frustration", s.frustration), ("urgency", s.urgency)) if on)
        table.add_row(
            str(point.message_id),
            point.sent_at.strftime("%Y-%m-%d %H:%M"),
            f"[{colour}]{s.label}[/]",
            f"{s.score:+.2f}",
            f"{s.confidence:.2f}",
            signals,
        )
    return table


@sentiment_app.command("ticket")
def sentiment_ticket(ticket: TicketArgument, workspace: WorkspaceOption = None) -> None:
    """Sentiment of each customer message of a ticket and of the ticket overall."""
    from copilot.tasks.sentiment import default_classifier, ticket_sentiment

    settings = load_settings()
    with open_store(settings).repo(workspace_slug(settings, workspace)) as repo, loading(SENTIMENT_LOAD):
        result = ticket_sentiment(repo, default_classifier(), resolve_ticket(repo, ticket).id)
    console.print(_sentiment_table(result.messages))
    sour = " · [red]going sour[/]" if result.going_sour else ""
    console.print(f"ticket {result.ticket_id}: [bold]{result.label}[/] ({result.score:+.2f}){sour}")
    console.print(f"[dim]{result.head}[/]")


@sentiment_app.command("account")
def sentiment_account(account: str, workspace: WorkspaceOption = None) -> None:
    """An account's customer sentiment over time, with the going-sour flag."""
    from copilot.cli.search import resolve_account
    from copilot.tasks.sentiment import customer_trend, default_classifier

    settings = load_settings()
    with open_store(settings).repo(workspace_slug(settings, workspace)) as repo, loading(SENTIMENT_LOAD):
        trend = customer_trend(repo, default_classifier(), account_id=resolve_account(repo, account).id)
    console.print(_sentiment_table(trend.points))
    console.print(
        f"{trend.subject}: " + (f"[red]going sour[/] ({trend.reason})" if trend.going_sour else "not going sour")
    )
    console.print(f"[dim]{trend.head}[/]")


@sentiment_app.command("text")
def sentiment_text(texts: list[str], workspace: WorkspaceOption = None) -> None:
    """Classify free text (one argument per message), with the workspace's head if it has one."""
    from copilot.tasks.sentiment import default_classifier

    settings = load_settings()
    with open_store(settings).repo(workspace_slug(settings, workspace)) as repo, loading(SENTIMENT_LOAD):
        classifier = default_classifier().for_workspace(repo)
        results = classifier.classify(texts)
    table = Table("text", "label", "score", "confidence")
    for text, s in zip(texts, results, strict=True):
        table.add_row(text[:80], s.label, f"{s.score:+.2f}", f"{s.confidence:.2f}")
    console.print(table)
    console.print(f"[dim]{classifier.head.name}[/]")


@sentiment_app.command("train")
def sentiment_train(
    path: Annotated[Path, typer.Argument(help="Labelled messages: JSONL, or CSV with a header row.")],
    text_field: Annotated[str, typer.Option(help="Field holding the message text.")] = "text",
    label_field: Annotated[
        str, typer.Option(help="Field holding negative / neutral / positive (or -1 / 0 / 1).")
    ] = "label",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Cross-validate and report; save nothing.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Save even when the new head scores below the shipped one.")
    ] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Train this workspace's own sentiment head on its labelled messages (replaces the shipped head for it).

    Example: copilot sentiment train labelled.jsonl --dry-run
    """
    from copilot.tasks.sentiment import default_classifier
    from copilot.tasks.sentiment_train import file_source, read_labelled, train_workspace_head

    examples = read_labelled(path, text_field, label_field)
    settings = load_settings()
    slug = workspace_slug(settings, workspace)
    columns = (TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with open_store(settings).repo(slug) as repo:
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("loading the embedding model", total=None)
            classifier = default_classifier()

            def report_progress(done: int, total: int) -> None:
                progress.update(task, description="embedding the examples", completed=done, total=total)

            info = train_workspace_head(
                repo,
                classifier,
                examples,
                source=file_source(path),
                actor=_cli_actor(),
                dry_run=dry_run,
                force=force,
                progress=report_progress,
            )
    _show_head(info)
    if not dry_run:
        console.print(
            f"[green]saved[/]: workspace '{slug}' now classifies sentiment with its own head "
            "(`copilot sentiment reset` goes back to the shipped one)"
        )


@sentiment_app.command("head")
def sentiment_head(workspace: WorkspaceOption = None) -> None:
    """Which sentiment head this workspace uses, and how it scored when it was trained."""
    from copilot.tasks.sentiment import SHIPPED_HEAD
    from copilot.tasks.sentiment_train import workspace_head

    settings = load_settings()
    with open_store(settings).repo(workspace_slug(settings, workspace)) as repo:
        info = workspace_head(repo)
    if info is None:
        console.print(f"{SHIPPED_HEAD} (this workspace has not trained its own: `copilot sentiment train FILE`)")
    else:
        _show_head(info)


@sentiment_app.command("reset")
def sentiment_reset(workspace: WorkspaceOption = None) -> None:
    """Drop this workspace's own sentiment head and go back to the shipped one."""
    from copilot.tasks.sentiment_train import reset_workspace_head

    settings = load_settings()
    with open_store(settings).repo(workspace_slug(settings, workspace)) as repo:
        dropped = reset_workspace_head(repo, _cli_actor())
    console.print(
        "workspace head dropped; the shipped head is used again"
        if dropped
        else "nothing to reset: the workspace uses the shipped head"
    )


def _cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _show_head(info) -> None:
    counts = ", ".join(f"{label} {n}" for label, n in info.label_counts.items())
    console.print(f"[bold]{info.name}[/] · {info.examples} examples ({counts}) · from {info.source}")
    table = Table(
        "on the training file",
        "macro-F1",
        "macro-recall",
        title=f"{info.evaluation.folds}-fold cross-validation for the new head",
    )
    for name, figures in (
        ("this workspace's head (CV)", info.evaluation.workspace_head),
        ("shipped head", info.evaluation.shipped_head),
        ("VADER", info.evaluation.vader),
    ):
        table.add_row(name, f"{figures.macro_f1:.3f}", f"{figures.macro_recall:.3f}")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(sentiment_app, name="sentiment")
    app.command("rewrite")(rewrite_command)
    app.add_typer(tones_app, name="tones")
    app.command("summarize-ticket")(summarize_ticket_command)
    app.command("draft-reply")(draft_reply_command)
