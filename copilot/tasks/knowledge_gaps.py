"""The knowledge-gap report: topics customers keep asking about that the help center does not answer.

For every topic with at least ``min_tickets`` tickets opened in the last ``days``: the KB articles about it, how many
of those tickets' questions have no passage of those articles at least ``threshold`` similar
(``copilot.tasks.knowledge``), and how reviewers treated the reply drafts on them (acceptance, mean edit distance).
A topic is a gap when the KB has no article about it, when most of its questions go unanswered, or when enough of
its drafts were decided and reviewers rejected or rewrote them; gaps are ranked by ticket volume.
A ticket's topic is the one the team set, else its sure triage, else the classifier's.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import select

from copilot.store import Repo
from copilot.store.models import AiResult, AiStatus, AuditEvent, Ticket, TicketRouting
from copilot.tasks.knowledge import (
    KB_ANSWERS,
    KbMatch,
    Passage,
    article_topics,
    best_kb_matches,
    kb_passages,
    questions,
)
from copilot.tasks.triage_labels import label_names, triage_settings
from copilot.tasks.triage_model import classifier_for

UNANSWERED_SHARE = 0.5  # a topic is a gap when at least this share of its recent questions has no KB answer
MIN_DECIDED = 5  # drafts decided before their acceptance says anything
LOW_ACCEPTANCE = 0.5
HIGH_EDIT_DISTANCE = 150.0
EXAMPLES = 10


class GapTopic(BaseModel):
    topic: str
    tickets: int = Field(description="Tickets of the topic opened in the window.")
    unanswered: int = Field(description="Of those, tickets whose question no KB passage answers.")
    median_similarity: float = Field(description="Median similarity of their questions to the closest KB passage.")
    closest_article: KbMatch | None = Field(default=None, description="The closest passage of an article about it.")
    articles: list[str] = Field(default_factory=list, description="KB articles about the topic.")
    drafts_decided: int = 0
    draft_acceptance: float | None = None
    mean_edit_distance: float | None = None
    gap: bool = False
    reasons: list[str] = Field(default_factory=list)
    ticket_ids: list[int] = Field(default_factory=list, description="Example tickets, newest first.")


class GapReport(BaseModel):
    days: int
    threshold: float
    tickets: int = Field(description="Tickets opened in the window.")
    gaps: list[GapTopic] = Field(description="Topics the help center does not serve, most tickets first.")
    covered: list[GapTopic] = Field(description="Topics checked and found answered.")
    untopiced: int = Field(default=0, description="Tickets whose topic is unsure (left out).")


def ticket_topics(repo: Repo, encoder: object, tickets: list[Ticket], asked: dict[int, str]) -> dict[int, str | None]:
    """The topic the team set, else the latest sure triage, else the classifier's sure topic."""
    ids = [t.id for t in tickets]
    topics: dict[int, str | None] = dict(
        repo.session.execute(
            select(TicketRouting.ticket_id, TicketRouting.topic).where(
                TicketRouting.workspace_id == repo.workspace_id, TicketRouting.ticket_id.in_(ids)
            )
        ).all()
    )
    triaged = repo.all(
        repo.select(AiResult)
        .where(AiResult.task == "ticket_triage", AiResult.subject_kind == "ticket", AiResult.subject_id.in_(ids))
        .order_by(AiResult.id)
    )
    for row in triaged:
        topic = row.content.get("result", {}).get("topic") or {}
        if not topics.get(row.subject_id) and topic.get("label") and not topic.get("unsure"):
            topics[row.subject_id] = topic["label"]
    missing = [t.id for t in tickets if not topics.get(t.id)]
    if missing:
        classifier = classifier_for(repo, encoder)
        found = classifier.suggest(
            classifier.vectors([asked[i] for i in missing]), label_names(repo), triage_settings(repo).unsure_below
        )
        topics.update({i: None if t.unsure else t.label for i, t in zip(missing, found, strict=True)})
    return topics


def draft_stats(repo: Repo, ticket_ids: list[int]) -> tuple[int, float | None, float | None]:
    """(decided, acceptance rate, mean edit distance) of the reply drafts on these tickets."""
    rows = repo.all(
        repo.select(AiResult).where(
            AiResult.task == "reply_draft",
            AiResult.subject_kind == "ticket",
            AiResult.subject_id.in_(ticket_ids),
            AiResult.status.in_((AiStatus.approved, AiStatus.edited, AiStatus.rejected, AiStatus.sent)),
        )
    )
    if not rows:
        return 0, None, None
    accepted = sum(r.status is not AiStatus.rejected for r in rows)
    distances = [
        d
        for d in repo.session.scalars(
            select(AuditEvent.edit_distance).where(
                AuditEvent.workspace_id == repo.workspace_id,
                AuditEvent.action == "review.edit",
                AuditEvent.ai_result_id.in_([r.id for r in rows]),
            )
        )
        if d is not None
    ]
    mean_distance = round(sum(distances) / len(distances), 1) if distances else None
    return len(rows), round(accepted / len(rows), 4), mean_distance


def knowledge_gaps(
    encoder: object,
    repo: Repo,
    *,
    days: int = 90,
    min_tickets: int = 3,
    threshold: float = KB_ANSWERS,
    now: datetime | None = None,
) -> GapReport:
    now = now or datetime.now(UTC)
    tickets = repo.all(
        repo.select(Ticket).where(Ticket.opened_at >= now - timedelta(days=days)).order_by(Ticket.opened_at.desc())
    )
    asked = questions(repo, tickets)
    topics = ticket_topics(repo, encoder, tickets, asked) if tickets else {}
    by_topic: dict[str, list[Ticket]] = {}
    for ticket in tickets:
        if topics.get(ticket.id):
            by_topic.setdefault(topics[ticket.id], []).append(ticket)
    passages, about = kb_passages(repo), article_topics(repo, encoder)
    rows = []
    for topic, members in by_topic.items():
        if len(members) < min_tickets:
            continue
        own = [p for p in passages if about.get(p.article_id) == topic]
        vectors = encoder.encode([asked[t.id] for t in members])  # type: ignore[attr-defined]
        rows.append(_topic_row(repo, topic, members, best_kb_matches(encoder, own, vectors), own, threshold))
    rows.sort(key=lambda r: (-r.tickets, r.topic))
    return GapReport(
        days=days,
        threshold=threshold,
        tickets=len(tickets),
        gaps=[r for r in rows if r.gap],
        covered=[r for r in rows if not r.gap],
        untopiced=sum(1 for t in tickets if not topics.get(t.id)),
    )


def _topic_row(
    repo: Repo, topic: str, tickets: list[Ticket], matches: list[KbMatch | None], own: list[Passage], threshold: float
) -> GapTopic:
    similarities = [m.similarity if m else 0.0 for m in matches]
    unanswered = sum(s < threshold for s in similarities)
    closest = max((m for m in matches if m), key=lambda m: m.similarity, default=None)
    decided, acceptance, distance = draft_stats(repo, [t.id for t in tickets])
    row = GapTopic(
        topic=topic,
        tickets=len(tickets),
        unanswered=unanswered,
        median_similarity=round(statistics.median(similarities), 4),
        closest_article=closest,
        drafts_decided=decided,
        draft_acceptance=acceptance,
        mean_edit_distance=distance,
        ticket_ids=[t.id for t in tickets[:EXAMPLES]],
    )
    if unanswered >= UNANSWERED_SHARE * len(tickets):
        where = f"closest: '{closest.title}'" if closest else "no KB article is about this topic"
        row.reasons.append(
            f"{unanswered} of {len(tickets)} recent questions have no KB passage at {threshold:.2f} "
            f"similarity or more ({where}; median {row.median_similarity:.2f})"
        )
    if decided >= MIN_DECIDED and acceptance is not None and acceptance < LOW_ACCEPTANCE:
        row.reasons.append(f"reviewers accepted {acceptance:.0%} of {decided} reply drafts")
    if decided >= MIN_DECIDED and distance is not None and distance > HIGH_EDIT_DISTANCE:
        row.reasons.append(f"approved drafts were rewritten by {distance:.0f} characters on average")
    row.gap = bool(row.reasons)
    return row
