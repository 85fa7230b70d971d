"""The customer beside a ticket: account, contacts, other tickets, deals, NPS answers and the sentiment trend
(drawn as a labelled SVG chart on the server). Deals and NPS answers follow the role, as the API does."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

from pydantic import BaseModel

from copilot.auth import Permission, Principal
from copilot.store import Repo
from copilot.store.models import Account, Contact, Deal, DealStage, NpsResponse, Ticket, TicketStatus
from copilot.tasks.sentiment import ScoredMessage, SentimentClassifier, customer_trend

OPEN_TICKETS = (TicketStatus.new, TicketStatus.open, TicketStatus.pending)
CLOSED_DEALS = (DealStage.closed_won, DealStage.closed_lost)
TREND_POINTS = 60  # the chart shows the customer's latest messages


class ChartPoint(BaseModel):
    x: float
    y: float
    label: str
    href: str
    title: str


class SentimentChart(BaseModel):
    """A sentiment-over-time chart ready to draw: points, the rolling mean, axis ticks with their labels."""

    caption: str
    width: int = 560
    height: int = 190
    left: int = 74
    right: int = 12
    top: int = 12
    bottom: int = 30
    points: list[ChartPoint]
    rolling: str = ""  # SVG polyline points
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    going_sour: bool = False
    reason: str | None = None
    head: str = ""

    @property
    def plot_right(self) -> int:
        return self.width - self.right

    @property
    def plot_bottom(self) -> int:
        return self.height - self.bottom


def sentiment_chart(
    caption: str, scored: list[ScoredMessage], rolling: list[float] | None = None, refs: dict[int, str] | None = None
) -> SentimentChart:
    """Lay out ``scored`` messages by time (x) and score -1..+1 (y), with the rolling mean when given."""
    chart = SentimentChart(caption=caption, points=[], x_ticks=[], y_ticks=[])
    width, height = chart.plot_right - chart.left, chart.plot_bottom - chart.top
    times = [s.sent_at.timestamp() for s in scored]
    start, span = (min(times), max(times) - min(times)) if times else (0.0, 0.0)

    def x_of(index: int) -> float:
        share = (times[index] - start) / span if span else (index + 1) / (len(scored) + 1)
        return round(chart.left + share * width, 1)

    def y_of(score: float) -> float:
        return round(chart.top + (1 - (score + 1) / 2) * height, 1)

    refs = refs or {}
    for i, s in enumerate(scored):
        ref = refs.get(s.ticket_id, str(s.ticket_id))
        title = f"{s.sent_at:%Y-%m-%d %H:%M} · ticket {ref} · {s.sentiment.label} {s.sentiment.score:+.2f}"
        href = f"/tickets/{quote(ref, safe='')}#m{s.message_id}"
        point = ChartPoint(x=x_of(i), y=y_of(s.sentiment.score), label=s.sentiment.label, href=href, title=title)
        chart.points.append(point)
    if rolling:
        chart.rolling = " ".join(f"{x_of(i)},{y_of(r)}" for i, r in enumerate(rolling))
    chart.y_ticks = [(y_of(1), "positive +1"), (y_of(0), "neutral 0"), (y_of(-1), "negative -1")]
    if scored:
        ends = [0, len(scored) - 1] if len(scored) > 1 else [0]
        chart.x_ticks = [(x_of(i), f"{scored[i].sent_at:%Y-%m-%d}") for i in ends]
    return chart


@dataclass
class CustomerContext:
    """Who the ticket's customer is and what else is going on with them."""

    account: Account | None
    contact: Contact | None
    contacts: list[Contact] = field(default_factory=list)
    open_tickets: list[Ticket] = field(default_factory=list)
    recent_tickets: list[Ticket] = field(default_factory=list)
    deals: list[Deal] | None = None  # None: the role may not read deals
    nps: list[NpsResponse] | None = None  # None: the role may not read NPS answers
    trend: SentimentChart | None = None

    @property
    def nps_average(self) -> float | None:
        return sum(r.score for r in self.nps) / len(self.nps) if self.nps else None


def customer_context(
    repo: Repo, principal: Principal, classifier: SentimentClassifier, ticket: Ticket
) -> CustomerContext:
    account, contact = ticket.account, ticket.contact
    context = CustomerContext(account=account, contact=contact)
    if account is None and contact is None:
        return context
    same_customer = Ticket.account_id == account.id if account else Ticket.contact_id == contact.id
    others = repo.select(Ticket).where(same_customer, Ticket.id != ticket.id)
    context.open_tickets = repo.all(
        others.where(Ticket.status.in_(OPEN_TICKETS)).order_by(Ticket.opened_at.desc()).limit(8)
    )
    context.recent_tickets = repo.all(
        others.where(Ticket.status.not_in(OPEN_TICKETS)).order_by(Ticket.opened_at.desc()).limit(5)
    )
    if account is not None:
        context.contacts = repo.all(
            repo.select(Contact).where(Contact.account_id == account.id).order_by(Contact.name).limit(8)
        )
    if principal.can(Permission.read_sales) and account is not None:
        deals = repo.all(repo.select(Deal).where(Deal.account_id == account.id))
        context.deals = sorted(deals, key=lambda d: (d.stage in CLOSED_DEALS, d.close_date or datetime.max.date()))[:6]
    if principal.can(Permission.read_nps):
        who = NpsResponse.account_id == account.id if account else NpsResponse.contact_id == contact.id
        context.nps = repo.all(repo.select(NpsResponse).where(who).order_by(NpsResponse.submitted_at.desc()).limit(5))
    context.trend = account_trend(repo, classifier, account, contact)
    return context


def account_trend(
    repo: Repo, classifier: SentimentClassifier, account: Account | None, contact: Contact | None
) -> SentimentChart | None:
    trend = customer_trend(
        repo, classifier, account_id=account.id if account else None, contact_id=None if account else contact.id
    )
    if not trend.points:
        return None
    points, rolling = trend.points[-TREND_POINTS:], trend.rolling[-TREND_POINTS:]
    refs = ticket_refs(repo, [p.ticket_id for p in points])
    who = account.name if account else contact.name
    chart = sentiment_chart(f"Sentiment of {who}'s last {len(points)} customer messages", points, rolling, refs)
    chart.going_sour, chart.reason, chart.head = trend.going_sour, trend.reason, trend.head
    return chart


def ticket_refs(repo: Repo, ticket_ids: list[int]) -> dict[int, str]:
    """Ticket id -> the id people use in links (the external id when there is one)."""
    wanted = sorted(set(ticket_ids))
    if not wanted:
        return {}
    rows = repo.session.execute(
        repo.select(Ticket).with_only_columns(Ticket.id, Ticket.external_id).where(Ticket.id.in_(wanted))
    )
    return {ticket_id: external or str(ticket_id) for ticket_id, external in rows}
