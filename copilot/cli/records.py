"""Workspace and schema commands."""

from __future__ import annotations

import typer
from rich.table import Table

from copilot.cli.common import console, load_settings, open_store

workspace_app = typer.Typer(help="Create and list workspaces.", no_args_is_help=True)


@workspace_app.command("create")
def create_workspace(slug: str, name: str | None = typer.Option(None, help="Display name.")) -> None:
    """Create a workspace (no-op when it exists)."""
    from copilot.store import get_or_create_workspace

    store = open_store(load_settings())
    with store.session() as session:
        workspace = get_or_create_workspace(session, slug, name)
    console.print(f"workspace [bold]{workspace.slug}[/] ready (id {workspace.id})")


@workspace_app.command("list")
def list_workspaces() -> None:
    """List workspaces."""
    from sqlalchemy import select

    from copilot.store.models import Workspace

    store = open_store(load_settings())
    table = Table("id", "slug", "name", "created")
    with store.session() as session:
        for workspace in session.scalars(select(Workspace).order_by(Workspace.id)):
            table.add_row(
                str(workspace.id), workspace.slug, workspace.name, workspace.created_at.isoformat(timespec="seconds")
            )
    console.print(table)


def migrate_command() -> None:
    """Create or upgrade the database schema to the latest version."""
    settings = load_settings()
    open_store(settings)
    console.print(f"schema up to date at {settings.resolved_database_url}")


def register(app: typer.Typer) -> None:
    app.add_typer(workspace_app, name="workspace")
    app.command("migrate")(migrate_command)
