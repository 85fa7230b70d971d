"""Win probability per open deal, a score per lead, and the forecast: from the workspace's own past outcomes.

Deals: the model learns from the workspace's closed deals (won = 1, lost = 0), each described as it stood when it
closed; an open deal is described as it stands now. Signals: the furthest open stage, days in that stage, days since
the last call or note on the deal, objections the customer raised on its calls, a champion named in its notes, and
the lead source. Leads: decided leads (converted = 1, disqualified = 0) with their source, a senior title, the
touches logged on them and days since the last one.

The priors (``DEAL_PRIORS``, ``LEAD_PRIORS``) say which way each signal usually pushes and how sure that is, so the
scores are usable from the first few dozen outcomes and move towards the workspace's own evidence as it grows.
Below ``MIN_OUTCOMES`` (or ``MIN_EACH`` of either outcome) there is no score: a refusal saying what is missing.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy import select

from copilot.insights.bayes import BayesLogit, Calibration, Contribution, Prior, cross_validate
from copilot.insights.common import DAY_S
from copilot.store import Repo
from copilot.store.models import Call, CallTurn, Contact, Deal, DealStage, Note, utc

OPEN_STAGES = [s.value for s in DealStage][:5]
CLOSED = {DealStage.closed_won.value: 1, DealStage.closed_lost.value: 0}
SOURCES = ("referral", "partner", "inbound", "outbound", "event", "paid_ads")
MIN_OUTCOMES = 20
MIN_EACH = 5
# The call summary's objection cues (copilot.tasks.call_summary.OBJECTION), kept here so that scoring does not load
# the model gateway.
OBJECTION = re.compile(
    r"\b(?:too expensive|expensive|overpriced|price is|pricing is|costs? too|over (?:the |our )?budget|"
    r"more than we budgeted|main concern|concern(?:ed|s)?|worried|worry|hesitant|not convinced|deal[- ]breaker|"
    r"never adopted|can't commit|cannot commit|before we can commit|"
    r"the problem is|the issue is|downside|we'd need|we would need|push ?back)\b",
    re.I,
)
CHAMPION = re.compile(r"\bchampion\b|very engaged|pushes internally|our sponsor|executive sponsor", re.I)
SENIOR = re.compile(r"\b(?:CFO|CEO|COO|CTO|VP|vice president|head of|founder|director|controller|owner)\b", re.I)
MAX_QUIET_DAYS = 365
DEAL_PRIORS = [
    Prior("stage", 0.9, 1.0),  # furthest open stage, 0 (prospecting) .. 1 (negotiation)
    Prior("stage_age", -0.6, 0.75),  # log(1 + days in that stage / 30)
    Prior("quiet", -0.6, 0.75),  # log(1 + days since the last call or note on the deal / 30)
    Prior("calls", 0.3, 0.5),  # log(1 + calls held on the deal)
    Prior("objections", -0.3, 0.5),  # objections the customer raised on the deal's calls (up to 4)
    Prior("champion", 0.8, 0.75),  # a champion named in the deal's notes
    *(Prior(f"source:{s}", 0.0, 0.5) for s in SOURCES),
]
LEAD_PRIORS = [
    Prior("senior_title", 0.5, 0.75),
    Prior("touches", 0.5, 0.75),  # log(1 + notes logged on the lead)
    Prior("quiet", -0.3, 0.75),  # log(1 + days since the last touch / 30)
    *(Prior(f"source:{s}", 0.0, 0.5) for s in SOURCES),
]


class Refusal(BaseModel):
    """Why there is no score: too little history (never a made-up number)."""

    reason: str
    outcomes: int
    positives: int
    negatives: int
    needed: int = MIN_OUTCOMES
    needed_each: int = MIN_EACH


class Signal(BaseModel):
    name: str
    text: str
    logit: float = Field(description="Push on the log-odds against an average record (+ helps, - hurts).")


class DealScore(BaseModel):
    deal_id: int
    deal_ref: str
    name: str
    stage: str
    amount: float | None
    close_date: date | None
    win_probability: float
    top_signals: list[Signal]
    evidence_ids: list[str]


class LeadScore(BaseModel):
    contact_id: int
    contact_ref: str
    name: str
    status: str | None
    source: str | None
    score: int = Field(ge=0, le=100, description="Conversion probability x 100.")
    probability: float
    top_signals: list[Signal]
    evidence_ids: list[str]


class ScoreBoard(BaseModel):
    """Scores of every open deal (or lead), or the refusal; with what the model learned from."""

    kind: str  # deals or leads
    trained_on: int = 0
    positives: int = 0
    base_rate: float | None = None
    weights: dict[str, float] = Field(default_factory=dict)
    deals: list[DealScore] = Field(default_factory=list)
    leads: list[LeadScore] = Field(default_factory=list)
    refusal: Refusal | None = None


class ForecastPeriod(BaseModel):
    since: date
    until: date
    deals: int
    pipeline: float = Field(description="Sum of the open deals' amounts closing in the period.")
    expected: float = Field(description="Sum of amount x win probability.")
    won: float = Field(description="Already won in the period.")


class Forecast(BaseModel):
    periods: list[ForecastPeriod] = Field(default_factory=list)
    overdue: ForecastPeriod | None = Field(default=None, description="Open deals whose close date has passed.")
    refusal: Refusal | None = None


# -- deals ---------------------------------------------------------------------------------------
@dataclass
class DealRecord:
    deal: Deal
    entered: list[tuple[str, datetime]]
    activity: list[tuple[datetime, str]] = field(default_factory=list)  # (when, "note:12" / "call:3")
    objections: list[tuple[datetime, str]] = field(default_factory=list)  # (when, "call_turn:9")
    champions: list[tuple[datetime, str]] = field(default_factory=list)

    @property
    def outcome(self) -> int | None:
        return CLOSED.get(self.deal.stage.value)

    def as_of(self, now: datetime) -> datetime:
        """When it is described: its close for a closed deal, else now."""
        if self.outcome is None:
            return now
        closing = [at for stage, at in self.entered if stage in CLOSED]
        if closing:
            return closing[-1]
        return datetime.combine(self.deal.close_date, datetime.min.time(), tzinfo=UTC) if self.deal.close_date else now

    def stage_entry(self, when: datetime) -> tuple[str, datetime | None]:
        """The furthest open stage reached by ``when`` and when the deal entered its last open stage."""
        steps = [(s, at) for s, at in self.entered if s in OPEN_STAGES and at <= when]
        if not steps:
            return (self.deal.stage.value if self.outcome is None else OPEN_STAGES[0]), None
        furthest = max((s for s, _ in steps), key=OPEN_STAGES.index)
        return furthest, steps[-1][1]


def load_deal_records(repo: Repo) -> list[DealRecord]:
    deals = repo.all(repo.select(Deal).order_by(Deal.id))
    records = {d.id: DealRecord(d, _history(d.stage_history)) for d in deals}
    for note in repo.all(repo.select(Note).where(Note.deal_id.is_not(None))):
        record = records.get(note.deal_id)
        if record is not None:
            when = utc(note.noted_at)
            record.activity.append((when, f"note:{note.id}"))
            if CHAMPION.search(note.body or ""):
                record.champions.append((when, f"note:{note.id}"))
    calls = repo.all(repo.select(Call).where(Call.deal_id.is_not(None)))
    customers = {
        c.id: {p.get("name") for p in c.participants or [] if isinstance(p, dict) and p.get("role") == "customer"}
        for c in calls
    }
    for call in calls:
        if call.deal_id in records:
            records[call.deal_id].activity.append((utc(call.started_at), f"call:{call.id}"))
    if calls:
        started = {c.id: (utc(c.started_at), c.deal_id) for c in calls}
        turns = repo.session.execute(
            select(CallTurn.id, CallTurn.call_id, CallTurn.speaker, CallTurn.text).where(
                CallTurn.workspace_id == repo.workspace_id, CallTurn.call_id.in_(list(started))
            )
        )
        for turn_id, call_id, speaker, text in turns:
            when, deal_id = started[call_id]
            if speaker in customers[call_id] and OBJECTION.search(text or ""):
                records[deal_id].objections.append((when, f"call_turn:{turn_id}"))
    return list(records.values())


def _history(raw: Any) -> list[tuple[str, datetime]]:
    out = []
    for step in raw or []:
        try:
            out.append((str(step["stage"]), utc(datetime.fromisoformat(str(step["at"])))))
        except (KeyError, TypeError, ValueError):
            continue
    return sorted(out, key=lambda pair: pair[1])


@dataclass
class Described:
    values: list[float]
    facts: dict[str, str]
    evidence: list[str]


def describe_deal(record: DealRecord, now: datetime) -> Described:
    when = record.as_of(now)
    stage, entered = record.stage_entry(when)
    created = record.entered[0][1] if record.entered else utc(record.deal.created_at)
    stage_days = max(0.0, (when - (entered or created)).total_seconds() / DAY_S)
    touches = [(at, ref) for at, ref in record.activity if at <= when]
    last = max(touches, default=None)
    quiet_days = min(MAX_QUIET_DAYS, max(0.0, (when - (last[0] if last else created)).total_seconds() / DAY_S))
    objections = [ref for at, ref in record.objections if at <= when]
    calls = [ref for at, ref in touches if ref.startswith("call:")]
    champions = [ref for at, ref in record.champions if at <= when]
    source = record.deal.lead_source
    values = [
        OPEN_STAGES.index(stage) / 4,
        math.log1p(stage_days / 30),
        math.log1p(quiet_days / 30),
        math.log1p(len(calls)),
        float(min(len(objections), 4)),
        float(bool(champions)),
        *(float(source == s) for s in SOURCES),
    ]
    activity = f"last call or note {quiet_days:.0f} days ago" if last else f"no call or note in {quiet_days:.0f} days"
    facts = {
        "stage": f"furthest stage {stage}",
        "stage_age": f"{stage_days:.0f} days in {stage}",
        "quiet": activity,
        "calls": f"{len(calls)} call(s) on the deal",
        "objections": f"{len(objections)} objection(s) raised on calls",
        "champion": "a champion is named in the notes" if champions else "no champion named in the notes",
        **{f"source:{s}": f"lead source {source}" if source == s else f"lead source not {s}" for s in SOURCES},
    }
    evidence = [f"deal:{record.deal.id}", *([last[1]] if last else []), *objections[:3], *champions[:1]]
    return Described(values, facts, list(dict.fromkeys(evidence)))


def _refusal(kind: str, outcomes: list[int]) -> Refusal | None:
    positives = sum(outcomes)
    negatives = len(outcomes) - positives
    if len(outcomes) >= MIN_OUTCOMES and positives >= MIN_EACH and negatives >= MIN_EACH:
        return None
    what = {"deals": ("closed deals", "won", "lost"), "leads": ("decided leads", "converted", "disqualified")}[kind]
    return Refusal(
        reason=f"not enough history to score {kind}: {len(outcomes)} {what[0]} ({positives} {what[1]}, "
        f"{negatives} {what[2]}); scores need at least {MIN_OUTCOMES}, with {MIN_EACH} of each",
        outcomes=len(outcomes),
        positives=positives,
        negatives=negatives,
    )


def _signals(model: BayesLogit, described: Described, top: int = 4) -> list[Signal]:
    picked: list[Contribution] = [
        c for c in model.contributions(described.values) if abs(c.logit) >= 0.01 and not _absent_source(c)
    ]
    return [Signal(name=c.name, text=described.facts[c.name], logit=round(c.logit, 3)) for c in picked[:top]]


def _absent_source(contribution: Contribution) -> bool:
    """'lead source not X' explains little: show a source only when it is the record's own."""
    return contribution.name.startswith("source:") and contribution.value == 0


def deal_training(records: list[DealRecord], now: datetime) -> tuple[np.ndarray, np.ndarray]:
    closed = [r for r in records if r.outcome is not None]
    x = np.array([describe_deal(r, now).values for r in closed]).reshape(len(closed), len(DEAL_PRIORS))
    return x, np.array([r.outcome for r in closed])


def score_deals(repo: Repo, now: datetime | None = None, deal_ids: list[int] | None = None) -> ScoreBoard:
    """Win probabilities of the open deals (all, or ``deal_ids``), lowest first."""
    now = utc(now or datetime.now(UTC))
    records = load_deal_records(repo)
    x, y = deal_training(records, now)
    board = ScoreBoard(kind="deals", trained_on=len(y), positives=int(y.sum()))
    if refusal := _refusal("deals", [int(v) for v in y]):
        board.refusal = refusal
        return board
    model = BayesLogit(DEAL_PRIORS).fit(x, y)
    board.base_rate = round(float(y.mean()), 4)
    board.weights = {name: round(float(w), 4) for name, w in zip(model.names, model.weights[1:], strict=True)}
    wanted = [r for r in records if r.outcome is None and (deal_ids is None or r.deal.id in deal_ids)]
    described = [describe_deal(r, now) for r in wanted]
    probabilities = model.predict(np.array([d.values for d in described])) if described else []
    for record, facts, probability in zip(wanted, described, probabilities, strict=True):
        deal = record.deal
        board.deals.append(
            DealScore(
                deal_id=deal.id,
                deal_ref=deal.external_id or str(deal.id),
                name=deal.name,
                stage=deal.stage.value,
                amount=float(deal.amount) if deal.amount is not None else None,
                close_date=deal.close_date,
                win_probability=round(float(probability), 4),
                top_signals=_signals(model, facts),
                evidence_ids=facts.evidence,
            )
        )
    board.deals.sort(key=lambda s: s.win_probability)
    return board


def deal_calibration(repo: Repo, now: datetime | None = None, *, folds: int = 5, repeats: int = 3) -> Calibration:
    """Cross-validated win probabilities of the closed deals: Brier score and reliability against the base rate."""
    x, y = deal_training(load_deal_records(repo), utc(now or datetime.now(UTC)))
    return _calibrated("deals", DEAL_PRIORS, x, y, folds, repeats)


def lead_calibration(repo: Repo, now: datetime | None = None, *, folds: int = 5, repeats: int = 3) -> Calibration:
    """Cross-validated conversion probabilities of the decided leads: Brier score and reliability against the base
    rate."""
    history = lead_history(repo, utc(now or datetime.now(UTC)))
    return _calibrated("leads", LEAD_PRIORS, history.x, history.y, folds, repeats)


def _calibrated(kind: str, priors: list[Prior], x: np.ndarray, y: np.ndarray, folds: int, repeats: int) -> Calibration:
    """Cross-validated predictions of the decided outcomes, or InvalidInput with the refusal when there are too few."""
    if refusal := _refusal(kind, [int(v) for v in y]):
        from copilot.errors import InvalidInput

        raise InvalidInput(refusal.reason)
    folds = min(folds, int(min(y.sum(), len(y) - y.sum())))  # every fold holds both outcomes
    return cross_validate(lambda: BayesLogit(priors), x, y, folds=folds, repeats=repeats)


def forecast(repo: Repo, now: datetime | None = None, months: int = 3) -> Forecast:
    """Expected value per calendar month: open deals' amount x win probability by close date, and what was won."""
    now = utc(now or datetime.now(UTC))
    board = score_deals(repo, now)
    if board.refusal:
        return Forecast(refusal=board.refusal)
    starts = [_month_start(now.date(), offset) for offset in range(months + 1)]
    periods = [
        ForecastPeriod(since=a, until=b, deals=0, pipeline=0.0, expected=0.0, won=0.0)
        for a, b in zip(starts, starts[1:], strict=False)
    ]
    overdue = ForecastPeriod(since=date.min, until=now.date(), deals=0, pipeline=0.0, expected=0.0, won=0.0)
    for score in board.deals:
        if score.close_date is None or score.amount is None:
            continue
        target = overdue if score.close_date < now.date() else _period_of(periods, score.close_date)
        if target is not None:
            target.deals += 1
            target.pipeline += score.amount
            target.expected += score.amount * score.win_probability
    for deal in repo.all(repo.select(Deal).where(Deal.stage == DealStage.closed_won)):
        period = _period_of(periods, deal.close_date) if deal.close_date else None
        if period is not None:
            period.won += float(deal.amount or 0)
    for period in [*periods, overdue]:
        period.pipeline, period.expected = round(period.pipeline, 2), round(period.expected, 2)
    return Forecast(periods=periods, overdue=overdue if overdue.deals else None)


def _month_start(day: date, offset: int) -> date:
    month = day.month - 1 + offset
    return date(day.year + month // 12, month % 12 + 1, 1)


def _period_of(periods: list[ForecastPeriod], day: date) -> ForecastPeriod | None:
    return next((p for p in periods if p.since <= day < p.until), None)


# -- leads ---------------------------------------------------------------------------------------
def describe_lead(contact: Contact, touches: list[tuple[datetime, str]], now: datetime) -> Described:
    created = utc(contact.lead_created_at) if contact.lead_created_at else utc(contact.created_at)
    last = max(touches, default=None)
    quiet_days = min(MAX_QUIET_DAYS, max(0.0, (now - (last[0] if last else created)).total_seconds() / DAY_S))
    senior = bool(SENIOR.search(contact.title or ""))
    values = [
        float(senior),
        math.log1p(len(touches)),
        math.log1p(quiet_days / 30),
        *(float(contact.lead_source == s) for s in SOURCES),
    ]
    facts = {
        "senior_title": f"title {contact.title}" if senior else f"title {contact.title or 'unknown'} (not senior)",
        "touches": f"{len(touches)} touch(es) logged",
        "quiet": f"last touch {quiet_days:.0f} days ago" if last else f"no touch in {quiet_days:.0f} days",
        **{f"source:{s}": f"lead source {contact.lead_source}" for s in SOURCES},
    }
    evidence = [f"contact:{contact.id}", *(ref for _, ref in sorted(touches, reverse=True)[:2])]
    return Described(values, facts, evidence)


@dataclass
class LeadHistory:
    """The workspace's leads: the decided ones described as they stood at their last touch (x, y), and the open."""

    x: np.ndarray
    y: np.ndarray
    open_leads: list[Contact]
    touches: dict[int, list[tuple[datetime, str]]]


def lead_history(repo: Repo, now: datetime) -> LeadHistory:
    leads = repo.all(repo.select(Contact).where(Contact.lead_status.is_not(None)).order_by(Contact.id))
    touches: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    for note in repo.all(repo.select(Note).where(Note.contact_id.in_([c.id for c in leads]))):
        touches[note.contact_id].append((utc(note.noted_at), f"note:{note.id}"))
    decided = [c for c in leads if c.lead_status in ("converted", "disqualified")]

    def described(contact: Contact) -> list[float]:
        at = max((at for at, _ in touches[contact.id]), default=now)
        return describe_lead(contact, [t for t in touches[contact.id] if t[0] <= at], at).values

    x = np.array([described(c) for c in decided]).reshape(len(decided), len(LEAD_PRIORS))
    y = np.array([int(c.lead_status == "converted") for c in decided])
    return LeadHistory(x, y, [c for c in leads if c.lead_status in ("open", "qualified")], touches)


def score_leads(repo: Repo, now: datetime | None = None) -> ScoreBoard:
    """A score per open or qualified lead from the workspace's converted and disqualified ones, highest first."""
    now = utc(now or datetime.now(UTC))
    history = lead_history(repo, now)
    x, y, open_leads, touches = history.x, history.y, history.open_leads, history.touches
    board = ScoreBoard(kind="leads", trained_on=len(y), positives=int(y.sum()))
    if refusal := _refusal("leads", [int(v) for v in y]):
        board.refusal = refusal
        return board
    model = BayesLogit(LEAD_PRIORS).fit(x, y)
    board.base_rate = round(float(y.mean()), 4)
    board.weights = {name: round(float(w), 4) for name, w in zip(model.names, model.weights[1:], strict=True)}
    for contact in open_leads:
        facts = describe_lead(contact, touches[contact.id], now)
        probability = float(model.predict(np.array([facts.values]))[0])
        board.leads.append(
            LeadScore(
                contact_id=contact.id,
                contact_ref=contact.external_id or str(contact.id),
                name=contact.name,
                status=contact.lead_status,
                source=contact.lead_source,
                score=round(100 * probability),
                probability=round(probability, 4),
                top_signals=_signals(model, facts),
                evidence_ids=facts.evidence,
            )
        )
    board.leads.sort(key=lambda s: -s.probability)
    return board
