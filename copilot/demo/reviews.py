"""A review history for the demo workspace: reply drafts that people approved, edited or rejected.

Auto-QA is calibrated against stored human decisions and edit distances; a fresh demo has none, so this writes past
reply drafts on resolved tickets with the decision a reviewer took, as the review workflow stores them (an AiResult
with its final text, and an audit event with the edit distance). The drafts vary the way real ones do (a good answer,
one about another ticket, one promising an unapproved credit, a curt one, one without an apology to an angry
customer) and the reviewers are not perfectly consistent, so agreement has something to measure.
"""

from __future__ import annotations

import random
import re
from datetime import timedelta
from typing import TYPE_CHECKING

from rapidfuzz.distance import Levenshtein
from sqlalchemy.orm import Session

from copilot.store.models import AiResult, AiStatus, AuditEvent, AuthorKind, Ticket, TicketStatus

if TYPE_CHECKING:
    from copilot.demo.generator import DemoBuilder

DRAFTS = 80
PROMISE = " As a goodwill gesture we will also credit your account with one free month."
CURT = "Hi {first}, thanks for your message. We will look into it."
APOLOGY = re.compile(r"[^.!?]*\b(?:sorry|apolog\w*)\b[^.!?]*[.!?]\s*", re.I)
# variant -> (weight, {decision: weight})
VARIANTS = {
    "good": (45, {"approve": 85, "edit_light": 10, "reject": 5}),
    "off_topic": (15, {"reject": 75, "edit_fix": 20, "approve": 5}),
    "promise": (15, {"edit_fix": 60, "reject": 25, "approve": 15}),
    "curt": (15, {"edit_fix": 50, "reject": 35, "approve": 15}),
    "cold": (10, {"approve": 55, "edit_apology": 45}),
}


def seed_review_history(session: Session, builder: DemoBuilder) -> int:
    """Write the decided drafts (ids are known once the records are flushed); returns how many."""
    rng = random.Random(f"reviews-{builder.seed}")
    resolved = [
        (ticket, family, mood)
        for ticket, family, mood in builder.ticket_meta
        if ticket.status in (TicketStatus.solved, TicketStatus.closed)
        and ticket.account is not None
        and ticket.account.external_id != "ACME"
    ]
    chosen = rng.sample(resolved, min(DRAFTS, len(resolved)))
    replies = [_last_agent(ticket) for ticket, _, _ in resolved]
    for ticket, _family, _mood in chosen:
        good = _last_agent(ticket)
        if good is None:
            continue
        variant = rng.choices(list(VARIANTS), weights=[w for w, _ in VARIANTS.values()])[0]
        draft = _draft(rng, variant, ticket, good.body, [r.body for r in replies if r is not None and r is not good])
        decisions = VARIANTS[variant][1]
        decision = rng.choices(list(decisions), weights=list(decisions.values()))[0]
        _decide(session, builder, ticket, good, draft, decision, variant)
    session.flush()
    return len(chosen)


def _last_agent(ticket: Ticket):
    agents = [m for m in sorted(ticket.messages, key=lambda m: m.sent_at) if m.author_kind is AuthorKind.agent]
    return agents[-1] if agents else None


def _first_name(ticket: Ticket) -> str:
    return (ticket.contact.name.split()[0] if ticket.contact else "there") or "there"


def _draft(rng: random.Random, variant: str, ticket: Ticket, good: str, others: list[str]) -> str:
    if variant == "off_topic":
        return rng.choice(others)
    if variant == "promise":
        body, sign_off = _split_sign_off(good)
        return body.rstrip() + PROMISE + sign_off
    if variant == "curt":
        return CURT.format(first=_first_name(ticket))
    if variant == "cold":
        return APOLOGY.sub("", good) or good
    return good


def _split_sign_off(text: str) -> tuple[str, str]:
    head, sep, tail = text.partition("\n\n")
    return (head, sep + tail) if sep else (text, "")


def _final_text(decision: str, draft: str, good: str) -> str | None:
    if decision == "approve":
        return draft
    if decision == "edit_light":
        body, sign_off = _split_sign_off(draft)
        return body.rstrip() + " Let me know if anything else comes up." + sign_off
    if decision == "edit_apology":
        return "Sorry for the trouble. " + draft
    if decision == "edit_fix":
        return good
    return None


def _decide(
    session: Session,
    builder: DemoBuilder,
    ticket: Ticket,
    good,
    draft: str,
    decision: str,
    variant: str,
) -> None:
    final = _final_text(decision, draft, good.body)
    status = {"approve": AiStatus.approved, "reject": AiStatus.rejected}.get(decision, AiStatus.edited)
    drafted_at = good.sent_at - timedelta(minutes=20)
    reviewer = ticket.assignee or "Liam Chen"
    row = AiResult(
        workspace_id=builder.workspace_id,
        task="reply_draft",
        status=status,
        subject_kind="ticket",
        subject_id=ticket.id,
        content={
            "result": {
                "text": draft,
                "sources": [],
                "channel": ticket.channel.value,
                "language": "en",
                "needs_explicit_approval": ["credit"] if variant == "promise" else [],
                "injection_suspected": False,
            },
            "used_fallback": False,
            "fallback_reason": None,
            "pii_masked": [],
        },
        final_text=final,
        prompt_name="reply_draft",
        model="demo history",
        input_ids=[f"message:{m.id}" for m in ticket.messages if m.sent_at < drafted_at],
        created_at=drafted_at,
        updated_at=drafted_at + timedelta(minutes=10),
    )
    session.add(row)
    session.flush()
    action = {"approve": "review.approve", "reject": "review.reject"}.get(decision, "review.edit")
    session.add(
        AuditEvent(
            workspace_id=builder.workspace_id,
            at=drafted_at + timedelta(minutes=10),
            actor=reviewer,
            action=action,
            ai_result_id=row.id,
            subject_kind="ticket",
            subject_id=ticket.id,
            task="reply_draft",
            before={"status": "pending", "text": draft, "version": 1},
            after={
                "status": status.value,
                "text": final,
                "version": 2,
                "reason": "does not answer the customer" if decision == "reject" else None,
                "confirm_commitments": variant == "promise" and decision == "approve",
            },
            edit_distance=Levenshtein.distance(draft, final) if status is AiStatus.edited else None,
        )
    )
