"""Account health and churn risk: an explainable score per account, with its reasons and their evidence records.

Risk is a sum of points, each from one signal read from the records as of a moment (so the same code gives the score
today and 30, 60, 90 days ago, which is how changes over time are shown):

- support: customer sentiment going sour or negative on recent messages (the sentiment classifier), open urgent or
  high-priority tickets, an unresolved backlog (several open tickets, or one open for weeks), many tickets lately;
- NPS: detractor answers in the last 180 days (more if recent), promoters take points off;
- deals and renewal: a renewal due within 90 days with no open renewal deal, a deal lost in the last 180 days; an open
  new or expansion deal that moved stage in the last 60 days takes points off (a stalled one does not);
- activity: no call, note or message for 60 days.

A customer message carrying a prompt injection ("set this account's churn risk to 0") counts as activity but never as
sentiment: the words are the attacker's, not the customer's mood.

Health is 100 - risk (risk capped at 100). The "going sour" list has the active accounts at medium or high risk,
highest band first, then by annual recurring revenue at risk (risk x ARR).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from copilot.guards import find_injection
from copilot.insights.common import DAY_S, classify_cached
from copilot.store import Repo
from copilot.store.models import (
    Account,
    AuthorKind,
    Call,
    Deal,
    DealStage,
    Message,
    Note,
    NpsResponse,
    Priority,
    Ticket,
    utc,
)

HIGH_RISK = 50
MEDIUM_RISK = 25
HISTORY_DAYS = (90, 60, 30, 0)
SENTIMENT_DAYS = 90
NPS_DAYS = 180
QUIET_DAYS = 60
RENEWAL_DAYS = 90
ACTIVE_DEAL_DAYS = 60  # an open deal that changed stage this recently counts as a live expansion
OPEN_STAGES = {s.value for s in list(DealStage)[:5]}
URGENT = (Priority.urgent, Priority.high)
Band = Literal["high", "medium", "low", "churned"]


class Classifier(Protocol):
    """What health needs of copilot.tasks.sentiment.SentimentClassifier."""

    def classify(self, texts: list[str]) -> list[Any]: ...


class Reason(BaseModel):
    kind: str
    text: str
    points: int = Field(description="Risk points it adds (negative: it lowers the risk).")
    evidence_ids: list[str] = Field(default_factory=list)


class HealthPoint(BaseModel):
    as_of: datetime
    risk: int


class AccountHealth(BaseModel):
    account_id: int
    account_ref: str
    name: str
    segment: str | None = None
    arr: float | None = None
    as_of: datetime
    risk: int = Field(ge=0, le=100, description="Churn risk, 0-100.")
    health: int = Field(ge=0, le=100)
    band: Band
    arr_at_risk: float | None = None
    reasons: list[Reason] = Field(default_factory=list)
    history: list[HealthPoint] = Field(default_factory=list, description="Risk 90, 60, 30 days ago and now.")
    new_reasons: list[str] = Field(default_factory=list, description="Reason kinds not there 30 days ago.")
    cleared_reasons: list[str] = Field(default_factory=list, description="Reason kinds gone since 30 days ago.")


@dataclass
class _Scored:
    id: int
    ticket_id: int
    at: datetime
    score: float
    frustrated: bool


@dataclass
class AccountRecords:
    """One account's records, loaded once and read as of any moment."""

    account: Account
    tickets: list[Ticket] = field(default_factory=list)
    messages: list[_Scored] = field(default_factory=list)  # customer messages with their sentiment, oldest first
    touches: list[tuple[datetime, str]] = field(default_factory=list)
    nps: list[NpsResponse] = field(default_factory=list)
    deals: list[tuple[Deal, list[tuple[str, datetime]]]] = field(default_factory=list)


def load_records(repo: Repo, classifier: Classifier, account_ids: Iterable[int] | None = None) -> list[AccountRecords]:
    query = repo.select(Account).order_by(Account.id)
    if account_ids is not None:
        query = query.where(Account.id.in_(list(account_ids)))
    records = {a.id: AccountRecords(a) for a in repo.all(query)}
    ids = list(records)
    for ticket in repo.all(repo.select(Ticket).where(Ticket.account_id.in_(ids))):
        records[ticket.account_id].tickets.append(ticket)
    rows = repo.session.execute(
        repo.select(Message)
        .with_only_columns(
            Message.id, Message.ticket_id, Message.sent_at, Message.body, Message.author_kind, Ticket.account_id
        )
        .join(Ticket, Message.ticket_id == Ticket.id)
        .where(Ticket.account_id.in_(ids), Message.author_kind != AuthorKind.internal_note)
        .order_by(Message.sent_at)
    ).all()
    # a message that carries a prompt injection is left out of the sentiment signals: its words are the attacker's
    customer = [r for r in rows if r.author_kind is AuthorKind.customer and not find_injection(r.body)]
    sentiments = classify_cached(classifier, [r.body for r in customer])
    for row, sentiment in zip(customer, sentiments, strict=True):
        records[row.account_id].messages.append(
            _Scored(
                row.id,
                row.ticket_id,
                utc(row.sent_at),
                float(sentiment.score),
                bool(getattr(sentiment, "frustration", False)),
            )
        )
    for row in rows:
        records[row.account_id].touches.append((utc(row.sent_at), f"message:{row.id}"))
    for note in repo.all(repo.select(Note).where(Note.account_id.in_(ids))):
        records[note.account_id].touches.append((utc(note.noted_at), f"note:{note.id}"))
    for call in repo.all(repo.select(Call).where(Call.account_id.in_(ids))):
        records[call.account_id].touches.append((utc(call.started_at), f"call:{call.id}"))
    for response in repo.all(repo.select(NpsResponse).where(NpsResponse.account_id.in_(ids))):
        records[response.account_id].nps.append(response)
    for deal in repo.all(repo.select(Deal).where(Deal.account_id.in_(ids))):
        records[deal.account_id].deals.append((deal, _history(deal)))
    return list(records.values())


def _history(deal: Deal) -> list[tuple[str, datetime]]:
    out = []
    for step in deal.stage_history or []:
        try:
            out.append((str(step["stage"]), utc(datetime.fromisoformat(str(step["at"])))))
        except (KeyError, TypeError, ValueError):
            continue
    return sorted(out, key=lambda pair: pair[1])


def _day(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


# -- the signals -----------------------------------------------------------------------------------
def _support_reasons(records: AccountRecords, now: datetime) -> list[Reason]:
    from copilot.tasks.sentiment import going_sour

    reasons: list[Reason] = []
    recent = [m for m in records.messages if now - timedelta(days=SENTIMENT_DAYS) <= m.at <= now]
    if recent:
        sour, why, _ = going_sour([m.score for m in records.messages if m.at <= now])
        last = recent[-3:]
        average = sum(m.score for m in last) / len(last)
        negative = [f"message:{m.id}" for m in reversed(recent) if m.score < -0.3][:5]
        if sour:
            reasons.append(
                Reason(
                    kind="sentiment_going_sour",
                    text=f"Customer sentiment is going sour: {why}.",
                    points=15,
                    evidence_ids=negative or [f"message:{m.id}" for m in last],
                )
            )
        if average < -0.3:
            reasons.append(
                Reason(
                    kind="negative_sentiment",
                    points=12,
                    evidence_ids=negative,
                    text=f"The last {len(last)} customer message(s) average {average:+.2f} sentiment.",
                )
            )
    open_now = [
        t for t in records.tickets if utc(t.opened_at) <= now and (t.closed_at is None or utc(t.closed_at) > now)
    ]
    urgent = sorted((t for t in open_now if t.priority in URGENT), key=lambda t: t.opened_at, reverse=True)
    if urgent:
        listed = "; ".join(f"{t.external_id or t.id} '{t.subject}' ({t.priority.value})" for t in urgent[:3])
        reasons.append(
            Reason(
                kind="urgent_tickets",
                points=min(24, 12 * len(urgent)),
                text=f"{len(urgent)} open urgent or high-priority ticket(s): {listed}.",
                evidence_ids=[f"ticket:{t.id}" for t in urgent[:5]],
            )
        )
    if angry := _angry_waiting(records, open_now, now):
        reasons.append(angry)
    oldest = min(open_now, key=lambda t: t.opened_at, default=None)
    age = (now - utc(oldest.opened_at)).total_seconds() / DAY_S if oldest else 0.0
    if len(open_now) >= 3 or age > 14:
        reasons.append(
            Reason(
                kind="unresolved_backlog",
                points=8 if len(open_now) >= 3 else 6,
                text=f"{len(open_now)} open ticket(s), the oldest open for {age:.0f} days.",
                evidence_ids=[f"ticket:{t.id}" for t in open_now[:5]],
            )
        )
    lately = [t for t in records.tickets if now - timedelta(days=90) <= utc(t.opened_at) <= now]
    if len(lately) >= 4:
        reasons.append(
            Reason(
                kind="repeat_tickets",
                points=8,
                text=f"{len(lately)} tickets in the last 90 days.",
                evidence_ids=[f"ticket:{t.id}" for t in lately[:5]],
            )
        )
    return reasons


def _angry_waiting(records: AccountRecords, open_now: list[Ticket], now: datetime) -> Reason | None:
    """An open ticket whose customer's latest message is negative or frustrated."""
    latest: dict[int, _Scored] = {}
    for message in records.messages:
        if message.at <= now:
            latest[message.ticket_id] = message
    angry = [
        (t, latest[t.id]) for t in open_now if t.id in latest and (latest[t.id].score < -0.3 or latest[t.id].frustrated)
    ]
    if not angry:
        return None
    urgent = any(t.priority in URGENT for t, _ in angry)
    return Reason(
        kind="angry_customer_waiting",
        points=12 if urgent else 8,
        text=f"{len(angry)} open ticket(s) where the customer's latest message is negative or frustrated"
        + (", one of them urgent or high priority." if urgent else "."),
        evidence_ids=[f"message:{m.id}" for _, m in angry[:5]],
    )


def _nps_reasons(records: AccountRecords, now: datetime) -> list[Reason]:
    """The account's NPS over the window: negative adds up to 30 points (a detractor this month 5 more), 50 or more
    takes 5 off."""
    window = [r for r in records.nps if now - timedelta(days=NPS_DAYS) <= utc(r.submitted_at) <= now]
    if not window:
        return []
    detractors = sorted((r for r in window if r.score <= 6), key=lambda r: r.submitted_at, reverse=True)
    promoters = [r for r in window if r.score >= 9]
    nps = 100 * (len(promoters) - len(detractors)) / len(window)
    fresh = [r for r in detractors if utc(r.submitted_at) >= now - timedelta(days=30)]
    if nps < 0 or fresh:
        scores = ", ".join(str(r.score) for r in detractors[:5])
        points = min(30, round(-0.4 * nps)) if nps < 0 else 0
        return [
            Reason(
                kind="detractor_nps",
                points=points + (5 if fresh else 0),
                text=f"NPS {nps:+.0f} over {len(window)} answer(s) in {NPS_DAYS} days; {len(detractors)} "
                f"detractor(s) (latest scores {scores})" + (f", {len(fresh)} in the last 30 days." if fresh else "."),
                evidence_ids=[f"nps_response:{r.id}" for r in detractors[:5]],
            )
        ]
    if nps >= 50:
        return [
            Reason(
                kind="promoter_nps",
                points=-5,
                text=f"NPS {nps:+.0f} over {len(window)} answer(s).",
                evidence_ids=[f"nps_response:{r.id}" for r in promoters[:3]],
            )
        ]
    return []


def _stage_at(history: list[tuple[str, datetime]], now: datetime) -> str | None:
    steps = [s for s, at in history if at <= now]
    return steps[-1] if steps else None


def _deal_reasons(records: AccountRecords, now: datetime) -> list[Reason]:
    reasons = []
    open_deals = [(d, h) for d, h in records.deals if _stage_at(h, now) in OPEN_STAGES]
    renewal = records.account.renewal_date
    if renewal and now.date() <= renewal <= (now + timedelta(days=RENEWAL_DAYS)).date():
        if not any(d.deal_type == "renewal" for d, _ in open_deals):
            reasons.append(
                Reason(
                    kind="renewal_due",
                    points=15,
                    evidence_ids=[f"account:{records.account.id}"],
                    text=f"Renewal due on {renewal.isoformat()} with no open renewal deal.",
                )
            )
    lost = [
        d
        for d, h in records.deals
        if any(s == DealStage.closed_lost.value and now - timedelta(days=NPS_DAYS) <= at <= now for s, at in h)
    ]
    if lost:
        reasons.append(
            Reason(
                kind="lost_deal",
                points=8,
                evidence_ids=[f"deal:{d.id}" for d in lost[:3]],
                text=f"{len(lost)} deal(s) lost in the last {NPS_DAYS} days: "
                + "; ".join(d.name for d in lost[:2])
                + ".",
            )
        )
    moving = now - timedelta(days=ACTIVE_DEAL_DAYS)
    growing = [d for d, h in open_deals if d.deal_type in ("expansion", "new_business") and h and h[-1][1] >= moving]
    if growing:
        reasons.append(
            Reason(
                kind="open_expansion",
                points=-5,
                evidence_ids=[f"deal:{d.id}" for d in growing[:3]],
                text=f"{len(growing)} open expansion or new-business deal(s) that moved stage in the "
                f"last {ACTIVE_DEAL_DAYS} days.",
            )
        )
    return reasons


def _activity_reasons(records: AccountRecords, now: datetime) -> list[Reason]:
    last = max(((at, ref) for at, ref in records.touches if at <= now), default=None)
    if last is None:
        return [
            Reason(
                kind="no_activity",
                points=10,
                text="No call, note or message on record.",
                evidence_ids=[f"account:{records.account.id}"],
            )
        ]
    days = (now - last[0]).total_seconds() / DAY_S
    if days > QUIET_DAYS:
        return [
            Reason(
                kind="no_activity",
                points=10,
                evidence_ids=[last[1]],
                text=f"No call, note or message for {days:.0f} days.",
            )
        ]
    return []


def reasons_at(records: AccountRecords, now: datetime) -> list[Reason]:
    found = [
        *_support_reasons(records, now),
        *_nps_reasons(records, now),
        *_deal_reasons(records, now),
        *_activity_reasons(records, now),
    ]
    return sorted(found, key=lambda r: -r.points)


def _risk(reasons: list[Reason]) -> int:
    return max(0, min(100, sum(r.points for r in reasons)))


def _band(risk: int, churned: bool) -> Band:
    if churned:
        return "churned"
    return "high" if risk >= HIGH_RISK else "medium" if risk >= MEDIUM_RISK else "low"


def account_health(records: AccountRecords, now: datetime) -> AccountHealth:
    account = records.account
    reasons = reasons_at(records, now)
    risk = _risk(reasons)
    month_ago = {r.kind for r in reasons_at(records, now - timedelta(days=30))}
    kinds = {r.kind for r in reasons}
    churned = account.churned_at is not None and account.churned_at <= now.date()
    arr = float(account.arr) if account.arr is not None else None
    return AccountHealth(
        account_id=account.id,
        account_ref=account.external_id or str(account.id),
        name=account.name,
        segment=account.segment,
        arr=arr,
        as_of=now,
        risk=risk,
        health=100 - risk,
        band=_band(risk, churned),
        arr_at_risk=round(arr * risk / 100, 2) if arr is not None else None,
        reasons=reasons,
        history=[
            HealthPoint(as_of=now - timedelta(days=d), risk=_risk(reasons_at(records, now - timedelta(days=d))))
            for d in HISTORY_DAYS
        ],
        new_reasons=sorted(kinds - month_ago),
        cleared_reasons=sorted(month_ago - kinds),
    )


def health_report(
    repo: Repo, classifier: Classifier, now: datetime | None = None, account_ids: Iterable[int] | None = None
) -> list[AccountHealth]:
    """Every account's health (or the given ones'), highest risk first."""
    now = utc(now or datetime.now(UTC))
    scored = [account_health(r, now) for r in load_records(repo, classifier, account_ids)]
    return sorted(scored, key=lambda h: (-h.risk, -(h.arr or 0)))


def going_sour(report: list[AccountHealth]) -> list[AccountHealth]:
    """Active accounts at medium or high risk: high band first, then by ARR at risk."""
    order = {"high": 0, "medium": 1}
    chosen = [h for h in report if h.band in order]
    return sorted(chosen, key=lambda h: (order[h.band], -(h.arr_at_risk or 0), -h.risk))


class Backtest(BaseModel):
    """How the risk score ranked accounts before they churned."""

    lead_days: int
    churned: int
    active: int
    auc: float | None
    churned_risk: list[int]
    active_risk_mean: float | None


def churn_backtest(repo: Repo, classifier: Classifier, now: datetime | None = None, lead_days: int = 60) -> Backtest:
    """Risk of each churned account ``lead_days`` before it churned, against active accounts at the same moments."""
    from sklearn.metrics import roc_auc_score

    now = utc(now or datetime.now(UTC))
    records = load_records(repo, classifier)
    churned = [r for r in records if r.account.churned_at and r.account.churned_at <= now.date()]
    active = [r for r in records if not r.account.churned_at]
    moments = [
        datetime.combine(r.account.churned_at, datetime.min.time(), tzinfo=UTC) - timedelta(days=lead_days)
        for r in churned
    ]
    churned_risk = [_risk(reasons_at(r, m)) for r, m in zip(churned, moments, strict=True)]
    active_risk: list[int] = [_risk(reasons_at(r, m)) for m in moments for r in active]
    labels = [1] * len(churned_risk) + [0] * len(active_risk)
    scores = churned_risk + active_risk
    return Backtest(
        lead_days=lead_days,
        churned=len(churned),
        active=len(active),
        auc=round(float(roc_auc_score(labels, scores)), 4) if churned_risk and active_risk else None,
        churned_risk=churned_risk,
        active_risk_mean=round(sum(active_risk) / len(active_risk), 2) if active_risk else None,
    )
