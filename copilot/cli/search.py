"""`copilot search` and `copilot index`: hybrid search over customer history and its index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from copilot.cli.common import WorkspaceOption, console, loading, open_services, workspace_slug
from copilot.errors import NotFound

if TYPE_CHECKING:
    from copilot.store import Repo
    from copilot.store.models import Account


def resolve_account(repo: Repo, account: str) -> Account:
    """An account by external id, numeric id or exact name."""
    from copilot.store.models import Account

    found = repo.by_external_id(Account, account)
    if found is None and account.isdigit():
        found = repo.get(Account, int(account))
    if found is None:
        found = repo.session.scalar(repo.select(Account).where(Account.name == account))
    if found is None:
        raise NotFound(f"no account '{account}' in workspace '{repo.workspace.slug}'")
    return found


def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    workspace: WorkspaceOption = None,
    account: Annotated[
        str | None, typer.Option(help="Only this account's history (external id, id or name) plus the KB.")
    ] = None,
    kind: Annotated[
        list[str] | None, typer.Option(help="Record kinds: message, ticket, call, note, nps_response, kb_article.")
    ] = None,
    days: Annotated[int | None, typer.Option(help="Only records from the last N days.")] = None,
    limit: Annotated[int, typer.Option(help="How many hits.")] = 8,
    mode: Annotated[str, typer.Option(help="hybrid, vector or lexical.")] = "hybrid",
    recency: Annotated[float | None, typer.Option(help="Boost recent records: half-life in days.")] = None,
) -> None:
    """Search customer history; hits are labelled [S1], [S2], ... for citation."""
    from retrieval.search import SearchFilters

    if mode not in ("hybrid", "vector", "lexical"):
        raise typer.BadParameter("use hybrid, vector or lexical", param_hint="--mode")
    services = open_services()
    with (
        services.store.repo(workspace_slug(services.settings, workspace)) as repo,
        loading("searching (loads the embedding model)"),
    ):
        searcher = services.searcher
        filters = SearchFilters(
            account_id=resolve_account(repo, account).id if account else None,
            kinds=kind or None,
            since=datetime.now(UTC) - timedelta(days=days) if days else None,
        )
        hits = searcher.search(repo, query, filters, limit=limit, mode=mode, recency_half_life_days=recency)
    if not hits:
        console.print("no hits (is the workspace indexed? run `copilot index --rebuild`)")
        return
    table = Table("", "record", "score", "snippet", show_lines=True)
    for hit in hits:
        table.add_row(f"[bold][{hit.label}][/]", f"{hit.record_kind} {hit.record_id}", f"{hit.score:.4f}", hit.snippet)
    console.print(table)


def index(
    workspace: WorkspaceOption = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Drop the workspace's index and build it again from the store.")
    ] = False,
) -> None:
    """Bring the workspace's search index up to date: new, changed and deleted records (resumable)."""
    services = open_services()
    history = services.index
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        total = history.count_records(repo)
        with Progress(
            TextColumn("[bold]indexing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
        ) as progress:
            task = progress.add_task("index", total=total)
            written = history.rebuild(repo, resume=not rebuild, progress=lambda n: progress.advance(task, n))
    console.print(
        f"indexed {written} records of workspace '{repo.workspace.slug}' ({total - written} already up to date)"
    )


def register(app: typer.Typer) -> None:
    app.command("search")(search)
    app.command("index")(index)
