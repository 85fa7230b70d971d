"""Reply draft: a customer reply grounded in the thread, the account's history and the KB, citing [S1], [S2].

Capable models write the draft under a JSON schema. With the embedded 135M model the default
is a retrieval-based draft: the closest past agent reply or KB passage, framed for the
customer and channel (the tiny model's free text is not reliable enough to send). Either way
the guards run: no URL, email, phone, price, order id or date that is not in the sources or
thread; citations must map to sources; commitments are flagged for explicit approval, and
blocked outright when the thread carries a prompt injection. Text carrying an injection
(``copilot.guards.find_injection``) is never grounding for a fact, and a retrieved source that
carries one is left out of the sources. The draft is saved ``pending`` and is never sent by this task.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

from copilot.auth import Permission
from copilot.errors import ModelError
from copilot.guards import (
    FactKind,
    GuardVerdict,
    Severity,
    check_citations,
    check_commitments,
    check_grounded,
    detect_commitments,
    find_injection,
    ungrounded_facts,
)
from copilot.profiles import Profile
from copilot.prompting import load_prompt
from copilot.store import Repo
from copilot.store.models import AiResult, Contact, Ticket
from copilot.tasks import registry
from copilot.tasks.base import Provenance, TaskOutcome
from copilot.tasks.context import TaskContext
from copilot.tasks.registry import CUSTOMER_MESSAGE, RecordRef, TaskParams, task
from copilot.tasks.thread import Thread, load_thread, sentences

TASK = "reply_draft"
Strategy = Literal["auto", "model", "retrieval"]  # its strategies: the API, CLI and registry read them here
GUARDED_FACTS = (FactKind.url, FactKind.email, FactKind.phone, FactKind.price, FactKind.order_id, FactKind.date)
GREETINGS = {"es": "Hola {name},", "de": "Hallo {name},", "fr": "Bonjour {name},", "en": "Hi {name},"}
CLOSINGS = {"es": "Saludos,", "de": "Viele Grüße,", "fr": "Cordialement,", "en": "Best regards,"}
HOLDING = {
    "es": "Gracias por su mensaje. Estoy revisando su caso y le responderé con una actualización.",
    "de": "Vielen Dank für Ihre Nachricht. Ich prüfe Ihr Anliegen und melde mich mit einem Update.",
    "fr": "Merci pour votre message. J'examine votre demande et je reviens vers vous avec une mise à jour.",
    "en": "Thanks for your message. I'm looking into this and will follow up with an update.",
}


class Source(BaseModel):
    label: str
    record_kind: str
    record_id: int
    text: str


class DraftText(BaseModel):
    """What the model writes."""

    text: str = Field(max_length=1500)
    cited: list[str] = Field(default_factory=list, max_length=4, description="Source labels used, e.g. ['S1'].")


class ReplyDraft(BaseModel):
    text: str
    sources: list[Source] = Field(default_factory=list)
    channel: str
    language: str
    needs_explicit_approval: list[str] = Field(default_factory=list, description="Commitments a human must approve.")
    injection_suspected: bool = False


def detect_injection(thread: Thread) -> list[str]:
    return [
        f"message {m.id}: {hit}"
        for m in thread.messages
        if m.author_kind == "customer" and (hit := find_injection(m.text))
    ]


def quarantine(sources: list[Source]) -> tuple[list[Source], list[str]]:
    """Sources that carry a prompt injection (a poisoned KB article) are left out, the others relabelled S1, S2, ..."""
    kept, left_out = [], []
    for source in sources:
        if hit := find_injection(source.text):
            left_out.append(f"{source.record_kind} {source.record_id} (left out of the sources): {hit}")
        else:
            kept.append(source.model_copy(update={"label": f"S{len(kept) + 1}"}))
    return kept, left_out


def guess_language(thread: Thread, contact: Contact | None) -> str:
    if contact is not None and contact.language in GREETINGS:
        return contact.language
    text = " ".join(m.text for m in thread.messages if m.author_kind == "customer").lower()
    markers = {
        "es": (" hola", " gracias", " factura", "¿"),
        "de": (" hallo", " danke", " rechnung", " bitte"),
        "fr": (" bonjour", " merci", " facture", " nous avons"),
    }
    best = max(markers, key=lambda lang: sum(text.count(m) for m in markers[lang]))
    return best if any(m in text for m in markers[best]) else "en"


def find_sources(context: TaskContext, ticket: Ticket, thread: Thread, limit: int = 4) -> list[Source]:
    """Agent replies from the account's other tickets and KB passages that match the customer's latest ask."""
    from retrieval.search import SearchFilters

    query = " ".join([thread.subject, *[m.text for m in thread.messages if m.author_kind == "customer"][-2:]])[:2000]
    # A ticket with no account may draw only on what the whole workspace shares, never another customer's history.
    filters = (
        SearchFilters(account_id=ticket.account_id, kinds=["message", "kb_article"])
        if ticket.account_id
        else SearchFilters(kinds=["message", "kb_article"], shared_only=True)
    )
    own = set(thread.ids)
    hits = context.searcher.search(context.repo, query, filters, limit=limit * 4)
    usable = [
        h for h in hits if h.record_kind == "kb_article" or (h.text.startswith("Agent:") and h.record_id not in own)
    ]
    return [
        Source(label=f"S{n}", record_kind=h.record_kind, record_id=h.record_id, text=h.text.removeprefix("Agent: "))
        for n, h in enumerate(usable[:limit], start=1)
    ]


def frame(body: str, thread: Thread, language: str, customer_name: str | None, agent: str | None) -> str:
    first = (customer_name or "").split(" ")[0] or "there"
    greeting = GREETINGS[language].format(name=first)
    if thread.channel == "email":
        return f"{greeting}\n\n{body}\n\n{CLOSINGS[language]}\n{agent or 'Support team'}"
    return f"{greeting} {body}"


def grounding_texts(thread: Thread, sources: list[Source]) -> list[str]:
    """What case facts may come from: this thread and the KB. Other tickets' replies lend wording, not facts."""
    return [*thread.texts(), *(s.text for s in sources if s.record_kind == "kb_article")]


def retrieval_draft(sources: list[Source], thread: Thread, language: str) -> str:
    """The closest past agent reply and KB passage, without greetings, signatures or another case's facts, cited."""
    grounding = grounding_texts(thread, sources)
    parts = []
    for kinds in (("message",), ("kb_article",)):
        for source in (s for s in sources if s.record_kind in kinds):
            body = (
                source.text.split("\n", 1)[-1] if source.record_kind == "kb_article" else source.text
            )  # KB chunks start with the title
            candidates = (re.sub(r"^(\d+\.|-)\s+", "", s) for s in sentences(body) if not s.startswith("#"))
            picked = [s for s in candidates if not ungrounded_facts(s, grounding, GUARDED_FACTS)][:2]
            if picked:
                parts.append(f"{' '.join(picked)} [{source.label}]")
                break
    return " ".join(parts) or HOLDING[language]


def draft_guards(text: str, thread: Thread, sources: list[Source], injection: list[str]) -> list[GuardVerdict]:
    grounding = [
        t for t in grounding_texts(thread, sources) if not find_injection(t)
    ]  # an attacker's link is never a source
    commitments = check_commitments(text)
    if injection and not commitments.passed:
        commitments = commitments.model_copy(
            update={
                "severity": Severity.block,
                "details": [*commitments.details, "promise made while the thread carries a prompt injection"],
            }
        )
    verdicts = [
        check_grounded(text, grounding, GUARDED_FACTS),
        check_citations(text, [s.label for s in sources]),
        commitments,
    ]
    if injection:
        verdicts.append(GuardVerdict(name="prompt_injection", passed=False, severity=Severity.flag, details=injection))
    return verdicts


def draft_for_thread(
    context: TaskContext, ticket: Ticket, thread: Thread, strategy: str = "auto"
) -> TaskOutcome[ReplyDraft]:
    contact = context.repo.get(Contact, ticket.contact_id) if ticket.contact_id else None
    language = guess_language(thread, contact)
    sources, left_out = quarantine(find_sources(context, ticket, thread))
    injection = [*detect_injection(thread), *left_out]
    prompt = load_prompt(TASK)
    provenance = Provenance(
        task=TASK,
        prompt_name=prompt.name,
        prompt_version=prompt.version,
        input_ids=[f"message:{i}" for i in thread.ids],
        source_ids=[f"{s.label}={s.record_kind}:{s.record_id}" for s in sources],
    )
    customer = (
        contact.name if contact else next((m.author for m in thread.messages if m.author_kind == "customer"), None)
    )
    verdicts: list[GuardVerdict] = []
    reason = None
    if registry.get(TASK).resolve_strategy(strategy, context.profile) == "model":
        try:
            result = context.gateway.structured(
                prompt.render(thread=thread, sources=sources, language=language), DraftText, max_tokens=600
            )
            completion = result.completion
            provenance = provenance.with_completion(completion)
            if result.ok:
                text = frame(result.value.text.strip(), thread, language, customer, ticket.assignee)
                verdicts = draft_guards(text, thread, sources, injection)
                if not any(not v.passed and v.severity is Severity.block for v in verdicts):
                    return _outcome(text, thread, sources, language, injection, verdicts, provenance)
                reason = "model draft failed a guard"
            else:
                verdicts, reason = (
                    [GuardVerdict(name="schema", passed=False, details=[result.error or "invalid"])],
                    "model output failed validation",
                )
        except ModelError as error:
            reason = f"model unavailable: {error}"
    else:
        provenance = provenance.model_copy(update={"model": "retrieval"})
    text = frame(retrieval_draft(sources, thread, language), thread, language, customer, ticket.assignee)
    own = draft_guards(text, thread, sources, injection)
    if any(not v.passed and v.severity is Severity.block for v in own):
        text = frame(HOLDING[language], thread, language, customer, ticket.assignee)
        own = draft_guards(text, thread, sources, injection)
        reason = reason or "the closest past reply failed a guard; a holding reply was drafted"
    return _outcome(text, thread, sources, language, injection, [*verdicts, *own], provenance, reason)


def _outcome(
    text: str,
    thread: Thread,
    sources: list[Source],
    language: str,
    injection: list[str],
    verdicts: list[GuardVerdict],
    provenance: Provenance,
    reason: str | None = None,
) -> TaskOutcome[ReplyDraft]:
    draft = ReplyDraft(
        text=text,
        sources=sources,
        channel=thread.channel,
        language=language,
        needs_explicit_approval=detect_commitments(text),
        injection_suspected=bool(injection),
    )
    return TaskOutcome[ReplyDraft](
        task=TASK,
        result=draft,
        verdicts=verdicts,
        provenance=provenance,
        used_fallback=reason is not None,
        fallback_reason=reason,
    )


def check_edited_draft(repo: Repo, row: AiResult, text: str) -> list[GuardVerdict]:
    """A reviewer's edit of a draft, held to the draft's own guards (facts, citations, commitments, injection)."""
    ticket = repo.get(Ticket, row.subject_id) if row.subject_id else None
    if ticket is None:
        return [GuardVerdict(name="ticket", passed=False, details=["the ticket no longer exists"])]
    thread = load_thread(repo, ticket)
    sources = [Source.model_validate(s) for s in row.content.get("result", {}).get("sources", [])]
    injection = detect_injection(thread) or (["flagged when drafted"] if row.content.get("result", {}).get(
        "injection_suspected") else [])  # fmt: skip
    return draft_guards(text, thread, sources, injection)


class ReplyDraftParams(TaskParams):
    ticket_id: RecordRef
    strategy: Strategy = "auto"


@task(
    TASK,
    subject="ticket",
    subject_field="ticket_id",
    permission=Permission.run_support,
    review=Permission.review_support,
    defaults={Profile.small: "retrieval", Profile.capable: "model"},
    prompt=TASK,
    stale_on=(CUSTOMER_MESSAGE,),
    delivers=True,
    carriers=("message", "kb_article"),
    check_edit=check_edited_draft,
)
def draft_reply(context: TaskContext, params: ReplyDraftParams) -> TaskOutcome[ReplyDraft]:
    """Draft a reply grounded in the thread, history and KB; it waits for human review and is never sent here."""
    ticket = context.repo.resolve(Ticket, params.ticket_id)
    outcome = draft_for_thread(context, ticket, load_thread(context.repo, ticket), params.strategy)
    outcome.subject_id = ticket.id
    return outcome
