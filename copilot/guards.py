"""Output guards: deterministic checks that AI text stays grounded in its sources.

Each check returns a :class:`GuardVerdict`; tasks attach the verdicts to their result so a
reviewer sees them, and fall back to a non-LLM path when a blocking verdict fails.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from enum import Enum

from pydantic import BaseModel, Field


class Severity(str, Enum):
    block = "block"  # the output must not be used as is
    flag = "flag"  # usable, but a human must look at it explicitly


class GuardVerdict(BaseModel):
    name: str
    passed: bool
    severity: Severity = Severity.block
    details: list[str] = Field(default_factory=list)


class FactKind(str, Enum):
    url = "url"
    email = "email"
    phone = "phone"
    price = "price"
    order_id = "order_id"
    date = "date"
    number = "number"


_MONTHS = (
    "jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|jun(?:e)?|jul(?:y)?|aug(?:ust)?|"
    "sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_PATTERNS: dict[FactKind, re.Pattern[str]] = {
    FactKind.url: re.compile(r"\b(?:https?://|www\.)[^\s<>\"')\]]+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|io|net|org|co|app|dev|ly)(?:/[^\s<>\"')\]]*)?\b", re.I),
    FactKind.email: re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"),
    FactKind.phone: re.compile(r"(?<![\w/.-])\+?\d[\d ().-]{7,}\d(?![\w/-])"),
    FactKind.price: re.compile(
        r"(?:[$€£¥]\s?\d[\d,]*(?:\.\d+)?|\b\d[\d,]*(?:\.\d+)?\s?(?:USD|EUR|GBP|dollars?|euros?|pounds?)\b|\b\d+(?:\.\d+)?\s?%)",
        re.I,
    ),
    FactKind.order_id: re.compile(r"(?:#\d{3,}\b|\b[A-Z]{2,5}-?\d[\dA-Z-]{2,}\b)"),
    FactKind.date: re.compile(
        rf"\b(?:\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}}/\d{{1,2}}/\d{{2,4}}|(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTHS})(?:\s+\d{{4}})?)\b",
        re.I,
    ),
    FactKind.number: re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?![\w])"),
}

_COMMITMENTS: dict[str, re.Pattern[str]] = {
    "refund": re.compile(r"\b(?:refund(?:ed|ing)?|reimburs\w*|money back|charge ?back|reverse the charge)\b", re.I),
    "credit": re.compile(r"\b(?:credit(?:ed)?|voucher|free months?|waive[sd]?|on the house|compensat\w*)\b", re.I),
    "discount": re.compile(r"\b(?:discount\w*|\d+\s?% off|price (?:cut|reduction)|reduced price|coupon)\b", re.I),
    "deadline": re.compile(
        r"\b(?:by (?:tomorrow|today|tonight|monday|tuesday|wednesday|thursday|friday|saturday|sunday|end of (?:day|week|month)|eod|eow)|within \d+\s?(?:hours?|days?|business days?|weeks?)|guarantee\w*)\b",
        re.I,
    ),
    "escalation": re.compile(r"\b(?:escalat\w*|manager will|engineering team will|priority support|expedite\w*)\b", re.I),
}

_SIGNATURE_START = re.compile(
    r"^(?:--\s*|best(?: regards)?,?|kind regards,?|regards,?|thanks,?|thank you,?|cheers,?|sincerely,?|warm regards,?)\s*$",
    re.I | re.M,
)
_NAME_STOPWORDS = {
    "I", "Hi", "Hello", "Dear", "Thanks", "Thank", "Best", "Regards", "Kind", "The", "We", "You", "Your", "Our",
    "Please", "Sorry", "Yes", "No", "OK", "Ok", "It", "This", "That", "If", "In", "On", "At", "For", "To",
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "Customer", "Agent", "Team",
}
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)+\b")


def normalise(text: str) -> str:
    """NFKC, lower-case and collapse whitespace so that facts compare robustly."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().lower()


def _canonical(kind: FactKind, value: str) -> str:
    value = normalise(value).rstrip(".,;:")
    if kind in (FactKind.phone, FactKind.price, FactKind.number):
        return re.sub(r"[^\d.%]", "", value).rstrip(".")
    if kind is FactKind.url:
        return re.sub(r"^(?:https?://)?(?:www\.)?", "", value).rstrip("/")
    return value


def _matches(kind: FactKind, text: str) -> list[str]:
    found = [m.group(0) for m in _PATTERNS[kind].finditer(text)]
    if kind is FactKind.phone:  # an ISO date looks like a phone number to the pattern
        found = [value for value in found if not _PATTERNS[FactKind.date].fullmatch(value.strip())]
    return found


def extract_facts(text: str, kinds: Iterable[FactKind] = tuple(FactKind)) -> dict[FactKind, set[str]]:
    """Canonical values of each fact kind found in ``text``."""
    return {kind: {_canonical(kind, value) for value in _matches(kind, text)} - {""} for kind in kinds}


def ungrounded_facts(output: str, sources: Iterable[str], kinds: Iterable[FactKind]) -> list[str]:
    """Facts in ``output`` that appear in none of ``sources``, as 'kind: value'."""
    kinds = tuple(kinds)
    source_facts = extract_facts("\n".join(sources), kinds)
    found = extract_facts(output, kinds)
    missing = []
    for kind in kinds:
        for value in sorted(found[kind] - source_facts[kind]):
            missing.append(f"{kind.value}: {value}")
    return missing


def check_grounded(output: str, sources: Iterable[str], kinds: Iterable[FactKind] | None = None) -> GuardVerdict:
    """Every URL, email, phone, price, order id and date in the output must come from the sources."""
    kinds = kinds or (FactKind.url, FactKind.email, FactKind.phone, FactKind.price, FactKind.order_id, FactKind.date)
    missing = ungrounded_facts(output, sources, kinds)
    return GuardVerdict(name="grounded_facts", passed=not missing, details=[f"not in sources: {m}" for m in missing])


def proper_names(text: str) -> set[str]:
    """Multi-word capitalised sequences not at a sentence start: a cheap, language-agnostic name finder."""
    names = set()
    for match in _NAME.finditer(text):
        words = [w for w in match.group(0).split() if w not in _NAME_STOPWORDS]
        if len(words) >= 2:
            names.add(" ".join(words))
    return names


def check_names_grounded(output: str, sources: Iterable[str]) -> GuardVerdict:
    source_text = normalise("\n".join(sources))
    missing = sorted(name for name in proper_names(output) if normalise(name) not in source_text)
    return GuardVerdict(name="grounded_names", passed=not missing, details=[f"name not in sources: {n}" for n in missing])


def detect_commitments(text: str) -> list[str]:
    """Kinds of promise the text makes (refund, credit, discount, deadline, escalation)."""
    return [kind for kind, pattern in _COMMITMENTS.items() if pattern.search(text)]


def check_commitments(output: str, sources: Iterable[str] = ()) -> GuardVerdict:
    """Flag promises a human must explicitly approve; never blocks on its own."""
    kinds = detect_commitments(output)
    return GuardVerdict(
        name="commitments",
        passed=not kinds,
        severity=Severity.flag,
        details=[f"needs explicit approval: {kind}" for kind in kinds],
    )


def check_citations(output: str, valid_labels: Iterable[str]) -> GuardVerdict:
    """Every [S#] marker must map to a real source."""
    valid = set(valid_labels)
    cited = re.findall(r"\[(S\d+)\]", output)
    unknown = sorted({label for label in cited if label not in valid})
    return GuardVerdict(name="citations", passed=not unknown, details=[f"unknown source: [{u}]" for u in unknown])


def check_cited_ids(cited: Iterable[int | str], valid_ids: Iterable[int | str], what: str = "id") -> GuardVerdict:
    """Evidence ids a model cited must exist in the input it was given."""
    valid = {str(v) for v in valid_ids}
    unknown = sorted({str(c) for c in cited} - valid)
    return GuardVerdict(name="cited_ids", passed=not unknown, details=[f"{what} not in input: {u}" for u in unknown])


def signature_block(text: str) -> str | None:
    """The closing signature of a message (from a sign-off line to the end), if it has one."""
    matches = list(_SIGNATURE_START.finditer(text))
    if not matches:
        return None
    block = text[matches[-1].start():].strip()
    return block if block.count("\n") <= 6 else None


def check_fact_preservation(original: str, rewrite: str) -> GuardVerdict:
    """Numbers, dates, emails, URLs, prices, order ids, names and the signature must survive a rewrite."""
    kinds = (FactKind.url, FactKind.email, FactKind.phone, FactKind.price, FactKind.order_id, FactKind.date, FactKind.number)
    lost = [f"lost {m}" for m in ungrounded_facts(original, [rewrite], kinds)]
    rewrite_norm = normalise(rewrite)
    lost += [f"lost name: {n}" for n in sorted(proper_names(original)) if normalise(n) not in rewrite_norm]
    signature = signature_block(original)
    if signature and normalise(signature) not in rewrite_norm:
        lost.append("lost signature block")
    return GuardVerdict(name="fact_preservation", passed=not lost, details=lost)


def blocking_failures(verdicts: Iterable[GuardVerdict]) -> list[GuardVerdict]:
    return [v for v in verdicts if not v.passed and v.severity is Severity.block]
