"""Ticket triage: topic from the workspace's own label set, urgency with its reasons, language, and routing.

A classifier, not a generative call: the topic comes from a logistic-regression head over the ticket's embedding
(``copilot.tasks.triage_model``), restricted to the workspace's labels; urgency from deterministic signals
(``triage_urgency``); language from py3langid (``copilot.language``); the queue and assignee from the agents who
resolved the most similar tickets (``triage_routing``). Sentences that try to steer triage or carry a prompt
injection are left out of every signal and flagged.

Results are suggestions (saved ``completed``); a human applies them from the ticket page or the API, or the
workspace turns on auto-apply (``copilot.tasks.triage_apply``). Every new ticket is triaged in the background
(``queue_triage``, called by the ingest's after-write hooks).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from copilot.auth import Permission
from copilot.guards import GuardVerdict, Severity
from copilot.jobs import JobContext, job_kind
from copilot.language import Language, detect_language
from copilot.profiles import Profile
from copilot.store import Repo
from copilot.store.models import Account, AiResult, AiStatus, Contact, Job, Ticket
from copilot.tasks.base import Provenance, TaskOutcome
from copilot.tasks.context import TaskContext
from copilot.tasks.registry import CUSTOMER_MESSAGE, RecordRef, TaskParams, task
from copilot.tasks.thread import Thread, load_thread, sentences
from copilot.tasks.triage_labels import label_names, label_queues, triage_settings
from copilot.tasks.triage_model import Topic, classifier_for, combine
from copilot.tasks.triage_routing import Routing, suggest_routing
from copilot.tasks.triage_urgency import (
    Urgency,
    account_reason,
    assess,
    repeat_reasons,
    sentiment_reason,
    split_evidence,
    text_reasons,
)

if TYPE_CHECKING:
    from copilot.services import Services

TASK = "ticket_triage"
Strategy = Literal["auto", "classifier"]
MAX_TEXT = 2000
LANGUAGE_MIN_CONFIDENCE = 0.8


class TicketTriage(BaseModel):
    ticket_id: int
    topic: Topic
    urgency: Urgency
    language: Language
    routing: Routing
    ignored: list[str] = Field(default_factory=list, description="Sentences left out: they steer triage or inject.")
    injection_suspected: bool = False

    def job_summary(self) -> dict[str, Any]:
        return {
            "topic": self.topic.label,
            "unsure": self.topic.unsure,
            "priority": self.urgency.priority.value,
            "assignee": self.routing.assignee,
        }


class TriageParams(TaskParams):
    ticket_id: RecordRef
    strategy: Strategy = "auto"


def customer_texts(thread: Thread) -> list[tuple[int, str]]:
    return [(m.id, m.text) for m in thread.messages if m.author_kind == "customer"]


def ticket_text(subject: str, customer_messages: list[str]) -> str:
    """What the topic is read from: the subject and the first two customer messages, without greetings or
    signatures (the same text training reads from a labelled ticket)."""
    parts = [subject, *(" ".join(sentences(text)) for text in customer_messages[:2])]
    return "\n".join(p for p in parts if p.strip())[:MAX_TEXT]


def cleared(thread: Thread) -> tuple[list[tuple[int, str]], list[str]]:
    """Customer messages without the sentences that steer triage or inject, and what was left out."""
    kept, ignored = [], []
    for message_id, text in customer_texts(thread):
        clean, dropped = split_evidence(text)
        kept.append((message_id, clean))
        ignored += [f"message {message_id}: {reason}" for reason in dropped]
    subject, dropped = split_evidence(thread.subject)
    ignored += [f"subject: {reason}" for reason in dropped]
    return kept, ignored


def language_of(texts: list[str], contact: Contact | None) -> Language:
    found = detect_language(" ".join(texts))
    if found.confidence < LANGUAGE_MIN_CONFIDENCE and contact is not None and contact.language:
        return Language(code=contact.language, confidence=found.confidence, method="contact")
    return found


def sentiment_scores(context: TaskContext, messages: list[tuple[int, str]]) -> list[tuple[int, float, bool]]:
    texts = [(i, t) for i, t in messages if t.strip()]
    if not texts:
        return []
    results = context.sentiment.classify([t for _, t in texts])
    return [(i, r.score, r.frustration) for (i, _), r in zip(texts, results, strict=True)]


def verdicts_for(ignored: list[str]) -> list[GuardVerdict]:
    injected = [item for item in ignored if "prompt injection" in item]
    steering = [item for item in ignored if "steer triage" in item]
    out = []
    if injected:
        out.append(GuardVerdict(name="prompt_injection", passed=False, severity=Severity.flag, details=injected))
    if steering:
        out.append(GuardVerdict(name="triage_steering", passed=False, severity=Severity.flag, details=steering))
    return out


def triage_ticket(context: TaskContext, ticket: Ticket, now: datetime | None = None) -> TaskOutcome[TicketTriage]:
    repo = context.repo
    now = now or datetime.now(UTC)
    thread = load_thread(repo, ticket)
    messages, ignored = cleared(thread)
    subject, _ = split_evidence(thread.subject)
    text = ticket_text(subject, [t for _, t in messages]) or thread.subject
    settings = triage_settings(repo)
    classifier = classifier_for(repo, context.embedder)
    embedding = classifier.encoder.encode([text])  # type: ignore[attr-defined]
    topic = classifier.suggest(combine(embedding, [text], classifier.head.layout), label_names(repo),
                               settings.unsure_below)[0]  # fmt: skip
    same_encoder = classifier.encoder is context.embedder
    vector = embedding[0] if same_encoder else context.embedder.encode([text])[0]  # the search index's vectors
    queue = label_queues(repo).get(topic.label or "") if not topic.unsure else None
    routing = suggest_routing(repo, context.searcher.index, vector, ticket, queue)
    account = repo.get(Account, ticket.account_id) if ticket.account_id else None
    contact = repo.get(Contact, ticket.contact_id) if ticket.contact_id else None
    urgency = assess(
        [
            *text_reasons([(None, subject), *messages]),
            *repeat_reasons(repo, ticket, len(messages), now),
            account_reason(account),
            sentiment_reason(sentiment_scores(context, messages)),
        ]
    )
    result = TicketTriage(
        ticket_id=ticket.id,
        topic=topic,
        urgency=urgency,
        language=language_of([t for _, t in messages] or [thread.subject], contact),
        routing=routing,
        ignored=ignored,
        injection_suspected=any("prompt injection" in item for item in ignored),
    )
    provenance = Provenance(
        task=TASK,
        model=f"triage classifier ({topic.head})",
        input_ids=[f"message:{i}" for i, _ in messages],
        source_ids=[f"ticket:{e.ticket_id}" for e in routing.evidence],
    )
    return TaskOutcome[TicketTriage](
        task=TASK, result=result, verdicts=verdicts_for(ignored), provenance=provenance, subject_id=ticket.id
    )


@task(
    TASK,
    subject="ticket",
    subject_field="ticket_id",
    permission=Permission.run_support,
    review=Permission.review_support,
    defaults={Profile.small: "classifier", Profile.capable: "classifier"},
    needs_approval=False,
    stale_on=(CUSTOMER_MESSAGE,),
    carriers=("message",),
)
def run_triage(context: TaskContext, params: TriageParams) -> TaskOutcome[TicketTriage]:
    """Triage a ticket: topic (from the workspace's labels), urgency with reasons, language, routing suggestion."""
    ticket = context.repo.resolve(Ticket, params.ticket_id)
    return triage_ticket(context, ticket)


# -- on arrival -------------------------------------------------------------------------------------------


def latest_triage(repo: Repo, ticket_id: int) -> AiResult | None:
    return repo.session.scalar(
        repo.select(AiResult)
        .where(AiResult.task == TASK, AiResult.subject_kind == "ticket", AiResult.subject_id == ticket_id)
        .order_by(AiResult.id.desc())
        .limit(1)
    )


def needing_triage(repo: Repo, ticket_ids: list[int]) -> list[int]:
    """Of these tickets, those with no triage yet, or whose latest one went stale (the customer wrote again)."""
    if not ticket_ids:
        return []
    latest = (
        select(AiResult.subject_id, func.max(AiResult.id).label("id"))
        .where(
            AiResult.workspace_id == repo.workspace_id,
            AiResult.task == TASK,
            AiResult.subject_kind == "ticket",
            AiResult.subject_id.in_(ticket_ids),
        )
        .group_by(AiResult.subject_id)
        .subquery()
    )
    status = dict(
        repo.session.execute(
            select(latest.c.subject_id, AiResult.status).join(AiResult, AiResult.id == latest.c.id)
        ).all()
    )
    return [t for t in ticket_ids if t not in status or status[t] in (AiStatus.stale, AiStatus.failed)]


def queue_triage(services: Services, repo: Repo, ticket_ids: list[int]) -> list[Job]:
    """Queue a triage job per ticket that needs one (one queued job per ticket), unless the workspace turned
    triage on arrival off."""
    if not ticket_ids or not triage_settings(repo).on_arrival:
        return []
    return [
        services.jobs.submit(repo, "triage_ticket", {"ticket_id": ticket_id}, dedupe_key=f"triage:ticket:{ticket_id}")
        for ticket_id in needing_triage(repo, sorted(set(ticket_ids)))
    ]


@job_kind("triage_ticket", Permission.run_support)
def triage_job(job: JobContext) -> dict[str, Any]:
    """Triage one ticket and, when the workspace turned auto-apply on and the topic is sure, apply it."""
    from copilot.tasks.triage_apply import auto_apply

    ticket_id = int(job.params["ticket_id"])
    outcome = job.services.run_in_workspace(job.workspace, TASK, {"ticket_id": ticket_id})
    with job.services.store.repo(job.workspace) as repo:
        applied = auto_apply(repo, outcome.ai_result_id) if triage_settings(repo).auto_apply else None
    if applied is not None and applied.event_id is not None:
        job.services.jobs.start()  # the ticket.updated delivery
    changes = {field: change.model_dump() for field, change in applied.changes.items()} if applied else {}
    return {
        "ticket_id": ticket_id,
        "ai_result_id": outcome.ai_result_id,
        "auto_applied": changes,
        **outcome.result.job_summary(),
    }
