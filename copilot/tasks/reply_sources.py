"""What a reply draft may stand on: answers to the same question, found question to question, and KB passages.

Matching the customer's words against agent replies picks replies that share words, not the ones that answer the
question ("Data is kept for 90 days after cancellation" for a customer whose dashboard was slow). So the latest
customer ask is matched against earlier customer questions, in the account's own history and in the workspace's
reply library, and each match offers the agent reply that followed it (or the library's approved answer). KB
passages are matched directly. Every source carries the cosine similarity between the ask and what it was matched
on; below a threshold a source does not count as answering, and with none left the draft says so instead of
answering something else.
"""

from __future__ import annotations

import re

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy import select

from copilot.guards import find_injection
from copilot.language import detect_language
from copilot.store import Repo
from copilot.store.models import AuthorKind, KbArticle, Message, ReplyTemplate, SearchChunk, Ticket
from copilot.tasks.context import TaskContext
from copilot.tasks.thread import Thread, body_without_signature

# Cosine similarity (all-MiniLM-L6-v2) from which a source counts as answering the ask. On 2,000 pairs of Bitext
# dev requests, 71% of same-intent pairs score >= 0.45 against 8% of pairs with different intents.
QUESTION_MIN = 0.45
PASSAGE_MIN = 0.40
MAX_SOURCES = 4
MAX_STEPS = 8
NUMBERED = re.compile(r"^\s*\d+[.)]\s+")


class Source(BaseModel):
    label: str
    record_kind: str  # "message" (an agent reply to an earlier question), "reply" (library), "kb_article"
    record_id: int
    text: str
    question: str | None = Field(default=None, description="The earlier question this answer followed.")
    similarity: float = Field(default=0.0, description="Cosine between the ask and what this source matched on.")
    language: str = "en"
    ticket_id: int | None = Field(default=None, description="For an earlier reply: the ticket it was written on.")


def latest_ask(thread: Thread) -> tuple[str, int | None]:
    """The customer's messages since the agent last wrote (the ask a reply must answer), and the newest one's id."""
    visible = [m for m in thread.messages if m.author_kind != "internal_note"]
    tail: list = []
    for message in reversed(visible):
        if message.author_kind != "customer":
            break
        tail.insert(0, message)
    tail = tail or [m for m in visible if m.author_kind == "customer"][-1:]
    text = " ".join(body_without_signature(m.text) for m in tail)
    return text[:2000], (tail[-1].id if tail else None)


def find_sources(context: TaskContext, ticket: Ticket, thread: Thread, ask: str) -> tuple[list[Source], list[str]]:
    """The best answering sources for the ask, labelled S1.. by similarity, and notes on the ones left out because
    they carry a prompt injection (a poisoned KB article never reaches the draft)."""
    from retrieval.search import SearchFilters

    ensure_library_indexed(context)
    own = set(thread.ids)
    candidates = [*earlier_answers(context, ticket, ask, own), *library_answers(context, ask)]
    kb = context.searcher.search(context.repo, ask, SearchFilters(kinds=["kb_article"], shared_only=True), limit=4)
    candidates += [Source(label="", record_kind="kb_article", record_id=h.record_id, text=h.text) for h in kb]
    kept, left_out = quarantine(candidates)
    scored = _score(context, ask, kept)
    answering = [s for s in scored if s.similarity >= (PASSAGE_MIN if s.record_kind == "kb_article" else QUESTION_MIN)]
    # An answer to the same question comes before a KB passage on the topic; each group best first.
    chosen = sorted(answering, key=lambda s: (s.record_kind == "kb_article", -s.similarity))[:MAX_SOURCES]
    widened = _distinct([with_article_steps(context.repo, s) for s in chosen])
    labelled = [
        s.model_copy(update={"label": f"S{n}", "language": detect_language(s.text).code})
        for n, s in enumerate(widened, start=1)
    ]
    return labelled, left_out


def with_article_steps(repo: Repo, source: Source) -> Source:
    """A KB passage followed by its article's numbered steps (the passage that matched an ask is often the overview
    or a tip, and the steps are the answer), unless the steps carry a prompt injection."""
    article = repo.get(KbArticle, source.record_id) if source.record_kind == "kb_article" else None
    if article is None:
        return source
    steps = [line.strip() for line in article.body.splitlines() if NUMBERED.match(line) and line not in source.text]
    if not steps or find_injection("\n".join(steps)):
        return source
    return source.model_copy(update={"text": "\n".join([source.text, *steps[:MAX_STEPS]])})


def _distinct(sources: list[Source]) -> list[Source]:
    """Two passages of one article that read the same once the steps are added are one source (the better first)."""
    seen: set[tuple[str, int, str]] = set()
    out = []
    for source in sources:
        if (key := (source.record_kind, source.record_id, source.text)) not in seen:
            seen.add(key)
            out.append(source)
    return out


def quarantine(candidates: list[Source]) -> tuple[list[Source], list[str]]:
    kept, left_out = [], []
    for source in candidates:
        if hit := find_injection(source.text) or find_injection(source.question or ""):
            left_out.append(f"{source.record_kind} {source.record_id} (left out of the sources): {hit}")
        else:
            kept.append(source)
    return kept, left_out


def earlier_answers(context: TaskContext, ticket: Ticket, ask: str, own: set[int]) -> list[Source]:
    """Earlier customer questions like the ask, each with the agent reply that followed it (same account only)."""
    from retrieval.search import SearchFilters

    if ticket.account_id is None:
        return []  # a ticket with no account may not read any customer's history
    filters = SearchFilters(account_id=ticket.account_id, kinds=["message"], include_shared=False)
    hits = context.searcher.search(context.repo, ask, filters, limit=12)
    questions = [h for h in hits if h.text.startswith("Customer:") and h.record_id not in own]
    sources = []
    for hit in questions[:6]:
        reply = next_agent_reply(context.repo, hit.record_id)
        if reply is not None and reply.id not in own:
            sources.append(
                Source(
                    label="",
                    record_kind="message",
                    record_id=reply.id,
                    ticket_id=reply.ticket_id,
                    text=body_without_signature(reply.body),
                    question=hit.text.removeprefix("Customer: "),
                )
            )
    return sources


def library_answers(context: TaskContext, ask: str) -> list[Source]:
    from retrieval.search import SearchFilters

    hits = context.searcher.search(context.repo, ask, SearchFilters(kinds=["reply"], shared_only=True), limit=6)
    entries = {
        e.id: e
        for e in context.repo.all(
            context.repo.select(ReplyTemplate).where(ReplyTemplate.id.in_([h.record_id for h in hits]))
        )
    }
    return [
        Source(
            label="",
            record_kind="reply",
            record_id=h.record_id,
            text=entries[h.record_id].answer,
            question=entries[h.record_id].question,
        )
        for h in hits
        if h.record_id in entries
    ]


def next_agent_reply(repo: Repo, message_id: int) -> Message | None:
    """The first agent message after a customer message, on the same ticket."""
    question = repo.get(Message, message_id)
    if question is None:
        return None
    query = (
        repo.select(Message)
        .where(
            Message.ticket_id == question.ticket_id,
            Message.author_kind == AuthorKind.agent,
            (Message.sent_at > question.sent_at) | ((Message.sent_at == question.sent_at) & (Message.id > question.id)),
        )
        .order_by(Message.sent_at, Message.id)
        .limit(1)
    )
    return repo.session.scalar(query)


def _score(context: TaskContext, ask: str, candidates: list[Source]) -> list[Source]:
    """Similarity of each candidate to the ask: on its question when it has one, else on its own text."""
    if not candidates:
        return []
    kept = candidates
    vectors = context.embedder.encode([ask, *((c.question or c.text) for c in kept)])
    similarities = (
        vectors[1:] @ vectors[0] / np.maximum(np.linalg.norm(vectors[1:], axis=1) * np.linalg.norm(vectors[0]), 1e-9)
    )
    unique: dict[tuple[str, int], Source] = {}
    for source, similarity in zip(kept, similarities, strict=True):
        key = (source.record_kind, source.record_id)
        scored = source.model_copy(update={"similarity": round(float(similarity), 4)})
        if key not in unique or scored.similarity > unique[key].similarity:
            unique[key] = scored
    return list(unique.values())


def unindexed_library_entries(repo: Repo) -> list[int]:
    """Reply-library entries with no search chunk yet (approved since the last catch-up)."""
    indexed = select(SearchChunk.record_id).where(
        SearchChunk.workspace_id == repo.workspace_id, SearchChunk.record_kind == "reply"
    )
    query = select(ReplyTemplate.id).where(
        ReplyTemplate.workspace_id == repo.workspace_id, ReplyTemplate.id.not_in(indexed)
    )
    return list(repo.session.scalars(query))


def ensure_library_indexed(context: TaskContext) -> None:
    """Index reply-library entries approved since the last draft, in a transaction of their own: the draft's own
    transaction stays read-only until it saves, so it never holds the database's write lock while it retrieves."""
    if unindexed_library_entries(context.repo):
        context.services.index_reply_library(context.repo.workspace.slug)
