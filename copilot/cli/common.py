"""Shared plumbing for CLI commands: settings, store, one-line errors."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from copilot.settings import Settings
from copilot.store import Store

console = Console()
err_console = Console(stderr=True)

WorkspaceOption = Annotated[
    str | None, typer.Option("--workspace", "-w", help="Workspace slug (default: $COPILOT_WORKSPACE or 'demo').")
]


def load_settings() -> Settings:
    return Settings()


def open_store(settings: Settings) -> Store:
    return Store.from_settings(settings)


def workspace_slug(settings: Settings, workspace: str | None) -> str:
    return workspace or settings.workspace


def fail(message: str) -> typer.Exit:
    """Print a one-line error and return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)
