"""What the insights share: periods and the previous period, filters, time arithmetic in SQL, percentiles, and the
workspace's insight settings (SLA targets, quota, the auto-QA scorecard and threshold)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import Float, Integer, cast, func
from sqlalchemy.sql.elements import ColumnElement

from copilot.errors import InvalidInput
from copilot.store import Repo
from copilot.store.models import Channel, utc

SETTINGS_KEY = "insights"
DEFAULT_DAYS = 90
# Time to the first agent reply, and to resolution, per ticket priority (hours); a workspace may set its own.
FIRST_RESPONSE_SLA_H = {"urgent": 1.0, "high": 4.0, "normal": 24.0, "low": 72.0}
RESOLUTION_SLA_H = {"urgent": 24.0, "high": 72.0, "normal": 120.0, "low": 240.0}
DAY_S = 86400.0


def as_datetime(value: date | datetime) -> datetime:
    return utc(value) if isinstance(value, datetime) else datetime.combine(value, time(0), tzinfo=UTC)


class Period(BaseModel):
    """A half-open time window [since, until)."""

    since: datetime
    until: datetime

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        self.since, self.until = utc(self.since), utc(self.until)
        if self.until <= self.since:
            raise InvalidInput("until: the period must end after it starts")
        return self

    @property
    def length(self) -> timedelta:
        return self.until - self.since

    @property
    def days(self) -> float:
        return self.length.total_seconds() / DAY_S

    def previous(self) -> Period:
        """The window of the same length just before."""
        return Period(since=self.since - self.length, until=self.since)

    def following(self) -> Period:
        return Period(since=self.until, until=self.until + self.length)

    def contains(self, seconds: float | None) -> bool:
        return seconds is not None and self.since.timestamp() <= seconds < self.until.timestamp()

    @classmethod
    def of(
        cls,
        since: date | datetime | None = None,
        until: date | datetime | None = None,
        days: float | None = None,
        now: datetime | None = None,
    ) -> Period:
        """``since``/``until`` as given; a missing end is now, a missing start is ``days`` (default 90) before it."""
        end = as_datetime(until) if until is not None else utc(now or datetime.now(UTC))
        if since is not None:
            return cls(since=as_datetime(since), until=end)
        if days is not None and days <= 0:
            raise InvalidInput("days: must be positive")
        return cls(since=end - timedelta(days=days or DEFAULT_DAYS), until=end)


class Filters(BaseModel):
    """What the KPIs are narrowed to; each applies to the stages whose records have it (the report says which not)."""

    team: str | None = Field(default=None, description="A team, or one assignee (ticket) / owner (deal).")
    channel: Channel | None = Field(default=None, description="Ticket channel: email, chat, phone, web, social.")
    segment: str | None = Field(default=None, description="The account's segment (smb, mid-market, enterprise...).")
    source: str | None = Field(default=None, description="Lead source of deals and leads (referral, inbound...).")

    def given(self) -> dict[str, str]:
        return {name: value for name, value in self.model_dump(mode="json").items() if value}

    @classmethod
    def from_form(cls, **values: str | None) -> Filters:
        """Filters from a web form, where an empty field means "any"; an unknown channel is an InvalidInput."""
        given = {name: value for name, value in values.items() if value}
        if "channel" in given and given["channel"] not in {c.value for c in Channel}:
            choices = ", ".join(c.value for c in Channel)
            raise InvalidInput(f"channel: '{given['channel']}' is not a ticket channel (one of: {choices})")
        return cls.model_validate(given)


def epoch(column: Any, dialect: str) -> ColumnElement[float]:
    """Unix seconds of a timestamp column, computed by the database (SQLite stores text, PostgreSQL timestamptz)."""
    if dialect == "sqlite":  # whole seconds, plus the '.ffffff' of SQLAlchemy's 'YYYY-MM-DD HH:MM:SS.ffffff' text
        return cast(func.strftime("%s", column), Integer) + cast(func.substr(column, 20), Float)
    return cast(func.extract("epoch", column), Float)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between closest ranks (numpy's default, Excel's
    PERCENTILE.INC); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def share(part: int, whole: int) -> float | None:
    """part/whole as a percentage; None when there is nothing to divide."""
    return 100.0 * part / whole if whole else None


_CACHE: dict[tuple[str, str], Any] = {}
CACHE_SIZE = 50_000


def classify_cached(classifier: Any, texts: list[str]) -> list[Any]:
    """Sentiment of each text, classifying each distinct text once per sentiment head (threads repeat themselves);
    a classifier without a named head (a test double) is asked every time."""
    if not texts:
        return []
    head = getattr(getattr(classifier, "head", None), "name", None)
    if not isinstance(head, str):
        return list(classifier.classify(texts))
    missing = list(dict.fromkeys(t for t in texts if (head, t) not in _CACHE))
    if missing:
        if len(_CACHE) + len(missing) > CACHE_SIZE:
            _CACHE.clear()
        _CACHE.update(((head, t), r) for t, r in zip(missing, classifier.classify(missing), strict=True))
    return [_CACHE[(head, t)] for t in texts]


def workspace_config(repo: Repo) -> dict[str, Any]:
    return dict((repo.workspace.settings or {}).get(SETTINGS_KEY) or {})


def save_workspace_config(repo: Repo, changes: dict[str, Any]) -> dict[str, Any]:
    settings = dict(repo.workspace.settings or {})
    config = {**(settings.get(SETTINGS_KEY) or {}), **changes}
    settings[SETTINGS_KEY] = config
    repo.workspace.settings = settings
    return config


def sla_targets(repo: Repo) -> tuple[dict[str, float], dict[str, float]]:
    """First-response and resolution targets in hours per priority: the workspace's, else the defaults."""
    config = workspace_config(repo)
    return (
        {**FIRST_RESPONSE_SLA_H, **(config.get("first_response_sla_h") or {})},
        {**RESOLUTION_SLA_H, **(config.get("resolution_sla_h") or {})},
    )
