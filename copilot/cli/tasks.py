"""Every registered task from the command line, through the same generic caller as ``POST /v1/tasks/<name>``.

copilot task list
copilot task run ticket_summary --param ticket_id=T-1179 --param strategy=extractive
copilot task run tone_rewrite --params '{"text": "Fix it now.", "tone": "friendly"}' --json
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Column, Table

from copilot.cli.common import WorkspaceOption, console, fail, load_settings, open_services, run_task
from copilot.cli.support import show_outcome

task_app = typer.Typer(help="Run any registered task (built-in or from a plugin) with its own parameters.")


@task_app.command("list")
def list_tasks() -> None:
    """The registered tasks: subject, strategies, and what "auto" means for each model profile."""
    from copilot.profiles import Profile
    from copilot.tasks import registry

    chosen = load_settings().task_strategies
    table = Table("subject", "strategies", "auto: small / capable", "reviewed", "summary")
    table.columns.insert(0, Column("task", no_wrap=True))
    for entry in sorted(registry.tasks().values(), key=lambda t: t.name):
        profiles = (Profile.small, Profile.capable)
        auto = " / ".join(entry.defaults.get(profile, entry.fallback_strategy) for profile in profiles)
        if entry.name in chosen:
            auto = f"{chosen[entry.name]} (COPILOT_TASK_STRATEGIES)"
        reviewed = "yes" if entry.needs_approval else "no"
        table.add_row(entry.name, entry.subject, ", ".join(entry.strategies), auto, reviewed, entry.summary)
    console.print(table)


def parse_params(pairs: list[str], params_json: str | None) -> dict[str, Any]:
    """``--params`` JSON, then each ``--param key=value`` (a value that parses as JSON is taken as JSON: numbers,
    lists, true/false; anything else is text)."""
    params: dict[str, Any] = {}
    if params_json:
        try:
            params = json.loads(params_json)
        except json.JSONDecodeError as error:
            raise fail(f"--params: not valid JSON ({error.msg} at character {error.pos})") from None
        if not isinstance(params, dict):
            raise fail('--params: give a JSON object, e.g. \'{"ticket_id": "T-1"}\'')
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise fail(f"--param {pair!r}: write it as key=value")
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return params


@task_app.command("run")
def run_command(
    name: Annotated[str, typer.Argument(help="Task name (see `copilot task list`).")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="key=value; repeatable.")] = None,
    params_json: Annotated[str | None, typer.Option("--params", help="All parameters as one JSON object.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole outcome as JSON.")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Run a task with its parameters (validated by the task's own params model) and save its AI result."""
    from copilot.tasks import registry

    entry = registry.get(name)
    params = entry.parse(parse_params(param or [], params_json))
    outcome = run_task(open_services(), workspace, name, params)
    if as_json:
        console.print_json(outcome.model_dump_json())
        return
    body = json.dumps(outcome.result.model_dump(mode="json"), indent=2, ensure_ascii=False)
    show_outcome(f"{name}: {entry.summary}", outcome, body)


def register(app: typer.Typer) -> None:
    app.add_typer(task_app, name="task")
