"""Taking personal data and case facts out of ticket text before it becomes a help-center article.

Personal data (``copilot.pii``: emails, phones, cards, IBANs, street addresses, and the names of the workspace's
contacts, agents, reps and accounts) becomes a neutral placeholder such as ``[email]``. Case facts (the fact
guards' order ids, prices, dates and links, and long numbers) become ``[invoice number]``, ``[amount]``,
``[date]``, ``[link]``, except a price or date that the answers of many tickets of the cluster share: that is a
policy ("30% off for nonprofits", "prices changed on January 1"), not a case fact.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from pydantic import BaseModel, Field

from copilot.guards import _PATTERNS as FACT_PATTERNS  # the fact guards' own patterns, so both agree
from copilot.guards import FactKind, GuardVerdict, extract_facts
from copilot.pii import PLACEHOLDER, Redaction

PERSONAL = {
    "EMAIL": "[email]",
    "PHONE": "[phone]",
    "CARD": "[card number]",
    "IBAN": "[bank account]",
    "ADDRESS": "[address]",
    "PERSON": "[name]",
}
CASE_FACTS = {
    FactKind.url: "[link]",
    FactKind.order_id: "[invoice number]",
    FactKind.price: "[amount]",
    FactKind.date: "[date]",
}
LONG_NUMBER = re.compile(r"(?<![\w.])\d{5,}(?![\w])")
POLICY_KINDS = (FactKind.price, FactKind.date)


class Scrubbed(BaseModel):
    text: str
    removed: dict[str, int] = Field(default_factory=dict)


class Scrubber:
    """Scrubs the texts of one cluster: the same people, and the policy values its answers share."""

    def __init__(self, names: Iterable[str], policy: set[str] | None = None) -> None:
        self.names = tuple(sorted({n for n in names if n and n.strip()}, key=len, reverse=True))
        self.policy = policy or set()

    def scrub(self, text: str) -> Scrubbed:
        removed: Counter[str] = Counter()
        masked = Redaction(names=self.names).mask(text)

        def personal(match: re.Match[str]) -> str:
            kind = match.group(1)
            removed[kind.lower()] += 1
            return PERSONAL[kind]

        text = PLACEHOLDER.sub(personal, masked)
        for kind, placeholder in CASE_FACTS.items():
            text = FACT_PATTERNS[kind].sub(lambda m, k=kind, p=placeholder: self._fact(m, k, p, removed), text)
        text = LONG_NUMBER.sub(lambda m: removed.update(["number"]) or "[number]", text)
        return Scrubbed(text=re.sub(r"[ \t]{2,}", " ", text).strip(), removed=dict(removed))

    def _fact(self, match: re.Match[str], kind: FactKind, placeholder: str, removed: Counter[str]) -> str:
        value = match.group(0)
        if kind in POLICY_KINDS and _canonical(kind, value) in self.policy:
            return value
        removed[kind.value] += 1
        return placeholder


def _canonical(kind: FactKind, value: str) -> str:
    return next(iter(extract_facts(value, (kind,))[kind]), value.lower())


def policy_values(answers_by_ticket: list[list[str]], min_share: float = 0.5, min_tickets: int = 3) -> set[str]:
    """Prices and dates that the answers of at least ``min_tickets`` tickets, and ``min_share`` of them, state."""
    counts: Counter[str] = Counter()
    for answers in answers_by_ticket:
        found = extract_facts("\n".join(answers), POLICY_KINDS)
        counts.update({v for kind in POLICY_KINDS for v in found[kind]})
    needed = max(min_tickets, min_share * len(answers_by_ticket))
    return {value for value, n in counts.items() if n >= needed}


def check_clean(text: str, names: Iterable[str], source_texts: Iterable[str], policy: set[str]) -> list[GuardVerdict]:
    """Block a draft (or a reviewer's edit) that holds personal data, or a case fact of the source tickets."""
    scrubbed = Scrubber(names).scrub(text)
    personal = {k: n for k, n in scrubbed.removed.items() if k in {p.lower() for p in PERSONAL}}
    source_facts = extract_facts("\n".join(source_texts), tuple(CASE_FACTS))
    found = extract_facts(text, tuple(CASE_FACTS))
    facts = sorted(
        f"{kind.value}: {value}"
        for kind in CASE_FACTS
        for value in found[kind] & source_facts[kind]
        if not (kind in POLICY_KINDS and value in policy)
    )
    return [
        GuardVerdict(
            name="personal_data", passed=not personal, details=[f"{n} {kind}" for kind, n in sorted(personal.items())]
        ),
        GuardVerdict(name="case_facts", passed=not facts, details=[f"from a source ticket: {f}" for f in facts]),
    ]
