"""Shared plumbing for CLI commands: settings, store, one-line errors.

Command modules import only typer, rich and this module at import time; whatever loads the store, a model or an
index is imported inside the command that needs it, so `copilot --help` and model-free commands answer at once."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from rich.status import Status

    from copilot.services import Services
    from copilot.settings import Settings
    from copilot.store import Store
    from copilot.tasks.base import TaskOutcome

# Redirected to a file or a CI log, rich would wrap tables at 80 columns and cut model names to "local/q…".
_PIPED_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
console = Console(width=_PIPED_WIDTH)
err_console = Console(stderr=True)

WorkspaceOption = Annotated[
    str | None, typer.Option("--workspace", "-w", help="Workspace slug (default: $COPILOT_WORKSPACE or 'demo').")
]


def load_settings() -> Settings:
    from copilot.settings import Settings

    return Settings.from_env()


def open_store(settings: Settings) -> Store:
    from copilot.store import Store

    return Store.from_settings(settings)


def workspace_slug(settings: Settings, workspace: str | None) -> str:
    return workspace or settings.workspace


def loading(what: str) -> Status:
    """A spinner while a command waits on a model, the embedder or an index, saying what it waits for."""
    return console.status(f"{what}...", spinner="dots")


def fail(message: str) -> typer.Exit:
    """Print a one-line error and return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def task_strategy(task: str, strategy: str, option: str = "--strategy") -> str:
    """``strategy`` when the registered task has it ("auto" or one of its own), else a usage error for ``option``."""
    from copilot.tasks import registry

    choices = ("auto", *registry.get(task).strategies)
    if strategy not in choices:
        raise typer.BadParameter(f"use {', '.join(choices)}", param_hint=option)
    return strategy


def open_services(settings: Settings | None = None) -> Services:
    """The services a command runs tasks with (models and indexes load on first use)."""
    from copilot.services import Services

    return Services(settings or load_settings())


def run_task(
    services: Services,
    workspace: str | None,
    task: str,
    params: dict[str, Any],
    progress: Callable[[int, int], None] | None = None,
) -> TaskOutcome[Any]:
    """Run a registered task in the workspace under a spinner (the first run loads the embedder and the model)."""
    slug = workspace_slug(services.settings, workspace)
    if progress is not None:
        return services.run_in_workspace(slug, task, params, progress=progress)
    with loading(f"running {task} (models load on first use)"):
        return services.run_in_workspace(slug, task, params)
