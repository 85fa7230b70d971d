"""What the knowledge loop shares: ticket questions, help-center passages, and how close one is to the other.

A ticket's question is its first customer message without greeting, signature, or sentences that carry a prompt
injection. A KB passage is one ``## `` section of an article under its title (the way search chunks read). A
question is answered by the KB when a passage is at least ``KB_MATCH`` similar to it (cosine of MiniLM vectors;
calibrated on the demo, see README "Triage and the knowledge loop").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel
from sqlalchemy import select

from copilot.guards import find_injection
from copilot.store import Repo
from copilot.store.models import AuthorKind, KbArticle, Message, Ticket
from copilot.tasks.thread import sentences

KB_MATCH = 0.6  # a draft this close to an existing passage may duplicate it
KB_ANSWERS = 0.45  # a passage of an article about the topic this close answers the question
SECTION = re.compile(r"^## ", re.M)


class KbMatch(BaseModel):
    article_id: int
    external_id: str | None = None
    title: str
    similarity: float


@dataclass(frozen=True)
class Passage:
    article_id: int
    external_id: str | None
    title: str
    text: str


def clean_sentences(text: str) -> list[str]:
    """Content sentences of a message, without the ones that carry a prompt injection."""
    return [s for s in sentences(text) if not find_injection(s)]


def first_customer_messages(repo: Repo, ticket_ids: list[int]) -> dict[int, Message]:
    out: dict[int, Message] = {}
    if not ticket_ids:
        return out
    query = (
        select(Message)
        .where(
            Message.workspace_id == repo.workspace_id,
            Message.ticket_id.in_(ticket_ids),
            Message.author_kind == AuthorKind.customer,
        )
        .order_by(Message.sent_at.desc(), Message.id.desc())
    )
    for message in repo.session.scalars(query):
        out[message.ticket_id] = message  # ends on the earliest
    return out


def questions(repo: Repo, tickets: list[Ticket]) -> dict[int, str]:
    """Each ticket's question: its subject and first customer message, cleaned."""
    first = first_customer_messages(repo, [t.id for t in tickets])
    out = {}
    for ticket in tickets:
        body = " ".join(clean_sentences(first[ticket.id].body)) if ticket.id in first else ""
        subject = "" if find_injection(ticket.subject) else ticket.subject
        out[ticket.id] = "\n".join(p for p in (subject, body) if p.strip()) or ticket.subject
    return out


def kb_passages(repo: Repo) -> list[Passage]:
    passages = []
    for article in repo.all(repo.select(KbArticle).order_by(KbArticle.id)):
        sections = [s.strip() for s in SECTION.split(article.body or "") if s.strip()] or [article.title]
        for section in sections:
            if not find_injection(section):
                passages.append(Passage(article.id, article.external_id, article.title, f"{article.title}\n{section}"))
    return passages


def best_kb_matches(encoder: object, passages: list[Passage], vectors: np.ndarray) -> list[KbMatch | None]:
    """The closest KB passage to each question vector (None when the KB is empty)."""
    if not passages or len(vectors) == 0:
        return [None] * len(vectors)
    passage_vectors = encoder.encode([p.text for p in passages])  # type: ignore[attr-defined]
    similarity = vectors @ passage_vectors.T
    out: list[KbMatch | None] = []
    for row in similarity:
        best = int(row.argmax())
        passage = passages[best]
        out.append(KbMatch(article_id=passage.article_id, external_id=passage.external_id, title=passage.title,
                           similarity=round(float(row[best]), 4)))  # fmt: skip
    return out


def article_topics(repo: Repo, encoder: object) -> dict[int, str | None]:
    """Each article's topic: a label among its tags (approved drafts carry theirs), else the classifier's sure one."""
    from copilot.tasks.triage_labels import label_names, triage_settings
    from copilot.tasks.triage_model import classifier_for

    labels = label_names(repo)
    articles = repo.all(repo.select(KbArticle).order_by(KbArticle.id))
    topics: dict[int, str | None] = {a.id: next((t for t in a.tags or [] if t in labels), None) for a in articles}
    untagged = [a for a in articles if topics[a.id] is None]
    if untagged:
        classifier = classifier_for(repo, encoder)
        texts = [f"{a.title}\n{(SECTION.split(a.body or '') + [''])[1][:500]}" for a in untagged]
        found = classifier.suggest(classifier.vectors(texts), labels, triage_settings(repo).unsure_below)
        topics.update({a.id: None if t.unsure else t.label for a, t in zip(untagged, found, strict=True)})
    return topics
