"""NPS over time for the dashboard's line and filters: responses per month or week, aggregated in the database."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import case, func, select

from copilot.store import Repo
from copilot.store.models import Account, NpsResponse
from copilot.tasks.nps_themes.describe import nps_of
from copilot.tasks.nps_themes.models import ThemeFilters
from copilot.tasks.nps_themes.store import _where

Bucket = Literal["month", "week"]
MAX_OPTIONS = 200  # distinct segments, plans, surveys, campaigns offered as filters


class NpsPoint(BaseModel):
    start: date = Field(description="first day of the month, or the Monday of the week")
    responses: int
    promoters: int
    detractors: int
    nps: float


class NpsTrend(BaseModel):
    filters: ThemeFilters
    bucket: Bucket
    points: list[NpsPoint]
    responses: int
    nps: float | None


class FilterOptions(BaseModel):
    """The values the workspace's NPS responses carry, to filter on."""

    segments: list[str]
    plans: list[str]
    surveys: list[str]
    campaigns: list[str]


def _bucket_key(repo: Repo, bucket: Bucket):
    """A SQL expression naming each response's bucket by its first day (YYYY-MM-DD), on SQLite and PostgreSQL."""
    column = NpsResponse.submitted_at
    if repo.session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.date_trunc(bucket, column), "YYYY-MM-DD")
    if bucket == "month":
        return func.strftime("%Y-%m-01", column)
    return func.date(column, "weekday 0", "-6 days")  # the Monday on or before the day


def nps_trend(repo: Repo, filters: ThemeFilters, bucket: Bucket = "month") -> NpsTrend:
    """NPS per month (or week) of the responses matching ``filters`` (with or without a comment), oldest first."""
    key = _bucket_key(repo, bucket).label("bucket")
    promoters = func.sum(case((NpsResponse.score >= 9, 1), else_=0))
    detractors = func.sum(case((NpsResponse.score <= 6, 1), else_=0))
    query = _where(select(key, func.count(), promoters, detractors), repo, filters, filters.since, filters.until)
    rows = repo.session.execute(query.group_by(key).order_by(key)).all()
    points = [
        NpsPoint(
            start=date.fromisoformat(str(start)[:10]),
            responses=int(n),
            promoters=int(p or 0),
            detractors=int(d or 0),
            nps=nps_of(n, p or 0, d or 0) or 0.0,
        )
        for start, n, p, d in rows
        if start is not None and n
    ]
    total = sum(p.responses for p in points)
    nps = nps_of(total, sum(p.promoters for p in points), sum(p.detractors for p in points))
    return NpsTrend(filters=filters, bucket=bucket, points=points, responses=total, nps=nps)


def filter_options(repo: Repo) -> FilterOptions:
    def distinct(column, *where) -> list[str]:
        query = select(column).distinct().where(column.is_not(None), *where).order_by(column).limit(MAX_OPTIONS)
        return [str(value) for value in repo.session.scalars(query) if str(value).strip()]

    mine = NpsResponse.workspace_id == repo.workspace_id
    answered = Account.id.in_(select(NpsResponse.account_id).where(mine))
    return FilterOptions(
        segments=distinct(NpsResponse.segment, mine),
        plans=distinct(Account.plan, Account.workspace_id == repo.workspace_id, answered),
        surveys=distinct(NpsResponse.survey, mine),
        campaigns=distinct(NpsResponse.campaign, mine),
    )


def default_since(now: datetime | None = None, months: int = 12) -> datetime:
    """The first day of the month ``months`` months before ``now``: the dashboard's default period."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    month = now.year * 12 + now.month - 1 - months
    return datetime(month // 12, month % 12 + 1, 1, tzinfo=UTC)
