"""Masking personal data before text leaves the process, and restoring it in what comes back.

Recognisers: emails, phone numbers (``phonenumbers``), payment cards (Luhn-checked with
``python-stdnum``), IBANs (mod-97 checked), street addresses, and the people the workspace
knows by name (contacts, agents, reps). Each distinct value gets a stable placeholder such as
``[EMAIL_1]`` within one redaction, so the model can still refer to "the same email".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import phonenumbers
from stdnum import iban, luhn

EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
STREET_WORDS = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Way|Court|Ct|Place|Pl|Square|Sq|"
    r"Strasse|Straße|Weg|Allee|Platz|rue|Rue|Calle|Via)"
)
ADDRESS = re.compile(
    rf"\b\d{{1,5}}[a-zA-Z]?,? (?:[A-Z][\w'-]+ ){{1,4}}{STREET_WORDS}\b\.?"
    r"|\b[A-Z][\w'-]+(?:strasse|straße|weg|allee|platz) \d{1,5}[a-zA-Z]?\b"
)
PLACEHOLDER = re.compile(r"\[(EMAIL|PHONE|CARD|IBAN|ADDRESS|PERSON)_\d+\]")
PHONE_REGIONS = ("US", "GB", "DE", "FR", "ES", "NL", "IT")


@dataclass
class Redaction:
    """The placeholders of one masked exchange: apply to outgoing text, restore in the answer."""

    names: tuple[str, ...] = ()
    values: dict[str, str] = field(default_factory=dict)  # placeholder -> original
    _by_value: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def kinds(self) -> list[str]:
        return sorted({p[1:].split("_")[0].lower() for p in self.values})

    def mask(self, text: str) -> str:
        spans = sorted(self._spans(text), key=lambda s: (s[0], -(s[1] - s[0])))
        out, cursor = [], 0
        for start, end, kind in spans:
            if start < cursor:  # overlaps an earlier, longer match
                continue
            out += [text[cursor:start], self._placeholder(kind, text[start:end])]
            cursor = end
        out.append(text[cursor:])
        return "".join(out)

    def restore(self, text: str) -> str:
        return PLACEHOLDER.sub(lambda m: self.values.get(m.group(0), m.group(0)), text)

    def _placeholder(self, kind: str, value: str) -> str:
        key = (kind, value.casefold() if kind in ("EMAIL", "PERSON") else re.sub(r"\W", "", value))
        if key not in self._by_value:
            count = sum(1 for k, _ in self._by_value if k == kind) + 1
            self._by_value[key] = f"[{kind}_{count}]"
            self.values[self._by_value[key]] = value
        return self._by_value[key]

    def _spans(self, text: str) -> Iterable[tuple[int, int, str]]:
        for match in EMAIL.finditer(text):
            yield match.start(), match.end(), "EMAIL"
        for match in IBAN.finditer(text):
            if iban.is_valid(match.group(0)):
                yield match.start(), match.end(), "IBAN"
        for match in CARD.finditer(text):
            digits = re.sub(r"\D", "", match.group(0))
            if 13 <= len(digits) <= 19 and luhn.is_valid(digits):
                yield match.start(), match.end(), "CARD"
        seen: set[tuple[int, int]] = set()
        for region in PHONE_REGIONS:
            for match in phonenumbers.PhoneNumberMatcher(text, region):
                if (match.start, match.end) not in seen and len(re.sub(r"\D", "", match.raw_string)) >= 7:
                    seen.add((match.start, match.end))
                    yield match.start, match.end, "PHONE"
        for match in ADDRESS.finditer(text):
            yield match.start(), match.end(), "ADDRESS"
        for name in self.names:
            for match in re.finditer(rf"(?<!\w){re.escape(name)}(?!\w)", text):
                yield match.start(), match.end(), "PERSON"


def person_names(full_names: Iterable[str | None]) -> tuple[str, ...]:
    """Full names, plus first and last names of 3+ letters alone; longest first so full names win."""
    names: set[str] = set()
    for full in full_names:
        if not full or not full.strip():
            continue
        names.add(full.strip())
        names.update(part for part in full.split() if len(part) >= 3 and part[0].isupper())
    return tuple(sorted(names, key=len, reverse=True))
