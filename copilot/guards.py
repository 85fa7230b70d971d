"""Output guards: deterministic checks that AI text stays grounded in its sources.

Each check returns a :class:`GuardVerdict`; tasks attach the verdicts to their result so a
reviewer sees them, and fall back to a non-LLM path when a blocking verdict fails.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    FactKind.url: re.compile(
        r"\b(?:https?://|www\.)[^\s<>\"')\]]+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|io|net|org|co|app|dev|ly)(?:/[^\s<>\"')\]]*)?\b",
        re.I,
    ),
    FactKind.email: re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"),
    FactKind.phone: re.compile(r"(?<![\w/.-])(?!\d{4}-\d{2}-\d{2}(?!\d))\+?\d[\d ().-]{7,}\d(?![\w/-])"),
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
    # English, plus the Spanish, German and French words for the same promises
    # (drafts are written in those languages too)
    "refund": re.compile(
        r"\b(?:refund(?:ed|ing)?|reimburs\w*|money back|charge ?back|reverse the charge|reembols\w*|devoluci[oó]n|"
        r"r[uü]ckerstatt\w*|erstatt\w*|rembours\w*)\b",
        re.I,
    ),
    "credit": re.compile(
        r"\b(?:credit(?:ed)?|voucher|free months?|waive[sd]?|on the house|compensat\w*|gutschrift\w*|meses gratis|"
        r"mois gratuits?|kostenlose monate|gratismonate?|compensaci[oó]n|entschädig\w*|dédommag\w*)\b",
        re.I,
    ),
    "discount": re.compile(
        r"\b(?:discount\w*|\d+\s?% off|price (?:cut|reduction)|reduced price|coupon|descuento|rabatt\w*|"
        r"preisnachlass|réduction|remise)\b",
        re.I,
    ),
    "deadline": re.compile(
        r"\b(?:by (?:tomorrow|today|tonight|monday|tuesday|wednesday|thursday|friday|saturday|sunday"
        r"|end of (?:day|week|month)|eod|eow)|within \d+\s?(?:hours?|days?|business days?|weeks?)|guarantee\w*)\b",
        re.I,
    ),
    "escalation": re.compile(
        r"\b(?:escalat\w*|manager will|engineering team will|priority support|expedite\w*)\b", re.I
    ),
}

_SIGNATURE_START = re.compile(
    r"^(?:--\s*|best(?: regards)?,?|kind regards,?|regards,?|thanks,?|thank you,?|cheers,?|sincerely,?"
    r"|warm regards,?)\s*$",
    re.I | re.M,
)
_NAME_STOPWORDS = {
    "I",
    "Hi",
    "Hello",
    "Dear",
    "Thanks",
    "Thank",
    "Best",
    "Regards",
    "Kind",
    "The",
    "We",
    "You",
    "Your",
    "Our",
    "Please",
    "Sorry",
    "Yes",
    "No",
    "OK",
    "Ok",
    "It",
    "This",
    "That",
    "If",
    "In",
    "On",
    "At",
    "For",
    "To",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Customer",
    "Agent",
    "Team",
}
_NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty".split()
    )
} | {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90"}
_NUMBER_WORD = re.compile(rf"\b(?:{'|'.join(_NUMBER_WORDS)})\b", re.I)
_SPLIT_THOUSANDS = re.compile(r"\b(\d{1,3}), (\d{3})\b")  # "2, 000 yuan", as transcripts often write it
_TAG = re.compile(r"(?<![\w#@])[#@]([A-Za-z][A-Za-z0-9_]+)")
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


def replace_facts(text: str, kinds: Iterable[FactKind], slot: Callable[[FactKind], str]) -> str:
    """``text`` with every value of these fact kinds replaced by ``slot(kind)`` (e.g. "{amount}")."""
    for kind in kinds:
        text = _PATTERNS[kind].sub(lambda _m, kind=kind: slot(kind), text)
    return text


def extract_facts(text: str, kinds: Iterable[FactKind] = tuple(FactKind)) -> dict[FactKind, set[str]]:
    """Canonical values of each fact kind found in ``text``."""
    return {kind: {_canonical(kind, value) for value in _matches(kind, text)} - {""} for kind in kinds}


def ungrounded_facts(output: str, sources: Iterable[str], kinds: Iterable[FactKind]) -> list[str]:
    """Facts in ``output`` that appear in none of ``sources``, as 'kind: value'."""
    kinds = tuple(kinds)
    joined = "\n".join(sources)
    source_facts = extract_facts(joined, kinds)
    if FactKind.number in kinds:
        source_facts[FactKind.number] |= _spelled_numbers(joined)
    found = extract_facts(output, kinds)
    missing = []
    for kind in kinds:
        for value in sorted(found[kind] - source_facts[kind]):
            missing.append(f"{kind.value}: {value}")
    return missing


def _spelled_numbers(text: str) -> set[str]:
    """Numbers a text gives in words ("windows ten", "Nine") or with its thousands split ("2, 000"), as digits."""
    words = {_NUMBER_WORDS[match.group(0).lower()] for match in _NUMBER_WORD.finditer(text)}
    return words | {a + b for a, b in _SPLIT_THOUSANDS.findall(text)}


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


def spelled_out_tags(text: str) -> str:
    """Hashtags and handles as words ("#FallCreatorsUpdate" -> "Fall Creators Update"), one per line."""
    return "\n".join(re.sub(r"_|(?<=[a-z0-9])(?=[A-Z])", " ", tag) for tag in _TAG.findall(text))


def check_names_grounded(output: str, sources: Iterable[str]) -> GuardVerdict:
    """Every multi-word name in the output is in the sources, as written or as a hashtag or handle spelled out."""
    joined = "\n".join(sources)
    source_text = normalise(f"{joined}\n{spelled_out_tags(joined)}")
    missing = sorted(name for name in proper_names(output) if normalise(name) not in source_text)
    return GuardVerdict(
        name="grounded_names", passed=not missing, details=[f"name not in sources: {n}" for n in missing]
    )


def detect_commitments(text: str) -> list[str]:
    """Kinds of promise the text makes (refund, credit, discount, deadline, escalation)."""
    return [kind for kind, pattern in _COMMITMENTS.items() if pattern.search(text)]


def commitment_patterns() -> dict[str, str]:
    """The commitment patterns as regex source (the review page checks an edit as it is typed, in the browser)."""
    return {kind: pattern.pattern for kind, pattern in _COMMITMENTS.items()}


def check_commitments(output: str, sources: Iterable[str] = ()) -> GuardVerdict:
    """Flag promises a human must explicitly approve; never blocks on its own."""
    kinds = detect_commitments(output)
    return GuardVerdict(
        name="commitments",
        passed=not kinds,
        severity=Severity.flag,
        details=[f"needs explicit approval: {kind}" for kind in kinds],
    )


CITATION = re.compile(r"\[(S\d+)\]")  # a source marker, [S1]; the group is its label


def check_citations(output: str, valid_labels: Iterable[str]) -> GuardVerdict:
    """Every [S#] marker must map to a real source."""
    valid = set(valid_labels)
    cited = CITATION.findall(output)
    unknown = sorted({label for label in cited if label not in valid})
    return GuardVerdict(name="citations", passed=not unknown, details=[f"unknown source: [{u}]" for u in unknown])


def check_cited_ids(cited: Iterable[int | str], valid_ids: Iterable[int | str], what: str = "id") -> GuardVerdict:
    """Evidence ids a model cited must exist in the input it was given."""
    valid = {str(v) for v in valid_ids}
    unknown = sorted({str(c) for c in cited} - valid)
    return GuardVerdict(name="cited_ids", passed=not unknown, details=[f"{what} not in input: {u}" for u in unknown])


CHAT_PREAMBLE = re.compile(
    r"^\s*(?:(?:sure|certainly|of course|okay|ok|absolutely)\b[,!.]?\s*)?"
    r"(?:(?:here is|here's|below is)\b[^\n:.!]*[:.!]?\s*)?",
    re.I,
)
STRUCTURED_START = re.compile(r"^\s*(?:\{|\[\s*[{\"]|```)")  # JSON, or a code fence


REFUSAL = re.compile(
    r"^\W*(?:i'?m |i am |i )?(?:sorry|apologi[sz]e)[^.!?\n]{0,20}?,? but i "
    r"(?:(?:can(?:no|')?t|can not|am (?:un|not )able to|(?:do not|don't) have enough information to) "
    r"(?:assist|help)(?: you)? with (?:that|this)\b"
    r"|(?:do not|don't) have enough (?:information|details|context) to (?:assist|help|provide|answer)\b)",
    re.I,
)


def prose_problem(text: str, prompt: Sequence[Mapping[str, str]] = ()) -> str | None:
    """Why a model's plain-text answer is not prose to use (JSON or a code block, a refusal, nothing but a chat
    preamble, the ``prompt``'s few-shot example answer or its system instructions repeated)."""
    if copied_example(text, prompt):
        return "the model repeated the prompt's example answer instead of answering"
    if repeats_instructions(text, prompt):
        return "the model repeated its instructions instead of answering"
    if STRUCTURED_START.match(text):
        return "the model answered with JSON or code, not prose"
    after_preamble = CHAT_PREAMBLE.sub("", text, count=1)
    if REFUSAL.match(after_preamble):
        return "the model refused or said it cannot help instead of answering"
    if not after_preamble.strip(" \n\"'"):
        return "the model wrote nothing but a preamble" if text.strip() else "the model wrote nothing"
    return None


def copied_example(text: str, prompt: Sequence[Mapping[str, str]], span: int = 5, share: float = 0.5) -> bool:
    """Whether most of ``text`` sits in runs of ``span`` words that an example answer of the prompt (an assistant
    message before the last one) has and the real input (the last message) does not."""
    examples = [message["content"] for message in prompt[:-1] if message["role"] == "assistant"]
    words = _words(text)
    if not examples or not words:
        return False
    example_runs = set().union(*(_word_runs(example, span) for example in examples))
    example_runs -= _word_runs(prompt[-1]["content"], span)
    copied = set()
    for start in range(len(words) - span + 1):
        if tuple(words[start : start + span]) in example_runs:
            copied.update(range(start, start + span))
    return len(copied) >= share * len(words)


def repeats_instructions(text: str, prompt: Sequence[Mapping[str, str]], span: int = 8) -> bool:
    """Whether ``text`` holds a run of ``span`` words of the prompt's system message that no other message of the
    prompt has: the model leaking its instructions, which no reply, summary or rewrite quotes."""
    system = [message["content"] for message in prompt if message["role"] == "system"]
    if not system:
        return False
    instruction_runs = set().union(*(_word_runs(content, span) for content in system))
    instruction_runs -= set().union(*(_word_runs(m["content"], span) for m in prompt if m["role"] != "system"))
    return not instruction_runs.isdisjoint(_word_runs(text, span))


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _word_runs(text: str, span: int) -> set[tuple[str, ...]]:
    words = _words(text)
    return {tuple(words[start : start + span]) for start in range(len(words) - span + 1)}


def signature_block(text: str) -> str | None:
    """The closing signature of a message (from a sign-off line to the end), if it has one."""
    matches = list(_SIGNATURE_START.finditer(text))
    if not matches:
        return None
    block = text[matches[-1].start() :].strip()
    return block if block.count("\n") <= 6 else None


def check_fact_preservation(original: str, rewrite: str) -> GuardVerdict:
    """Numbers, dates, emails, URLs, prices, order ids, names and the signature must survive a rewrite."""
    kinds = (
        FactKind.url,
        FactKind.email,
        FactKind.phone,
        FactKind.price,
        FactKind.order_id,
        FactKind.date,
        FactKind.number,
    )
    lost = [f"lost {m}" for m in ungrounded_facts(original, [rewrite], kinds)]
    rewrite_norm = normalise(rewrite)
    lost += [f"lost name: {n}" for n in sorted(proper_names(original)) if normalise(n) not in rewrite_norm]
    signature = signature_block(original)
    if signature and normalise(signature) not in rewrite_norm:
        lost.append("lost signature block")
    return GuardVerdict(name="fact_preservation", passed=not lost, details=lost)


# -- prompt injection ----------------------------------------------------------------------------

# Cyrillic and Greek letters that look like Latin ones: "Іgnоrе" spelled with them reads as "Ignore" to a model.
_CONFUSABLES = str.maketrans(
    "аеорсхуіјѕԁһӏАВЕКМНОРСТХУІЈЅαεικνορτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
    "aeopcxyijsdhlABEKMHOPCTXYIJSaeikvoptuxABEZHIKMNOPTYX",
)
_HIDDEN = re.compile(
    "[\U000e0000-\U000e007f\u202d\u202e]"
)  # tag characters ("ASCII smuggling") and direction overrides
_BASE64 = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")
_AI = r"(?:ai|a\.i\.|assistants?|chat ?bots?|bots?|copilots?|llms?|gpt|chatgpt|language models?|note ?takers?)"
_DO = (
    r"(?:ignore|disregard|forget|add|include|insert|write|say|tell|promise|offer|append|reply|respond|repeat|print|"
    r"reveal|list|mark|label|name|classify|call|record|approve|point|put|paste|use|summari[sz]e|when|from now on|"
    r"always|never|do not|don't)"
)
_INJECTION_PATTERNS = (
    # instruction overrides (English, Spanish, German, French)
    (
        r"\b(?:ignore|disregard|forget)\b[^.!?\n]{0,40}?\b(?:instructions?|rules|prompts?|guidelines|directives?|"
        r"restrictions|constraints|guardrails|filters?)\b"
    ),
    (
        r"\b(?:override|bypass)\s+(?:all\s+|any\s+|your\s+|the\s+)?(?:previous\s+|prior\s+|system\s+|safety\s+)*"
        r"(?:instructions|prompt|guardrails)\b"
    ),
    r"\b(?:ignora|ignorar|olvida|olvidar)\b[^.!?\n]{0,40}?\binstrucciones\b",
    r"\b(?:ignoriere|ignorieren|ignorier|vergiss|vergessen)\b[^.!?\n]{0,40}?\b(?:anweisungen|regeln|instruktionen)\b",
    r"\b(?:ignore[zr]?|oublie[zr]?)\b[^.!?\n]{0,40}?\b(?:consignes|règles)\b",
    r"\bnew instructions\b|\b(?:updated|real|actual|additional)\s+(?:system\s+)?(?:instructions|directives)\s*:",
    # asking for the prompt
    (
        r"\b(?:reveal|print|repeat|show|output|display|tell me|share|leak|dump|recite|paste)\b[^.!?\n]{0,25}?"
        r"\b(?:your\s+(?:(?:full|exact|complete|entire|system|initial|original|hidden|secret|internal)\s+)+"
        r"(?:prompt|instructions|rules)|your prompt|the\s+(?:(?:full|exact|complete|entire)\s+)?"
        r"(?:system|initial|original|hidden|secret|internal)\s+(?:prompt|instructions|rules))\b"
    ),
    (
        r"\bsystem prompt\b|\b(?:instructions|prompt)\s+(?:verbatim|word for word)\b"
        r"|\b(?:everything|all(?: the)? text)\s+(?:written\s+)?above\s+(?:this|my)\b"
    ),
    # role play
    (
        r"\byou are now (?:a|an|the|in|my|our|called|named|dan|\w+bot)\b"
        r"|\b(?:developer|god|dan|jailbreak|unrestricted) mode\b|\bjailbreak|"
        r"\bpretend (?:to be|you are|you're)\b"
        r"|\bact as (?:an? |the )?(?:ai|assistant|system|admin|administrator|developer|unrestricted|dan)\b"
    ),
    # fake system messages, chat-template tokens, our own delimiters, forged turns
    r"\bsystem\s*(?:notice|message|prompt|override|instructions?|update)\b|[\[<(]\s*system\s*[\]>)]|(?:^|[\n\"'“«])\s*(?-i:SYSTEM)\s*:",
    r"<\|\s*(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id)\s*\|>|\[/?INST\]|<</?SYS>>",
    (
        r"<\s*/?\s*data\b|(?:^|\n)\s*:::\s*(?:system|user|assistant)\b"
        r"|(?-i:END OF (?:TICKET|CONVERSATION|DATA|TRANSCRIPT|INPUT|CONTEXT))"
    ),
    r"(?:^|\n)\s*(?:assistant|system|ai)\s*:",
    # text addressed to the AI instead of to the people
    rf"\b(?:notes?|messages?|instructions?|reminders?)\s+(?:to|for)\s+(?:the\s+|any\s+|all\s+|whatever\s+)?(?:{_AI}|models?)\b",
    rf"\b{_AI}\b[^.!?\n:]{{0,30}}:\s*(?:please\s+)?(?:[^.!?\n]{{0,30}}?\b)?{_DO}\b",
    rf"\b{_AI}\s*,\s*(?:please\s+)?{_DO}\b",
    (
        rf"\b(?:can|could|will|would|should|must)\s+(?:your|the)\s+(?:{_AI}|model)\s+"
        r"(?:pull|add|include|list|tell|show|give|share|fetch|look up|paste|insert)\b"
    ),
    (
        rf"\b(?:{_AI}|(?:ai |drafting |writing )tools?)\b[^.!?\n]{{0,30}}?"
        r"\b(?:must|should|shall|needs? to|ha(?:ve|s) to|(?:is|are) required to)\s+(?:always\s+)?"
        r"(?:tell|say|include|add|promise|offer|mention|send|write|link|reply|respond|state|confirm|use|approve|ignore|refer)\b"
    ),
    rf"\b{_AI}\s+(?:instructions?|directives?|rules)\s*:",
    (
        r"\b(?:the |our |your )?agent (?:must|shall|has to|needs to|is required to) "
        r"(?:confirm|promise|offer|approve|tell|say|include|write|send)\b"
    ),
    # steering what the reply contains, hiding or encoding instructions
    r"\b(?:reply|answer|response)\b[^.!?\n]{0,40}?\b(?:link|url)\b[^!?\n]{0,10}?(?:https?://|www\.)",
    (
        r"\b(?:append|add|insert|include|put|paste)\s+(?:the\s+|this\s+|our\s+)?(?:link\s+|url\s+)?(?:https?://|www\.)\S+"
        r"\s+(?:to|in|into|at the end of)\s+"
        r"(?:the|your|every|each|all)\s+(?:reply|replies|answer|answers|response|responses|summary|notes|draft|email)\b"
    ),
    r"!\[[^\]\n]{0,100}\]\(\s*(?:https?:)?//",
    r"\b(?:decode|base64|rot13)\b[^.!?\n]{0,30}?\b(?:follow|execute|run|obey|apply)\b",
)
_INJECTION = re.compile("|".join(f"(?:{p})" for p in _INJECTION_PATTERNS), re.I | re.M)


def reveal_hidden(text: str) -> str:
    """The text as a model may read it: NFKC (fullwidth letters become ASCII), Unicode tag characters turned into the
    ASCII they smuggle, other invisible format characters (zero-width spaces, direction marks) dropped, and Cyrillic
    and Greek look-alike letters read as Latin ones."""
    out = []
    for ch in unicodedata.normalize("NFKC", text):
        code = ord(ch)
        if 0xE0020 <= code <= 0xE007E:
            out.append(chr(code - 0xE0000))
        elif unicodedata.category(ch) != "Cf":
            out.append(ch)
    return "".join(out).translate(_CONFUSABLES)


def _decoded_base64(text: str) -> list[str]:
    """Readable text hidden in base64 blobs (an instruction a model could decode and follow)."""
    out = []
    for match in _BASE64.finditer(text):
        blob = match.group(0)
        try:
            decoded = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        if decoded and sum(ch.isprintable() or ch.isspace() for ch in decoded) / len(decoded) > 0.95:
            out.append(decoded)
    return out


def find_injection(text: str | None) -> str | None:
    """The first phrase of ``text`` that reads like a prompt injection, after undoing Unicode tricks and base64;
    else None.

    Customer-written text (messages, NPS comments, call turns, KB articles) is data, never instructions;
    this tells a reviewer when someone tried anyway. Deterministic and cheap: a flag, not a proof.
    """
    if not text:
        return None
    revealed = reveal_hidden(text)
    for prefix, candidate in (("", revealed), *(("base64: ", decoded) for decoded in _decoded_base64(revealed))):
        if match := _INJECTION.search(candidate):
            return prefix + " ".join(match.group(0).split())[:80]
    return "hidden Unicode characters" if _HIDDEN.search(text) else None


def injection_flags(texts: Iterable[tuple[str, str | None]]) -> list[GuardVerdict]:
    """No verdict when no input carries a prompt injection, else one failed ``prompt_injection`` flag (never a block on
    its own) naming where; ``texts`` are (where, text) pairs, e.g. ('message 12', body)."""
    found = [f"{where}: {hit}" for where, text in texts if (hit := find_injection(text))]
    return [GuardVerdict(name="prompt_injection", passed=False, severity=Severity.flag, details=found)] if found else []


def blocking_failures(verdicts: Iterable[GuardVerdict]) -> list[GuardVerdict]:
    return [v for v in verdicts if not v.passed and v.severity is Severity.block]
