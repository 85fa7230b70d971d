"""`copilot keys`: API keys bound to one workspace and role (only their hash is stored)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from copilot.cli.common import WorkspaceOption, console, fail, load_settings, open_store, workspace_slug

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


@keys_app.command("create")
def create(
    role: Annotated[str, typer.Option(help="agent, rep, marketing, lead or admin.")],
    workspace: WorkspaceOption = None,
    name: Annotated[str | None, typer.Option(help="A label for the key (who or what uses it).")] = None,
) -> None:
    """Create a key and print it once (store it now: it cannot be shown again)."""
    from copilot.auth import create_key
    from copilot.errors import CopilotError

    settings = load_settings()
    try:
        with open_store(settings).repo(workspace_slug(settings, workspace)) as repo:
            key, row = create_key(repo, role, name or f"{role} key")  # an unknown role is refused there, named
    except CopilotError as error:
        raise fail(str(error)) from None
    console.print(f"key {row.id} ({row.role.value}, workspace '{repo.workspace.slug}'): [bold]{key}[/]")
    console.print("[dim]shown once: only its hash is stored[/]")


@keys_app.command("list")
def list_command(workspace: WorkspaceOption = None) -> None:
    """List the workspace's keys (prefix, role, last use, revoked)."""
    from copilot.auth import list_keys

    settings = load_settings()
    table = Table("id", "name", "role", "prefix", "created", "last used", "revoked")
    with open_store(settings).repo(workspace_slug(settings, workspace)) as repo:
        for k in list_keys(repo):
            when = lambda value: value.strftime("%Y-%m-%d %H:%M") if value else "-"  # noqa: E731
            table.add_row(
                str(k.id), k.name, k.role.value, k.prefix, when(k.created_at), when(k.last_used_at), when(k.revoked_at)
            )
    console.print(table)


@keys_app.command("revoke")
def revoke(key_id: int, workspace: WorkspaceOption = None) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    from copilot.auth import revoke_key

    settings = load_settings()
    with open_store(settings).repo(workspace_slug(settings, workspace)) as repo:
        revoke_key(repo, key_id)
    console.print(f"key {key_id} revoked")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
