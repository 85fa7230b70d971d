"""KPIs per stage of the customer lifecycle, computed from the records, with the previous period beside each.

Support: first response time and resolution time (median and p90, hours), reopen rate, backlog, SLA breaches, CSAT,
NPS. Sales: win rate (overall, by lead source, by stage reached), average deal size, sales-cycle length, stage
conversion, time in stage, pipeline coverage, lead conversion by source. Customers: churn rate, renewal rate, NPS
trend.

Definitions (the period is [since, until); the previous period is the window of the same length just before):

- first response: hours from a ticket's opening to its first agent message, for tickets opened in the period;
- resolution: hours from opening to ``closed_at``, for tickets solved in the period; reopen rate: share of those
  reopened at least once (``reopen_count``);
- backlog: tickets open at the end of the period (opened before it, not closed by then);
- SLA breaches: tickets opened in the period answered later than their priority's first-response target (or still
  unanswered past it at the period's end), and tickets solved in the period later than the resolution target;
- CSAT: share of good answers (4 or 5 of 5) among tickets solved in the period that have one, and the mean;
- NPS: % promoters (9-10) - % detractors (0-6) of the responses submitted in the period;
- win rate: won / (won + lost) of the deals closed in the period (close date), overall, by lead source, and by the
  furthest open stage each reached; average deal size: mean amount of those won; cycle length: days from a won
  deal's first stage entry to its close;
- stage conversion: of the deals that entered a stage in the period, the share that went on to a later stage (by
  now); time in stage: days spent in a stage by the deals that left it in the period;
- pipeline coverage: open pipeline closing in the next period over the target: the workspace's quota when set
  (``insights.quota`` per period of this length), else the amount won in this period; for the previous period,
  the deals open at its end with close dates in this period;
- lead conversion: converted / (converted + disqualified) of the leads created in the period, by source;
- churn rate: accounts that churned in the period over the customers active at its start; renewal rate: won /
  (won + lost) of renewal deals closed in the period.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import Select, String, and_, func, or_, select, type_coerce

from copilot.insights.common import (
    DAY_S,
    Filters,
    Period,
    epoch,
    mean,
    percentile,
    share,
    sla_targets,
    workspace_config,
)
from copilot.store import Repo
from copilot.store.models import Account, AuthorKind, Contact, Deal, DealStage, Message, NpsResponse, Ticket, utc

Stage = Literal["support", "sales", "customers"]
STAGES: tuple[Stage, ...] = ("support", "sales", "customers")
OPEN_STAGES = [s.value for s in DealStage][:5]
RANK = {stage: index for index, stage in enumerate(OPEN_STAGES)}
CLOSED = {DealStage.closed_won.value: True, DealStage.closed_lost.value: False}
GOOD_CSAT = 4
TREND_BUCKETS = 6
APPLIES: dict[Stage, tuple[str, ...]] = {
    "support": ("team", "channel", "segment"),
    "sales": ("team", "segment", "source"),
    "customers": ("segment",),
}


class Kpi(BaseModel):
    key: str
    label: str
    value: float | None
    previous: float | None
    unit: str  # hours, days, %, count, USD, NPS, x (a ratio), score
    n: int = Field(default=0, description="How many records the value is computed from.")
    previous_n: int = 0
    better: Literal["higher", "lower"] | None = None
    note: str | None = None

    @property
    def delta(self) -> float | None:
        return None if self.value is None or self.previous is None else self.value - self.previous


class BreakdownRow(BaseModel):
    group: str
    value: float | None
    previous: float | None
    n: int = 0
    previous_n: int = 0


class Breakdown(BaseModel):
    key: str
    label: str
    unit: str
    rows: list[BreakdownRow]


class SeriesPoint(BaseModel):
    since: datetime
    value: float | None
    n: int = 0


class Series(BaseModel):
    key: str
    label: str
    unit: str
    points: list[SeriesPoint]


class Section(BaseModel):
    stage: Stage
    kpis: list[Kpi] = Field(default_factory=list)
    breakdowns: list[Breakdown] = Field(default_factory=list)
    series: list[Series] = Field(default_factory=list)
    filters_ignored: list[str] = Field(default_factory=list, description="Given filters these records do not have.")

    def kpi(self, key: str) -> Kpi:
        return next(k for k in self.kpis if k.key == key)

    def breakdown(self, key: str) -> Breakdown:
        return next(b for b in self.breakdowns if b.key == key)


class KpiReport(BaseModel):
    workspace: str
    period: Period
    previous: Period
    filters: Filters
    sections: list[Section]
    elapsed_ms: float = 0.0

    def section(self, stage: Stage) -> Section:
        return next(s for s in self.sections if s.stage == stage)


@dataclass
class Split:
    """Values of one measure in the period and in the previous one."""

    now: list[float] = field(default_factory=list)
    before: list[float] = field(default_factory=list)

    def add(self, in_now: bool, in_before: bool, value: float) -> None:
        if in_now:
            self.now.append(value)
        elif in_before:
            self.before.append(value)


def _kpi(key: str, label: str, unit: str, split: Split, fn: Callable[[list[float]], float | None], **extra) -> Kpi:
    return Kpi(
        key=key,
        label=label,
        unit=unit,
        value=fn(split.now),
        previous=fn(split.before),
        n=len(split.now),
        previous_n=len(split.before),
        **extra,
    )


def _rate(values: list[float]) -> float | None:
    return share(sum(1 for v in values if v), len(values))


def _median(values: list[float]) -> float | None:
    return percentile(values, 50)


def _p90(values: list[float]) -> float | None:
    return percentile(values, 90)


def _nps(scores: list[float]) -> float | None:
    if not scores:
        return None
    return 100.0 * (sum(1 for s in scores if s >= 9) - sum(1 for s in scores if s <= 6)) / len(scores)


# -- the report -----------------------------------------------------------------------------------
def compute_kpis(
    repo: Repo, period: Period, filters: Filters | None = None, stages: Iterable[Stage] = STAGES
) -> KpiReport:
    """Every KPI of the asked stages for the period and the previous one, in a handful of aggregate queries."""
    started = time.perf_counter()
    filters = filters or Filters()
    context = _Context(repo, period, filters)
    builders = {"support": support_section, "sales": sales_section, "customers": customers_section}
    sections = []
    for stage in stages:
        section = builders[stage](context)
        section.filters_ignored = [name for name in filters.given() if name not in APPLIES[stage]]
        sections.append(section)
    return KpiReport(
        workspace=repo.workspace.slug,
        period=period,
        previous=period.previous(),
        filters=filters,
        sections=sections,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
    )


class _Context:
    def __init__(self, repo: Repo, period: Period, filters: Filters) -> None:
        self.repo, self.period, self.filters = repo, period, filters
        self.previous = period.previous()
        self.dialect = repo.session.get_bind().dialect.name
        self.ws = repo.workspace_id
        self.start, self.mid, self.end = (
            self.previous.since.timestamp(),
            period.since.timestamp(),
            period.until.timestamp(),
        )
        self._deals: dict[tuple[str | None, ...], list[_Deal]] = {}

    def deals(self, filters: Filters) -> list[_Deal]:
        """The deals under these filters, loaded once per report (sales and customers share them)."""
        key = (filters.team, filters.source, filters.segment)
        if key not in self._deals:
            self._deals[key] = load_deals(self, filters)
        return self._deals[key]

    def seconds(self, column: Any) -> Any:
        return epoch(column, self.dialect)

    def in_now(self, seconds: float | None) -> bool:
        return seconds is not None and self.mid <= seconds < self.end

    def in_before(self, seconds: float | None) -> bool:
        return seconds is not None and self.start <= seconds < self.mid

    def rows(self, query: Select[Any]) -> list[Any]:
        """Plain rows through the session's connection: columns, not ORM objects, so no ORM loading per row."""
        return self.repo.session.connection().execute(query).all()

    def segment_filter(self, query: Select[Any], account_column: Any) -> Select[Any]:
        if not self.filters.segment:
            return query
        accounts = select(Account.id).where(Account.workspace_id == self.ws, Account.segment == self.filters.segment)
        return query.where(account_column.in_(accounts))


# -- support --------------------------------------------------------------------------------------
def _text(column: Any) -> Any:
    """An enum column read as its plain text value (no per-row enum conversion on 100,000 rows)."""
    return type_coerce(column, String)


def _ticket_filters(context: _Context, query: Select[Any]) -> Select[Any]:
    f = context.filters
    if f.team:
        query = query.where(or_(Ticket.team == f.team, Ticket.assignee == f.team))
    if f.channel:
        query = query.where(Ticket.channel == f.channel)
    return context.segment_filter(query, Ticket.account_id)


def support_section(context: _Context) -> Section:
    first_sla, resolution_sla = sla_targets(context.repo)
    prev, period = context.previous, context.period
    first_reply = (
        select(func.min(Message.sent_at))
        .where(Message.ticket_id == Ticket.id, Message.author_kind == AuthorKind.agent)
        .correlate(Ticket)
        .scalar_subquery()
    )
    opened = context.rows(
        _ticket_filters(
            context,
            select(context.seconds(Ticket.opened_at), context.seconds(first_reply), _text(Ticket.priority)).where(
                Ticket.workspace_id == context.ws, Ticket.opened_at >= prev.since, Ticket.opened_at < period.until
            ),
        )
    )
    solved = context.rows(
        _ticket_filters(
            context,
            select(
                context.seconds(Ticket.opened_at),
                context.seconds(Ticket.closed_at),
                _text(Ticket.priority),
                Ticket.reopen_count,
                Ticket.csat_score,
            ).where(Ticket.workspace_id == context.ws, Ticket.closed_at >= prev.since, Ticket.closed_at < period.until),
        )
    )
    frt, first_breach = Split(), Split()
    for opened_s, replied_s, priority in opened:
        now, before = context.in_now(opened_s), context.in_before(opened_s)
        target = first_sla[priority] * 3600
        period_end = context.end if now else context.mid
        if replied_s is not None and replied_s < period_end:
            frt.add(now, before, (replied_s - opened_s) / 3600)
        waited = (replied_s if replied_s is not None and replied_s < period_end else period_end) - opened_s
        first_breach.add(now, before, float(waited > target))
    resolution, reopened, resolution_breach, csat, csat_good = Split(), Split(), Split(), Split(), Split()
    for opened_s, closed_s, priority, reopens, score in solved:
        now, before = context.in_now(closed_s), context.in_before(closed_s)
        hours = (closed_s - opened_s) / 3600
        resolution.add(now, before, hours)
        reopened.add(now, before, float((reopens or 0) > 0))
        resolution_breach.add(now, before, float(hours > resolution_sla[priority]))
        if score is not None:
            csat.add(now, before, float(score))
            csat_good.add(now, before, float(score >= GOOD_CSAT))
    breaches = Split([*first_breach.now, *resolution_breach.now], [*first_breach.before, *resolution_breach.before])
    kpis = [
        _kpi("first_response_median_h", "First response, median", "hours", frt, _median, better="lower"),
        _kpi("first_response_p90_h", "First response, p90", "hours", frt, _p90, better="lower"),
        _kpi("resolution_median_h", "Resolution time, median", "hours", resolution, _median, better="lower"),
        _kpi("resolution_p90_h", "Resolution time, p90", "hours", resolution, _p90, better="lower"),
        _kpi("reopen_rate", "Reopen rate", "%", reopened, _rate, better="lower"),
        _backlog(context),
        _kpi("sla_breaches", "SLA breaches", "count", breaches, lambda v: float(sum(v)) if v else 0.0, better="lower"),
        _kpi(
            "sla_breach_rate",
            "First-response SLA breached",
            "%",
            first_breach,
            _rate,
            better="lower",
            note="of tickets opened in the period; targets per priority "
            + ", ".join(f"{p} {h:g} h" for p, h in first_sla.items()),
        ),
        _kpi("csat_good", "CSAT (good answers)", "%", csat_good, _rate, better="higher"),
        _kpi("csat_mean", "CSAT, mean of 5", "score", csat, mean, better="higher"),
        _nps_kpi(context),
    ]
    return Section(stage="support", kpis=kpis)


def _backlog(context: _Context) -> Kpi:
    def open_at(moment: datetime) -> int:
        query = select(func.count()).where(
            Ticket.workspace_id == context.ws,
            Ticket.opened_at < moment,
            or_(Ticket.closed_at.is_(None), Ticket.closed_at >= moment),
        )
        return int(context.repo.session.scalar(_ticket_filters(context, query)) or 0)

    now, before = open_at(context.period.until), open_at(context.period.since)
    return Kpi(
        key="backlog",
        label="Backlog at the end",
        unit="count",
        value=float(now),
        previous=float(before),
        n=now,
        previous_n=before,
        better="lower",
    )


def _nps_rows(context: _Context) -> list[tuple[float, int]]:
    query = select(context.seconds(NpsResponse.submitted_at), NpsResponse.score).where(
        NpsResponse.workspace_id == context.ws,
        NpsResponse.submitted_at >= context.previous.since,
        NpsResponse.submitted_at < context.period.until,
    )
    if context.filters.segment:
        segments = select(Account.id).where(
            Account.workspace_id == context.ws, Account.segment == context.filters.segment
        )
        query = query.where(
            or_(
                NpsResponse.account_id.in_(segments),
                and_(NpsResponse.account_id.is_(None), NpsResponse.segment == context.filters.segment),
            )
        )
    return context.rows(query)


def _nps_kpi(context: _Context, rows: list[tuple[float, int]] | None = None) -> Kpi:
    split = Split()
    for at, score in rows if rows is not None else _nps_rows(context):
        split.add(context.in_now(at), context.in_before(at), float(score))
    return _kpi("nps", "NPS", "NPS", split, _nps, better="higher")


# -- sales ----------------------------------------------------------------------------------------
@dataclass
class _Deal:
    stage: str
    amount: float | None
    source: str | None
    deal_type: str | None
    close_s: float | None
    entered: list[tuple[str, float]]  # (stage, unix seconds), oldest first

    @property
    def won(self) -> bool | None:
        return CLOSED.get(self.stage)

    @property
    def created_s(self) -> float | None:
        return self.entered[0][1] if self.entered else None

    def closed_s(self) -> float | None:
        """When it closed: its closed stage entry, else its close date."""
        if self.won is None:
            return None
        closing = [at for stage, at in self.entered if stage in CLOSED]
        return closing[-1] if closing else self.close_s

    def furthest_open_stage(self) -> str | None:
        reached = [RANK[s] for s, _ in self.entered if s in RANK]
        return OPEN_STAGES[max(reached)] if reached else None

    def open_at(self, seconds: float) -> bool:
        created, closed = self.created_s, self.closed_s()
        return created is not None and created <= seconds and (closed is None or closed > seconds)


def _history(raw: Any) -> list[tuple[str, float]]:
    out = []
    for step in raw or []:
        try:
            at = datetime.fromisoformat(str(step["at"]))
            out.append((str(step["stage"]), utc(at).timestamp()))
        except (KeyError, TypeError, ValueError):
            continue
    return sorted(out, key=lambda pair: pair[1])


def load_deals(context: _Context, f: Filters) -> list[_Deal]:
    query = select(
        _text(Deal.stage),
        Deal.amount,
        Deal.lead_source,
        Deal.deal_type,
        context.seconds(Deal.close_date),
        Deal.stage_history,
    ).where(Deal.workspace_id == context.ws)
    if f.team:
        query = query.where(or_(Deal.team == f.team, Deal.owner == f.team))
    if f.source:
        query = query.where(Deal.lead_source == f.source)
    if f.segment:
        accounts = select(Account.id).where(Account.workspace_id == context.ws, Account.segment == f.segment)
        query = query.where(Deal.account_id.in_(accounts))
    return [
        _Deal(stage, float(amount) if amount is not None else None, source, kind, close_s, _history(history))
        for stage, amount, source, kind, close_s, history in context.rows(query)
    ]


def sales_section(context: _Context) -> Section:
    deals = context.deals(context.filters)
    won, amounts, cycle = Split(), Split(), Split()
    by_source: dict[str, Split] = defaultdict(Split)
    by_stage: dict[str, Split] = defaultdict(Split)
    for deal in deals:
        closed = deal.closed_s()
        if deal.won is None or closed is None:
            continue
        now, before = context.in_now(closed), context.in_before(closed)
        if not (now or before):
            continue
        outcome = float(deal.won)
        won.add(now, before, outcome)
        by_source[deal.source or "(none)"].add(now, before, outcome)
        if stage := deal.furthest_open_stage():
            for reached in OPEN_STAGES[: OPEN_STAGES.index(stage) + 1]:
                by_stage[reached].add(now, before, outcome)
        if deal.won:
            if deal.amount is not None:
                amounts.add(now, before, deal.amount)
            if deal.created_s is not None:
                cycle.add(now, before, (closed - deal.created_s) / DAY_S)
    conversion, time_in_stage = _stage_flow(context, deals)
    kpis = [
        _kpi("win_rate", "Win rate", "%", won, _rate, better="higher"),
        _kpi("avg_deal_size", "Average deal size (won)", "USD", amounts, mean, better="higher"),
        _kpi("cycle_median_days", "Sales cycle, median (won)", "days", cycle, _median, better="lower"),
        _coverage(context, deals, amounts),
        *_lead_kpis(context),
    ]
    breakdowns = [
        _breakdown("win_rate_by_source", "Win rate by lead source", "%", by_source, _rate),
        _breakdown("win_rate_by_stage", "Win rate by stage reached", "%", by_stage, _rate, order=OPEN_STAGES),
        _breakdown("stage_conversion", "Stage conversion (to a later stage)", "%", conversion, _rate, OPEN_STAGES),
        _breakdown("time_in_stage", "Time in stage, median", "days", time_in_stage, _median, order=OPEN_STAGES),
        _lead_breakdown(context),
    ]
    return Section(stage="sales", kpis=kpis, breakdowns=breakdowns)


def _stage_flow(context: _Context, deals: list[_Deal]) -> tuple[dict[str, Split], dict[str, Split]]:
    """Per open stage: did the deals that entered it go on to a later stage (or win), and how long did they stay."""
    conversion: dict[str, Split] = defaultdict(Split)
    durations: dict[str, Split] = defaultdict(Split)
    won = DealStage.closed_won.value
    for deal in deals:
        furthest, next_at = -1, None  # the furthest rank entered after the step (a win counts as beyond any stage)
        for stage, at in reversed(deal.entered):
            rank = RANK.get(stage)
            if rank is not None:
                conversion[stage].add(context.in_now(at), context.in_before(at), float(furthest > rank))
                if next_at is not None:
                    span = (next_at - at) / DAY_S
                    durations[stage].add(context.in_now(next_at), context.in_before(next_at), span)
            furthest = max(furthest, len(RANK) if stage == won else rank if rank is not None else -1)
            next_at = at
    return conversion, durations


def _coverage(context: _Context, deals: list[_Deal], won_amounts: Split) -> Kpi:
    """Open pipeline closing in the next period over the target (the quota, else this period's won amount)."""
    quota = (workspace_config(context.repo).get("quota") or {}).get(f"{round(context.period.days)}d")
    next_end = context.end + (context.end - context.mid)

    def pipeline(at: float, until: float) -> tuple[float, int]:
        chosen = [d.amount or 0.0 for d in deals if d.open_at(at) and d.close_s is not None and at <= d.close_s < until]
        return sum(chosen), len(chosen)

    now_value, now_n = pipeline(context.end, next_end)
    before_value, before_n = pipeline(context.mid, context.end)
    now_target = float(quota) if quota else sum(won_amounts.now)
    before_target = float(quota) if quota else sum(won_amounts.before)
    return Kpi(
        key="pipeline_coverage",
        label="Pipeline coverage",
        unit="x",
        value=now_value / now_target if now_target else None,
        previous=before_value / before_target if before_target else None,
        n=now_n,
        previous_n=before_n,
        better="higher",
        note=f"open pipeline closing in the next {round(context.period.days)} days over "
        + ("the quota" if quota else "the amount won in the period"),
    )


def _leads(context: _Context) -> list[tuple[float, str | None, str | None]]:
    query = select(context.seconds(Contact.lead_created_at), Contact.lead_source, Contact.lead_status).where(
        Contact.workspace_id == context.ws,
        Contact.lead_created_at >= context.previous.since,
        Contact.lead_created_at < context.period.until,
    )
    if context.filters.source:
        query = query.where(Contact.lead_source == context.filters.source)
    return context.rows(context.segment_filter(query, Contact.account_id))


def _lead_splits(context: _Context) -> tuple[Split, Split, dict[str, Split]]:
    created, converted, by_source = Split(), Split(), defaultdict(Split)
    for at, source, status in _leads(context):
        now, before = context.in_now(at), context.in_before(at)
        created.add(now, before, 1.0)
        if status in ("converted", "disqualified"):
            outcome = float(status == "converted")
            converted.add(now, before, outcome)
            by_source[source or "(none)"].add(now, before, outcome)
    return created, converted, by_source


def _lead_kpis(context: _Context) -> list[Kpi]:
    created, converted, _ = _lead_splits(context)
    return [
        _kpi("leads_created", "New leads", "count", created, lambda v: float(len(v)), better="higher"),
        _kpi("lead_conversion", "Lead conversion (decided leads)", "%", converted, _rate, better="higher"),
    ]


def _lead_breakdown(context: _Context) -> Breakdown:
    _, _, by_source = _lead_splits(context)
    return _breakdown("lead_conversion_by_source", "Lead conversion by source", "%", by_source, _rate)


def _breakdown(
    key: str,
    label: str,
    unit: str,
    groups: dict[str, Split],
    fn: Callable[[list[float]], float | None],
    order: list[str] | None = None,
) -> Breakdown:
    names = [g for g in order if g in groups] if order else sorted(groups, key=lambda g: (-len(groups[g].now), g))
    rows = [
        BreakdownRow(
            group=name,
            value=fn(groups[name].now),
            previous=fn(groups[name].before),
            n=len(groups[name].now),
            previous_n=len(groups[name].before),
        )
        for name in names
    ]
    return Breakdown(key=key, label=label, unit=unit, rows=rows)


# -- customers ------------------------------------------------------------------------------------
def customers_section(context: _Context) -> Section:
    accounts = context.rows(
        context.segment_filter(
            select(context.seconds(Account.customer_since), context.seconds(Account.churned_at)).where(
                Account.workspace_id == context.ws
            ),
            Account.id,
        )
    )
    churn = Split()
    for since_s, churned_s in accounts:
        for in_now, start, end in ((True, context.mid, context.end), (False, context.start, context.mid)):
            active = (since_s is None or since_s < start) and (churned_s is None or churned_s >= start)
            if active:
                churn.add(in_now, not in_now, float(churned_s is not None and start <= churned_s < end))
    renewals = Split()
    for deal in context.deals(Filters(segment=context.filters.segment)):  # a renewal is the account's, not a team's
        closed = deal.closed_s()
        if deal.deal_type == "renewal" and deal.won is not None and closed is not None:
            renewals.add(context.in_now(closed), context.in_before(closed), float(deal.won))
    nps_rows = _nps_rows(context)
    kpis = [
        _kpi("churn_rate", "Churn rate", "%", churn, _rate, better="lower"),
        _kpi("renewal_rate", "Renewal rate", "%", renewals, _rate, better="higher"),
        _nps_kpi(context, nps_rows),
    ]
    return Section(stage="customers", kpis=kpis, series=[_nps_trend(context, nps_rows)])


def _nps_trend(context: _Context, rows: list[tuple[float, int]]) -> Series:
    """NPS in equal buckets over the previous period and this one (TREND_BUCKETS each)."""
    width = (context.end - context.mid) / TREND_BUCKETS
    buckets: list[list[float]] = [[] for _ in range(2 * TREND_BUCKETS)]
    for at, score in rows:
        index = int((at - context.start) // width)
        if 0 <= index < len(buckets):
            buckets[index].append(float(score))
    points = [
        SeriesPoint(
            since=datetime.fromtimestamp(context.start + i * width, tz=context.period.since.tzinfo),
            value=_nps(values),
            n=len(values),
        )
        for i, values in enumerate(buckets)
    ]
    return Series(key="nps_trend", label="NPS trend", unit="NPS", points=points)
