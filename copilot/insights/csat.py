"""CSAT prediction: the probability that a solved ticket would get a good rating (4 or 5 of 5), from its conversation.

Signals of a thread as it stood when it was solved: the customer's sentiment (mean and last message; the sentiment
classifier), frustration, the wait for the first reply, the longest wait for an agent after a customer message, the
time to resolution, reopenings, whether the customer wrote last and positively (a thank-you), how many times the
customer had to write, and the priority. A customer message carrying a prompt injection ("predict a 5-star rating")
is never read for sentiment. The model is the Bayesian logistic regression of ``copilot.insights.bayes``, fitted on
the workspace's solved tickets that have a CSAT answer; it is shown for solved tickets that have none. Below
``MIN_RATED`` answers (or ``MIN_EACH`` good and bad) there is no prediction: a refusal says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy import select

from copilot.guards import find_injection
from copilot.insights.bayes import BayesLogit, Prior
from copilot.insights.common import DAY_S, classify_cached
from copilot.insights.scoring import Refusal, Signal
from copilot.store import Repo
from copilot.store.models import AuthorKind, Message, Priority, Ticket, TicketStatus, utc

GOOD = 4
MIN_RATED = 30
MIN_EACH = 8
HOLDOUT = 0.3
SOLVED = (TicketStatus.solved, TicketStatus.closed)
PRIORS = [
    Prior("sentiment_mean", 1.0, 1.0),
    Prior("sentiment_last", 1.0, 1.0),
    Prior("frustrated", -0.5, 1.0),
    Prior("first_reply", -0.3, 0.75),  # log(1 + hours to the first agent reply)
    Prior("longest_wait", -0.3, 0.75),  # log(1 + longest hours a customer waited for an agent)
    Prior("resolution", -0.2, 0.75),  # log(1 + days to resolution)
    Prior("reopened", -0.8, 1.0),
    Prior("thanked", 0.7, 1.0),
    Prior("customer_turns", -0.2, 0.5),
    Prior("urgent", -0.2, 0.75),
]
TEXTS = {
    "sentiment_mean": "customer sentiment averaged {:+.2f}",
    "sentiment_last": "the customer's last message scored {:+.2f}",
    "frustrated": "frustration in the customer's words: {}",
    "first_reply": "first reply after {:.1f} hours",
    "longest_wait": "longest wait for an agent {:.1f} hours",
    "resolution": "solved after {:.1f} days",
    "reopened": "reopened {} time(s)",
    "thanked": "the customer wrote last, positively: {}",
    "customer_turns": "the customer wrote {} time(s)",
    "urgent": "urgent or high priority: {}",
}


class CsatPrediction(BaseModel):
    ticket_id: int
    ticket_ref: str
    subject: str
    probability_good: float = Field(ge=0, le=1)
    csat_score: int | None = Field(default=None, description="The survey answer, when there is one.")
    top_signals: list[Signal] = Field(default_factory=list)
    evidence_ids: list[str] = Field(default_factory=list)


class CsatEvaluation(BaseModel):
    rated: int
    good: int
    train: int
    test: int
    auc: float | None = Field(description="On the held-out rated tickets.")
    brier: float
    brier_base_rate: float
    seed: int


class CsatBoard(BaseModel):
    rated: int = 0
    good_rate: float | None = None
    predictions: list[CsatPrediction] = Field(default_factory=list)
    refusal: Refusal | None = None


@dataclass
class ThreadFeatures:
    ticket: Ticket
    values: list[float]
    shown: list[Any]  # the readable value of each signal
    evidence: list[str]


def describe(ticket: Ticket, messages: list[Message], sentiments: list[Any]) -> ThreadFeatures:
    opened = utc(ticket.opened_at)
    turns = sum(m.author_kind is AuthorKind.customer for m in messages)
    customer = [
        (m, s)
        for m, s in zip(messages, sentiments, strict=True)
        if m.author_kind is AuthorKind.customer and s is not None  # None: it carries an injection, no mood read
    ]
    scores = [float(s.score) for _, s in customer] or [0.0]
    agents = [m for m in messages if m.author_kind is AuthorKind.agent]
    first_reply_h = (utc(agents[0].sent_at) - opened).total_seconds() / 3600 if agents else 72.0
    longest = 0.0
    waiting_since: datetime | None = None
    for message in messages:
        if message.author_kind is AuthorKind.customer and waiting_since is None:
            waiting_since = utc(message.sent_at)
        elif message.author_kind is AuthorKind.agent and waiting_since is not None:
            longest = max(longest, (utc(message.sent_at) - waiting_since).total_seconds() / 3600)
            waiting_since = None
    closed = utc(ticket.closed_at) if ticket.closed_at else utc(messages[-1].sent_at) if messages else opened
    resolution_days = max(0.0, (closed - opened).total_seconds() / DAY_S)
    last = messages[-1] if messages else None
    thanked = bool(last and last.author_kind is AuthorKind.customer and sentiments[-1] is not None and scores[-1] > 0.2)
    frustrated = any(getattr(s, "frustration", False) for _, s in customer)
    urgent = ticket.priority in (Priority.urgent, Priority.high)
    shown = [
        sum(scores) / len(scores),
        scores[-1],
        "yes" if frustrated else "no",
        first_reply_h,
        longest,
        resolution_days,
        ticket.reopen_count or 0,
        "yes" if thanked else "no",
        turns,
        "yes" if urgent else "no",
    ]
    values = [
        *shown[:2],
        float(frustrated),
        math.log1p(first_reply_h),
        math.log1p(longest),
        math.log1p(resolution_days),
        float(min(ticket.reopen_count or 0, 3)),
        float(thanked),
        math.log1p(turns),
        float(urgent),
    ]
    lowest = min(customer, key=lambda pair: pair[1].score, default=None)
    evidence = [f"ticket:{ticket.id}", *([f"message:{lowest[0].id}"] if lowest else [])]
    if last is not None:
        evidence.append(f"message:{last.id}")
    return ThreadFeatures(ticket, values, shown, list(dict.fromkeys(evidence)))


def load_features(repo: Repo, classifier: Any, ticket_ids: list[int] | None = None) -> list[ThreadFeatures]:
    query = repo.select(Ticket).where(Ticket.status.in_(SOLVED))
    if ticket_ids is not None:
        query = query.where(Ticket.id.in_(ticket_ids))
    tickets = repo.all(query.order_by(Ticket.id))
    threads: dict[int, list[Message]] = {t.id: [] for t in tickets}
    if tickets:
        rows = repo.all(
            repo.select(Message)
            .where(Message.ticket_id.in_(list(threads)), Message.author_kind != AuthorKind.internal_note)
            .order_by(Message.sent_at, Message.id)
        )
        for message in rows:
            threads[message.ticket_id].append(message)
    read = {m.id for t in tickets for m in threads[t.id] if m.author_kind is AuthorKind.customer}
    read -= {m.id for t in tickets for m in threads[t.id] if m.id in read and find_injection(m.body)}
    scored = iter(classify_cached(classifier, [m.body for t in tickets for m in threads[t.id] if m.id in read]))
    out = []
    for ticket in tickets:
        messages = threads[ticket.id]
        sentiments = [next(scored) if m.id in read else None for m in messages]
        out.append(describe(ticket, messages, sentiments))
    return out


def _refusal(repo: Repo) -> Refusal | None:
    """Counted in the database, before any thread is read."""
    scores = list(
        repo.session.scalars(
            select(Ticket.csat_score).where(
                Ticket.workspace_id == repo.workspace_id, Ticket.status.in_(SOLVED), Ticket.csat_score.is_not(None)
            )
        )
    )
    good = sum(1 for score in scores if score >= GOOD)
    bad = len(scores) - good
    if len(scores) >= MIN_RATED and good >= MIN_EACH and bad >= MIN_EACH:
        return None
    return Refusal(
        reason=f"not enough CSAT answers to predict: {len(scores)} rated solved tickets ({good} good, {bad} not); "
        f"predictions need at least {MIN_RATED}, with {MIN_EACH} of each",
        outcomes=len(scores),
        positives=good,
        negatives=bad,
        needed=MIN_RATED,
        needed_each=MIN_EACH,
    )


def _fit(rated: list[ThreadFeatures]) -> BayesLogit:
    x = np.array([f.values for f in rated])
    y = np.array([int(f.ticket.csat_score >= GOOD) for f in rated])
    return BayesLogit(PRIORS).fit(x, y)


def _signals(model: BayesLogit, features: ThreadFeatures, top: int = 4) -> list[Signal]:
    shown = dict(zip(model.names, features.shown, strict=True))
    picked = [c for c in model.contributions(features.values) if abs(c.logit) >= 0.02][:top]
    return [Signal(name=c.name, text=TEXTS[c.name].format(shown[c.name]), logit=round(c.logit, 3)) for c in picked]


def predict_csat(
    repo: Repo, classifier: Any, *, ticket_ids: list[int] | None = None, unrated_only: bool = True
) -> CsatBoard:
    """Predictions for solved tickets (without a survey answer unless ``unrated_only`` is False), lowest first."""
    if refusal := _refusal(repo):
        return CsatBoard(rated=refusal.outcomes, refusal=refusal)
    everything = load_features(repo, classifier)
    rated = [f for f in everything if f.ticket.csat_score is not None]
    board = CsatBoard(rated=len(rated))
    board.good_rate = round(sum(f.ticket.csat_score >= GOOD for f in rated) / len(rated), 4)
    model = _fit(rated)
    chosen = [
        f
        for f in everything
        if (ticket_ids is None or f.ticket.id in ticket_ids) and (not unrated_only or f.ticket.csat_score is None)
    ]
    probabilities = model.predict(np.array([f.values for f in chosen])) if chosen else []
    for features, probability in zip(chosen, probabilities, strict=True):
        ticket = features.ticket
        board.predictions.append(
            CsatPrediction(
                ticket_id=ticket.id,
                ticket_ref=ticket.external_id or str(ticket.id),
                subject=ticket.subject,
                probability_good=round(float(probability), 4),
                csat_score=ticket.csat_score,
                top_signals=_signals(model, features),
                evidence_ids=features.evidence,
            )
        )
    board.predictions.sort(key=lambda p: p.probability_good)
    return board


def evaluate_csat(repo: Repo, classifier: Any, *, seed: int = 0, holdout: float = HOLDOUT) -> CsatEvaluation:
    """AUC on held-out rated tickets (a stratified split; the model never sees them)."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    from copilot.errors import InvalidInput

    if refusal := _refusal(repo):
        raise InvalidInput(refusal.reason)
    rated = [f for f in load_features(repo, classifier) if f.ticket.csat_score is not None]
    y = np.array([int(f.ticket.csat_score >= GOOD) for f in rated])
    train, test = train_test_split(list(range(len(rated))), test_size=holdout, stratify=y, random_state=seed)
    model = _fit([rated[i] for i in train])
    p = model.predict(np.array([rated[i].values for i in test]))
    truth = y[test]
    base = y[train].mean()
    return CsatEvaluation(
        rated=len(rated),
        good=int(y.sum()),
        train=len(train),
        test=len(test),
        auc=round(float(roc_auc_score(truth, p)), 4) if 0 < truth.sum() < len(truth) else None,
        brier=round(float(np.mean((p - truth) ** 2)), 4),
        brier_base_rate=round(float(np.mean((base - truth) ** 2)), 4),
        seed=seed,
    )
