"""Deal brief: what a rep needs before opening a deal, with every fact traceable to a record id.

Facts come from the records deterministically (:class:`DealFacts`): stage and time in stage,
amount, close date, stakeholders, last touch, risks with evidence (stalled stage, no next step,
close date passed, open high-priority tickets, negative customer sentiment, detractor NPS),
recent call action items, and what changed since the previous brief of the deal. The model
writes only the narrative and the suggested next step, citing record ids; guards check that
its names, numbers and dates are in the facts. With the embedded 135M model, or when the
model fails or a guard does, a template narrative and a rule-based next step stand in.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import or_

from copilot.auth import Permission
from copilot.errors import CopilotError, ModelError
from copilot.guards import FactKind, GuardVerdict, Severity, check_cited_ids, check_grounded, injection_flags, normalise
from copilot.profiles import Profile
from copilot.prompting import load_prompt
from copilot.store import Repo
from copilot.store.models import (
    Account,
    AiResult,
    AiStatus,
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
from copilot.tasks import registry
from copilot.tasks.base import Provenance, TaskOutcome
from copilot.tasks.call_summary import check_names_anywhere, resolve_due
from copilot.tasks.context import TaskContext
from copilot.tasks.registry import DEAL_UPDATED, RecordRef, TaskParams, task
from copilot.tasks.thread import clip, sentences

TASK = "deal_brief"
Strategy = Literal["auto", "model", "template"]  # its strategies: the API, CLI and registry read them here
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
MAX_BRIEF_TOKENS = 320
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


class BriefNarrative(BaseModel):
    """What the model writes (parsed from its plain text): prose over the facts and one next step, and the record
    ids it cites."""

    narrative: str = Field(max_length=900, description="Three to five sentences for the rep, only from the facts.")
    next_step: str = Field(max_length=240, description="One concrete next step for the rep.")
    source_ids: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="Record ids the narrative and next step rely on, e.g. deal:3, ticket:12.",
    )


class SuggestedStep(BaseModel):
    text: str
    reason: str
    source_ids: list[str] = Field(default_factory=list)


class Change(BaseModel):
    text: str
    source_ids: list[str] = Field(default_factory=list)


class DealBrief(BaseModel):
    facts: DealFacts
    narrative: str
    suggested_next_step: SuggestedStep
    changes: list[Change] = Field(default_factory=list)
    previous_brief_id: int | None = None
    source_ids: list[str] = Field(default_factory=list)

    def as_text(self) -> str:
        return f"{self.narrative}\nSuggested next step: {self.suggested_next_step.text}"


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


# -- what changed -----------------------------------------------------------------------------------
def previous_brief(repo: Repo, deal_id: int) -> AiResult | None:
    return repo.session.scalar(
        repo.select(AiResult)
        .where(
            AiResult.task == TASK,
            AiResult.subject_kind == "deal",
            AiResult.subject_id == deal_id,
            AiResult.status != AiStatus.failed,
        )
        .order_by(AiResult.id.desc())
        .limit(1)
    )


def diff_facts(old: DealFacts, new: DealFacts) -> list[Change]:
    deal_id = f"deal:{new.deal_id}"
    changes: list[Change] = []
    if old.stage != new.stage:
        changes.append(Change(text=f"Stage changed from {old.stage} to {new.stage}.", source_ids=[deal_id]))
    for label, before, after in (
        (
            "Amount",
            old.amount_text() if old.amount is not None else None,
            new.amount_text() if new.amount is not None else None,
        ),
        ("Close date", old.close_date and old.close_date.isoformat(), new.close_date and new.close_date.isoformat()),
        ("Owner", old.owner, new.owner),
        ("Next step", old.next_step, new.next_step),
    ):
        if before != after:
            changes.append(
                Change(text=f"{label} changed from {before or 'none'} to {after or 'none'}.", source_ids=[deal_id])
            )
    old_risks, new_risks = {r.kind: r for r in old.risks}, {r.kind: r for r in new.risks}
    changes += [
        Change(text=f"New risk: {r.text}", source_ids=r.evidence_ids)
        for kind, r in new_risks.items()
        if kind not in old_risks
    ]
    changes += [
        Change(text=f"Risk cleared: {r.text}", source_ids=r.evidence_ids)
        for kind, r in old_risks.items()
        if kind not in new_risks
    ]
    if new.last_touch and (old.last_touch is None or new.last_touch.source_id != old.last_touch.source_id):
        changes.append(
            Change(
                text=f"New activity: {new.last_touch.text} on {new.last_touch.at:%Y-%m-%d}.",
                source_ids=[new.last_touch.source_id],
            )
        )
    old_items = {normalise(a.what) for a in old.action_items}
    changes += [
        Change(text=f"New action item: {a.what}", source_ids=a.source_ids)
        for a in new.action_items
        if normalise(a.what) not in old_items
    ]
    old_people = {normalise(s.name) for s in old.stakeholders}
    changes += [
        Change(text=f"New stakeholder: {s.name}", source_ids=[s.source_id])
        for s in new.stakeholders
        if normalise(s.name) not in old_people
    ]
    return changes


# -- narrative and next step --------------------------------------------------------------------------
def _main_contact(facts: DealFacts) -> Stakeholder | None:
    customers = [s for s in facts.stakeholders if s.role in (None, "customer") and s.source_id.startswith("contact:")]
    return next((s for s in customers if s.role == "customer"), customers[0] if customers else None)


def _our_side(facts: DealFacts) -> set[str]:
    """The selling side's names: the deal owner and every non-customer call participant."""
    names = {normalise(s.name) for s in facts.stakeholders if s.role not in (None, "customer")}
    return names | ({normalise(facts.owner)} if facts.owner else set())


STAGE_PLAYS = {
    DealStage.prospecting.value: "book a discovery call with {who}",
    DealStage.qualification.value: "confirm budget, decision makers and timeline with {who}",
    DealStage.discovery.value: "propose a demo or technical validation to {who}",
    DealStage.proposal.value: "walk {who} through the proposal and agree a decision date",
    DealStage.negotiation.value: "agree the final terms and a signature date with {who}",
}
OBJECTION_PLAYS = {
    "price_objection": "answer the price concern with a revised or phased proposal",
    "security_objection": "send the security documents the customer asked for",
    "competitor": "ask {who} how the alternatives they are looking at compare, and answer the gaps",
    "integration_objection": "agree a technical validation of the integration with {who}",
}


def rule_next_step(facts: DealFacts) -> SuggestedStep:
    """A next step from the facts alone: clear blockers first (tickets, what we owe), then re-engage a stalled deal,
    else answer the last call's objection or follow its agreed next step, else the stage's usual move."""
    deal_id = f"deal:{facts.deal_id}"
    if facts.stage == DealStage.closed_won.value:
        return SuggestedStep(
            text="Hand the account over to onboarding and confirm the go-live date with the customer.",
            reason="the deal is won",
            source_ids=[deal_id],
        )
    if facts.stage == DealStage.closed_lost.value:
        return SuggestedStep(
            text="No action on this deal: it is closed lost. Log the loss reason if it is missing.",
            reason="the deal is lost",
            source_ids=[deal_id],
        )
    contact = _main_contact(facts)
    who = contact.name if contact else "the customer's main contact"
    steps: list[tuple[str, str, list[str]]] = []
    if facts.high_priority_tickets:
        ticket = facts.high_priority_tickets[0]
        steps.append(
            (
                f"get an update from support on ticket {ticket.ref} ('{ticket.subject}')",
                f"an open {ticket.priority}-priority ticket will come up in any conversation",
                [f"ticket:{ticket.id}"],
            )
        )
    steps += _deal_steps(facts, who, [deal_id, *([contact.source_id] if contact else [])])
    text = ", then ".join(step for step, _, _ in steps[:2])
    return SuggestedStep(
        text=text[0].upper() + text[1:] + ("" if text.endswith(".") else "."),
        reason="; ".join(reason for _, reason, _ in steps[:2]),
        source_ids=list(dict.fromkeys(i for _, _, ids in steps[:2] for i in ids)),
    )


def _deal_steps(facts: DealFacts, who: str, contact_ids: list[str]) -> list[tuple[str, str, list[str]]]:
    risks = {r.kind: r for r in facts.risks}
    ours = _our_side(facts)
    owed = [a for a in facts.action_items if a.owner and normalise(a.owner) in ours]
    overdue = [a for a in owed if a.overdue_days(facts.as_of) > 0]
    steps = []
    if overdue:
        item = overdue[0]
        steps.append(
            (
                f"deliver what is overdue: {clip(item.what, 120, one_line=True).rstrip('.')} "
                f"(due {item.due_date:%Y-%m-%d})",
                "an action item on our side is past due",
                item.source_ids[:2],
            )
        )
    if "stalled" in risks or "no_next_step" in risks:
        steps.append(
            (
                f"book a dated meeting with {who} to agree the next step in {facts.stage}",
                "the deal is stalled" if "stalled" in risks else "no next step is recorded",
                contact_ids,
            )
        )
        return steps
    play = next((kind for kind in OBJECTION_PLAYS if kind in risks), None)
    last = facts.calls[0] if facts.calls else None
    if play:
        steps.append(
            (
                OBJECTION_PLAYS[play].format(who=who),
                f"the last calls raised it ({risks[play].text.split(':')[0].lower()})",
                risks[play].evidence_ids[:2],
            )
        )
    elif owed:
        what = clip(owed[-1].what, 120, one_line=True).rstrip(".")
        steps.append((f"follow up on your action item: {what}", "an action item is yours", owed[-1].source_ids))
    elif last and last.next_step:
        steps.append(
            (
                f'follow through on what the last call agreed: "{clip(last.next_step.text, 120, one_line=True)}"',
                f"agreed on the call on {last.at:%Y-%m-%d}",
                [*last.next_step.source_ids, f"call:{last.id}"],
            )
        )
    elif facts.next_step:
        steps.append((f"go ahead with the recorded next step: {facts.next_step}", "no blocking risk", [contact_ids[0]]))
    steps.append((STAGE_PLAYS[facts.stage].format(who=who), f"the usual move in {facts.stage}", contact_ids))
    return steps


def template_narrative(facts: DealFacts) -> str:
    """The brief as fixed sentences over the facts, saying what the risk list does not: where the deal stands and how
    it got there, who is engaged, what the last call settled, what is owed (the fallback, and the small default)."""
    parts = [_position(facts)]
    if path := _path(facts):
        parts.append(path)
    parts.append(_engagement(facts))
    last = facts.calls[0] if facts.calls else None
    if last and last.decisions:
        parts.append(f'The last call settled: "{last.decisions[-1].text.rstrip(".")}."')
    if facts.action_items:
        parts.append(_owed(facts))
    parts.append(f"Next step on record: {facts.next_step}." if facts.next_step else "No next step is on record.")
    parts.append(
        f"{len(facts.risks)} risk(s), listed with evidence." if facts.risks else "No risks found in the records."
    )
    return " ".join(parts)


def _position(facts: DealFacts) -> str:
    stage = facts.stage.replace("_", " ")
    since = (
        f" for {facts.days_in_stage} days (since {facts.stage_entered_at:%Y-%m-%d})" if facts.stage_entered_at else ""
    )
    close = ""
    if facts.close_date:
        days = facts.close_in_days()
        when = f"in {days} days" if days >= 0 else f"{-days} days ago"
        close = f", expected to close on {facts.close_date.isoformat()}, {when}"
    account = f" ({facts.account_name})" if facts.account_name else ""
    owner = f", owned by {facts.owner}" if facts.owner else ""
    return f"{facts.name}{account} has been in {stage}{since}, worth {facts.amount_text()}{close}{owner}."


def _path(facts: DealFacts) -> str | None:
    days, changes = facts.path()
    if not changes or not facts.is_open:
        return None
    return f"It took {days} days and {changes} stage change(s) to get here."


def _engagement(facts: DealFacts) -> str:
    if facts.calls:
        last = facts.calls[0]
        people = f" with {', '.join(last.customers)}" if last.customers else ""
        return (
            f"{facts.deal_calls} call(s) on the deal; the last, '{last.title}' on {last.at:%Y-%m-%d} "
            f"({last.days_ago} days ago), was{people}."
        )
    if facts.last_touch:
        return (
            f"No call on the deal yet; the last contact with the account was a {facts.last_touch.kind} "
            f"{facts.last_touch.days_ago} days ago."
        )
    return "No call, note or message with this account is on record."


def _owed(facts: DealFacts) -> str:
    split = ", ".join(f"{count} for {name}" for name, count in facts.items_per_owner().items())
    return f"{len(facts.action_items)} action item(s) from recent calls: {split}."


def brief_guards(narrative: str, next_step: str, cited: Iterable[str], facts: DealFacts) -> list[GuardVerdict]:
    sources = facts.texts()
    kinds = (
        FactKind.url,
        FactKind.email,
        FactKind.phone,
        FactKind.price,
        FactKind.order_id,
        FactKind.date,
        FactKind.number,
    )
    return [
        check_cited_ids(cited, facts.record_ids(), what="record"),
        check_grounded(f"{narrative}\n{next_step}", sources, kinds),
        check_names_anywhere((narrative, next_step), sources),
        check_not_repeating(narrative, [r.text for r in facts.risks]),
        *injection_flags(("facts", line) for line in sources),  # NPS comments, notes and call items are customer text
    ]


def check_not_repeating(narrative: str, risks: list[str], shingle: int = 4, share: float = 0.5) -> GuardVerdict:
    """The narrative adds to the risk list: no sentence whose word 4-grams are mostly copied from a risk."""
    risk_grams = {g for text in risks for g in _grams(text, shingle)}
    copied = [
        sentence
        for sentence in sentences(narrative)
        if (grams := _grams(sentence, shingle)) and len(grams & risk_grams) / len(grams) >= share
    ]
    return GuardVerdict(
        name="adds_to_risks",
        passed=not copied,
        details=[f"repeats the risk list: {clip(c, 100, one_line=True)}" for c in copied],
    )


def _grams(text: str, size: int) -> set[tuple[str, ...]]:
    words = normalise(text).split()
    return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}


# -- the task -----------------------------------------------------------------------------------------
def build_brief(
    context: TaskContext,
    deal: Deal,
    strategy: str = "auto",
    *,
    now: datetime | None = None,
    classifier: Classifier | None = None,
) -> TaskOutcome[DealBrief]:
    """Gather the facts, diff them against the previous brief, and write the narrative (no storage)."""
    strategy = registry.get(TASK).resolve_strategy(strategy, context.profile)
    as_of = utc(now or datetime.now(UTC), keep_offset=True)
    facts = gather_facts(context, deal, as_of, classifier or context.sentiment)
    previous = previous_brief(context.repo, deal.id)
    draft = BriefDraft(facts, _changes_since(previous, facts), previous.id if previous else None, rule_next_step(facts))
    prompt = load_prompt(TASK)
    provenance = Provenance(
        task=TASK, prompt_name=prompt.name, prompt_version=prompt.version, input_ids=facts.record_ids()
    )
    template = provenance.model_copy(update={"model": "template"})
    if strategy != "model":
        return draft.from_template([], None, template)
    try:
        completion = context.gateway.complete(
            prompt.render(facts=facts, changes=draft.changes, suggested=draft.rule_step),
            max_tokens=MAX_BRIEF_TOKENS,
            temperature=0.0,
        )
    except ModelError as error:
        return draft.from_template([], f"model unavailable: {error}", template)
    return draft.from_model(parse_brief(completion.text), provenance.with_completion(completion))


def _changes_since(previous: AiResult | None, facts: DealFacts) -> list[Change]:
    if previous is None:
        return []
    try:
        return diff_facts(DealFacts.model_validate(previous.content["result"]["facts"]), facts)
    except (KeyError, TypeError, ValidationError):
        return [Change(text=f"The previous brief (AI result {previous.id}) could not be read; no comparison.")]


@dataclass(frozen=True)
class BriefDraft:
    """What both paths of a brief share: the facts, the changes since the previous brief and the rule's next step."""

    facts: DealFacts
    changes: list[Change]
    previous_brief_id: int | None
    rule_step: SuggestedStep

    @property
    def template_sources(self) -> list[str]:
        facts = self.facts
        return list(
            dict.fromkeys(
                [
                    f"deal:{facts.deal_id}",
                    *([facts.last_touch.source_id] if facts.last_touch else []),
                    *(i for r in facts.risks for i in r.evidence_ids),
                    *self.rule_step.source_ids,
                ]
            )
        )

    def brief(self, narrative: str, step: SuggestedStep, sources: list[str]) -> DealBrief:
        return DealBrief(
            facts=self.facts,
            narrative=narrative,
            suggested_next_step=step,
            changes=self.changes,
            previous_brief_id=self.previous_brief_id,
            source_ids=sources,
        )

    def from_template(
        self, verdicts: list[GuardVerdict], reason: str | None, provenance: Provenance
    ) -> TaskOutcome[DealBrief]:
        """The template narrative and the rule's next step (the non-LLM path, and the model path's fallback)."""
        sources = self.template_sources
        narrative = template_narrative(self.facts)
        return TaskOutcome[DealBrief](
            task=TASK,
            result=self.brief(narrative, self.rule_step, sources),
            verdicts=[*verdicts, *brief_guards(narrative, self.rule_step.text, sources, self.facts)],
            provenance=provenance.model_copy(update={"source_ids": sources}),
            used_fallback=reason is not None,
            fallback_reason=reason,
        )

    def from_model(self, value: BriefNarrative, provenance: Provenance) -> TaskOutcome[DealBrief]:
        """The model's narrative and next step when every guard passes, else the template with the failures flagged."""
        verdicts = brief_guards(value.narrative, value.next_step, value.source_ids, self.facts)
        if not value.narrative or not value.next_step:
            verdicts.append(
                GuardVerdict(name="complete", passed=False, details=["the model wrote no narrative or no next step"])
            )
        if any(not v.passed for v in verdicts):
            rejected = [
                v.model_copy(
                    update={"severity": Severity.flag, "details": [f"model output (replaced): {d}" for d in v.details]}
                )
                for v in verdicts
                if not v.passed
            ]
            return self.from_template(rejected, "model output failed a guard", provenance)
        sources = list(dict.fromkeys(value.source_ids or [f"deal:{self.facts.deal_id}"]))
        step = SuggestedStep(text=value.next_step, reason="written by the model from the facts", source_ids=sources)
        return TaskOutcome[DealBrief](
            task=TASK,
            result=self.brief(value.narrative, step, sources),
            verdicts=verdicts,
            provenance=provenance.model_copy(update={"source_ids": sources}),
        )


RECORD_ID = re.compile(r"\b(?:deal|account|contact|call|call_turn|ticket|message|note|nps_response|ai_result):\d+\b")
CITATION = re.compile(r"\s*\[([^\]]*)\]")
NEXT_STEP_LABEL = re.compile(r"^\W*(?:suggested\s+)?next\s+step\s*:\s*", re.I | re.M)
NARRATIVE_LABEL = re.compile(r"^\W*(?:narrative|brief|summary)\s*:\s*", re.I)


def parse_brief(text: str) -> BriefNarrative:
    """The model's plain-text brief: narrative sentences, then a "Next step:" line; the record ids it cites in
    square brackets become the source ids (and leave the text)."""
    parts = NEXT_STEP_LABEL.split(text.strip(), maxsplit=1)
    narrative, next_step = parts[0], parts[1] if len(parts) > 1 else ""
    cited = [i for group in CITATION.findall(text) for i in RECORD_ID.findall(group)]

    def clean(part: str) -> str:
        return " ".join(CITATION.sub("", NARRATIVE_LABEL.sub("", part.strip())).split())

    return BriefNarrative(
        narrative=clip(clean(narrative), 900, one_line=True),
        next_step=clip(clean(next_step.split("\n\n")[0]), 240, one_line=True),
        source_ids=list(dict.fromkeys(cited))[:8],
    )


class DealBriefParams(TaskParams):
    deal_id: RecordRef
    strategy: Strategy = "auto"
    as_of: datetime | None = Field(default=None, description="Brief the deal as of this time (default: now).")


@task(
    TASK,
    subject="deal",
    subject_field="deal_id",
    permission=Permission.run_sales,
    review=Permission.review_sales,
    needs_approval=False,
    defaults={Profile.small: "template", Profile.capable: "model"},
    prompt=TASK,
    stale_on=(DEAL_UPDATED,),
    carriers=("nps_comment", "call_turn"),
)
def deal_brief(context: TaskContext, params: DealBriefParams) -> TaskOutcome[DealBrief]:
    """Brief a rep on a deal: facts from the records, risks with evidence, what changed, a suggested next step."""
    deal = context.repo.resolve(Deal, params.deal_id)
    outcome = build_brief(context, deal, params.strategy, now=params.as_of)
    outcome.subject_id = deal.id
    return outcome
