"""`copilot ingest`: load CRM records from JSONL or CSV files."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from copilot.cli.common import WorkspaceOption, console, open_services, workspace_slug

if TYPE_CHECKING:
    from copilot.ingest import IngestReport


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="JSONL or CSV files; each is ingested in its own transaction.")],
    workspace: WorkspaceOption = None,
    kind: Annotated[
        str | None, typer.Option(help="Record kind of every row (default: from the file name or a 'kind' field).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate everything, write nothing.")] = False,
    create_workspace: Annotated[
        bool, typer.Option("--create-workspace", help="Create the workspace if it does not exist.")
    ] = False,
) -> None:
    """Ingest records; a bad row aborts its file with file:line: field: problem and writes nothing."""
    from copilot.ingest import count_lines, ingest_file
    from copilot.records import after_write_hooks
    from copilot.store import get_or_create_workspace

    services = open_services()
    store, slug = services.store, workspace_slug(services.settings, workspace)
    if create_workspace:
        with store.session() as session:
            get_or_create_workspace(session, slug)
    hooks = after_write_hooks(services)
    for path in paths:
        total = count_lines(path) if path.is_file() else 0
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=total < 5000,
        ) as progress:
            task_id = progress.add_task(f"validating {path.name}", total=total)
            report = ingest_file(
                store,
                slug,
                path,
                kind=kind,
                dry_run=dry_run,
                progress=partial(progress.advance, task_id),
                after_write=hooks,
            )
        _print_report(report)


def _print_report(report: IngestReport) -> None:
    table = Table(title=f"{report.source}{' (dry run: nothing written)' if report.dry_run else ''}")
    table.add_column("kind")
    table.add_column("would insert" if report.dry_run else "inserted", justify="right")
    table.add_column("would update" if report.dry_run else "updated", justify="right")
    for kind in report.inserted:
        table.add_row(kind, str(report.inserted[kind]), str(report.updated[kind]))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
