"""The facts of a deal brief, read from the records deterministically: stage and time in stage, amount, close
date, stakeholders, last touch, the deal's recent calls and their action items, and the risks with their evidence
(stalled stage, no next step, close date passed, open high-priority tickets, negative customer sentiment, detractor
NPS, objections raised on calls). Nothing here calls a model; ``copilot.tasks.deal_brief`` writes the brief over them.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from pydantic import BaseModel, Field
from sqlalchemy import or_

from copilot.errors import CopilotError
from copilot.guards import normalise
from copilot.store import Repo
from copilot.store.models import (
    Account,
    AuthorKind,
    Call,
    Contact,
    Deal,
    DealStage,
    Message,
    Note,
    NpsResponse,
    Priority,
    Ticket,
    TicketStatus,
    utc,
)
from copilot.tasks.call_summary import resolve_due
from copilot.tasks.context import TaskContext
from copilot.tasks.thread import clip

OPEN_STAGES = (
    DealStage.prospecting,
    DealStage.qualification,
    DealStage.discovery,
    DealStage.proposal,
    DealStage.negotiation,
)
STALLED_AFTER_DAYS = {
    DealStage.prospecting: 90,
    DealStage.qualification: 60,
    DealStage.discovery: 60,
    DealStage.proposal: 60,
    DealStage.negotiation: 60,
}
QUIET_DAYS = 30  # a deal long in its stage is stalled when it also had no call or note for this long
DETRACTOR_MAX_SCORE = 6
NPS_LOOKBACK_DAYS = 365
FRESH_DETRACTOR_DAYS = 30  # one detractor this recent is a risk even when the account's NPS is fine
SENTIMENT_LOOKBACK_DAYS = 90
NEGATIVE_MEAN = -0.3  # mean sentiment of the recent customer messages below this is a risk
RECENT_CALLS = 2
MAX_EVIDENCE = 5
OPEN_TICKETS = (TicketStatus.new, TicketStatus.open, TicketStatus.pending)
HIGH_PRIORITY = (Priority.high, Priority.urgent)


class Classifier(Protocol):
    """What the sentiment risk needs of copilot.tasks.sentiment.SentimentClassifier."""

    head: Any  # has a .name

    def classify(self, texts: list[str]) -> list[Any]: ...

    def for_workspace(self, repo: Repo) -> Classifier: ...


# -- facts ----------------------------------------------------------------------------------------
class Stakeholder(BaseModel):
    name: str
    title: str | None = None
    role: str | None = None  # from call participants: customer, rep, solutions engineer
    source_id: str  # contact:12 or call:5


class Touch(BaseModel):
    kind: str  # call, note, message
    source_id: str
    at: datetime
    days_ago: int
    text: str


class Risk(BaseModel):
    kind: str  # stalled, no_next_step, close_date_passed, overdue_action_items, <topic>_objection, competitor,
    # high_priority_tickets, negative_sentiment, detractor_nps
    text: str
    evidence_ids: list[str]


class TicketFact(BaseModel):
    id: int
    ref: str
    subject: str
    priority: str
    status: str


class BriefActionItem(BaseModel):
    what: str
    owner: str | None = None
    due: str | None = None
    due_date: date | None = None
    call_id: int
    source_ids: list[str]

    def overdue_days(self, as_of: datetime) -> int:
        """Days past its due date (0 when not due yet or without a date)."""
        return max(0, (as_of.date() - self.due_date).days) if self.due_date else 0


class CallPoint(BaseModel):
    text: str
    topic: str | None = None  # objections: price, security, competitor, integration, adoption, timing, other
    source_ids: list[str] = Field(default_factory=list)


class CallFact(BaseModel):
    """One recent call on the deal and what it settled."""

    id: int
    ref: str
    title: str
    at: datetime
    days_ago: int
    customers: list[str] = Field(default_factory=list)
    decisions: list[CallPoint] = Field(default_factory=list)
    objections: list[CallPoint] = Field(default_factory=list)
    competitors: list[CallPoint] = Field(default_factory=list)
    next_step: CallPoint | None = None
    summary_id: int | None = None  # the stored call summary the points come from (else extracted now)

    def points(self) -> list[CallPoint]:
        return [*self.decisions, *self.objections, *self.competitors, *([self.next_step] if self.next_step else [])]


class DealFacts(BaseModel):
    """Everything the brief states, read from the records; the model never changes these."""

    as_of: datetime
    deal_id: int
    deal_ref: str
    name: str
    account_id: int | None = None
    account_name: str | None = None
    stage: str
    stage_entered_at: datetime | None = None
    days_in_stage: int | None = None
    stage_history: list[dict[str, Any]] = Field(default_factory=list)
    amount: Decimal | None = None
    currency: str = "USD"
    close_date: date | None = None
    owner: str | None = None
    next_step: str | None = None
    stakeholders: list[Stakeholder] = Field(default_factory=list)
    last_touch: Touch | None = None
    last_deal_activity: Touch | None = None
    high_priority_tickets: list[TicketFact] = Field(default_factory=list)
    risks: list[Risk] = Field(default_factory=list)
    action_items: list[BriefActionItem] = Field(default_factory=list)
    calls: list[CallFact] = Field(default_factory=list)  # the deal's recent calls, newest first
    deal_calls: int = 0
    notes: list[str] = Field(default_factory=list)  # what could not be checked, and why

    @property
    def is_open(self) -> bool:
        return self.stage in {s.value for s in OPEN_STAGES}

    def close_in_days(self) -> int:
        return (self.close_date - self.as_of.date()).days if self.close_date else 0

    def path(self) -> tuple[int, int]:
        """Days from the first recorded stage to the current one, and the number of stage changes on the way."""
        times = [t for step in self.stage_history if (t := _parse_time(step.get("at")))]
        return (_days(times[-1], times[0]), len(times) - 1) if len(times) > 1 else (0, 0)

    def amount_text(self) -> str:
        if self.amount is None:
            return "no amount"
        symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(self.currency)
        return f"{symbol}{self.amount:,.0f}" if symbol else f"{self.amount:,.0f} {self.currency}"

    def record_ids(self) -> list[str]:
        ids = [f"deal:{self.deal_id}", *([f"account:{self.account_id}"] if self.account_id else [])]
        ids += [s.source_id for s in self.stakeholders]
        ids += [t.source_id for t in (self.last_touch, self.last_deal_activity) if t]
        ids += [i for r in self.risks for i in r.evidence_ids] + [i for a in self.action_items for i in a.source_ids]
        for call in self.calls:
            ids += [f"call:{call.id}", *(i for p in call.points() for i in p.source_ids)]
        return list(dict.fromkeys(ids))

    def items_per_owner(self) -> dict[str, int]:
        """Action items per owner, most first ("no owner" for items nobody took)."""
        owners = Counter(item.owner or "no owner" for item in self.action_items)
        return dict(owners.most_common())

    def texts(self) -> list[str]:
        """The facts as text lines, with the usual renderings of amounts and dates: what generated text may state."""
        lines = [
            self.deal_ref,
            self.name,
            self.account_name or "",
            f"stage {self.stage} ({self.stage.replace('_', ' ')})",
            self.owner or "",
            self.next_step or "",
            self.currency,
            *self.notes,
        ]
        if self.days_in_stage is not None:
            lines.append(f"{self.days_in_stage} days in stage")
        days, changes = self.path()
        lines.append(f"took {days} days and {changes} stage changes; close in {abs(self.close_in_days())} days")
        if self.amount is not None:
            lines += [
                self.amount_text(),
                f"{self.amount:,.0f} {self.currency}",
                f"{self.amount:,.2f} {self.currency}",
                f"${self.amount:,.2f}",
                str(self.amount),
            ]
        for day in (
            self.close_date,
            self.stage_entered_at,
            self.as_of,
            self.last_touch and self.last_touch.at,
            self.last_deal_activity and self.last_deal_activity.at,
        ):
            if day:
                lines.append(_date_forms(day))
        for step in self.stage_history:
            lines.append(f"{step.get('stage')} {step.get('at')}")
            if parsed := _parse_time(step.get("at")):
                lines.append(_date_forms(parsed))
        lines += [f"{s.name} {s.title or ''} {s.role or ''}" for s in self.stakeholders]
        lines += [f"{t.kind} {t.text} {t.days_ago} days ago" for t in (self.last_touch, self.last_deal_activity) if t]
        lines += [f"{t.ref} {t.subject} {t.priority} {t.status}" for t in self.high_priority_tickets]
        lines += [r.text for r in self.risks]
        for item in self.action_items:
            lines.append(f"{item.what} {item.owner or ''} {item.due or ''}")
            if item.due_date:
                lines.append(f"due {_date_forms(item.due_date)}, {item.overdue_days(self.as_of)} days overdue")
        for call in self.calls:
            lines += [f"call {call.ref} '{call.title}' {', '.join(call.customers)}", _date_forms(call.at)]
            lines += [f"{p.topic or ''} {p.text}" for p in call.points()]
            lines.append(f"{call.days_ago} days ago")
        lines.append(f"{self.deal_calls} calls on the deal")
        lines += [f"{count} action items for {owner}" for owner, count in self.items_per_owner().items()]
        lines.append(
            f"{len(self.risks)} risks {len(self.action_items)} action items {len(self.stakeholders)} stakeholders"
        )
        return [line for line in lines if line]


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return utc(value, keep_offset=True)
    try:
        return utc(datetime.fromisoformat(str(value)), keep_offset=True)
    except (TypeError, ValueError):
        return None


def _date_forms(value: date | datetime) -> str:
    day = value.date() if isinstance(value, datetime) else value
    return f"{day.isoformat()} {day:%B} {day.day}, {day.year} {day.day} {day:%B} {day.year} {day:%b} {day.day} {day:%A}"


def _days(later: datetime, earlier: datetime) -> int:
    return max(0, (later - utc(earlier, keep_offset=True)).days)


def stage_timing(deal: Deal, as_of: datetime) -> tuple[datetime | None, int | None]:
    """When the deal entered its current stage (the last history entry for it) and how many days ago."""
    entered = None
    for step in deal.stage_history or []:
        if isinstance(step, dict) and step.get("stage") == deal.stage.value:
            entered = _parse_time(step.get("at")) or entered
    return (entered, _days(as_of, entered)) if entered else (None, None)


def gather_facts(context: TaskContext, deal: Deal, as_of: datetime, classifier: Classifier | None = None) -> DealFacts:
    repo = context.repo
    account = repo.get(Account, deal.account_id) if deal.account_id else None
    entered, days_in_stage = stage_timing(deal, as_of)
    facts = DealFacts(
        as_of=as_of,
        deal_id=deal.id,
        deal_ref=deal.external_id or str(deal.id),
        name=deal.name,
        account_id=account.id if account else None,
        account_name=account.name if account else None,
        stage=deal.stage.value,
        stage_entered_at=entered,
        days_in_stage=days_in_stage,
        stage_history=[s for s in deal.stage_history or [] if isinstance(s, dict)],
        amount=deal.amount,
        currency=deal.currency or "USD",
        close_date=deal.close_date,
        owner=deal.owner,
        next_step=(deal.next_step or "").strip() or None,
    )
    contacts = (
        repo.all(repo.select(Contact).where(Contact.account_id == account.id).order_by(Contact.id)) if account else []
    )
    calls = repo.all(
        repo.select(Call)
        .where(or_(Call.deal_id == deal.id, Call.account_id == account.id) if account else Call.deal_id == deal.id)
        .order_by(Call.started_at.desc())
    )
    deal_calls = [c for c in calls if c.deal_id == deal.id]
    facts.stakeholders = _stakeholders(contacts, deal_calls)
    facts.last_touch, facts.last_deal_activity = _touches(repo, deal, account, calls, as_of)
    facts.deal_calls = len(deal_calls)
    facts.calls, facts.action_items = _recent_calls(context, deal_calls[:RECENT_CALLS], as_of)
    facts.risks = _risks(repo, facts, account, contacts, as_of, classifier)
    return facts


def _stakeholders(contacts: list[Contact], calls: list[Call]) -> list[Stakeholder]:
    people: dict[str, Stakeholder] = {}
    for contact in contacts:
        people[normalise(contact.name)] = Stakeholder(
            name=contact.name, title=contact.title, source_id=f"contact:{contact.id}"
        )
    for call in calls:
        for participant in call.participants or []:
            if not isinstance(participant, dict) or not participant.get("name"):
                continue
            key = normalise(str(participant["name"]))
            if key in people:
                people[key].role = people[key].role or participant.get("role")
            else:
                people[key] = Stakeholder(
                    name=str(participant["name"]), role=participant.get("role"), source_id=f"call:{call.id}"
                )
    return list(people.values())[:15]


def _touches(
    repo: Repo, deal: Deal, account: Account | None, calls: list[Call], as_of: datetime
) -> tuple[Touch | None, Touch | None]:
    """The latest contact of any kind with the account, and the latest activity on the deal itself (call or note)."""
    candidates: list[tuple[Touch, bool]] = []
    for call in calls[:1] + [c for c in calls if c.deal_id == deal.id][:1]:
        candidates.append(
            (
                Touch(
                    kind="call",
                    source_id=f"call:{call.id}",
                    at=utc(call.started_at, keep_offset=True),
                    days_ago=_days(as_of, call.started_at),
                    text=f"call '{call.title}'",
                ),
                call.deal_id == deal.id,
            )
        )
    note_filter = or_(Note.deal_id == deal.id, Note.account_id == account.id) if account else Note.deal_id == deal.id
    for deal_only in (False, True):
        query = (
            repo.select(Note)
            .where(Note.deal_id == deal.id if deal_only else note_filter)
            .order_by(Note.noted_at.desc())
            .limit(1)
        )
        for note in repo.all(query):
            candidates.append(
                (
                    Touch(
                        kind="note",
                        source_id=f"note:{note.id}",
                        at=utc(note.noted_at, keep_offset=True),
                        days_ago=_days(as_of, note.noted_at),
                        text=f"note by {note.author or 'unknown'}: {clip(note.body, 160, one_line=True)}",
                    ),
                    note.deal_id == deal.id,
                )
            )
    if account:
        message = repo.session.scalar(
            repo.select(Message)
            .join(Ticket, Message.ticket_id == Ticket.id)
            .where(Ticket.account_id == account.id, Message.author_kind != AuthorKind.internal_note)
            .order_by(Message.sent_at.desc())
            .limit(1)
        )
        if message is not None:
            candidates.append(
                (
                    Touch(
                        kind="message",
                        source_id=f"message:{message.id}",
                        at=utc(message.sent_at, keep_offset=True),
                        days_ago=_days(as_of, message.sent_at),
                        text=f"{message.author_kind.value} message on ticket "
                        f"'{clip(message.ticket.subject, 80, one_line=True)}'",
                    ),
                    False,
                )
            )
    candidates = [(t, on_deal) for t, on_deal in candidates if t.at <= as_of]
    latest = max((t for t, _ in candidates), key=lambda t: t.at, default=None)
    on_deal = max((t for t, flag in candidates if flag), key=lambda t: t.at, default=None)
    return latest, on_deal


def _recent_calls(
    context: TaskContext, calls: list[Call], as_of: datetime
) -> tuple[list[CallFact], list[BriefActionItem]]:
    """What the deal's recent calls said (decisions, objections, competitors, next step) and their action items:
    from each call's stored summary, else extracted from its transcript by cue phrases."""
    from copilot.tasks.call_summary import (
        competitor_mentions,
        extractive_notes,
        latest_summary,
        load_transcript,
        objection_topic,
    )

    facts: list[CallFact] = []
    items: list[BriefActionItem] = []
    for call in calls:
        transcript = load_transcript(call)
        stored = latest_summary(context.repo, call.id)
        if stored is not None:
            row, summary = stored
            extra, competitors = [f"ai_result:{row.id}"], summary.competitors
        elif transcript.turns:
            summary, extra = extractive_notes(transcript, encode=None), []
            competitors = competitor_mentions(transcript)
        else:
            continue
        said_on = utc(call.started_at, keep_offset=True).date()

        def point(text: str, turn_ids: list[int], topic: str | None = None) -> CallPoint:
            return CallPoint(
                text=clip(text, 200, one_line=True), topic=topic, source_ids=[f"call_turn:{i}" for i in turn_ids]
            )

        customers = [
            p.get("name") for p in call.participants or [] if isinstance(p, dict) and p.get("role") == "customer"
        ]
        facts.append(
            CallFact(
                id=call.id,
                ref=call.external_id or str(call.id),
                title=call.title,
                at=utc(call.started_at, keep_offset=True),
                days_ago=_days(as_of, call.started_at),
                customers=[str(name) for name in customers if name],
                decisions=[point(d.text, d.turn_ids) for d in summary.decisions],
                objections=[point(o.text, o.turn_ids, objection_topic(o.text)) for o in summary.objections],
                competitors=[point(c.text, c.turn_ids, "competitor") for c in competitors],
                next_step=point(summary.next_step.text, summary.next_step.turn_ids) if summary.next_step else None,
                summary_id=stored[0].id if stored else None,
            )
        )
        for item in summary.action_items:
            items.append(
                BriefActionItem(
                    what=item.what,
                    owner=item.owner,
                    due=item.due,
                    due_date=item.due_date or resolve_due(item.due, said_on),
                    call_id=call.id,
                    source_ids=[*(f"call_turn:{i}" for i in item.turn_ids), *extra],
                )
            )
    return facts, items[:8]


def _risks(
    repo: Repo,
    facts: DealFacts,
    account: Account | None,
    contacts: list[Contact],
    as_of: datetime,
    classifier: Classifier | None,
) -> list[Risk]:
    risks = [*_deal_state_risks(facts, as_of), *_call_risks(facts, as_of)] if facts.is_open else []
    if account is None:
        return risks
    risks += _ticket_risks(repo, facts, account)
    if sentiment := _sentiment_risk(repo, account, as_of, classifier, facts):
        risks.append(sentiment)
    return risks + _nps_risks(repo, account, contacts, as_of)


def _deal_state_risks(facts: DealFacts, as_of: datetime) -> list[Risk]:
    """An open deal stalled in its stage, without a next step, or past its close date."""
    risks: list[Risk] = []
    deal_id = f"deal:{facts.deal_id}"
    threshold = STALLED_AFTER_DAYS[DealStage(facts.stage)]
    activity = facts.last_deal_activity
    quiet = activity is None or activity.days_ago > QUIET_DAYS
    if facts.days_in_stage is not None and facts.days_in_stage > threshold and quiet:
        since = (
            f"; last activity on the deal: {activity.kind} on {activity.at:%Y-%m-%d}, {activity.days_ago} days ago"
            if activity
            else "; no calls or notes on the deal"
        )
        entered = f" since {facts.stage_entered_at:%Y-%m-%d}" if facts.stage_entered_at else ""
        risks.append(
            Risk(
                kind="stalled",
                text=f"Stalled: in {facts.stage}{entered} ({facts.days_in_stage} days, over the {threshold}-day "
                f"threshold){since}.",
                evidence_ids=[deal_id, *([activity.source_id] if activity else [])],
            )
        )
    if not facts.next_step:
        risks.append(Risk(kind="no_next_step", text="No next step is recorded on the deal.", evidence_ids=[deal_id]))
    if facts.close_date and facts.close_date < as_of.date():
        risks.append(
            Risk(
                kind="close_date_passed",
                text=f"The close date {facts.close_date.isoformat()} has passed while the deal is open.",
                evidence_ids=[deal_id],
            )
        )
    return risks


def _ticket_risks(repo: Repo, facts: DealFacts, account: Account) -> list[Risk]:
    """The account's open high-priority tickets (also listed on the facts)."""
    tickets = repo.all(
        repo.select(Ticket)
        .where(Ticket.account_id == account.id, Ticket.status.in_(OPEN_TICKETS), Ticket.priority.in_(HIGH_PRIORITY))
        .order_by(Ticket.opened_at.desc())
    )
    facts.high_priority_tickets = [
        TicketFact(
            id=t.id,
            ref=t.external_id or str(t.id),
            subject=clip(t.subject, 80, one_line=True),
            priority=t.priority.value,
            status=t.status.value,
        )
        for t in tickets[:MAX_EVIDENCE]
    ]
    if not tickets:
        return []
    listed = "; ".join(f"{t.ref} '{t.subject}' ({t.priority}, {t.status})" for t in facts.high_priority_tickets[:3])
    return [
        Risk(
            kind="high_priority_tickets",
            text=f"{len(tickets)} open high-priority ticket(s): {listed}.",
            evidence_ids=[f"ticket:{t.id}" for t in facts.high_priority_tickets],
        )
    ]


def _nps_risks(repo: Repo, account: Account, contacts: list[Contact], as_of: datetime) -> list[Risk]:
    """Detractors among the account's recent NPS answers: a negative account NPS or fresh detractors."""
    contact_ids = [c.id for c in contacts]
    since = as_of - timedelta(days=NPS_LOOKBACK_DAYS)
    scope = (
        or_(NpsResponse.account_id == account.id, NpsResponse.contact_id.in_(contact_ids))
        if contact_ids
        else NpsResponse.account_id == account.id
    )
    responses = repo.all(
        repo.select(NpsResponse)
        .where(scope, NpsResponse.submitted_at >= since, NpsResponse.submitted_at <= as_of)
        .order_by(NpsResponse.submitted_at.desc())
    )
    detractors = [r for r in responses if r.score <= DETRACTOR_MAX_SCORE]
    nps = round(100 * (sum(r.score >= 9 for r in responses) - len(detractors)) / len(responses)) if responses else 0
    fresh = [d for d in detractors if _days(as_of, d.submitted_at) <= FRESH_DETRACTOR_DAYS]
    if not (nps < 0 or fresh):
        return []
    latest = next((d for d in detractors if d.comment), detractors[0])
    quote = f'; latest comment: "{clip(latest.comment, 120, one_line=True)}"' if latest.comment else ""
    scores = ", ".join(str(d.score) for d in detractors[:MAX_EVIDENCE])
    why = f"account NPS {nps}" if nps < 0 else f"{len(fresh)} in the last {FRESH_DETRACTOR_DAYS} days"
    return [
        Risk(
            kind="detractor_nps",
            text=f"{len(detractors)} detractor NPS response(s) of {len(responses)} "
            f"in the last {NPS_LOOKBACK_DAYS} days ({why}; latest scores {scores}){quote}.",
            evidence_ids=[f"nps_response:{d.id}" for d in detractors[:MAX_EVIDENCE]],
        )
    ]


OBJECTION_RISKS = {
    "price": "Price objection",
    "security": "Security review",
    "competitor": "Competitor in play",
    "integration": "Integration or migration concern",
    "adoption": "Adoption concern",
    "timing": "Timing concern",
    "other": "Open objection",
}


def _call_risks(facts: DealFacts, as_of: datetime) -> list[Risk]:
    """Past-due action items and the objections raised on the deal's recent calls (one risk per topic)."""
    risks: list[Risk] = []
    overdue = [a for a in facts.action_items if a.overdue_days(as_of) > 0]
    if overdue:
        listed = "; ".join(
            f'"{clip(a.what, 90, one_line=True)}" ({a.owner or "no owner"}, due {a.due_date:%Y-%m-%d}, '
            f"{a.overdue_days(as_of)} days ago)"
            for a in overdue[:3]
        )
        risks.append(
            Risk(
                kind="overdue_action_items",
                text=f"{len(overdue)} action item(s) from calls are past due: {listed}.",
                evidence_ids=list(
                    dict.fromkeys(i for a in overdue for i in a.source_ids if i.startswith("call_turn:"))
                ),
            )
        )
    raised: dict[str, tuple[CallFact, CallPoint]] = {}
    for call in facts.calls:  # newest first: the latest mention of a topic is the evidence
        for point in [*call.objections, *call.competitors]:
            raised.setdefault(point.topic or "other", (call, point))
    for topic, (call, point) in raised.items():
        risks.append(
            Risk(
                kind=f"{topic}_objection" if topic != "competitor" else "competitor",
                text=f"{OBJECTION_RISKS[topic]}: on the call '{clip(call.title, 60, one_line=True)}' "
                f'({call.at:%Y-%m-%d}) the customer said "{clip(point.text, 140, one_line=True)}"',
                evidence_ids=[*point.source_ids, f"call:{call.id}"],
            )
        )
    return risks


def _sentiment_risk(
    repo: Repo, account: Account, as_of: datetime, classifier: Classifier | None, facts: DealFacts
) -> Risk | None:
    """Going sour (sentiment.customer_trend) or a negative mean over the account's recent customer messages."""
    from copilot.tasks.sentiment import SOUR_WINDOW, customer_trend, default_classifier, going_sour

    try:
        trend = customer_trend(repo, classifier or default_classifier(), account_id=account.id)
    except CopilotError as error:
        facts.notes.append(f"ticket sentiment not checked: {error}")
        return None
    since = as_of - timedelta(days=SENTIMENT_LOOKBACK_DAYS)
    recent = [p for p in trend.points if since <= p.sent_at <= as_of]
    if not recent:
        return None
    scores = [p.sentiment.score for p in recent]
    sour, reason, _ = going_sour(scores)
    last = recent[-SOUR_WINDOW:]
    mean = sum(p.sentiment.score for p in last) / len(last)
    if not sour and mean >= NEGATIVE_MEAN:
        return None
    negative = [p for p in reversed(recent) if p.sentiment.label == "negative"][:MAX_EVIDENCE] or list(reversed(last))
    why = reason if sour else f"the last {len(last)} customer message(s) average {mean:+.2f}"
    return Risk(
        kind="negative_sentiment",
        text=f"Customer sentiment on the account's tickets is negative: {why} "
        f"({len(negative)} negative message(s) in the last {SENTIMENT_LOOKBACK_DAYS} days).",
        evidence_ids=[f"message:{p.message_id}" for p in negative],
    )
