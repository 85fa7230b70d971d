"""Ticket summary: intent, what happened, agent commitments, open questions, status; every bullet cites message ids.

Extract, then abstract. The extractive step always runs: it picks the evidence (the customer's opening ask, the
agent's answers, the latest follow-up, every promise the agent made) with message ids, and works out the status
from who owes the next action (an agent who promised to check something owes it, whoever wrote last). With a
``capable`` model the model then writes the summary in its own words from the thread, two short sentences (what
the customer wants or reports; what the agent did or suggested), plain text rather than JSON (a grammar makes small
models take the shortest valid answer); the bullets carry those sentences with the evidence ids, and the promises
and open questions stay the extracted ones. Guards: cited ids exist, names and numbers come from the thread, no
signature or greeting in a bullet, and an empty summary of a non-empty thread fails. A failing model answer falls
back to the extractive summary, flagged; so does a thread that carries a prompt injection.
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
    prose_problem,
    signature_block,
)
from copilot.profiles import Profile
from copilot.prompting import load_prompt
from copilot.store.models import Ticket
from copilot.tasks.base import Provenance, TaskOutcome
from copilot.tasks.context import TaskContext
from copilot.tasks.registry import CUSTOMER_MESSAGE, RecordRef, TaskParams, task
from copilot.tasks.thread import NAME_LINE, Thread, ThreadMessage, clip, load_thread, sentences

TASK = "ticket_summary"
Strategy = Literal["auto", "model", "extractive"]  # its strategies: the API, CLI and registry read them here
Encode = Callable[[list[str]], np.ndarray]
# What an agent promises: to do something ("I'll", "let me"), or that it is being done ("I'm checking").
COMMITMENT = re.compile(
    r"\b(I'll|I will|we'll|we will|I've|I have|we've|we have|has been|have been|is now|let me|I'm going to|"
    r"I am going to|(I'm|I am|we're|we are) (double-)?(checking|looking into|investigating|escalating|asking|"
    r"following up|working on|reviewing|confirming)|(I|we) (have )?(asked|escalated|raised|passed)|"
    r"get back to you|follow up|keep you (posted|updated))\b",
    re.I,
)
FACT_KINDS = (
    FactKind.url,
    FactKind.email,
    FactKind.phone,
    FactKind.price,
    FactKind.order_id,
    FactKind.date,
    FactKind.number,
)
GREETING_START = re.compile(r"^(hi|hello|hey|dear|hola|hallo|bonjour)\b", re.I)
ABSTRACT_LABEL = re.compile(r"^\s*(sentence\s*\d|summary|customer|agent|\d[.)])\s*[:.-]\s*", re.I)


class Bullet(BaseModel):
    text: str = Field(max_length=400)
    message_ids: list[int] = Field(default_factory=list, max_length=4)


class TicketSummary(BaseModel):
    intent: str = Field(max_length=200, description="What the customer wants, in one line.")
    what_happened: list[Bullet] = Field(default_factory=list, max_length=4)
    agent_commitments: list[Bullet] = Field(default_factory=list, max_length=3)
    open_questions: list[Bullet] = Field(default_factory=list, max_length=3)
    status: str = Field(default="", max_length=160)
    abstract: str = Field(
        default="", max_length=600, description="The summary in the model's words, when it wrote one."
    )

    def as_text(self) -> str:
        """The summary as prose: the model's abstract, else intent, what happened and promises not already said."""
        if self.abstract:
            return self.abstract
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

    def bullet_texts(self) -> list[str]:
        return [self.intent, *(b.text for b in self.what_happened + self.agent_commitments + self.open_questions)]


# -- extract ------------------------------------------------------------------------------------------
def promises(thread: Thread) -> list[Bullet]:
    """The agent's promises, newest first (every one, up to three: a promise must never go missing)."""
    found = [
        Bullet(text=clip(s, 240), message_ids=[m.id])
        for m in reversed(thread.messages)
        if m.author_kind == "agent"
        for s in sentences(m.text)
        if COMMITMENT.search(s)
    ]
    return found[:3]


def next_action_status(thread: Thread) -> str:
    """Who owes the next action: an open promise or an unanswered customer, whoever wrote last."""
    visible = [m for m in thread.messages if m.author_kind != "internal_note"]
    if thread.status in ("solved", "closed"):
        return f"{thread.status}"
    if not visible:
        return f"{thread.status}, no messages yet"
    last = visible[-1]
    if last.author_kind == "customer":
        return f"{thread.status}, waiting on the agent (the customer wrote last)"
    promised = [s for s in sentences(last.text) if COMMITMENT.search(s)]
    if promised:
        return clip(f"{thread.status}, waiting on the agent: promised to {_promise_gist(promised[0])}", 160)
    asked = [s for s in sentences(last.text) if s.endswith("?")]
    return f"{thread.status}, waiting on the customer" + (" (the agent asked a question)" if asked else "")


def _promise_gist(sentence: str) -> str:
    match = COMMITMENT.search(sentence)
    rest = sentence[match.end() :].strip(" ,.;:") if match else sentence
    return clip(rest or sentence, 90)


def extractive_summary(thread: Thread, encode: Encode | None = None) -> TicketSummary:
    """Key sentences picked from the thread: the customer's opening ask, the agent's answer, follow-ups, promises."""
    candidates = [
        (m, clip(s, 240)) for m in thread.messages if m.author_kind != "internal_note" for s in sentences(m.text)
    ]
    status = next_action_status(thread)
    if not candidates:
        return TicketSummary(intent=clip(thread.subject or "(empty thread)", 200), status=status)
    best = _best_sentences(candidates, encode)
    customer = [m for m in thread.messages if m.author_kind == "customer" and m.id in best]
    agents = [m for m in thread.messages if m.author_kind == "agent" and m.id in best]
    opening = customer[0] if customer else next(m for m in thread.messages if m.id in best)
    opening_run = _opening_run(thread, opening)  # a customer often opens with several messages in a row
    opening_sentences = [sentence for message, sentence in candidates if message.id in opening_run]
    # Lead-first and role-aware: the rest of the opening, then the agent's first answer; the latest
    # customer message goes to open questions (adding it to the prose lowers ROUGE on both public sets).
    happened = []
    if len(opening_sentences) > 1:
        happened.append(Bullet(text=clip(" ".join(opening_sentences[1:]), 400), message_ids=sorted(opening_run)[:4]))
    if agents:
        happened.append(Bullet(text=clip(" ".join(sentences(agents[0].text)), 400), message_ids=[agents[0].id]))
    return TicketSummary(
        intent=clip(opening_sentences[0], 200),
        what_happened=happened[:3],
        agent_commitments=promises(thread),
        open_questions=_open_questions(thread, opening, best),
        status=status,
    )


def _best_sentences(candidates: list[tuple[ThreadMessage, str]], encode: Encode | None) -> dict[int, str]:
    scores = _centrality([s for _, s in candidates], encode)
    best: dict[int, tuple[float, str]] = {}
    for (message, sentence), score in zip(candidates, scores, strict=True):
        if message.id not in best or score > best[message.id][0]:
            best[message.id] = (score, sentence)
    return {message_id: sentence for message_id, (_, sentence) in best.items()}


def _open_questions(thread: Thread, opening: ThreadMessage, best: dict[int, str]) -> list[Bullet]:
    last = thread.messages[-1]
    if not (
        thread.customer_wrote_last and last.author_kind == "customer" and last.id != opening.id and last.id in best
    ):
        return []
    asked = [s for s in sentences(last.text) if s.endswith("?")] or [best[last.id]]
    return [Bullet(text=clip(asked[0], 240), message_ids=[last.id])]


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


# -- abstract -----------------------------------------------------------------------------------------
def abstract_sentences(text: str) -> list[str]:
    """The model's answer as at most three clean sentences (labels, bullets and quotes removed)."""
    lines = [ABSTRACT_LABEL.sub("", line.strip(" -*•\"'")) for line in text.strip().split("\n") if line.strip()]
    joined = " ".join(line for line in lines if line)
    found = [s.strip() for s in re.split(r"(?<=[.!?])\s+", joined) if len(s.strip()) > 3]
    return [clip(s, 300) for s in found[:3]]


def abstractive_summary(evidence: TicketSummary, thread: Thread, written: list[str]) -> TicketSummary:
    """The model's sentences as the summary's prose and bullets, each with the ids of its evidence messages."""
    customer_ids = sorted({i for b in evidence.what_happened[:1] for i in b.message_ids} | _customer_ids(thread))[:4]
    agent_ids = [m.id for m in thread.messages if m.author_kind == "agent"][-4:]
    bullets = [Bullet(text=written[0], message_ids=customer_ids)]
    bullets += [Bullet(text=s, message_ids=agent_ids if agent_ids else customer_ids) for s in written[1:]]
    return evidence.model_copy(
        update={"intent": clip(written[0], 200), "what_happened": bullets, "abstract": clip(" ".join(written), 600)}
    )


def _customer_ids(thread: Thread) -> set[int]:
    customers = [m.id for m in thread.messages if m.author_kind == "customer"]
    return set(customers[:2] + customers[-1:])


# -- guards -------------------------------------------------------------------------------------------
def check_content(summary: TicketSummary, thread: Thread) -> GuardVerdict:
    """A thread with messages gets a summary with content (a thread with an agent reply: what happened)."""
    problems = []
    if thread.messages and not summary.intent.strip():
        problems.append("no intent for a thread with messages")
    if any(m.author_kind == "agent" for m in thread.messages) and not summary.what_happened:
        problems.append("nothing in what_happened for a thread with an agent reply")
    return GuardVerdict(name="content", passed=not problems, details=problems)


def check_no_signatures(summary: TicketSummary, thread: Thread) -> GuardVerdict:
    """No bullet carries a signature, a sign-off or a greeting."""
    closings = {_norm(line) for m in thread.messages for line in _signature_lines(m.text)}
    found = []
    for text in summary.bullet_texts():
        tail = text.rstrip(" .…").rsplit(". ", 1)[-1]
        if GREETING_START.match(text.strip()) or any(c and _norm(text).endswith(c) for c in closings):
            found.append(clip(text, 80))
        elif tail != text and NAME_LINE.match(tail.strip()) and _norm(tail) in closings:
            found.append(clip(text, 80))
    return GuardVerdict(
        name="no_signatures", passed=not found, details=[f"signature or greeting in: {t}" for t in found]
    )


def _signature_lines(text: str) -> list[str]:
    block = signature_block(text) or ""
    lines = [line.strip() for line in block.split("\n")[1:] if line.strip()]
    last = text.strip().split("\n")[-1].strip()
    return lines + ([last] if NAME_LINE.match(last) else [])


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def summary_guards(summary: TicketSummary, thread: Thread) -> list[GuardVerdict]:
    sources = thread.texts()
    text = " ".join([*summary.bullet_texts(), summary.abstract])
    return [
        check_cited_ids(summary.cited_ids(), thread.ids, what="message"),
        check_grounded(text, sources, FACT_KINDS),
        check_names_grounded(text, sources),
        check_content(summary, thread),
        check_no_signatures(summary, thread),
        # a flag: a thread that carries a prompt injection gets the extractive summary, which no instruction can steer
        *injection_flags(
            [
                ("subject", thread.subject),
                *((f"message {m.id}", m.text) for m in thread.messages if m.author_kind == "customer"),
            ]
        ),
    ]


# -- the task -----------------------------------------------------------------------------------------
def summarize_thread(context: TaskContext, thread: Thread, strategy: str = "auto") -> TaskOutcome[TicketSummary]:
    """Summarise a thread (no storage): extract the evidence, then (model path) have the model write it up."""
    prompt = load_prompt(TASK)
    provenance = Provenance(
        task=TASK,
        prompt_name=prompt.name,
        prompt_version=prompt.version,
        input_ids=[f"message:{i}" for i in thread.ids],
    )
    evidence = extractive_summary(thread, context.embedder.encode)
    if context.strategy(TASK, strategy) != "model":
        return _outcome(evidence, thread, provenance.model_copy(update={"model": "extractive"}))
    if injection := injection_flags([(f"message {m.id}", m.text) for m in thread.messages]):
        return _outcome(evidence, thread, provenance, injection, "the thread carries a prompt injection")
    try:
        messages = prompt.render(thread=thread)
        completion = context.gateway.complete(messages, max_tokens=120, temperature=0.0)
    except ModelError as error:
        return _outcome(evidence, thread, provenance, [], f"model unavailable: {error}")
    provenance = provenance.with_completion(completion)
    problem = prose_problem(completion.text, messages)
    written = [] if problem else abstract_sentences(completion.text)
    if not written:
        problem = problem or "the model wrote no summary"
        return _outcome(
            evidence, thread, provenance, [GuardVerdict(name="content", passed=False, details=[problem])], problem
        )
    summary = abstractive_summary(evidence, thread, written)
    verdicts = summary_guards(summary, thread)
    if any(not v.passed for v in verdicts):
        rejected = [
            v.model_copy(update={"details": [f"model summary (replaced): {d}" for d in v.details]})
            for v in verdicts
            if not v.passed
        ]
        return _outcome(evidence, thread, provenance, rejected, "model summary failed a guard")
    return TaskOutcome[TicketSummary](task=TASK, result=summary, verdicts=verdicts, provenance=provenance)


def _outcome(
    summary: TicketSummary,
    thread: Thread,
    provenance: Provenance,
    verdicts: list[GuardVerdict] = (),
    reason: str | None = None,
) -> TaskOutcome[TicketSummary]:
    """The extractive summary; ``reason`` set means it stands in for a model answer that could not be used."""
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
