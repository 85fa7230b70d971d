"""Model usage and cost per task per day, and the per-workspace daily budget.

Usage is read from the AI results themselves (every one records its model, tokens and cost), so there is no second
ledger to drift. A workspace budget caps tokens and/or dollars per UTC day; when it is spent, model calls are
refused and tasks take their non-LLM path with a verdict saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from copilot.errors import BudgetExceeded, InvalidInput
from copilot.store import Repo
from copilot.store.models import AiResult

BUDGET_KEY = "budget"


class Budget(BaseModel):
    daily_tokens: int | None = Field(default=None, ge=1, description="Tokens in + out per UTC day, all tasks.")
    daily_cost_usd: float | None = Field(default=None, gt=0, description="Dollars per UTC day (models with a price).")


class UsageRow(BaseModel):
    day: date
    task: str
    model: str | None
    calls: int
    tokens_in: int
    tokens_out: int
    cost_usd: float | None


class BudgetStatus(BaseModel):
    budget: Budget | None
    tokens_today: int
    cost_usd_today: float
    exhausted: str | None = Field(description="Why model calls are refused right now, or null.")


def workspace_budget(repo: Repo) -> Budget | None:
    raw = (repo.workspace.settings or {}).get(BUDGET_KEY)
    return Budget.model_validate(raw) if raw else None


def set_budget(repo: Repo, budget: Budget | None) -> None:
    settings = {k: v for k, v in (repo.workspace.settings or {}).items() if k != BUDGET_KEY}
    if budget is not None and (budget.daily_tokens or budget.daily_cost_usd):
        settings[BUDGET_KEY] = budget.model_dump(exclude_none=True)
    repo.workspace.settings = settings


def _day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def spent_today(repo: Repo, now: datetime | None = None) -> tuple[int, float]:
    since = _day_start(now or datetime.now(UTC))
    query = select(
        func.coalesce(func.sum(AiResult.tokens_in + AiResult.tokens_out), 0),
        func.coalesce(func.sum(AiResult.cost_usd), 0.0),
    ).where(AiResult.workspace_id == repo.workspace_id, AiResult.created_at >= since)
    tokens, cost = repo.session.execute(query).one()
    return int(tokens), float(cost)


def budget_spent(repo: Repo, now: datetime | None = None) -> str | None:
    """Why the workspace may not call a model today (its budget is spent), or None."""
    budget = workspace_budget(repo)
    if budget is None:
        return None
    tokens, cost = spent_today(repo, now)
    if budget.daily_tokens is not None and tokens >= budget.daily_tokens:
        return f"the workspace's daily model budget is spent ({tokens:,} of {budget.daily_tokens:,} tokens today, UTC)"
    if budget.daily_cost_usd is not None and cost >= budget.daily_cost_usd:
        return f"the workspace's daily model budget is spent (${cost:.2f} of ${budget.daily_cost_usd:.2f} today, UTC)"
    return None


def budget_check(repo: Repo, now: datetime) -> Callable[[], None] | None:
    """A check to run before each model call (raises BudgetExceeded); None when the workspace has no budget."""
    if workspace_budget(repo) is None:
        return None

    def check() -> None:
        if (reason := budget_spent(repo)) is not None:
            raise BudgetExceeded(reason)

    return check


def status(repo: Repo, now: datetime | None = None) -> BudgetStatus:
    tokens, cost = spent_today(repo, now)
    return BudgetStatus(
        budget=workspace_budget(repo),
        tokens_today=tokens,
        cost_usd_today=round(cost, 6),
        exhausted=budget_spent(repo, now),
    )


def usage(repo: Repo, days: int = 30, now: datetime | None = None) -> list[UsageRow]:
    """Calls, tokens and cost per UTC day, task and model, newest day first."""
    if not 1 <= days <= 366:
        raise InvalidInput("days: between 1 and 366")
    since = _day_start(now or datetime.now(UTC)) - timedelta(days=days - 1)
    day = func.date(AiResult.created_at)
    query = (
        select(
            day,
            AiResult.task,
            AiResult.model,
            func.count(),
            func.sum(AiResult.tokens_in),
            func.sum(AiResult.tokens_out),
            func.sum(AiResult.cost_usd),
        )
        .where(AiResult.workspace_id == repo.workspace_id, AiResult.created_at >= since)
        .group_by(day, AiResult.task, AiResult.model)
        .order_by(day.desc(), AiResult.task)
    )
    rows = []
    for when, task, model, calls, tokens_in, tokens_out, cost in repo.session.execute(query):
        when = when if isinstance(when, date) else date.fromisoformat(str(when)[:10])
        rows.append(
            UsageRow(
                day=when,
                task=task,
                model=model,
                calls=calls,
                tokens_in=int(tokens_in or 0),
                tokens_out=int(tokens_out or 0),
                cost_usd=None if cost is None else round(float(cost), 6),
            )
        )
    return rows
