"""PII redaction for eval cases exported from real work: emails, phone numbers, card numbers and contact names.

Redaction errs on the side of removing too much: a contact's first or last name is replaced
wherever it appears as a capitalised word. Invoice numbers, order ids, dates, prices and plain
digit runs (order numbers) are kept, so the facts a task must preserve survive.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
CARD = re.compile(r"(?<![\w#/.-])(?:\d[ -]?){12,18}\d(?![\w/-])")
PHONE = re.compile(r"(?<![\w#/.-])\+?\(?\d[\d ().-]{6,}\d(?![\w/-])")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$|^\d{1,2}[./-]\d{1,2}[./-]\d{2,4}$")
NOT_NAMES = {
    "support",
    "team",
    "customer",
    "agent",
    "the",
    "and",
    "billing",
    "sales",
    "admin",
    "info",
    "ltd",
    "inc",
    "gmbh",
}

EMAIL_TOKEN, PHONE_TOKEN, CARD_TOKEN, NAME_TOKEN = "[EMAIL]", "[PHONE]", "[CARD]", "[NAME]"


def luhn_ok(digits: str) -> bool:
    total, double = 0, False
    for char in reversed(digits):
        value = int(char)
        if double:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
        double = not double
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    # payment card numbers start with 2-6 (Mastercard, Amex, Visa, Discover, ...) and pass the Luhn check
    return CARD_TOKEN if 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_ok(digits) else match.group(0)


def _phone(match: re.Match[str]) -> str:
    value = match.group(0)
    digits = re.sub(r"\D", "", value)
    if ISO_DATE.match(value.strip()) or not 7 <= len(digits) <= 15:
        return value
    if not value.startswith("+") and not re.search(
        r"[ ().-]", value
    ):  # a bare digit run is an order number, not a phone
        return value
    return PHONE_TOKEN


class Redactor:
    """Replaces PII in text; built once with the names to hide (e.g. every contact of a workspace)."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        full = sorted({n.strip() for n in names if n and len(n.strip()) >= 2}, key=len, reverse=True)
        parts = sorted(
            {
                p
                for n in full
                for p in re.split(r"[\s,]+", n)
                if len(p) >= 2 and p[0].isupper() and p.lower() not in NOT_NAMES
            },
            key=len,
            reverse=True,
        )
        self._full = (
            re.compile(r"(?<!\w)(?:" + "|".join(re.escape(n) for n in full) + r")(?!\w)", re.I) if full else None
        )
        self._parts = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(p) for p in parts) + r")(?!\w)") if parts else None

    def __call__(self, text: str | None) -> str | None:
        if not text:
            return text
        text = EMAIL.sub(EMAIL_TOKEN, text)
        text = CARD.sub(_card, text)
        text = PHONE.sub(_phone, text)
        if self._full is not None:
            text = self._full.sub(NAME_TOKEN, text)
        if self._parts is not None:
            text = self._parts.sub(NAME_TOKEN, text)
        return text


def redact(text: str, names: Iterable[str] = ()) -> str:
    """Redact one text (build a :class:`Redactor` to redact many with the same names)."""
    return Redactor(names)(text) or ""
