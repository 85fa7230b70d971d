"""Sentiment per message, per ticket and per customer: a classifier, not a generative call.

A multinomial logistic-regression head over all-MiniLM-L6-v2 embeddings plus VADER lexicon
scores, trained by ``python -m evals.studies.sentiment_head`` on permissively licensed text
(see the README); the weights ship in ``copilot/tasks/sentiment_data/head.npz``. A workspace
can replace that head with one trained on its own labelled messages (``copilot sentiment train``).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy import select

from copilot.auth import Permission
from copilot.errors import CopilotError, NotFound
from copilot.profiles import Profile
from copilot.store import Repo
from copilot.store.models import Account, AuthorKind, Contact, Message, SentimentHead, Ticket, utc
from copilot.tasks.base import Provenance, TaskOutcome
from copilot.tasks.context import TaskContext
from copilot.tasks.registry import CUSTOMER_MESSAGE, RecordRef, TaskParams, task

log = logging.getLogger(__name__)

WEIGHTS = Path(__file__).parent / "sentiment_data" / "head.npz"
LABELS = ("negative", "neutral", "positive")
# VADER scores weigh like many embedding dimensions. Picked on half of TweetEval val early on; any value
# from 3 to 30 scores within 0.002 macro-recall there, so the shipped head carries no real fit to it.
VADER_SCALE = 10.0
SOUR_WINDOW = 3
SOUR_DROP = 0.35
FRUSTRATION = (
    "third time",
    "still not",
    "still waiting",
    "again",
    "unacceptable",
    "ridiculous",
    "fed up",
    "cancel",
    "!!!",
)
URGENCY = (
    "urgent",
    "asap",
    "immediately",
    "today",
    "right now",
    "payroll",
    "deadline",
    "blocked",
    "can't work",
    "down",
)


SHIPPED_HEAD = "shipped head"


class SentimentModelError(CopilotError):
    """The shipped sentiment weights are missing."""


@dataclass(frozen=True)
class Head:
    """Logistic-regression weights over ``features``: one row per label, in LABELS order."""

    coef: np.ndarray
    intercept: np.ndarray
    name: str = SHIPPED_HEAD

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, coef=self.coef.astype(np.float32), intercept=self.intercept.astype(np.float32))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, name: str) -> Head:
        arrays = np.load(io.BytesIO(data))
        return cls(arrays["coef"], arrays["intercept"], name)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Softmax over the labels for each row of features."""
        logits = x @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)


@lru_cache(maxsize=4)
def shipped_head(weights: Path = WEIGHTS) -> Head:
    if not weights.is_file():
        raise SentimentModelError(
            f"sentiment weights {weights} are missing: run `python -m evals.studies.sentiment_head`"
        )
    data = np.load(weights)
    return Head(data["coef"], data["intercept"])


class MessageSentiment(BaseModel):
    label: str
    score: float = Field(ge=-1, le=1, description="P(positive) - P(negative)")
    confidence: float = Field(ge=0, le=1)
    frustration: bool = False
    urgency: bool = False


class ScoredMessage(BaseModel):
    message_id: int
    ticket_id: int
    sent_at: datetime
    sentiment: MessageSentiment


class TicketSentiment(BaseModel):
    ticket_id: int
    label: str
    score: float
    messages: list[ScoredMessage]
    going_sour: bool
    head: str = Field(description="which head classified: the shipped one or the workspace's own")


class CustomerTrend(BaseModel):
    subject: str
    points: list[ScoredMessage]
    rolling: list[float] = Field(description=f"mean score of the last {SOUR_WINDOW} customer messages at each point")
    going_sour: bool
    reason: str | None = None
    head: str = Field(description="which head classified: the shipped one or the workspace's own")


class SentimentClassifier:
    def __init__(self, encode, head: Head | None = None, vader=None, *, embedding_model: str | None = None) -> None:
        from retrieval.embeddings import MODEL_NAME

        self.head = head or shipped_head()
        self.encode = encode
        self.embedding_model = embedding_model or MODEL_NAME  # the name of the vectors ``encode`` makes
        if vader is None:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

            vader = SentimentIntensityAnalyzer()
        self.vader = vader

    def with_head(self, head: Head) -> SentimentClassifier:
        return SentimentClassifier(self.encode, head, self.vader, embedding_model=self.embedding_model)

    def for_workspace(self, repo: Repo) -> SentimentClassifier:
        """This classifier with the workspace's own head, when it has one that fits these features."""
        row = workspace_head_row(repo)
        if row is None:
            return self
        from retrieval.embeddings import MODEL_NAME, WEIGHTS_SHA256, vectors_agree

        head = Head.from_bytes(row.weights, workspace_head_name(row))
        # A head records the weights its vectors came from (all-MiniLM-L6-v2's, through either backend: their
        # vectors agree, README "Embedding backends"); it reads only vectors that agree with those.
        same_model = row.embedding_sha256 == WEIGHTS_SHA256 and vectors_agree(MODEL_NAME, self.embedding_model)
        if not same_model or head.coef.shape != self.head.coef.shape:
            log.warning(
                "workspace %s: its sentiment head was trained on another embedding model than %s; using the shipped "
                "head until it is trained again (`copilot sentiment train`)",
                repo.workspace.slug,
                self.embedding_model,
            )
            return self
        return self.with_head(head)

    def features(self, texts: list[str]) -> np.ndarray:
        return features(self.encode(texts), self.vader, texts)

    def probabilities(self, texts: list[str]) -> np.ndarray:
        return self.head.probabilities(self.features(texts))

    def classify(self, texts: list[str]) -> list[MessageSentiment]:
        if not texts:
            return []
        out = []
        for text, p in zip(texts, self.probabilities(texts), strict=True):
            lowered = text.lower()
            out.append(
                MessageSentiment(
                    label=LABELS[int(p.argmax())],
                    score=round(float(p[2] - p[0]), 4),
                    confidence=round(float(p.max()), 4),
                    frustration=any(k in lowered for k in FRUSTRATION) or _shouting(text),
                    urgency=any(k in lowered for k in URGENCY),
                )
            )
        return out


def vader_label(vader, text: str) -> str:
    """VADER's own reading of its compound score (thresholds +-0.05, as its authors recommend)."""
    compound = vader.polarity_scores(text)["compound"]
    return "positive" if compound >= 0.05 else "negative" if compound <= -0.05 else "neutral"


def workspace_head_row(repo: Repo) -> SentimentHead | None:
    return repo.session.scalar(repo.select(SentimentHead))


def workspace_head_name(row: SentimentHead) -> str:
    return f"workspace head ({row.examples} examples, trained {row.updated_at:%Y-%m-%d} by {row.trained_by})"


def features(vectors: np.ndarray, vader, texts: list[str]) -> np.ndarray:
    lexical = np.array(
        [[s["neg"], s["neu"], s["pos"], s["compound"]] for s in (vader.polarity_scores(t) for t in texts)],
        dtype=np.float32,
    )
    return np.hstack([vectors, lexical * VADER_SCALE])


def _shouting(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return len(letters) > 12 and sum(c.isupper() for c in letters) / len(letters) > 0.6


@lru_cache(maxsize=1)
def default_classifier() -> SentimentClassifier:
    from retrieval.embeddings import default_embedder

    embedder = default_embedder()
    return SentimentClassifier(embedder.encode, embedding_model=embedder.name)


def going_sour(scores: list[float]) -> tuple[bool, str | None, list[float]]:
    """Sour when the rolling mean of the last few customer messages drops by SOUR_DROP,
    or ends on two negatives after a non-negative."""
    rolling = [float(np.mean(scores[max(0, i - SOUR_WINDOW + 1) : i + 1])) for i in range(len(scores))]
    if len(scores) >= 2 * SOUR_WINDOW and rolling[-SOUR_WINDOW - 1] - rolling[-1] > SOUR_DROP:
        return True, f"recent mean fell from {rolling[-SOUR_WINDOW - 1]:.2f} to {rolling[-1]:.2f}", rolling
    if len(scores) >= 3 and scores[-1] < -0.3 and scores[-2] < -0.3 and max(scores[:-2]) >= 0:
        return True, "the last two customer messages are negative after a non-negative one", rolling
    return False, None, rolling


def score_messages(classifier: SentimentClassifier, messages: list[Message]) -> list[ScoredMessage]:
    results = classifier.classify([m.body for m in messages])
    return [
        ScoredMessage(message_id=m.id, ticket_id=m.ticket_id, sent_at=utc(m.sent_at, keep_offset=True), sentiment=r)
        for m, r in zip(messages, results, strict=True)
    ]


def ticket_sentiment(repo: Repo, classifier: SentimentClassifier, ticket_id: int) -> TicketSentiment:
    ticket = repo.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound(f"no ticket {ticket_id} in workspace '{repo.workspace.slug}'")
    customer = [m for m in ticket.messages if m.author_kind is AuthorKind.customer]
    classifier = classifier.for_workspace(repo)
    scored = score_messages(classifier, customer)
    scores = [s.sentiment.score for s in scored]
    weights = np.linspace(1.0, 2.0, num=len(scores)) if scores else np.array([])
    overall = float(np.average(scores, weights=weights)) if scores else 0.0
    sour, _, _ = going_sour(scores)
    label = "negative" if overall < -0.2 else "positive" if overall > 0.2 else "neutral"
    return TicketSentiment(
        ticket_id=ticket.id,
        label=label,
        score=round(overall, 4),
        messages=scored,
        going_sour=sour,
        head=classifier.head.name,
    )


class SentimentParams(TaskParams):
    ticket_id: RecordRef
    strategy: Literal["auto", "head"] = "auto"


@task(
    "ticket_sentiment",
    subject="ticket",
    subject_field="ticket_id",
    permission=Permission.run_support,
    review=Permission.review_support,
    needs_approval=False,
    defaults={Profile.small: "head", Profile.capable: "head"},
    stale_on=(CUSTOMER_MESSAGE,),
    carriers=("message",),
)
def ticket_sentiment_task(context: TaskContext, params: SentimentParams) -> TaskOutcome[TicketSentiment]:
    """Classify the sentiment of a ticket's customer messages, with the going-sour flag (no generative call)."""
    ticket = context.repo.resolve(Ticket, params.ticket_id)
    result = ticket_sentiment(context.repo, context.services.sentiment, ticket.id)  # picks the workspace head
    provenance = Provenance(
        task="ticket_sentiment",
        model=f"sentiment {result.head}",
        input_ids=[f"message:{scored.message_id}" for scored in result.messages],
    )
    return TaskOutcome[TicketSentiment](
        task="ticket_sentiment", result=result, provenance=provenance, subject_id=ticket.id
    )


def customer_trend(
    repo: Repo, classifier: SentimentClassifier, *, account_id: int | None = None, contact_id: int | None = None
) -> CustomerTrend:
    """Sentiment of a customer's messages over time, across their tickets, with the going-sour flag."""
    query = (
        select(Message)
        .join(Ticket, Message.ticket_id == Ticket.id)
        .where(Message.workspace_id == repo.workspace_id, Message.author_kind == AuthorKind.customer)
    )
    if account_id is not None:
        if repo.get(Account, account_id) is None:
            raise NotFound(f"no account {account_id} in workspace '{repo.workspace.slug}'")
        query, subject = query.where(Ticket.account_id == account_id), f"account {account_id}"
    elif contact_id is not None:
        if repo.get(Contact, contact_id) is None:
            raise NotFound(f"no contact {contact_id} in workspace '{repo.workspace.slug}'")
        query, subject = query.where(Ticket.contact_id == contact_id), f"contact {contact_id}"
    else:
        raise NotFound("a trend needs an account or a contact")
    messages = list(repo.session.scalars(query.order_by(Message.sent_at)))
    classifier = classifier.for_workspace(repo)
    points = score_messages(classifier, messages)
    sour, reason, rolling = going_sour([p.sentiment.score for p in points])
    return CustomerTrend(
        subject=subject,
        points=points,
        rolling=[round(r, 4) for r in rolling],
        going_sour=sour,
        reason=reason,
        head=classifier.head.name,
    )
