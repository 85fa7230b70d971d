"""Ticket summary: intent, what happened, agent commitments, open questions, status; every bullet cites message ids.

Two paths: the model writes the summary as JSON under a schema (then guards check it), or an
extractive summary picks sentences from the thread. With the embedded 135M model the
extractive path is the default (it scores better on public dialogue-summary data, see
evals/summaries.py); with other models the model path runs and the extractive one is the fallback,
also when the thread carries a prompt injection (flagged ``prompt_injection``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from copilot.auth import Permission
from copilot.errors import ModelError
from copilot.guards import (
    FactKind,
    GuardVerdict,
    check_cited_ids,
    check_grounded,
    check_names_grounded,
    injection_flags,
)
from copilot.profiles import Profile
from copilot.prompting import load_prompt
from copilot.store.models import Ticket
from copilot.tasks import registry
from copilot.tasks.base import Provenance, TaskOutcome
from copilot.tasks.context import TaskContext
from copilot.tasks.registry import CUSTOMER_MESSAGE, RecordRef, TaskParams, task
from copilot.tasks.thread import Thread, ThreadMessage, load_thread, sentences

TASK = "ticket_summary"
Strategy = Literal["auto", "model", "extractive"]  # its strategies: the API, CLI and registry read them here
Encode = Callable[[list[str]], np.ndarray]
COMMITMENT = re.compile(
    r"\b(I'll|I will|we'll|we will|I've|I have|we've|we have|has been|have been|is now|let me|I'm going to)\b", re.I
)


class Bullet(BaseModel):
    text: str = Field(max_length=400)
    message_ids: list[int] = Field(default_factory=list, max_length=4)


class TicketSummary(BaseModel):
    intent: str = Field(max_length=200, description="What the customer wants, in one line.")
    what_happened: list[Bullet] = Field(default_factory=list, max_length=4)
    agent_commitments: list[Bullet] = Field(default_factory=list, max_length=3)
    open_questions: list[Bullet] = Field(default_factory=list, max_length=3)
    status: str = Field(default="", max_length=80)

    def as_text(self) -> str:
        """The summary as prose: intent, then what happened, then promises not already said."""
        text = " ".join(p.strip() for p in [self.intent, *(b.text for b in self.what_happened)] if p.strip())
        extra = [b.text for b in self.agent_commitments if b.text.rstrip("…") not in text]
        return " ".join([text, *extra]).strip()

    def cited_ids(self) -> list[int]:
        return [
            i
            for bullets in (self.what_happened, self.agent_commitments, self.open_questions)
            for b in bullets
            for i in b.message_ids
        ]


def clip(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def thread_status(thread: Thread) -> str:
    waiting = "waiting on the agent" if thread.customer_wrote_last else "waiting on the customer"
    return f"{thread.status}, {waiting}"


def extractive_summary(thread: Thread, encode: Encode | None = None) -> TicketSummary:
    """Key sentences picked from the thread: the customer's opening ask, the agent's answer, follow-ups, promises."""
    candidates = [(m, clip(s)) for m in thread.messages if m.author_kind != "internal_note" for s in sentences(m.text)]
    if not candidates:
        return TicketSummary(intent=clip(thread.subject or "(empty thread)", 200), status=thread_status(thread))
    scores = _centrality([s for _, s in candidates], encode)
    best: dict[int, tuple[float, str]] = {}
    for (message, sentence), score in zip(candidates, scores, strict=True):
        if message.id not in best or score > best[message.id][0]:
            best[message.id] = (score, sentence)
    customer = [m for m in thread.messages if m.author_kind == "customer" and m.id in best]
    agents = [m for m in thread.messages if m.author_kind == "agent" and m.id in best]
    opening = customer[0] if customer else next(m for m in thread.messages if m.id in best)
    opening_run = _opening_run(thread, opening)  # a customer often opens with several messages in a row
    opening_sentences = [sentence for message, sentence in candidates if message.id in opening_run]
    intent = clip(opening_sentences[0], 200)  # customers lead with the ask
    commitments = [
        Bullet(text=clip(s), message_ids=[m.id])
        for m in reversed(agents)
        for s in sentences(m.text)
        if COMMITMENT.search(s)
    ][:2]
    # Lead-first and role-aware: the rest of the opening, then the agent's first answer; the latest
    # customer message goes to open questions (adding it to the prose lowers ROUGE on both public sets).
    happened = []
    if len(opening_sentences) > 1:
        happened.append(Bullet(text=clip(" ".join(opening_sentences[1:]), 400), message_ids=sorted(opening_run)[:4]))
    if agents:
        happened.append(Bullet(text=clip(" ".join(sentences(agents[0].text)), 400), message_ids=[agents[0].id]))
    last = thread.messages[-1]
    questions = []
    if thread.customer_wrote_last and last.author_kind == "customer" and last.id != opening.id and last.id in best:
        asked = [s for s in sentences(last.text) if s.endswith("?")] or [best[last.id][1]]
        questions = [Bullet(text=clip(asked[0]), message_ids=[last.id])]
    return TicketSummary(
        intent=intent,
        what_happened=happened[:3],
        agent_commitments=commitments,
        open_questions=questions,
        status=thread_status(thread),
    )


def _opening_run(thread: Thread, opening: ThreadMessage) -> set[int]:
    ids, started = set(), False
    for message in thread.messages:
        if message.id == opening.id:
            started = True
        if started:
            if message.author_kind != opening.author_kind:
                break
            ids.add(message.id)
    return ids


def _centrality(texts: list[str], encode: Encode | None) -> list[float]:
    """Cosine similarity of each sentence to the centroid (1.0 each without embeddings)."""
    if encode is None or len(texts) < 3:
        return [1.0] * len(texts)
    vectors = encode(texts)
    centroid = vectors.mean(axis=0)
    centroid /= np.linalg.norm(centroid) or 1.0
    return [float(v) for v in vectors @ centroid]


def summary_guards(summary: TicketSummary, thread: Thread) -> list[GuardVerdict]:
    sources = thread.texts()
    text = " ".join(
        [summary.intent, *(b.text for b in summary.what_happened + summary.agent_commitments + summary.open_questions)]
    )
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
        check_cited_ids(summary.cited_ids(), thread.ids, what="message"),
        check_grounded(text, sources, kinds),
        check_names_grounded(text, sources),
        # a flag: a thread that carries a prompt injection gets the extractive summary, which no instruction can steer
        *injection_flags(
            [
                ("subject", thread.subject),
                *((f"message {m.id}", m.text) for m in thread.messages if m.author_kind == "customer"),
            ]
        ),
    ]


def summarize_thread(context: TaskContext, thread: Thread, strategy: str = "auto") -> TaskOutcome[TicketSummary]:
    """Summarise a thread (no storage): the model path with guards, or the extractive path."""
    prompt = load_prompt(TASK)
    use_model = registry.get(TASK).resolve_strategy(strategy, context.profile) == "model"
    provenance = Provenance(
        task=TASK,
        prompt_name=prompt.name,
        prompt_version=prompt.version,
        input_ids=[f"message:{i}" for i in thread.ids],
    )
    if use_model:
        try:
            result = context.gateway.structured(prompt.render(thread=thread), TicketSummary, max_tokens=500)
        except ModelError as error:
            return _extractive(context, thread, provenance, [], f"model unavailable: {error}")
        completion = result.completion
        provenance = provenance.with_completion(completion)
        if not result.ok:
            return _extractive(
                context,
                thread,
                provenance,
                [GuardVerdict(name="schema", passed=False, details=[result.error or "invalid"])],
                "model output failed validation",
            )
        verdicts = summary_guards(result.value, thread)
        if any(not v.passed for v in verdicts):
            return _extractive(context, thread, provenance, verdicts, "model output failed a guard")
        result.value.status = thread_status(thread)
        return TaskOutcome[TicketSummary](task=TASK, result=result.value, verdicts=verdicts, provenance=provenance)
    return _extractive(context, thread, provenance.model_copy(update={"model": "extractive"}))


def _extractive(
    context: TaskContext,
    thread: Thread,
    provenance: Provenance,
    verdicts: list[GuardVerdict] = (),
    reason: str | None = None,
) -> TaskOutcome[TicketSummary]:
    """The extractive summary; ``reason`` set means it stands in for a model answer that could not be used."""
    summary = extractive_summary(thread, context.embedder.encode)
    return TaskOutcome[TicketSummary](
        task=TASK,
        result=summary,
        verdicts=[*verdicts, *summary_guards(summary, thread)],
        provenance=provenance,
        used_fallback=reason is not None,
        fallback_reason=reason,
    )


class TicketSummaryParams(TaskParams):
    ticket_id: RecordRef
    strategy: Strategy = "auto"


@task(
    TASK,
    subject="ticket",
    subject_field="ticket_id",
    permission=Permission.run_support,
    review=Permission.review_support,
    needs_approval=False,
    defaults={Profile.small: "extractive", Profile.capable: "model"},
    prompt=TASK,
    stale_on=(CUSTOMER_MESSAGE,),
    carriers=("message",),
)
def summarize_ticket(context: TaskContext, params: TicketSummaryParams) -> TaskOutcome[TicketSummary]:
    """Summarise a ticket: intent, what happened, agent commitments, open questions, status (with message ids)."""
    ticket = context.repo.resolve(Ticket, params.ticket_id)
    outcome = summarize_thread(context, load_thread(context.repo, ticket), params.strategy)
    outcome.subject_id = ticket.id
    return outcome
