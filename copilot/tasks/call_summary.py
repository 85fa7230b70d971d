"""Call summary: summary, key points, objections, competitors, decisions, action items and the next step; every item
cites turn ids.

The items are always extracted: sentences ranked by centrality over sentence embeddings (per window of the transcript
that fits the model's context), objections, decisions, action items (owner, due phrase and the date it resolves to)
and next steps by cue phrases. On the model path (the ``capable`` default) the model then writes a short prose recap
from the evidence turns those items stand on, each sentence citing its turns; guards check the recap's citations,
facts and names against the transcript, and a recap that fails is dropped for the extractive summary. With ``small``
the extractive summary is the recap (see the public_qmsum eval suite).

``apply_to_deal`` is the approval hook: it writes an approved summary's next step and action
items to the call's deal.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from copilot.auth import Permission
from copilot.errors import InvalidInput, ModelError, NotFound
from copilot.guards import (
    FactKind,
    GuardVerdict,
    Severity,
    check_cited_ids,
    check_grounded,
    check_names_grounded,
    injection_flags,
    normalise,
)
from copilot.language import detect_language
from copilot.profiles import Profile
from copilot.prompting import PromptTemplate, load_prompt
from copilot.store import Repo
from copilot.store.models import AiResult, AiStatus, Call, Deal, Note
from copilot.tasks import registry
from copilot.tasks.base import Provenance, TaskOutcome, mark_stale
from copilot.tasks.context import TaskContext
from copilot.tasks.registry import DEAL_UPDATED, RecordRef, TaskParams, task
from copilot.tasks.thread import clip, sentences

TASK = "call_summary"
Strategy = Literal["auto", "model", "extractive"]  # its strategies: the API, CLI and registry read them here
Encode = Callable[[list[str]], np.ndarray]
Progress = Callable[[int, int], None]

MAX_OUTPUT_TOKENS = 900  # what a window of the transcript leaves room for, in tokens
MAX_RECAP_TOKENS = 260
MAX_RECAP_SENTENCES = 6
MAX_EVIDENCE_TURNS = 24
PROMPT_OVERHEAD_TOKENS = 450  # system text and framing around the transcript lines
TURN_OVERHEAD_TOKENS = 12  # "[123] 01:02 Speaker Name:" per line
MIN_WINDOW_TOKENS = 256
SUMMARY_SENTENCES = 3
KEY_POINTS = 5
MIN_CONTENT_WORDS = 6  # shorter sentences ("Makes sense.") are never summary material
MMR_DIVERSITY = 0.3  # weight of redundancy against centrality when picking summary sentences

_WEEKDAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_MONTHS = (
    "jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|jun(?:e)?|jul(?:y)?|aug(?:ust)?|sep(?:t(?:ember)?)?"
    "|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_DAY_OF_MONTH = rf"(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?"
DUE = re.compile(
    rf"\b(?:by|before|on|for|until|no later than)\s+"
    rf"(?P<due>(?:next\s+|this\s+)?(?:{_WEEKDAYS})(?:,?\s+{_DAY_OF_MONTH})?|{_DAY_OF_MONTH}|\d{{4}}-\d{{2}}-\d{{2}}"
    rf"|(?:the\s+)?week\s+of\s+{_DAY_OF_MONTH}"
    rf"|(?:the\s+)?end\s+of\s+(?:the\s+)?(?:day|week|month|quarter)|eod|eow|tomorrow|tonight|today)\b"
    rf"|\b(?P<relative>tomorrow|next week|next month|later this week|end of (?:the )?(?:day|week|month|quarter))\b",
    re.I,
)
_ACTION_VERBS = (
    r"send|share|set up|book|schedule|create|prepare|follow up|get back|draft|circulate|review|check|call|email|"
    r"put together|arrange|organi[sz]e|look into|update|invite|introduce|forward|write|finali[sz]e|confirm|provide|"
    r"deliver|run|loop in|reach out|sort out|find out|investigate|ask|talk to|contact|test|implement|work on"
)
ACTION = re.compile(
    rf"\b(?P<subject>I'll|I will|I'm going to|I am going to|I can|we'll|we will|we're going to|let me"
    rf"|(?i:our|the|their|your) [\w-]+(?: [\w-]+)? will|[A-Z][a-z]+ will)"
    rf"\s+(?:\w+\s+){{0,2}}?(?:{_ACTION_VERBS})\b",
)
OBJECTION = re.compile(
    r"\b(?:too expensive|expensive|overpriced|price is|pricing is|costs? too|over (?:the |our )?budget|"
    r"more than we budgeted|main concern|concern(?:ed|s)?|worried|worry|hesitant|not convinced|deal[- ]breaker|"
    r"never adopted|can't commit|cannot commit|before we can commit|can't sign|cannot sign|budget freeze|"
    r"the problem is|the issue is|downside|we'd need|we would need|push ?back)\b",
    re.I,
)
COMPETITOR = re.compile(
    r"\b(?:also (?:trialling|trialing|testing|looking at|evaluating|talking to)|(?:currently|already) (?:use|using|on)|"
    r"switch(?:ing)? from|compared (?:to|with)|versus|vs\.?|their (?:offer|price|quote)|a cheaper tool|competitor|"
    r"other vendors?|alternatives?)\b",
    re.I,
)
WEAK_OBJECTION = re.compile(
    r"\b(?:security|budget|risk|not sure|compliance|legal|migration|competitor)\b", re.I
)  # customers only
DECISION = re.compile(
    r"\b(?:we agree|we agreed|we all agree|agree to|agreed (?:on|to|that)|we've decided|we have decided|we decided|"
    r"decided to|decision is|let's go with|let's go ahead|we'll go with|we will go with|going to go with|"
    r"we're going with|aligned on|settled on|final decision|"
    r"sounds like a plan|go ahead with|move forward with|moving forward|we've chosen|we chose|we'll stick with)\b",
    re.I,
)
NEXT_STEP = re.compile(r"\b(?:next steps?|follow-up meeting|meet again|reconvene|next meeting|next call)\b", re.I)
FILLER = re.compile(r"(?<![\w'-])(?<!\d )(?:uh-huh|mm-hmm|mhm|u+m+|u+h+m*|m{2,}|h+m+|erm+|a+h+)(?![\w'-]),?\s*", re.I)
CLOCK = re.compile(r"(?<![\d:])\d{1,2}:\d{2}(?::\d{2})?(?![\d:])")
NUMBER_WORDS = set(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
    "eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million billion".split()
)
MEANT_TWICE = {"had", "that", "very", "bye", "no", *NUMBER_WORDS}
FIRST_PERSON = re.compile(
    r"^(?:I'll|I will|I'm going to|I am going to|I can|let me|we'll|we will|we're going to)$", re.I
)


# -- schemas --------------------------------------------------------------------------------------
class CitedPoint(BaseModel):
    text: str = Field(max_length=300)
    turn_ids: list[int] = Field(default_factory=list, max_length=4)


class ActionItem(BaseModel):
    what: str = Field(max_length=300)
    owner: str | None = Field(default=None, max_length=80, description="Who does it, as named in the cited turns.")
    due: str | None = Field(default=None, max_length=60, description="When, only if said in the cited turns.")
    turn_ids: list[int] = Field(default_factory=list, max_length=4)
    due_date: date | None = Field(default=None, description="The due phrase as a date, counted from the call's day.")


class CallNotes(BaseModel):
    """What the model writes for one window of a transcript (and for the merge)."""

    summary: str = Field(
        max_length=600, description="Two or three sentences: what the call was about and where it ended."
    )
    summary_turn_ids: list[int] = Field(default_factory=list, max_length=6)
    key_points: list[CitedPoint] = Field(default_factory=list, max_length=5)
    objections: list[CitedPoint] = Field(default_factory=list, max_length=4)
    decisions: list[CitedPoint] = Field(default_factory=list, max_length=4)
    action_items: list[ActionItem] = Field(default_factory=list, max_length=8)
    next_step: CitedPoint | None = None

    def points(self) -> list[CitedPoint]:
        return [*self.key_points, *self.objections, *self.decisions, *([self.next_step] if self.next_step else [])]

    def cited_ids(self) -> list[int]:
        return [
            *self.summary_turn_ids,
            *(i for p in self.points() for i in p.turn_ids),
            *(i for a in self.action_items for i in a.turn_ids),
        ]

    def texts(self) -> list[str]:
        return [self.summary, *(p.text for p in self.points()), *(a.what for a in self.action_items)]

    def as_text(self) -> str:
        """The summary as prose (for ROUGE and for plain-text exports)."""
        parts = [self.summary, *(p.text for p in self.key_points), *(p.text for p in self.decisions)]
        parts += [a.what for a in self.action_items]
        if self.next_step:
            parts.append(self.next_step.text)
        return " ".join(dict.fromkeys(p.strip() for p in parts if p.strip()))


class CallSummary(CallNotes):
    """The stored result: the merged notes plus what they were made from."""

    call_title: str = ""
    turn_count: int = 0
    duration_s: float = 0.0
    windows: int = 1
    recap: list[CitedPoint] = Field(default_factory=list, description="The recap in the model's words, cited.")
    competitors: list[CitedPoint] = Field(default_factory=list, description="Competitors the customer mentioned.")

    def as_text(self) -> str:
        """The model's recap when it wrote one, else the extracted summary and items, as prose."""
        if self.recap:
            return " ".join(p.text for p in self.recap)
        return super().as_text()

    def cited_ids(self) -> list[int]:
        return [*super().cited_ids(), *(i for p in self.recap + self.competitors for i in p.turn_ids)]

    def texts(self) -> list[str]:
        return [*super().texts(), *(p.text for p in self.recap + self.competitors)]


# -- transcript -----------------------------------------------------------------------------------
class TranscriptTurn(BaseModel):
    id: int
    position: int
    speaker: str
    start_s: float = 0.0
    text: str
    role: str | None = None  # from the call's participants: rep, customer, solutions engineer, ...

    @property
    def clock(self) -> str:
        minutes, seconds = divmod(int(self.start_s), 60)
        return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}" if minutes >= 60 else f"{minutes:02d}:{seconds:02d}"


class Transcript(BaseModel):
    title: str = ""
    started_at: datetime | None = None
    participants: list[dict[str, Any]] = Field(default_factory=list)
    turns: list[TranscriptTurn]

    @property
    def ids(self) -> list[int]:
        return [t.id for t in self.turns]

    def by_id(self) -> dict[int, TranscriptTurn]:
        return {t.id: t for t in self.turns}

    def texts(self) -> list[str]:
        """Everything an output may be grounded in: title, participant names and roles, speakers, turn texts."""
        people = [" ".join(str(p.get(k) or "") for k in ("name", "role", "company")) for p in self.participants]
        return [self.title, *people, *(f"{t.speaker}: {t.text}" for t in self.turns)]


def load_transcript(call: Call) -> Transcript:
    roles = {
        str(p.get("name")): p.get("role") for p in call.participants or [] if isinstance(p, dict) and p.get("name")
    }
    turns = [
        TranscriptTurn(
            id=t.id,
            position=t.position,
            speaker=t.speaker,
            start_s=t.start_s or 0.0,
            text=t.text,
            role=roles.get(t.speaker),
        )
        for t in call.turns
        if t.text and t.text.strip()
    ]
    return Transcript(
        title=call.title,
        started_at=call.started_at,
        participants=[p for p in call.participants or [] if isinstance(p, dict)],
        turns=turns,
    )


def estimate_tokens(text: str) -> int:
    """A conservative token count (about 3.5 characters per token for English BPE vocabularies)."""
    return int(len(text) / 3.5) + 1


def window_budget(context_tokens: int) -> int:
    """Tokens of transcript one window may hold, leaving room for the prompt and the answer."""
    return max(MIN_WINDOW_TOKENS, context_tokens - MAX_OUTPUT_TOKENS - PROMPT_OVERHEAD_TOKENS)


def split_windows(turns: list[TranscriptTurn], budget: int) -> list[list[TranscriptTurn]]:
    """Consecutive runs of turns, each within ``budget`` tokens (a single over-long turn is a window on its own)."""
    windows: list[list[TranscriptTurn]] = []
    current: list[TranscriptTurn] = []
    used = 0
    for turn in turns:
        cost = estimate_tokens(turn.speaker + turn.text) + TURN_OVERHEAD_TOKENS
        if current and used + cost > budget:
            windows.append(current)
            current, used = [], 0
        current.append(turn)
        used += cost
    if current:
        windows.append(current)
    return windows


# -- guards ---------------------------------------------------------------------------------------
def _mentions(haystack: str, needle: str) -> bool:
    needle = normalise(needle).strip(" .,;:")
    return bool(needle) and re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", haystack) is not None


def check_action_items(notes: CallNotes, turns: dict[int, TranscriptTurn]) -> GuardVerdict:
    """The owner and the due date of every action item must appear in the turns the item cites
    (speaker, role or text)."""
    problems = []
    for item in notes.action_items:
        cited = [turns[i] for i in item.turn_ids if i in turns]
        label = clip(item.what, 60, one_line=True)
        if (item.owner or item.due) and not cited:
            problems.append(f"'{label}': owner/due with no cited turn")
            continue
        if item.owner:
            haystack = normalise(" ".join(f"{t.speaker} {t.role or ''} {t.text}" for t in cited))
            if not _mentions(haystack, item.owner):
                problems.append(
                    f"'{label}': owner '{item.owner}' is not in turns {', '.join(str(t.id) for t in cited)}"
                )
        if item.due:
            haystack = normalise(" ".join(t.text for t in cited))
            if not _mentions(haystack, item.due):
                problems.append(f"'{label}': due '{item.due}' is not in turns {', '.join(str(t.id) for t in cited)}")
    return GuardVerdict(name="action_items_grounded", passed=not problems, details=problems)


_SENTENCE_BREAK = re.compile(r"(?<=[.!?…])\s+|\n+")


def check_names_anywhere(texts: Iterable[str], sources: Iterable[str]) -> GuardVerdict:
    """check_names_grounded, sentence by sentence, so that a name that starts a sentence (or a text) is checked too."""
    sources = list(sources)
    verdicts = [
        check_names_grounded(f"and {sentence}", sources)
        for text in texts
        for sentence in _SENTENCE_BREAK.split(text)
        if sentence.strip()
    ]
    return GuardVerdict(
        name="grounded_names",
        passed=all(v.passed for v in verdicts),
        details=list(dict.fromkeys(d for v in verdicts for d in v.details)),
    )


def notes_guards(
    notes: CallNotes, transcript: Transcript, valid_ids: Iterable[int] | None = None
) -> list[GuardVerdict]:
    """Cited turns exist (in ``valid_ids``, default the whole transcript), facts and names are grounded,
    action items hold up."""
    sources = transcript.texts()
    # Each item on its own: joined, the owner of one item and the name that starts the next would read as one name.
    parts = [
        *notes.texts(),
        *(a.owner for a in notes.action_items if a.owner),
        *(a.due for a in notes.action_items if a.due),
    ]
    parts = without_turn_clocks(parts, transcript)
    kinds = (
        FactKind.url,
        FactKind.email,
        FactKind.phone,
        FactKind.price,
        FactKind.order_id,
        FactKind.date,
        FactKind.number,
    )
    return [
        check_cited_ids(notes.cited_ids(), transcript.ids if valid_ids is None else valid_ids, what="turn"),
        check_grounded("\n".join(parts), sources, kinds),
        check_names_anywhere(parts, sources),
        check_action_items(notes, transcript.by_id()),
        *injection_flags(
            (f"turn {t.id}", t.text) for t in transcript.turns
        ),  # a flag; model notes of such a call are replaced
    ]


def without_turn_clocks(parts: list[str], transcript: Transcript) -> list[str]:
    """The parts without the times of turns they point at ("at 12:05"): the prompt shows each turn's time, and a time
    that is a turn's is grounded. Any other time stays, to be checked as a number."""
    clocks = {t.clock for t in transcript.turns}
    return [CLOCK.sub(lambda m: " " if m.group(0) in clocks else m.group(0), part) for part in parts]


def _as_rejected(verdicts: list[GuardVerdict], where: str) -> list[GuardVerdict]:
    """Failed verdicts of a model output that was replaced: shown to the reviewer,
    but they do not block the replacement."""
    return [
        v.model_copy(
            update={
                "severity": Severity.flag,
                "details": [f"{where} (replaced): {d}" for d in v.details] or [f"{where} (replaced)"],
            }
        )
        for v in verdicts
        if not v.passed
    ]


# -- extractive path ------------------------------------------------------------------------------
class _Sentence(BaseModel):
    turn: TranscriptTurn
    text: str
    index: int  # order in the transcript


def _transcript_sentences(turns: list[TranscriptTurn]) -> list[_Sentence]:
    """The transcript's sentences; in English, as written (``fluent``). Other languages are kept as said: "um" is a
    word in German ("um 10 Uhr") and a repeat can be grammar ("nous nous sommes vus", "die die Zeitung liest")."""
    english = detect_language(" ".join(t.text for t in turns)[:2000]).code == "en"
    out: list[_Sentence] = []
    for turn in turns:
        for sentence in sentences(turn.text):
            if text := fluent(sentence) if english else sentence:
                out.append(_Sentence(turn=turn, text=clip(text, 300, one_line=True), index=len(out)))
    return out


def fluent(sentence: str) -> str:
    """An English spoken sentence as it would be written: fillers ("um", "uh") and words said twice over ("on the on
    the") left out. Only removes words, so the sentence still says nothing its turn did not."""
    text = FILLER.sub("", sentence)
    for n in (3, 2, 1):
        text = re.sub(rf"(?<![\w'])((?:[\w']+[\s,]+){{{n}}})\1+", _said_once, text + " ", flags=re.I).strip()
    text = re.sub(r"[\s,]+([.?!])", r"\1", re.sub(r"\s{2,}", " ", text)).strip(" ,")
    return text[:1].upper() + text[1:] if re.search(r"\w", text) else ""


def _said_once(repeat: re.Match[str]) -> str:
    """A repeat said once, unless repeating is meaning: numbers ("twenty twenty"), "had had", "that that"."""
    words = set(re.findall(r"[\w']+", repeat.group(1).lower()))
    return repeat.group(0) if words & MEANT_TWICE or any(w.isdigit() for w in words) else repeat.group(1)


def _owner(match: re.Match[str], turn: TranscriptTurn) -> str:
    subject = match.group("subject")
    if FIRST_PERSON.match(subject):
        return turn.speaker
    words = subject.rsplit(" ", 1)[0].split()
    if words and words[0].lower() in ("our", "the", "their", "your"):
        words = words[1:]
    return " ".join(words) or turn.speaker


def _due(text: str) -> str | None:
    match = DUE.search(text)
    return (match.group("due") or match.group("relative")).strip() if match else None


_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAY_INDEX = {name: index for index, name in enumerate(_WEEKDAYS.split("|"))}
_MONTH_DAY = re.compile(rf"\b({_MONTHS})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(\d{{4}}))?", re.I)
_END_OF_DAY = ("today", "tonight", "eod", "end of day", "end of the day")


def _month_end(day: date, months_ahead: int = 0) -> date:
    first = date(day.year + (day.month - 1 + months_ahead + 1) // 12, (day.month + months_ahead) % 12 + 1, 1)
    return first - timedelta(days=1)


def resolve_due(due: str | None, said_on: date | None) -> date | None:
    """The calendar date a spoken due phrase ("Friday", "November 25", "end of the month") names, counted from the
    day it was said; None when the phrase names no day."""
    if not due or said_on is None:
        return None
    text = " ".join(due.lower().split())
    if iso := re.search(r"\d{4}-\d{2}-\d{2}", text):
        return date.fromisoformat(iso.group())
    if month_day := _MONTH_DAY.search(text):
        return _month_day(month_day, said_on)
    if text in _END_OF_DAY:
        return said_on
    if text == "tomorrow":
        return said_on + timedelta(days=1)
    friday = said_on + timedelta(days=(4 - said_on.weekday()) % 7)
    if text in ("eow", "end of week", "end of the week", "later this week"):
        return friday
    if text == "next week":
        return friday + timedelta(days=7)
    if text in ("end of month", "end of the month", "next month"):
        return _month_end(said_on, 1 if text == "next month" else 0)
    if text in ("end of quarter", "end of the quarter"):
        return _month_end(said_on, (2 - (said_on.month - 1) % 3))
    weekday = next((index for name, index in _WEEKDAY_INDEX.items() if name in text), None)
    if weekday is None:
        return None
    ahead = (weekday - said_on.weekday()) % 7 or 7
    return said_on + timedelta(days=ahead + (7 if text.startswith("next ") and ahead <= 4 - said_on.weekday() else 0))


def _month_day(match: re.Match[str], said_on: date) -> date | None:
    month = next(i for i, name in enumerate(_MONTH_NAMES, 1) if match.group(1).lower().startswith(name))
    year = int(match.group(3)) if match.group(3) else said_on.year
    try:
        day = date(year, month, int(match.group(2)))
        if not match.group(3) and day < said_on - timedelta(days=31):  # "January 10" said in December: next year
            day = date(year + 1, month, day.day)
    except ValueError:
        return None
    return day


OBJECTION_TOPICS = {  # in order: a "budget freeze until next quarter" is about timing, not price
    "timing": re.compile(r"\b(?:next quarter|next year|freeze|timing|not now|later this year|not this year)", re.I),
    "price": re.compile(r"\b(?:price|pricing|expensive|overpriced|cost|costs|budget|budgeted|discount|afford)", re.I),
    "security": re.compile(r"\b(?:security|soc ?2|iso ?27001|gdpr|compliance|legal|data (?:is )?hosted|privacy)", re.I),
    "competitor": COMPETITOR,
    "integration": re.compile(r"\b(?:integration|netsuite|salesforce|api|migration|migrate|custom fields?)", re.I),
    "adoption": re.compile(r"\b(?:adopt(?:ed|ion)?|training|change management|never used)", re.I),
}


def objection_topic(text: str) -> str:
    """What an objection is about: price, security, competitor, integration, adoption, timing, or other."""
    return next((topic for topic, pattern in OBJECTION_TOPICS.items() if pattern.search(text)), "other")


def _is_objection(s: _Sentence, roles_known: bool) -> bool:
    role = s.turn.role
    if roles_known and role not in (None, "customer"):  # the selling side answers objections, it does not raise them
        return False
    return bool(OBJECTION.search(s.text)) or (
        roles_known and role == "customer" and bool(WEAK_OBJECTION.search(s.text))
    )


def _cue_items(
    items: list[_Sentence], roles_known: bool
) -> tuple[list[CitedPoint], list[CitedPoint], list[ActionItem], CitedPoint | None]:
    objections, decisions, actions, next_step = [], [], [], None
    for s in items:
        is_question = s.text.endswith("?")
        if NEXT_STEP.search(s.text) and not is_question:
            next_step = CitedPoint(text=s.text, turn_ids=[s.turn.id])
        objection = False
        if DECISION.search(s.text) and not is_question:
            decisions.append(CitedPoint(text=s.text, turn_ids=[s.turn.id]))
        elif objection := _is_objection(s, roles_known):  # "Our IT team will ask about security" is no action
            objections.append(CitedPoint(text=s.text, turn_ids=[s.turn.id]))
        if objection or is_question or s.text.lower().startswith(("if ", "when ")):
            continue
        if match := ACTION.search(s.text):
            actions.append(ActionItem(what=s.text, owner=_owner(match, s.turn), due=_due(s.text), turn_ids=[s.turn.id]))
    return _dedupe(objections)[:4], _dedupe(decisions)[-4:], _dedupe(actions)[-8:], next_step


def _dedupe(items: list[Any]) -> list[Any]:
    seen, out = set(), []
    for item in items:
        key = normalise(getattr(item, "text", None) or item.what)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _mmr(
    vectors: np.ndarray, relevance: np.ndarray, candidates: list[int], k: int, diversity: float = MMR_DIVERSITY
) -> list[int]:
    """Maximal marginal relevance: central sentences that do not repeat each other."""
    chosen: list[int] = []
    pool = list(candidates)
    while pool and len(chosen) < k:
        if chosen:
            redundancy = (vectors[pool] @ vectors[chosen].T).max(axis=1)
        else:
            redundancy = np.zeros(len(pool))
        scores = (1 - diversity) * relevance[pool] - diversity * redundancy
        best = pool[int(np.argmax(scores))]
        chosen.append(best)
        pool.remove(best)
    return chosen


def whole_sentences(texts: list[str], limit: int) -> str:
    """The sentences joined, as many whole ones as fit in ``limit`` characters (never one cut off mid-way)."""
    kept: list[str] = []
    for text in texts:
        if kept and len(" ".join([*kept, text])) > limit:
            break
        kept.append(text)
    return " ".join(kept)[:limit]


def extractive_notes(
    transcript: Transcript,
    encode: Encode | None = None,
    progress: Progress | None = None,
    windows: list[list[TranscriptTurn]] | None = None,
) -> CallNotes:
    """Central sentences as summary and key points, plus cue-phrase objections, decisions,
    action items and next step."""
    windows = windows if windows is not None else [transcript.turns]
    every = _transcript_sentences(transcript.turns)
    if not every:
        for done in range(1, len(windows) + 1):
            if progress:
                progress(done, len(windows))
        return CallNotes(summary="(the transcript has no content to summarise)")
    content = [
        s for s in every if len(s.text.split()) >= MIN_CONTENT_WORDS and not s.text.endswith(("?", "…"))
    ] or every
    # Encode window by window (the progress bar moves per window), then rank over the whole call.
    window_of = {turn.id: n for n, window in enumerate(windows) for turn in window}
    vectors_by_window: list[np.ndarray] = []
    for n in range(len(windows)):
        texts = [s.text for s in content if window_of.get(s.turn.id) == n]
        if encode is not None and len(content) >= 3 and texts:
            vectors_by_window.append(np.asarray(encode(texts), dtype=np.float32))
        if progress:
            progress(n + 1, len(windows))
    if vectors_by_window:
        ordered = [s for n in range(len(windows)) for s in content if window_of.get(s.turn.id) == n]
        vectors = np.vstack(vectors_by_window)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-9
        centroid = vectors.mean(axis=0)
        centroid /= np.linalg.norm(centroid) or 1.0
        relevance = vectors @ centroid
        order = _mmr(vectors, relevance, list(range(len(ordered))), SUMMARY_SENTENCES + KEY_POINTS, MMR_DIVERSITY)
        picked = [ordered[i] for i in order]
    else:  # no embeddings: the longest content sentences, spread over the call
        picked = sorted(content, key=lambda s: -len(s.text.split()))[: SUMMARY_SENTENCES + KEY_POINTS]
    summary_part = sorted(picked[:SUMMARY_SENTENCES], key=lambda s: s.index)
    key_part = sorted(picked[SUMMARY_SENTENCES:], key=lambda s: s.index)
    objections, decisions, actions, next_step = _cue_items(every, roles_known=any(t.role for t in transcript.turns))
    return CallNotes(
        summary=whole_sentences([s.text for s in summary_part], 600),
        summary_turn_ids=list(dict.fromkeys(s.turn.id for s in summary_part))[:6],
        key_points=[CitedPoint(text=s.text, turn_ids=[s.turn.id]) for s in key_part],
        objections=objections,
        decisions=decisions,
        action_items=actions,
        next_step=next_step,
    )


# -- the task -------------------------------------------------------------------------------------
def _finish(notes: CallNotes, transcript: Transcript, windows: int) -> CallSummary:
    duration = max((t.start_s for t in transcript.turns), default=0.0)
    said_on = transcript.started_at.date() if transcript.started_at else None
    for item in notes.action_items:
        item.due_date = item.due_date or resolve_due(item.due, said_on)
    return CallSummary(
        **notes.model_dump(),
        call_title=transcript.title,
        turn_count=len(transcript.turns),
        duration_s=duration,
        windows=windows,
        competitors=competitor_mentions(transcript),
    )


def competitor_mentions(transcript: Transcript) -> list[CitedPoint]:
    """What the customer side said about other vendors (a typed field, and a risk on the deal)."""
    roles_known = any(t.role for t in transcript.turns)
    found = [
        CitedPoint(text=clip(s, 300, one_line=True), turn_ids=[t.id])
        for t in transcript.turns
        if not roles_known or t.role in (None, "customer")
        for s in sentences(t.text)
        if COMPETITOR.search(s)
    ]
    return _dedupe(found)[:4]


def summarize_transcript(
    context: TaskContext, transcript: Transcript, strategy: str = "auto", progress: Progress | None = None
) -> TaskOutcome[CallSummary]:
    """Summarise a transcript (no storage): extract the evidence turns and items; with the model path, the model
    writes the recap from that evidence, each sentence citing its turns."""
    strategy = context.strategy(TASK, strategy)
    prompt = load_prompt(TASK)
    windows = split_windows(transcript.turns, window_budget(context.settings.local_context_tokens))
    provenance = Provenance(
        task=TASK,
        prompt_name=prompt.name,
        prompt_version=prompt.version,
        input_ids=[f"call_turn:{i}" for i in transcript.ids],
    )
    notes = extractive_notes(transcript, context.embedder.encode, progress, windows)
    result = _finish(notes, transcript, len(windows))
    if strategy != "model" or not transcript.turns:
        return TaskOutcome[CallSummary](
            task=TASK,
            result=result,
            verdicts=notes_guards(result, transcript),
            provenance=provenance.model_copy(update={"model": "extractive"}),
        )
    return _with_recap(context, prompt, transcript, result, provenance)


def _with_recap(
    context: TaskContext, prompt: PromptTemplate, transcript: Transcript, result: CallSummary, provenance: Provenance
) -> TaskOutcome[CallSummary]:
    """The model's recap over the evidence turns, kept when it passes the guards (else the extractive summary)."""
    if injection := injection_flags((f"turn {t.id}", t.text) for t in transcript.turns):
        return _recap_outcome(result, transcript, provenance, injection, "the call carries a prompt injection")
    evidence = evidence_turns(transcript, result)
    try:
        completion = context.gateway.complete(
            prompt.render(transcript=transcript, evidence=evidence), max_tokens=MAX_RECAP_TOKENS, temperature=0.0
        )
    except ModelError as error:
        return _recap_outcome(result, transcript, provenance, [], f"model unavailable: {error}")
    provenance = provenance.with_completion(completion)
    recap = parse_recap(completion.text, evidence)
    if not recap:
        empty = GuardVerdict(name="content", passed=False, severity=Severity.flag, details=["the model wrote no recap"])
        return _recap_outcome(result, transcript, provenance, [empty], "the model wrote no recap")
    candidate = result.model_copy(update={"recap": recap})
    verdicts = notes_guards(candidate, transcript)
    if any(not v.passed for v in verdicts):
        return _recap_outcome(
            result, transcript, provenance, _as_rejected(verdicts, "recap"), "the model recap failed a guard"
        )
    return TaskOutcome[CallSummary](task=TASK, result=candidate, verdicts=verdicts, provenance=provenance)


def _recap_outcome(
    result: CallSummary, transcript: Transcript, provenance: Provenance, verdicts: list[GuardVerdict], reason: str
) -> TaskOutcome[CallSummary]:
    return TaskOutcome[CallSummary](
        task=TASK,
        result=result,
        verdicts=[*verdicts, *notes_guards(result, transcript)],
        provenance=provenance,
        used_fallback=True,
        fallback_reason=reason,
    )


def evidence_turns(transcript: Transcript, notes: CallNotes, limit: int = MAX_EVIDENCE_TURNS) -> list[TranscriptTurn]:
    """The turns the extracted notes stand on, in call order (what the model writes the recap from)."""
    wanted = list(dict.fromkeys(notes.cited_ids()))[:limit]
    by_id = transcript.by_id()
    turns = [by_id[i] for i in wanted if i in by_id]
    return sorted(
        (t.model_copy(update={"text": clip(t.text, 400, one_line=True)}) for t in turns), key=lambda t: t.position
    )


CITATION = re.compile(r"\[((?:\s*\d+\s*,?)+)\]")


def parse_recap(text: str, evidence: list[TranscriptTurn]) -> list[CitedPoint]:
    """The model's recap sentences with the turn ids each cites (an uncited sentence gets its closest evidence turn)."""
    from rapidfuzz import fuzz

    points = []
    for sentence in sentences(" ".join(line.strip(" -*•") for line in text.strip().split("\n"))):
        ids = [int(i) for group in CITATION.findall(sentence) for i in re.findall(r"\d+", group)]
        plain = CITATION.sub("", sentence).strip()
        if len(plain.split()) < 3:
            continue
        if not ids and evidence:
            ids = [max(evidence, key=lambda t: fuzz.token_set_ratio(plain, t.text)).id]
        points.append(CitedPoint(text=clip(plain, 300, one_line=True), turn_ids=list(dict.fromkeys(ids))[:4]))
    return points[:MAX_RECAP_SENTENCES]


class CallSummaryParams(TaskParams):
    call_id: RecordRef
    strategy: Strategy = "auto"


@task(
    TASK,
    subject="call",
    subject_field="call_id",
    permission=Permission.run_sales,
    review=Permission.review_sales,
    defaults={Profile.small: "extractive", Profile.capable: "model"},
    prompt=TASK,
    on_approve=lambda repo, result_id: apply_to_deal(repo, result_id),
    carriers=("call_turn",),
)
def summarize_call(context: TaskContext, params: CallSummaryParams) -> TaskOutcome[CallSummary]:
    """Summarise a call: key points, objections, decisions, action items, next step (with turn ids); reviewed
    before its next step and action items are written to the deal."""
    call = context.repo.resolve(Call, params.call_id)
    transcript = load_transcript(call)
    if not transcript.turns:
        raise InvalidInput(f"call {call.external_id or call.id} has no transcript turns to summarise")
    outcome = summarize_transcript(context, transcript, params.strategy, context.progress)
    outcome.provenance.input_ids.insert(0, f"call:{call.id}")
    outcome.subject_id = call.id
    return outcome


def latest_summary(repo: Repo, call_id: int) -> tuple[AiResult, CallSummary] | None:
    """The newest stored summary of a call that was not rejected or superseded
    (approved, edited or waiting for review)."""
    row = repo.session.scalar(
        repo.select(AiResult)
        .where(
            AiResult.task == TASK,
            AiResult.subject_kind == "call",
            AiResult.subject_id == call_id,
            AiResult.status.in_([AiStatus.approved, AiStatus.edited, AiStatus.pending, AiStatus.completed]),
        )
        .order_by(AiResult.id.desc())
        .limit(1)
    )
    return (row, approved_summary(row)[0]) if row is not None else None


# -- approval hook --------------------------------------------------------------------------------
def approved_summary(row: AiResult) -> tuple[CallSummary, str | None]:
    """The summary a reviewer approved, and the reviewer's own text
    when the edit is free text rather than the JSON result."""
    stored = CallSummary.model_validate(row.content.get("result", {}))
    if row.status is AiStatus.edited and row.final_text:
        try:
            return CallSummary.model_validate_json(row.final_text), None
        except ValidationError:
            return stored, row.final_text.strip()
    return stored, None


def action_items_note(summary: CallSummary, call: Call) -> str:
    lines = [f"Action items from the call '{call.title}' ({call.started_at:%Y-%m-%d}):"]
    for item in summary.action_items:
        extra = ", ".join(x for x in (item.owner, f"due {item.due}" if item.due else None) if x)
        lines.append(f"- {item.what}" + (f" ({extra})" if extra else ""))
    if not summary.action_items:
        lines.append("- (none)")
    return "\n".join(lines)


def apply_to_deal(repo: Repo, ai_result_id: int) -> Deal:
    """Approval hook: write an approved call summary's next step, and its action items as a note, to the call's deal.

    Idempotent: applying the same result again updates the same note. The deal's briefs go stale.
    """
    row = repo.get(AiResult, ai_result_id)
    if row is None:
        raise NotFound(f"no AI result {ai_result_id} in workspace '{repo.workspace.slug}'")
    if row.task != TASK or row.subject_kind != "call":
        raise InvalidInput(f"ai_result_id: AI result {ai_result_id} is a {row.task}, not a call summary")
    if row.status not in (AiStatus.approved, AiStatus.edited):
        raise InvalidInput(
            f"ai_result_id: AI result {ai_result_id} is {row.status.value}; "
            "only an approved call summary is written to the deal"
        )
    call = repo.get(Call, row.subject_id) if row.subject_id is not None else None
    if call is None:
        raise NotFound(f"the call of AI result {ai_result_id} no longer exists in workspace '{repo.workspace.slug}'")
    deal = repo.get(Deal, call.deal_id) if call.deal_id is not None else None
    if deal is None:
        raise InvalidInput(f"call {call.external_id or call.id} is not linked to a deal: nothing to write")
    summary, edited_text = approved_summary(row)
    body = edited_text or action_items_note(summary, call)  # a free-text edit goes on the deal in the reviewer's words
    if summary.next_step and summary.next_step.text.strip():
        deal.next_step = summary.next_step.text.strip()
    external_id = f"ai-result-{row.id}"
    note = repo.by_external_id(Note, external_id)
    if note is None:
        note = repo.add(
            Note(
                external_id=external_id,
                account_id=deal.account_id or call.account_id,
                deal_id=deal.id,
                author="copilot (approved call summary)",
                body=body,
                noted_at=datetime.now(UTC),
            )
        )
    else:
        note.body = body
    repo.session.flush()
    mark_stale(repo, subject_kind="deal", subject_id=deal.id, tasks=registry.stale_on(DEAL_UPDATED))
    return deal
