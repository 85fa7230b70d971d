"""Reply draft: the agent's next reply, answering the customer's latest message, grounded and cited [S1], [S2].

Sources (copilot/tasks/reply_sources.py): the agent replies that followed earlier customer questions like this one
(the account's own history, matched question to question), the workspace's reply library of approved, scrubbed
replies, and KB passages, each with its similarity to the ask. With none above the threshold the draft is a clearly
marked holding reply (``confident`` false, a ``relevance`` flag), never a confident answer to another question.

The default on every profile (measured on Bitext history, it beat both local Qwen models) is a retrieval draft: the
best source's generic sentences, in the customer's language only (another language gets the holding reply in
theirs). The model strategy writes the reply from the thread and the chosen sources, in the customer's language for
the whole text, sized for the channel, citing [S#] (few-shot prompt; a paragraph or list drawn from a source that
the model left uncited gets that source's label, and an answer that points the customer at "the sources" gives way
to the retrieval draft). Guards,
either way: no URL, email, phone, price, order id or date that is not in this thread or the KB; citations map to
sources; no unfilled library slot; no claim copied from another customer's case ("we credited last month's fee");
commitments flagged for explicit approval and blocked when the thread carries a prompt injection. The draft is saved
``pending`` and is never sent by this task. Approving one adds it, scrubbed, to the reply library.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field
from rapidfuzz import fuzz

from copilot.auth import Permission
from copilot.errors import ModelError
from copilot.guards import (
    CITATION,
    FactKind,
    GuardVerdict,
    Severity,
    check_citations,
    check_commitments,
    check_grounded,
    detect_commitments,
    find_injection,
    prose_problem,
    ungrounded_facts,
)
from copilot.language import detect_language
from copilot.profiles import Profile
from copilot.prompting import load_prompt
from copilot.store import Repo
from copilot.store.models import AiResult, Contact, Ticket
from copilot.tasks.base import Provenance, TaskOutcome
from copilot.tasks.context import TaskContext
from copilot.tasks.registry import CUSTOMER_MESSAGE, RecordRef, TaskParams, task
from copilot.tasks.reply_library import add_to_library, has_slots
from copilot.tasks.reply_sources import MAX_STEPS, NUMBERED, Source, find_sources, latest_ask
from copilot.tasks.thread import NAME_LINE, Thread, load_thread, sentences

TASK = "reply_draft"
Strategy = Literal["auto", "model", "retrieval"]  # its strategies: the API, CLI and registry read them here
GUARDED_FACTS = (FactKind.url, FactKind.email, FactKind.phone, FactKind.price, FactKind.order_id, FactKind.date)
GREETINGS = {
    "es": "Hola {name},",
    "de": "Hallo {name},",
    "fr": "Bonjour {name},",
    "en": "Hi {name},",
    "pt": "Olá {name},",
    "it": "Ciao {name},",
    "nl": "Hallo {name},",
}
CLOSINGS = {
    "es": "Saludos,",
    "de": "Viele Grüße,",
    "fr": "Cordialement,",
    "en": "Best regards,",
    "pt": "Atenciosamente,",
    "it": "Cordiali saluti,",
    "nl": "Met vriendelijke groet,",
}
HOLDING = {
    "es": "Gracias por su mensaje. Estoy revisando su caso y le responderé con una actualización.",
    "de": "Vielen Dank für Ihre Nachricht. Ich prüfe Ihr Anliegen und melde mich mit einem Update.",
    "fr": "Merci pour votre message. J'examine votre demande et je reviens vers vous avec une mise à jour.",
    "pt": "Obrigado pela sua mensagem. Estou a analisar o seu caso e voltarei com uma atualização.",
    "it": "Grazie per il messaggio. Sto verificando la sua richiesta e le darò un aggiornamento.",
    "nl": "Bedankt voor uw bericht. Ik bekijk uw vraag en kom bij u terug met een update.",
    "en": "Thanks for your message. I'm looking into this and will follow up with an update.",
}
LANGUAGE_NAMES = {
    "en": "English",
    "es": "Spanish",
    "de": "German",
    "fr": "French",
    "pt": "Portuguese",
    "it": "Italian",
    "nl": "Dutch",
}
# A sentence that reports something done for a customer, or promises it: never borrowed from another case.
CASE_CLAIM = re.compile(
    r"\b(credited|refunded|reimbursed|waived|compensated|escalated|cancell?ed|reviewed|approved|issued|processed|"
    r"confirmed|verified|resolved|fixed|arranged|applied|removed|restored|replaced|"
    r"(has|have|had) been|I've|I have|we've|we have)\b",
    re.I,
)
CHAT_SENTENCES = 2
SOURCE_TALK = re.compile(
    r"\b(?:the|these|those|provided|given|listed|above|following) sources?\b(?!\s+of\b)|"
    r"\bsources? (?:provided|above|listed)\b|\b(?:at|in|from|see|visit|per) \[S\d+\]",
    re.I,
)
# Asking for a reference the customer already gave ("Can you provide your order number?" after "cancel order 4411").
ASKS_FOR_REFERENCE = re.compile(
    r"\b(?:provide|share|send|give|tell|confirm|include|let (?:me|us) know)\b[^.?!\n\d]{0,60}?"
    r"\b(?:order|purchase|invoice|account|ticket|reference|booking|transaction)\s*(?:number|no\b|id\b|#)"
    r"(?![^.?!\n]{0,20}\d)",  # "confirm that order number 4411 is the one" names the number: no request
    re.I,
)
GIVEN_REFERENCE = re.compile(r"\b(?=[A-Z0-9-]*\d)[A-Z0-9]+(?:-[A-Z0-9]+)*\b", re.I)
MIN_REFERENCE_DIGITS = 5
# The model writing as the customer would ("Thank you for your assistance. I will follow the steps.").
CUSTOMER_VOICE = re.compile(
    r"^\W*(?:thank you|thanks) (?:so much )?for your (?:assistance|help)\b|"
    r"\bI(?:'ll| will) (?:follow|try) (?:the|these|your) (?:steps|instructions)\b|"
    r"\bI(?:'ll| will) contact (?:your |the )?(?:customer )?support\b",
    re.I,
)
MIN_DRAWN_WORDS = 6  # a shorter block ("Let me know if you need anything else.") is not attributed
DRAWN_SHARE = 0.5
COMMON_WORDS = frozenset(
    """that this with your have will from they them then there their what when which would could should about
    please thank thanks help need into also more just like make sure here only some than very well were been""".split()
)
LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*\u2022])\s+")
GREETING_LINE = re.compile(r"^(hi|hello|dear|hola|hallo|bonjour|olá|ciao)\b[^\n]{0,40}[,!]?$", re.I)
SIGN_OFF_LINE = re.compile(r"^(best( regards)?|kind regards|regards|saludos|cordialement|viele grüße|thanks),?$", re.I)


class ReplyDraft(BaseModel):
    text: str
    sources: list[Source] = Field(default_factory=list)
    channel: str
    language: str
    needs_explicit_approval: list[str] = Field(default_factory=list, description="Commitments a human must approve.")
    injection_suspected: bool = False
    confident: bool = Field(default=True, description="False: no source answers the latest ask; a holding reply.")
    answers_message_id: int | None = Field(default=None, description="The customer message this draft answers.")


def detect_injection(thread: Thread) -> list[str]:
    return [
        f"message {m.id}: {hit}"
        for m in thread.messages
        if m.author_kind == "customer" and (hit := find_injection(m.text))
    ]


def customer_language(thread: Thread, contact: Contact | None) -> str:
    """The contact's language when it is one we write, else the language of what the customer wrote."""
    if contact is not None and contact.language in HOLDING:
        return contact.language
    detected = detect_language(thread.customer_text())
    return detected.code if detected.code in HOLDING and detected.confidence >= 0.5 else "en"


def frame(body: str, thread: Thread, language: str, customer_name: str | None, agent: str | None) -> str:
    first = (customer_name or "").split(" ")[0] or {"es": "", "de": "", "fr": ""}.get(language, "there")
    greeting = GREETINGS[language].format(name=first).replace(" ,", ",")
    if thread.channel == "email":
        return f"{greeting}\n\n{body}\n\n{CLOSINGS[language]}\n{agent or 'Support team'}"
    return f"{greeting} {body}"


def grounding_texts(thread: Thread, sources: list[Source]) -> list[str]:
    """What case facts may come from: this thread and the KB. Other customers' replies lend wording, not facts."""
    return [*thread.texts(), *(s.text for s in sources if s.record_kind == "kb_article")]


# -- the retrieval draft (small models) ---------------------------------------------------------------
def retrieval_draft(sources: list[Source], thread: Thread, language: str) -> str:
    """The best source's generic sentences (no case facts, claims or slots), cited; else the holding reply. On email
    the source's steps come along as a numbered list (they are the answer), besides up to three other sentences."""
    grounding = grounding_texts(thread, sources)
    chat = thread.channel in ("chat", "social")
    for source in sources:
        if source.language != language:
            continue  # never a reply in another language than the customer's
        body = source.text.split("\n", 1)[-1] if source.record_kind == "kb_article" else source.text
        steps = [] if chat else [NUMBERED.sub("", line) for line in body.splitlines() if NUMBERED.match(line)]
        parts: list[tuple[bool, str]] = []  # (is a step, text), in the source's order
        for sentence in (s for s in sentences(body) if not s.startswith("#")):
            is_step = any(sentence[1:] in step for step in steps)
            for clause in (c for c in _clauses(LIST_ITEM.sub("", sentence)) if _generic(c, grounding, source)):
                parts.append((is_step, clause))
        if text := _laid_out(parts, CHAT_SENTENCES if chat else 3):
            return f"{text} [{source.label}]"
    return HOLDING[language]


def _laid_out(parts: list[tuple[bool, str]], max_sentences: int) -> str:
    """Up to ``max_sentences`` sentences and ``MAX_STEPS`` steps, the steps as a numbered list; a sentence that
    introduces a list ("follow these steps:") only when its steps come along."""
    kept: list[tuple[bool, str]] = []
    for n, (is_step, text) in enumerate(parts):
        if is_step:
            if sum(step for step, _ in kept) < MAX_STEPS:
                kept.append((True, text))
        elif text.endswith(":") and not (n + 1 < len(parts) and parts[n + 1][0]):
            continue
        elif sum(not step for step, _ in kept) < max_sentences:
            kept.append((False, text))
    lines: list[str] = []
    number = 0
    for n, (is_step, text) in enumerate(kept):
        if is_step:
            number += 1
            lines.append(f"{number}. {text}")
        elif n and not kept[n - 1][0]:
            lines[-1] += " " + text
        else:
            lines.append(text)
    return "\n".join(lines)


def _clauses(sentence: str) -> list[str]:
    """A sentence split at semicolons, so a generic clause survives beside a case claim."""
    parts = [p.strip() for p in sentence.split(";") if p.strip()]
    if len(parts) == 1:
        return parts
    return [p if p.endswith((".", "!", "?")) else p + "." for p in (p[0].upper() + p[1:] for p in parts)]


def _generic(sentence: str, grounding: list[str], source: Source) -> bool:
    if ungrounded_facts(sentence, grounding, GUARDED_FACTS) or has_slots(sentence):
        return False
    return source.record_kind == "kb_article" or not CASE_CLAIM.search(sentence)


# -- guards -------------------------------------------------------------------------------------------
def check_copied_claims(text: str, thread: Thread, sources: list[Source]) -> GuardVerdict:
    """No sentence that reports or promises something for the customer may come from another customer's case."""
    thread_text = "\n".join(thread.texts())
    borrowed = [s.text for s in sources if s.record_kind in ("message", "reply")]
    copied = []
    for sentence in sentences(re.sub(r"\s*\[S\d+\]", "", text)):
        if not (CASE_CLAIM.search(sentence) or detect_commitments(sentence)):
            continue
        if fuzz.partial_ratio(sentence.lower(), thread_text.lower()) >= 85:
            continue  # said in this thread already
        if any(fuzz.partial_ratio(sentence.lower(), other.lower()) >= 85 for other in borrowed):
            copied.append(sentence[:120])
    return GuardVerdict(
        name="copied_case_claim", passed=not copied, details=[f"from another customer's case: {c}" for c in copied]
    )


def check_slots(text: str) -> GuardVerdict:
    slots = has_slots(text)
    return GuardVerdict(name="library_slots", passed=not slots, details=[f"unfilled slot {{{s}}}" for s in slots])


def check_relevance(sources: list[Source], text: str) -> GuardVerdict:
    if sources:
        best = max(sources, key=lambda s: s.similarity)
        return GuardVerdict(
            name="relevance",
            passed=True,
            severity=Severity.flag,
            details=[f"best source {best.label} ({best.record_kind}) similarity {best.similarity:.2f}"],
        )
    return GuardVerdict(
        name="relevance",
        passed=False,
        severity=Severity.flag,
        details=["no source answers the latest message: a holding reply, not an answer"],
    )


def draft_guards(text: str, thread: Thread, sources: list[Source], injection: list[str]) -> list[GuardVerdict]:
    grounding = [
        t for t in grounding_texts(thread, sources) if not find_injection(t)
    ]  # an attacker's link is never a source
    commitments = check_commitments(text)
    if injection and not commitments.passed:
        details = [*commitments.details, "promise made while the thread carries a prompt injection"]
        commitments = commitments.model_copy(update={"severity": Severity.block, "details": details})
    verdicts = [
        check_grounded(text, grounding, GUARDED_FACTS),
        check_citations(text, [s.label for s in sources]),
        check_copied_claims(text, thread, sources),
        check_slots(text),
        commitments,
        check_relevance(sources, text),
    ]
    if injection:
        verdicts.append(GuardVerdict(name="prompt_injection", passed=False, severity=Severity.flag, details=injection))
    return verdicts


def _blocked(verdicts: list[GuardVerdict]) -> bool:
    return any(not v.passed and v.severity is Severity.block for v in verdicts)


# -- the task -----------------------------------------------------------------------------------------
class Draft(BaseModel):
    """Everything a draft is built from, gathered once."""

    thread: Thread
    ticket_id: int
    language: str
    customer: str | None
    agent: str | None
    sources: list[Source]
    injection: list[str]
    ask: str
    answers: int | None


def gather(context: TaskContext, ticket: Ticket, thread: Thread) -> Draft:
    contact = context.repo.get(Contact, ticket.contact_id) if ticket.contact_id else None
    ask, answers = latest_ask(thread)
    sources, left_out = find_sources(context, ticket, thread, ask or thread.subject)
    customer = (
        contact.name if contact else next((m.author for m in thread.messages if m.author_kind == "customer"), None)
    )
    return Draft(
        thread=thread,
        ticket_id=ticket.id,
        language=customer_language(thread, contact),
        customer=customer,
        agent=ticket.assignee,
        sources=sources,
        injection=[*detect_injection(thread), *left_out],
        ask=ask,
        answers=answers,
    )


def model_body(context: TaskContext, draft: Draft, provenance: Provenance) -> tuple[str | None, Provenance, str | None]:
    """The model's reply body (greeting and sign-off are added by ``frame``), or why there is none."""
    messages = load_prompt(TASK).render(
        thread=draft.thread,
        sources=draft.sources,
        language=LANGUAGE_NAMES[draft.language],
        chat=draft.thread.channel in ("chat", "social"),
        ask=draft.ask,
    )
    try:
        completion = context.gateway.complete(messages, max_tokens=350, temperature=0.0)
    except ModelError as error:
        return None, provenance, f"model unavailable: {error}"
    provenance = provenance.with_completion(completion)
    body = clean_body(completion.text)
    if problem := (
        prose_problem(body, messages)
        or talks_of_sources(body)
        or asks_for_given_reference(body, draft.thread)
        or speaks_as_customer(body)
    ):
        return None, provenance, problem
    return cite_drawn_blocks(body, draft.sources), provenance, None


def talks_of_sources(body: str) -> str | None:
    """Why a body that points the customer at the prompt's sources ("follow the steps in the sources", "contact us
    at [S1]") cannot be sent: the customer never sees them."""
    if match := SOURCE_TALK.search(body):
        return f"the model referred the customer to its sources ('{match.group(0)}') instead of answering"
    return None


def asks_for_given_reference(body: str, thread: Thread) -> str | None:
    """Why a body that asks for an order (invoice, account, ...) number cannot be sent when the customer gave one."""
    request = ASKS_FOR_REFERENCE.search(body)
    if request is None:
        return None
    given = [
        ref
        for ref in GIVEN_REFERENCE.findall(thread.customer_text())
        if sum(c.isdigit() for c in ref) >= MIN_REFERENCE_DIGITS
    ]
    if not given:
        return None
    return f"the model asked for a reference the customer already gave ({given[0]}): '{request.group(0)}'"


def speaks_as_customer(body: str) -> str | None:
    """Why a body written in the customer's voice (thanking the agent, promising to follow the steps) is no reply."""
    if match := CUSTOMER_VOICE.search(body):
        return f"the model wrote as the customer ('{match.group(0).strip()}') instead of replying"
    return None


def cite_drawn_blocks(body: str, sources: list[Source]) -> str:
    """The body with each uncited paragraph or list that is drawn from a source (most of its content words are
    that source's, the most of any source) ending in the source's label, as the prompt asked the model to do."""
    source_words = [_content_words(source.text) for source in sources]
    blocks = re.split(r"(\n\s*\n)", body)
    for n in range(0, len(blocks), 2):
        block = blocks[n].rstrip()
        words = _content_words(block)
        if not source_words or CITATION.search(block) or len(words) < MIN_DRAWN_WORDS:
            continue
        shares = [len(words & drawn) / len(words) for drawn in source_words]
        best = max(range(len(shares)), key=shares.__getitem__)  # the first of equals: the better-ranked source
        if shares[best] >= DRAWN_SHARE:
            blocks[n] = f"{block} [{sources[best].label}]"
    return "".join(blocks)


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[^\W\d_]{4,}", text.lower()) if w not in COMMON_WORDS}


def clean_body(text: str) -> str:
    """The model's text without a greeting or sign-off it added anyway."""
    lines = text.strip().split("\n")
    if lines and GREETING_LINE.match(lines[0].strip()):
        lines = lines[1:]
    while len(lines) > 1 and (
        not lines[-1].strip() or SIGN_OFF_LINE.match(lines[-1].strip()) or NAME_LINE.match(lines[-1].strip())
    ):
        lines.pop()
    return "\n".join(lines).strip()


def draft_for_thread(
    context: TaskContext, ticket: Ticket, thread: Thread, strategy: str = "auto"
) -> TaskOutcome[ReplyDraft]:
    draft = gather(context, ticket, thread)
    prompt = load_prompt(TASK)
    provenance = Provenance(
        task=TASK,
        prompt_name=prompt.name,
        prompt_version=prompt.version,
        input_ids=[f"message:{i}" for i in thread.ids],
        source_ids=[f"{s.label}={s.record_kind}:{s.record_id}" for s in draft.sources],
    )
    verdicts: list[GuardVerdict] = []
    reason = None
    if context.strategy(TASK, strategy) == "model":
        body, provenance, reason = model_body(context, draft, provenance)
        if body is not None:
            text = frame(body, thread, draft.language, draft.customer, draft.agent)
            verdicts = draft_guards(text, thread, draft.sources, draft.injection)
            if not _blocked(verdicts):
                return _outcome(text, draft, verdicts, provenance)
            verdicts = [
                v.model_copy(update={"details": [f"model draft (replaced): {d}" for d in v.details]})
                for v in verdicts
                if not v.passed and v.severity is Severity.block
            ]
            reason = "model draft failed a guard"
    else:
        provenance = provenance.model_copy(update={"model": "retrieval"})
    return _retrieval_outcome(draft, verdicts, provenance, reason)


def _retrieval_outcome(
    draft: Draft, verdicts: list[GuardVerdict], provenance: Provenance, reason: str | None
) -> TaskOutcome[ReplyDraft]:
    thread = draft.thread
    text = frame(
        retrieval_draft(draft.sources, thread, draft.language), thread, draft.language, draft.customer, draft.agent
    )
    own = draft_guards(text, thread, draft.sources, draft.injection)
    if _blocked(own):
        text = frame(HOLDING[draft.language], thread, draft.language, draft.customer, draft.agent)
        own = draft_guards(text, thread, draft.sources, draft.injection)
        reason = reason or "the closest past reply failed a guard; a holding reply was drafted"
    return _outcome(text, draft, [*verdicts, *own], provenance, reason)


def _outcome(
    text: str, draft: Draft, verdicts: list[GuardVerdict], provenance: Provenance, reason: str | None = None
) -> TaskOutcome[ReplyDraft]:
    holding = any(text.find(h) >= 0 for h in HOLDING.values())
    result = ReplyDraft(
        text=text,
        sources=draft.sources,
        channel=draft.thread.channel,
        language=draft.language,
        needs_explicit_approval=detect_commitments(text),
        injection_suspected=bool(draft.injection),
        confident=bool(draft.sources) and not holding,
        answers_message_id=draft.answers,
    )
    return TaskOutcome[ReplyDraft](
        task=TASK,
        result=result,
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
    flagged = row.content.get("result", {}).get("injection_suspected")
    injection = detect_injection(thread) or (["flagged when drafted"] if flagged else [])
    return draft_guards(text, thread, sources, injection)


def approve_into_library(repo: Repo, result_id: int):  # noqa: ANN201 - copilot.store.models.ReplyTemplate
    """Approval hook: the approved reply, scrubbed, joins the workspace's reply library."""
    from copilot.records import people_names

    return add_to_library(repo, repo.get(AiResult, result_id), people_names(repo))


class ReplyDraftParams(TaskParams):
    ticket_id: RecordRef
    strategy: Strategy = "auto"


@task(
    TASK,
    subject="ticket",
    subject_field="ticket_id",
    permission=Permission.run_support,
    review=Permission.review_support,
    defaults={Profile.small: "retrieval", Profile.capable: "retrieval"},
    prompt=TASK,
    stale_on=(CUSTOMER_MESSAGE,),
    delivers=True,
    on_approve=approve_into_library,
    carriers=("message", "kb_article"),
    check_edit=check_edited_draft,
)
def draft_reply(context: TaskContext, params: ReplyDraftParams) -> TaskOutcome[ReplyDraft]:
    """Draft a reply grounded in the thread, history and KB; it waits for human review and is never sent here."""
    ticket = context.repo.resolve(Ticket, params.ticket_id)
    outcome = draft_for_thread(context, ticket, load_thread(context.repo, ticket), params.strategy)
    outcome.subject_id = ticket.id
    return outcome
