"""`copilot usage` and `copilot budget`: what the models cost per task per day, and the workspace's daily cap."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from copilot.cli.common import WorkspaceOption, console, load_settings, open_store, workspace_slug

budget_app = typer.Typer(help="Show or set the workspace's daily model budget.", no_args_is_help=True)


def usage_command(
    days: Annotated[int, typer.Option(min=1, max=366, help="How many UTC days back.")] = 7,
    workspace: WorkspaceOption = None,
) -> None:
    """Model calls, tokens and cost per day, task and model."""
    from copilot.usage import usage

    settings = load_settings()
    with open_store(settings).repo(workspace_slug(settings, workspace)) as repo:
        rows = usage(repo, days)
    table = Table("day", "task", "model", "calls", "tokens in", "tokens out", "cost")
    for row in rows:
        cost = f"${row.cost_usd:.4f}" if row.cost_usd is not None else "-"
        table.add_row(
            str(row.day), row.task, row.model or "-", str(row.calls), f"{row.tokens_in:,}", f"{row.tokens_out:,}", cost
        )
    console.print(table if rows else f"no model use in the last {days} day(s)")


def _show(status) -> None:  # noqa: ANN001 - copilot.usage.BudgetStatus
    budget = status.budget
    cap = (
        "no cap"
        if budget is None
        else ", ".join(
            part
            for part in (
                f"{budget.daily_tokens:,} tokens" if budget.daily_tokens else "",
                f"${budget.daily_cost_usd:.2f}" if budget.daily_cost_usd else "",
            )
            if part
        )
    )
    console.print(f"daily budget: {cap}; spent today: {status.tokens_today:,} tokens, ${status.cost_usd_today:.4f}")
    if status.exhausted:
        console.print(f"[yellow]{status.exhausted}: tasks take their non-LLM path until midnight UTC[/]")


@budget_app.command("show")
def budget_show(workspace: WorkspaceOption = None) -> None:
    """The daily cap and today's spend."""
    from copilot.usage import status

    settings = load_settings()
    with open_store(settings).repo(workspace_slug(settings, workspace)) as repo:
        _show(status(repo))


@budget_app.command("set")
def budget_set(
    tokens: Annotated[int | None, typer.Option(min=1, help="Tokens in + out per UTC day.")] = None,
    dollars: Annotated[float | None, typer.Option(min=0.01, help="Dollars per UTC day (priced models).")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Cap the workspace's model use per day (give neither option to remove the cap)."""
    from copilot.usage import Budget, set_budget, status

    settings = load_settings()
    with open_store(settings).repo(workspace_slug(settings, workspace)) as repo:
        set_budget(repo, Budget(daily_tokens=tokens, daily_cost_usd=dollars))
        _show(status(repo))


def register(app: typer.Typer) -> None:
    app.command("usage")(usage_command)
    app.add_typer(budget_app, name="budget")
