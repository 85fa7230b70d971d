"""The workspace's reply library: approved replies, scrubbed, shared as sources with every customer.

When a reviewer approves (or edits and approves) a reply, the customer's question it answered and the approved text
are scrubbed and saved as a library entry: the greeting and signature go, personal data becomes a slot ({person},
{email}, {phone}, {card}, {iban}, {address}), and case facts become slots too ({amount}, {order_id}, {date}). The
entry is indexed as shared knowledge, found by its question, so the next customer who asks the same thing gets that
answer as a source, whatever their account. A draft never carries a slot (or another customer's facts) out: the
draft guards refuse it.
"""

from __future__ import annotations

import re

from copilot.guards import FactKind, replace_facts
from copilot.language import detect_language
from copilot.pii import PLACEHOLDER, Redaction
from copilot.store import Repo
from copilot.store.models import AiResult, AuthorKind, Message, ReplyTemplate
from copilot.tasks.thread import LEADING_GREETING, body_without_signature

CASE_FACTS = (FactKind.price, FactKind.order_id, FactKind.date)
SLOTS = {FactKind.price: "{amount}", FactKind.order_id: "{order_id}", FactKind.date: "{date}"}
SLOT = re.compile(r"\{(person|email|phone|card|iban|address|amount|order_id|date)\}")


def scrub(text: str, names: tuple[str, ...]) -> str:
    """The text with its greeting, signature, personal data and case facts taken out (facts become slots)."""
    body = LEADING_GREETING.sub("", body_without_signature(text).strip())
    lines = body.split("\n")
    if lines and re.match(r"^(hi|hello|hey|dear|hola|hallo|bonjour)\b[^\n]{0,40},?\s*$", lines[0].strip(), re.I):
        body = "\n".join(lines[1:]).strip()
    masked = Redaction(names=names).mask(body)
    masked = PLACEHOLDER.sub(lambda m: "{" + m.group(1).lower() + "}", masked)
    return replace_facts(masked, CASE_FACTS, lambda kind: SLOTS[kind]).strip()


def answered_question(repo: Repo, row: AiResult) -> str | None:
    """The customer message a reply draft answered: the latest customer message among its inputs."""
    ids = [int(ref.split(":", 1)[1]) for ref in row.input_ids or [] if str(ref).startswith("message:")]
    if not ids:
        return None
    message = repo.session.scalar(
        repo.select(Message)
        .where(Message.id.in_(ids), Message.author_kind == AuthorKind.customer)
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(1)
    )
    return message.body if message else None


def add_to_library(repo: Repo, row: AiResult, names: tuple[str, ...], approved_by: str | None = None) -> ReplyTemplate:
    """Save an approved reply as a scrubbed library entry (once per AI result) and return it."""
    existing = repo.session.scalar(repo.select(ReplyTemplate).where(ReplyTemplate.source_ai_result_id == row.id))
    if existing is not None:
        return existing
    question = answered_question(repo, row)
    answer = row.final_text or row.content.get("result", {}).get("text") or ""
    entry = repo.add(
        ReplyTemplate(
            question=scrub(question or "", names) or "(no question)",
            answer=scrub(answer, names),
            language=detect_language(answer).code,
            source_ai_result_id=row.id,
            approved_by=approved_by,
        )
    )
    repo.session.flush()
    return entry


def has_slots(text: str) -> list[str]:
    return sorted(set(SLOT.findall(text)))
