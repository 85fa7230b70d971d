"""Turn CRM records into searchable chunks, each tagged with whose history it is."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from copilot.store import Repo
from copilot.store.models import Call, KbArticle, Message, Note, NpsResponse, ReplyTemplate, Ticket

MAX_CHARS = 1200
CALL_WINDOW, CALL_STRIDE = 6, 4

# Record kinds the index knows, in the order a rebuild walks them.
INDEXED_KINDS = ("ticket", "message", "call", "note", "nps_response", "kb_article", "reply")


class Chunk(BaseModel):
    chunk_id: str
    workspace_id: int
    record_kind: str
    record_id: int
    account_id: int | None = None
    contact_id: int | None = None
    shared: bool = False
    ts: float = 0.0
    text: str


def epoch(value: datetime | None) -> float:
    if value is None:
        return 0.0
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def split_text(text: str, limit: int = MAX_CHARS) -> list[str]:
    """Paragraph-aware windows of at most ``limit`` characters."""
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    pieces, current = [], ""
    for paragraph in re.split(r"\n\s*\n", text):
        while len(paragraph) > limit:
            pieces.append(paragraph[:limit])
            paragraph = paragraph[limit:]
        if current and len(current) + len(paragraph) + 2 > limit:
            pieces.append(current)
            current = ""
        current = f"{current}\n\n{paragraph}" if current else paragraph
    if current:
        pieces.append(current)
    return pieces


def _chunks(kind: str, record_id: int, texts: Iterable[str], **fields: object) -> Iterator[Chunk]:
    for n, text in enumerate(texts):
        yield Chunk(chunk_id=f"{kind}:{record_id}:{n}", record_kind=kind, record_id=record_id, text=text, **fields)  # type: ignore[arg-type]


def ticket_chunks(ticket: Ticket) -> Iterator[Chunk]:
    yield from _chunks(
        "ticket",
        ticket.id,
        [ticket.subject],
        workspace_id=ticket.workspace_id,
        account_id=ticket.account_id,
        contact_id=ticket.contact_id,
        ts=epoch(ticket.opened_at),
    )


def message_chunks(message: Message) -> Iterator[Chunk]:
    ticket = message.ticket
    label = {"customer": "Customer", "agent": "Agent", "internal_note": "Internal note"}[message.author_kind.value]
    texts = [f"{label}: {piece}" for piece in split_text(message.body)]
    yield from _chunks(
        "message",
        message.id,
        texts,
        workspace_id=message.workspace_id,
        account_id=ticket.account_id,
        contact_id=ticket.contact_id,
        ts=epoch(message.sent_at),
    )


def call_chunks(call: Call) -> Iterator[Chunk]:
    turns = call.turns
    starts = list(range(0, max(len(turns) - CALL_WINDOW, 0) + 1, CALL_STRIDE)) if turns else []
    if starts and starts[-1] + CALL_WINDOW < len(turns):
        starts.append(len(turns) - CALL_WINDOW)
    windows = ["\n".join(f"{t.speaker}: {t.text}" for t in turns[s : s + CALL_WINDOW]) for s in starts]
    yield from _chunks(
        "call", call.id, windows, workspace_id=call.workspace_id, account_id=call.account_id, ts=epoch(call.started_at)
    )


def note_chunks(note: Note) -> Iterator[Chunk]:
    yield from _chunks(
        "note",
        note.id,
        split_text(note.body),
        workspace_id=note.workspace_id,
        account_id=note.account_id,
        contact_id=note.contact_id,
        ts=epoch(note.noted_at),
    )


def nps_chunks(response: NpsResponse) -> Iterator[Chunk]:
    texts = [response.comment] if response.comment and response.comment.strip() else []
    yield from _chunks(
        "nps_response",
        response.id,
        texts,
        workspace_id=response.workspace_id,
        account_id=response.account_id,
        contact_id=response.contact_id,
        ts=epoch(response.submitted_at),
    )


def kb_chunks(article: KbArticle) -> Iterator[Chunk]:
    sections = [s.strip() for s in re.split(r"^(?=## )", article.body, flags=re.M) if s.strip()]
    texts = [f"{article.title}\n{piece}" for section in sections for piece in split_text(section)]
    yield from _chunks(
        "kb_article", article.id, texts, workspace_id=article.workspace_id, shared=True, ts=epoch(article.updated_at)
    )


def reply_chunks(template: ReplyTemplate) -> Iterator[Chunk]:
    """A reply-library entry is found by the question it answered (the answer is read from the record)."""
    yield from _chunks(
        "reply",
        template.id,
        [f"Question: {template.question}"],
        workspace_id=template.workspace_id,
        shared=True,
        ts=epoch(template.updated_at),
    )


def load_chunks(repo: Repo, kind: str, ids: list[int]) -> list[Chunk]:
    """Chunks of the given records of one kind (records of other workspaces are ignored)."""
    builders = {
        "ticket": (Ticket, None, ticket_chunks),
        "message": (Message, selectinload(Message.ticket), message_chunks),
        "call": (Call, selectinload(Call.turns), call_chunks),
        "note": (Note, None, note_chunks),
        "nps_response": (NpsResponse, None, nps_chunks),
        "kb_article": (KbArticle, None, kb_chunks),
        "reply": (ReplyTemplate, None, reply_chunks),
    }
    if kind not in builders:
        return []
    model, load_option, build = builders[kind]
    query = repo.select(model).where(model.id.in_(ids))
    if load_option is not None:
        query = query.options(load_option)
    return [chunk for row in repo.session.scalars(query) for chunk in build(row)]


MODELS = {
    "ticket": Ticket,
    "message": Message,
    "call": Call,
    "note": Note,
    "nps_response": NpsResponse,
    "kb_article": KbArticle,
    "reply": ReplyTemplate,
}


def record_ids(repo: Repo, kind: str, after_id: int, limit: int) -> list[int]:
    model = MODELS[kind]
    query = (
        select(model.id)
        .where(model.workspace_id == repo.workspace_id, model.id > after_id)
        .order_by(model.id)
        .limit(limit)
    )
    return list(repo.session.scalars(query))
