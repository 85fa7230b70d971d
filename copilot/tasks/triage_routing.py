"""Who should take a ticket: the agents who resolved the most similar tickets, with those tickets as evidence.

Similar tickets come from the workspace's search index (customer messages of solved or closed tickets, by the
ticket's question vector); each votes for the agent who sent its last reply (else its assignee), weighted by
similarity. The queue is the topic's queue when the topic is sure, else the queue most of the evidence went to.
Only people who resolved tickets can be suggested: nothing a customer writes can name the assignee.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy import select

from copilot.store import Repo
from copilot.store.models import AuthorKind, Message, Ticket, TicketRouting, TicketStatus

log = logging.getLogger(__name__)

NEIGHBOURS = 8
CANDIDATES = 120
MIN_SIMILARITY = 0.45
RESOLVED = (TicketStatus.solved, TicketStatus.closed)


class RoutingEvidence(BaseModel):
    ticket_id: int
    external_id: str | None = None
    subject: str = ""
    similarity: float
    resolved_by: str | None = None
    queue: str | None = None


class Routing(BaseModel):
    queue: str | None = Field(default=None, description="The team / queue the ticket should go to.")
    assignee: str | None = Field(default=None, description="An agent who resolved similar tickets.")
    assignee_share: float = Field(default=0.0, description="Share of the evidence (by similarity) for that agent.")
    evidence: list[RoutingEvidence] = Field(default_factory=list, description="The similar resolved tickets.")
    note: str | None = None


def similar_resolved(repo: Repo, index: object, vector: np.ndarray, ticket_id: int) -> list[tuple[Ticket, float]]:
    """Solved or closed tickets whose customer messages are closest to ``vector`` (best first, one entry a ticket)."""
    from retrieval.index import VectorIndexError

    try:
        hits = index.vector_candidates(  # type: ignore[attr-defined]
            repo.workspace_id, vector, {"record_kind": {"$eq": "message"}}, CANDIDATES
        )
    except VectorIndexError as error:
        log.warning("routing without evidence: %s", error)
        return []
    best: dict[int, float] = {}
    for chunk_id, similarity in hits:
        if similarity >= MIN_SIMILARITY:
            message_id = int(chunk_id.split(":")[1])
            best[message_id] = max(best.get(message_id, 0.0), float(similarity))
    if not best:
        return []
    rows = repo.session.execute(
        select(Message.id, Ticket)
        .join(Ticket, Ticket.id == Message.ticket_id)
        .where(
            Message.workspace_id == repo.workspace_id,
            Message.id.in_(list(best)),
            Message.author_kind == AuthorKind.customer,
            Ticket.status.in_(RESOLVED),
            Ticket.id != ticket_id,
        )
    ).all()
    per_ticket: dict[int, tuple[Ticket, float]] = {}
    for message_id, ticket in rows:
        if ticket.id not in per_ticket or best[message_id] > per_ticket[ticket.id][1]:
            per_ticket[ticket.id] = (ticket, best[message_id])
    return sorted(per_ticket.values(), key=lambda pair: -pair[1])[:NEIGHBOURS]


def resolvers(repo: Repo, tickets: list[Ticket]) -> dict[int, str | None]:
    """Who resolved each ticket: the author of its last agent reply, else its assignee."""
    last: dict[int, str | None] = {t.id: t.assignee for t in tickets}
    if not tickets:
        return last
    rows = repo.session.execute(
        select(Message.ticket_id, Message.author)
        .where(
            Message.workspace_id == repo.workspace_id,
            Message.ticket_id.in_(list(last)),
            Message.author_kind == AuthorKind.agent,
            Message.author.is_not(None),
        )
        .order_by(Message.sent_at, Message.id)
    ).all()
    for ticket_id, author in rows:
        last[ticket_id] = author
    return last


def suggest_routing(repo: Repo, index: object, vector: np.ndarray, ticket: Ticket, topic_queue: str | None) -> Routing:
    neighbours = similar_resolved(repo, index, vector, ticket.id)
    by = resolvers(repo, [t for t, _ in neighbours])
    queues = dict(
        repo.session.execute(
            select(TicketRouting.ticket_id, TicketRouting.queue).where(
                TicketRouting.workspace_id == repo.workspace_id,
                TicketRouting.ticket_id.in_([t.id for t, _ in neighbours]),
            )
        ).all()
    )
    evidence = [
        RoutingEvidence(
            ticket_id=t.id,
            external_id=t.external_id,
            subject=t.subject[:120],
            similarity=round(s, 4),
            resolved_by=by.get(t.id),
            queue=queues.get(t.id),
        )
        for t, s in neighbours
    ]
    votes: dict[str, float] = defaultdict(float)
    for item in evidence:
        if item.resolved_by:
            votes[item.resolved_by] += item.similarity
    assignee, share = None, 0.0
    if votes:
        assignee = max(votes, key=lambda name: (votes[name], name))
        share = round(votes[assignee] / sum(votes.values()), 4)
    queue = topic_queue or _majority([e.queue for e in evidence])
    note = None if evidence else "no similar resolved ticket in the search index (is the workspace indexed?)"
    return Routing(queue=queue, assignee=assignee, assignee_share=share, evidence=evidence, note=note)


def _majority(values: list[str | None]) -> str | None:
    counted = Counter(v for v in values if v)
    return counted.most_common(1)[0][0] if counted else None
