"""`copilot demo`: seed the demo workspace."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from copilot.cli.common import console, load_settings, open_store


def demo(
    workspace: Annotated[str, typer.Option("--workspace", "-w", help="Workspace to seed.")] = "demo",
    seed: Annotated[int, typer.Option(help="Random seed: the same seed and anchor give identical content.")] = 7,
    anchor: Annotated[
        str | None, typer.Option(help="Day the demo data is placed around (YYYY-MM-DD, default today).")
    ] = None,
    if_missing: Annotated[
        bool, typer.Option("--if-missing", help="Do nothing when the workspace already has records.")
    ] = False,
    reset: Annotated[bool, typer.Option("--reset", help="Delete the workspace and seed it again.")] = False,
    index: Annotated[
        bool, typer.Option("--index/--no-index", help="Index for search, queue drafts and score replies after seeding.")
    ] = True,
) -> None:
    """Seed a realistic demo workspace: accounts, contacts, deals, tickets, calls, NPS, KB articles."""
    try:
        anchor_day = date.fromisoformat(anchor) if anchor else None
    except ValueError:
        raise typer.BadParameter(f"'{anchor}' is not a date (use YYYY-MM-DD)", param_hint="--anchor") from None
    from copilot.demo.generator import STEP_LABELS, seed_demo, workspace_has_records
    from copilot.demo.service import demo_key_path, ensure_demo_key, queue_demo_drafts
    from copilot.insights.qa_review import score_replies
    from copilot.services import Services

    settings = load_settings()
    store = open_store(settings)
    if if_missing and not reset and workspace_has_records(store, workspace):
        console.print(f"workspace [bold]{workspace}[/] already has records; leaving it as it is")
        ensure_demo_key(store, settings, workspace)
        return
    columns = (TextColumn("{task.description:<32}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("seeding", total=len(STEP_LABELS))

        def show_step(label: str) -> None:
            progress.update(task, description=f"generating {label}", completed=STEP_LABELS.index(label))

        counts = seed_demo(store, workspace, seed, reset, anchor=anchor_day, progress=show_step)
        progress.update(task, description="done", completed=len(STEP_LABELS))
    table = Table(title=f"demo workspace '{workspace}' seeded")
    table.add_column("records")
    table.add_column("count", justify="right")
    for name, value in counts.model_dump(exclude={"workspace", "content_hash"}).items():
        table.add_row(name.replace("_", " "), str(value))
    console.print(table)
    if index:
        from copilot.cli.search import index as index_command

        index_command(workspace=workspace, rebuild=True)
        services = Services(settings, store)
        drafted = queue_demo_drafts(services, workspace)
        console.print(f"{drafted} reply drafts are waiting in the review queue")
        with console.status("scoring agent replies for the reply-quality page...", spinner="dots"):
            scored = score_replies(services, workspace, strategy="rules")
        console.print(f"{scored.replies} agent replies on {scored.tickets} tickets scored against the QA scorecard")
    ensure_demo_key(store, settings, workspace)
    console.print(f"the demo admin key is in {demo_key_path(settings, workspace)} (readable by you only)")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
