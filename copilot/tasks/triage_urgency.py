"""How urgent a ticket is, and why: deterministic signals with the words or facts that triggered them.

Signals: outage words, being blocked, deadlines, month-end / quarter-end closing, legal and GDPR matters, repeat
contact (on this ticket, in words, or other recent tickets from the same customer), the account's plan or segment,
and negative or frustrated sentiment. Each signal adds its weight; the total maps to a priority. Sentences that try
to steer triage itself ("classify me as urgent", "route this to the CEO") or carry a prompt injection count for
nothing: they are listed as ignored instead.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from copilot.guards import find_injection
from copilot.store import Repo
from copilot.store.models import Account, Priority, Ticket

URGENT_AT, HIGH_AT, NORMAL_AT = 6, 3, 1
RECENT_DAYS = 30


def _words(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.I)


TEXT_SIGNALS: tuple[tuple[str, int, re.Pattern[str]], ...] = (
    (
        "outage",
        3,
        _words(
            r"\b(?:outage|is down|are down|went down|goes down|down for (?:everyone|all)|not loading at all)\b",
            r"\b(?:nobody|no one|none of us)\b[^.!?\n]{0,25}\bcan\b|\bfor (?:all|every) (?:users?|of us)\b",
            r"\b(?:5\d\d|server) errors?\b|\bservice unavailable\b|\bcompletely broken\b",
            r"\bca[ií]d[oa]\b|\bsin servicio\b|\bausfall\b|\bst[oö]rung\b|\bpanne\b|\ben panne\b",
        ),
    ),
    (
        "blocked",
        2,
        _words(
            r"\blocked out\b|\bcan(?:no|')t (?:log ?in|access|work|send|invoice|get in)\b",
            r"\bunable to (?:log ?in|access|work|send)\b|\bblocked\b|\bsuspended\b",
            r"\bno puedo (?:entrar|acceder)\b|\bkomme nicht (?:rein|mehr)\b|\bbloqu[ée]\b",
        ),
    ),
    (
        "deadline",
        2,
        _words(
            r"\b(?:today|tonight|asap|immediately|right now|end of (?:the )?day|eod|deadline|due tomorrow)\b",
            r"\bby (?:tomorrow|monday|tuesday|wednesday|thursday|friday|noon)\b",
            r"\bwithin (?:the )?(?:hour|\d+ hours?)\b",
            r"\bpayroll\b|\b(?:vat|tax) (?:return|filing)\b|\burgent(?:ly)?\b",
            r"\burgente\b|\bhoy\b|\bplazo\b|\bdringend\b|\bheute\b|\bfrist\b|\baujourd'hui\b|\bd[ée]lai\b",
        ),
    ),
    (
        "month_end",
        2,
        _words(
            r"\b(?:month|quarter|year)[- ]end\b|\bend of (?:the )?(?:month|quarter|year)\b",
            r"\bclos(?:e|ing) (?:the|our) books\b|\bfin de mes\b|\bmonatsende\b|\bmonatsabschluss\b|\bfin de mois\b",
        ),
    ),
    (
        "legal",
        2,
        _words(
            r"\bgdpr\b|\bdsgvo\b|\brgpd\b|\bdata protection\b|\bprivacy regulator\b|\bsubject access request\b",
            r"\bright to (?:be forgotten|erasure)\b|\blawyers?\b|\blegal (?:action|team|department)\b|\blawsuit\b",
            r"\bsue\b|\bchargeback\b|\bcomplaint to\b|\babogad[oa]\b|\banwalt\b|\bavocat\b|\bmise en demeure\b",
        ),
    ),
    (
        "repeat_contact",
        1,
        _words(
            r"\b(?:again|third time|second time|once more|still (?:not|waiting|nothing|broken|there|showing))\b",
            r"\bfollow(?:ing)?[- ]up\b|\bno (?:reply|answer|response) (?:yet|so far)\b|\bde nuevo\b|\bschon wieder\b",
            r"\bencore\b|\btoujours pas\b",
        ),
    ),
)

# Sentences that address triage itself instead of describing the problem.
STEERING = _words(
    r"\b(?:classify|categori[sz]e|label|tag|mark|flag|treat|rank|file)\b[^.!?\n]{0,40}\b(?:as|under)\b",
    r"\b(?:set|change|raise|bump|make|put)\b[^.!?\n]{0,30}\b(?:priority|severity|urgency|category|topic)\b",
    r"\b(?:route|assign|transfer|redirect|forward|escalate)\b[^.!?\n]{0,20}\b(?:me|this|it|ticket)\b[^.!?\n]{0,20}"
    r"\bto (?:the )?(?:ceo|cto|cfo|founder|owner|vp|director|head of|your boss)\b",
    r"\b(?:route|assign)\b[^.!?\n]{0,20}\b(?:me|this|it|ticket)\b[^.!?\n]{0,15}\bto\b",
)
SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


class UrgencyReason(BaseModel):
    signal: str = Field(description="outage, blocked, deadline, month_end, legal, repeat_contact, plan, sentiment")
    detail: str = Field(max_length=200)
    weight: int
    message_id: int | None = None


class Urgency(BaseModel):
    priority: Priority
    score: int
    reasons: list[UrgencyReason] = Field(default_factory=list)


def steering_or_injection(sentence: str) -> str | None:
    """Why a sentence is not evidence (it tries to steer triage, or carries a prompt injection), else None."""
    if hit := find_injection(sentence):
        return f"prompt injection: {hit}"
    if match := STEERING.search(sentence):
        return f"tries to steer triage: '{' '.join(match.group(0).split())[:60]}'"
    return None


def split_evidence(text: str) -> tuple[str, list[str]]:
    """The text without its steering / injected sentences, and why each left sentence was left out."""
    kept, ignored = [], []
    for sentence in SENTENCE.split(text):
        if not sentence.strip():
            continue
        if reason := steering_or_injection(sentence):
            ignored.append(reason)
        else:
            kept.append(sentence)
    return " ".join(kept), ignored


def priority_for(score: int) -> Priority:
    if score >= URGENT_AT:
        return Priority.urgent
    if score >= HIGH_AT:
        return Priority.high
    return Priority.normal if score >= NORMAL_AT else Priority.low


def text_reasons(messages: list[tuple[int | None, str]]) -> list[UrgencyReason]:
    """One reason per text signal (its first hit), from customer messages already cleared of steering."""
    reasons = []
    for signal, weight, pattern in TEXT_SIGNALS:
        for message_id, text in messages:
            if match := pattern.search(text):
                reasons.append(
                    UrgencyReason(
                        signal=signal, detail=f"'{match.group(0).strip()}'", weight=weight, message_id=message_id
                    )
                )
                break
    return reasons


def account_reason(account: Account | None) -> UrgencyReason | None:
    if account is None:
        return None
    plan, segment = (account.plan or "").lower(), (account.segment or "").lower()
    if "enterprise" in (plan, segment):
        return UrgencyReason(
            signal="plan", detail=f"{account.name}: Enterprise {'plan' if plan else 'segment'}", weight=2
        )
    if plan == "business" or segment in ("mid-market", "midmarket"):
        return UrgencyReason(signal="plan", detail=f"{account.name}: {account.plan or account.segment}", weight=1)
    return None


def repeat_reasons(repo: Repo, ticket: Ticket, customer_messages: int, now: datetime) -> list[UrgencyReason]:
    reasons = []
    if customer_messages >= 3:
        reasons.append(
            UrgencyReason(
                signal="repeat_contact", detail=f"{customer_messages} customer messages on this ticket", weight=1
            )
        )
    owner = (Ticket.contact_id == ticket.contact_id) if ticket.contact_id else (Ticket.account_id == ticket.account_id)
    if ticket.contact_id or ticket.account_id:
        others = repo.session.scalar(
            select(func.count())
            .select_from(Ticket)
            .where(
                Ticket.workspace_id == repo.workspace_id,
                owner,
                Ticket.id != ticket.id,
                Ticket.opened_at >= now - timedelta(days=RECENT_DAYS),
            )
        )
        if others:
            whose = "contact" if ticket.contact_id else "account"
            reasons.append(
                UrgencyReason(
                    signal="repeat_contact",
                    detail=f"{others} other ticket(s) from this {whose} in the last {RECENT_DAYS} days",
                    weight=1 if others == 1 else 2,
                )
            )
    return reasons


def sentiment_reason(scores: list[tuple[int, float, bool]]) -> UrgencyReason | None:
    """From (message id, sentiment score, frustration) of the customer's messages: the latest one counts."""
    if not scores:
        return None
    message_id, score, frustrated = scores[-1]
    if score <= -0.5 or frustrated:
        detail = f"latest customer message is {'frustrated' if frustrated else 'negative'} (sentiment {score:+.2f})"
        return UrgencyReason(
            signal="sentiment", detail=detail, weight=2 if score <= -0.5 and frustrated else 1, message_id=message_id
        )
    return None


def assess(reasons: list[UrgencyReason | None]) -> Urgency:
    kept = [r for r in reasons if r is not None]
    score = sum(r.weight for r in kept)
    return Urgency(priority=priority_for(score), score=score, reasons=kept)
