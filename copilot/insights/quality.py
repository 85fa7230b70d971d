"""Reply quality (auto-QA): every agent reply scored against the workspace's scorecard, criterion by criterion, each
verdict with the sentence it rests on.

Default criteria: answered the question, correct per the KB and sources, empathy, clarity, next step stated, and
policy (no unapproved commitment; required: a failure fails the reply). The deterministic grader (``rules``, the
default for ``small`` models) reads signals: the customer's question and follow-up, the reply's words and facts, the
KB, the internal notes (where approvals are written), the sentiment classifier and the commitment detector of
``copilot.guards``. ``capable`` models grade under the rubric prompt ``prompts/reply_qa.j2``; their verdicts must
quote the texts they were shown, the policy verdict is held to the commitment detector, and a thread carrying a
prompt injection is graded by the rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from copilot.guards import FactKind, detect_commitments, normalise, signature_block, ungrounded_facts
from copilot.insights.common import classify_cached, workspace_config
from copilot.store import Repo
from copilot.store.models import AiResult, AiStatus, AuditEvent, AuthorKind, KbArticle, Ticket, utc

VerdictValue = Literal["pass", "fail", "n/a"]
CRITERIA = ("answered", "correct", "empathy", "clarity", "next_step", "policy")
DEFAULT_THRESHOLD = 0.75
NEGATIVE = -0.3
MAX_WORDS, MAX_MEAN_SENTENCE, MAX_SENTENCE = 250, 25, 45
STOPWORDS = set(
    "a an and are as at be been but by can could did do does for from had has have hello hi how i i'm if in into is "
    "it its it's just me my no not of on or our please so that the their them there this to us was we were what when "
    "which why will with would you your yours thanks thank hey dear team any some also can't don't".split()
)
NOT_ANSWERED = re.compile(
    r"\b(?:still (?:not|no|nothing|waiting|broken|failing|slow|there|the same)|didn'?t (?:answer|help|work|fix)|"
    r"doesn'?t (?:answer|help|work)|not what i asked|i already (?:said|told|explained)|as i said|you ignored|"
    r"that'?s not (?:it|the problem|what)|no answer|again\?|still nothing)\b",
    re.I,
)
THANKED = re.compile(
    r"\b(?:thank(?:s| you)|that worked|works now|perfect|sorted|resolved|fixed|much appreciated|great|confirmed|"
    r"gracias|danke|merci|funciona|klappt)\b",
    re.I,
)
ACKNOWLEDGE = re.compile(
    r"\b(?:sorry|apolog\w*|understand|frustrat\w*|inconvenien\w*|thanks? (?:you )?for your patience|appreciate|"
    r"i see how|lo siento|disculp\w*|entschuldig\w*|désolé|navré)\b",
    re.I,
)
GREETING = re.compile(r"^\s*(?:hi|hello|hey|dear|good (?:morning|afternoon)|hola|hallo|guten tag|bonjour)\b", re.I)
NEXT_STEP = re.compile(
    r"\b(?:please|could you|can you|would you|let me know|try|go to|open|click|select|choose|update|upload|reconnect|"
    r"turn on|i'll|i will|we'll|we will|you'll|you will|you should|next|once|should (?:appear|arrive|see)|"
    r"within|reply|send (?:me|us)|follow up|check|reach out|get back to|contact you|keep you posted|update you)\b|\?",
    re.I,
)
SETTINGS_PATH = re.compile(r"\b[A-Z][\w-]*(?: [A-Z][\w-]*)?(?:\s?>\s?[A-Z][\w-]*(?: [\w-]+)?)+")
APPROVAL = re.compile(r"\b(?:approved|ok(?:ay)? to|authori[sz]ed|signed off|go ahead|green light)\b", re.I)
NEGATION = re.compile(r"\b(?:not|no|never|without|don'?t|do not)\b", re.I)
SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
TOPICS = (
    ("billing", r"charge|refund|invoice|payment|card|billing|renewal|price|pricing|plan|downgrade|cancel|discount"),
    ("login", r"2fa|two-factor|login|log in|sso|password|locked out|sign in|okta"),
    ("integrations", r"integration|sync|quickbooks|xero|salesforce|stripe|hubspot|netsuite|shopify|token"),
    ("api", r"\bapi\b|webhook|429|rate limit|hmac|signature"),
    ("data", r"export|import|csv|gdpr|delete|dpa|data"),
    ("mobile", r"mobile|app crash|android|iphone|ios|receipt"),
    ("performance", r"slow|timeout|performance|loading"),
)


class Criterion(BaseModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    description: str = Field(max_length=300)
    weight: float = Field(default=1.0, ge=0, le=10)
    required: bool = Field(default=False, description="A failure fails the reply whatever its score.")


class Scorecard(BaseModel):
    criteria: list[Criterion] = Field(min_length=1, max_length=12)
    threshold: float = Field(default=DEFAULT_THRESHOLD, ge=0, le=1, description="Weighted pass share a reply needs.")

    def names(self) -> list[str]:
        return [c.name for c in self.criteria]


DEFAULT_SCORECARD = Scorecard(
    criteria=[
        Criterion(
            name="answered", description="Answers what the customer asked (their follow-up agrees).", required=True
        ),
        Criterion(name="correct", description="Facts, steps and settings agree with the KB and the thread."),
        Criterion(name="empathy", description="Acknowledges an upset customer; polite and warm to everyone."),
        Criterion(name="clarity", description="Short sentences, plain words, no wall of text, no shouting."),
        Criterion(name="next_step", description="Says what happens next or what the customer should do."),
        Criterion(
            name="policy",
            description="No refund, credit, discount, deadline or escalation promised without an approval on record.",
            required=True,
        ),
    ]
)


def scorecard_of(repo: Repo) -> Scorecard:
    """The workspace's scorecard (``insights.scorecard``), else the default; ``insights.qa_threshold`` from
    calibration replaces the threshold."""
    config = workspace_config(repo)
    card = Scorecard.model_validate(config["scorecard"]) if config.get("scorecard") else DEFAULT_SCORECARD
    if config.get("qa_threshold") is not None:
        card = card.model_copy(update={"threshold": float(config["qa_threshold"])})
    return card


class Verdict(BaseModel):
    criterion: str
    verdict: VerdictValue
    evidence: str = Field(default="", description="The sentence the verdict rests on.")
    source: str = Field(default="reply", description="Where the evidence is: reply, customer, kb, note.")
    why: str = ""
    severe: bool = Field(default=False, description="Fails the reply whatever its score (e.g. a rude reply).")


class ReplyScore(BaseModel):
    ticket_id: int
    message_id: int | None = None
    ai_result_id: int | None = Field(default=None, description="An approved draft that was not also a message.")
    author: str | None = None
    sent_at: datetime
    topic: str
    verdicts: list[Verdict]
    score: float = Field(ge=0, le=1)
    passed: bool
    method: Literal["rules", "model"]

    def verdict(self, criterion: str) -> Verdict:
        return next(v for v in self.verdicts if v.criterion == criterion)


# -- what a reply is graded on ----------------------------------------------------------------------
@dataclass
class Reply:
    """One agent reply with the context it is graded in."""

    ticket: Ticket
    text: str
    sent_at: datetime
    author: str | None
    message_id: int | None = None
    ai_result_id: int | None = None
    question: list[str] = field(default_factory=list)  # customer messages since the previous agent reply
    follow_up: str | None = None  # the customer's next message
    notes: list[str] = field(default_factory=list)  # internal notes before the reply
    earlier: list[str] = field(default_factory=list)  # every message before it (grounding)
    kb: list[str] = field(default_factory=list)
    confirmed: bool = False  # a reviewer explicitly confirmed its commitments


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE.split(text or "") if len(s.strip()) > 1]


def body_of(text: str) -> str:
    """The reply without its sign-off block."""
    block = signature_block(text)
    return text[: text.rfind(block)].strip() if block else text.strip()


def keywords(text: str) -> set[str]:
    words = re.findall(r"[\w'-]+", (text or "").lower())
    return {w.rstrip("s") if len(w) > 4 else w for w in words if len(w) > 2 and w not in STOPWORDS and not w.isdigit()}


def topic_of(ticket: Ticket) -> str:
    text = ticket.subject.lower()
    return next((name for name, pattern in TOPICS if re.search(pattern, text)), "other")


def replies_of(repo: Repo, ticket: Ticket, message_id: int | None = None) -> list[Reply]:
    """The ticket's agent replies (messages, and approved drafts not sent as a message), with their context."""
    thread = sorted(ticket.messages, key=lambda m: (m.sent_at, m.id))
    kb = _kb_texts(repo)
    replies = [
        _reply_from_message(ticket, thread, i, kb) for i, m in enumerate(thread) if m.author_kind is AuthorKind.agent
    ]
    sent = {normalise(body_of(r.text)) for r in replies}
    for row, actor, confirmed in _approved_drafts(repo, ticket.id):
        text = row.final_text or ""
        if not text.strip() or normalise(body_of(text)) in sent:
            continue
        at = utc(row.updated_at)
        before = [m for m in thread if utc(m.sent_at) <= at]
        reply = _reply_from_message(ticket, [*before, None], len(before), kb, text=text, at=at, author=actor)
        reply.ai_result_id, reply.confirmed = row.id, confirmed
        after = [m for m in thread if utc(m.sent_at) > at and m.author_kind is AuthorKind.customer]
        reply.follow_up = after[0].body if after else None
        replies.append(reply)
    if message_id is not None:
        replies = [r for r in replies if r.message_id == message_id]
    return sorted(replies, key=lambda r: r.sent_at)


def _reply_from_message(
    ticket: Ticket,
    thread: list[Any],
    index: int,
    kb: list[tuple[str, str]],
    *,
    text: str | None = None,
    at: datetime | None = None,
    author: str | None = None,
) -> Reply:
    message = thread[index]
    before = [m for m in thread[:index] if m is not None]
    last_agent = max((i for i, m in enumerate(before) if m.author_kind is AuthorKind.agent), default=-1)
    question = [m.body for m in before[last_agent + 1 :] if m.author_kind is AuthorKind.customer]
    later = [m for m in thread[index + 1 :] if m is not None]
    follow = next((m for m in later if m.author_kind is not AuthorKind.internal_note), None)
    reply = Reply(
        ticket=ticket,
        text=text if text is not None else message.body,
        sent_at=at or utc(message.sent_at),
        author=author if text is not None else message.author,
        message_id=None if text is not None else message.id,
        question=question,
        follow_up=follow.body if follow is not None and follow.author_kind is AuthorKind.customer else None,
        notes=[m.body for m in before if m.author_kind is AuthorKind.internal_note],
        earlier=[ticket.subject, *(m.body for m in before)],
    )
    reply.kb = relevant_kb(kb, " ".join([ticket.subject, *question]))
    return reply


def _kb_texts(repo: Repo) -> list[tuple[str, str]]:
    return [(a.title, a.body) for a in repo.all(repo.select(KbArticle).order_by(KbArticle.id))]


def relevant_kb(articles: list[tuple[str, str]], query: str, top: int = 2) -> list[str]:
    wanted = keywords(query)
    ranked = sorted(((len(wanted & keywords(f"{t} {b}")), t, b) for t, b in articles), key=lambda x: -x[0])
    return [f"{t}\n{b}" for score, t, b in ranked[:top] if score >= 2]


def _approved_drafts(repo: Repo, ticket_id: int) -> list[tuple[AiResult, str | None, bool]]:
    rows = repo.all(
        repo.select(AiResult).where(
            AiResult.task == "reply_draft",
            AiResult.subject_kind == "ticket",
            AiResult.subject_id == ticket_id,
            AiResult.status.in_([AiStatus.approved, AiStatus.edited, AiStatus.sent]),
        )
    )
    out = []
    for row in rows:
        event = repo.session.scalar(
            repo.select(AuditEvent)
            .where(AuditEvent.ai_result_id == row.id, AuditEvent.action.in_(["review.approve", "review.edit"]))
            .order_by(AuditEvent.id.desc())
            .limit(1)
        )
        confirmed = bool(event and (event.after or {}).get("confirm_commitments"))
        out.append((row, event.actor if event else None, confirmed))
    return out


# -- the rules ------------------------------------------------------------------------------------
def grade_rules(reply: Reply, card: Scorecard, sentiment: dict[str, Any]) -> list[Verdict]:
    """Each scorecard criterion from deterministic signals; criteria the rules cannot judge are n/a."""
    body = body_of(reply.text)
    graders = {
        "answered": _answered,
        "correct": _correct,
        "empathy": lambda r, b: _empathy(r, b, sentiment),
        "clarity": _clarity,
        "next_step": _next_step,
        "policy": _policy,
    }
    out = []
    for criterion in card.criteria:
        grader = graders.get(criterion.name)
        out.append(
            grader(reply, body)
            if grader
            else Verdict(criterion=criterion.name, verdict="n/a", why="a custom criterion: only a model grades it")
        )
    return out


def _answered(reply: Reply, body: str) -> Verdict:
    question = " ".join(reply.question)
    if not question.strip():
        return Verdict(criterion="answered", verdict="n/a", why="no customer question before this reply")
    if reply.follow_up:
        follow = sentences(reply.follow_up) or [reply.follow_up]
        if hit := next((s for s in follow if NOT_ANSWERED.search(s)), None):
            return Verdict(
                criterion="answered",
                verdict="fail",
                evidence=hit,
                source="customer",
                why="the customer's next message says it was not answered",
            )
        if hit := next((s for s in follow if THANKED.search(s)), None):
            return Verdict(
                criterion="answered",
                verdict="pass",
                evidence=hit,
                source="customer",
                why="the customer's next message confirms it",
            )
    names = keywords(" ".join(n for n in (reply.author, reply.ticket.contact and reply.ticket.contact.name) if n))
    wanted = keywords(" ".join([*reply.earlier[:2], question])) - names  # the subject, the opening ask, the latest
    scored = [(len(wanted & keywords(s)), s) for s in sentences(body)]
    best = max(scored, key=lambda pair: pair[0], default=(0, ""))
    shared = wanted & keywords(body)
    if len(shared) >= 2 or (wanted and len(shared) / len(wanted) >= 0.25):
        return Verdict(
            criterion="answered",
            verdict="pass",
            evidence=best[1],
            why=f"addresses the question's terms: {', '.join(sorted(shared)[:6])}",
        )
    asked = max(sentences(question), key=lambda s: len(keywords(s)), default=question)
    return Verdict(
        criterion="answered",
        verdict="fail",
        evidence=asked,
        source="customer",
        why="the reply does not take up what the customer asked",
    )


def _correct(reply: Reply, body: str) -> Verdict:
    sources = [*reply.earlier, *reply.notes, *reply.kb]
    kinds = (FactKind.url, FactKind.email, FactKind.phone, FactKind.price, FactKind.order_id, FactKind.date)
    for sentence in sentences(body):
        missing = ungrounded_facts(sentence, sources, kinds)
        paths = [
            p for p in SETTINGS_PATH.findall(sentence) if ">" in p and normalise(p) not in normalise(" ".join(sources))
        ]
        if missing or paths:
            what = ", ".join([*missing, *(f"setting {p}" for p in paths)])
            return Verdict(
                criterion="correct", verdict="fail", evidence=sentence, why=f"not in the KB or the thread: {what}"
            )
    support = [*reply.kb, *reply.notes]
    backed = [(max((len(keywords(s) & keywords(k)) for k in support), default=0), s) for s in sentences(body)]
    best = max(backed, key=lambda pair: pair[0], default=(0, ""))
    if best[0] >= 3:
        return Verdict(criterion="correct", verdict="pass", evidence=best[1], why="agrees with the KB or the notes")
    return Verdict(criterion="correct", verdict="n/a", why="no fact or step to check against the KB")


def _empathy(reply: Reply, body: str, sentiment: dict[str, Any]) -> Verdict:
    upset = [(s, sentiment[s]) for s in reply.question if s in sentiment and _negative(sentiment[s])]
    said = sentences(body)
    kind = next((s for s in said if ACKNOWLEDGE.search(s)), None)
    if upset:
        if kind:
            return Verdict(criterion="empathy", verdict="pass", evidence=kind, why="acknowledges an upset customer")
        worst = min(upset, key=lambda pair: pair[1].score)[0]
        return Verdict(
            criterion="empathy",
            verdict="fail",
            evidence=(sentences(worst) or [worst])[0],
            source="customer",
            why="the customer is upset and the reply does not acknowledge it",
        )
    reply_mood = sentiment.get(body)
    if kind:  # an apology reads as negative to a sentiment classifier: the acknowledgement decides
        return Verdict(criterion="empathy", verdict="pass", evidence=kind, why="acknowledges the customer")
    if reply_mood is not None and reply_mood.score < NEGATIVE:
        rude = next((s for s in said if not ACKNOWLEDGE.search(s)), said[0] if said else "")
        return Verdict(
            criterion="empathy", verdict="fail", evidence=rude, why="the reply reads as negative", severe=True
        )
    warm = next((s for s in said if GREETING.search(s)), None)
    if warm:
        return Verdict(criterion="empathy", verdict="pass", evidence=warm, why="polite and warm")
    return Verdict(criterion="empathy", verdict="fail", evidence=said[0] if said else "", why="no greeting or warmth")


def _negative(mood: Any) -> bool:
    return mood.score < NEGATIVE or bool(getattr(mood, "frustration", False))


def _clarity(reply: Reply, body: str) -> Verdict:
    said = sentences(body)
    if not said:
        return Verdict(criterion="clarity", verdict="fail", why="an empty reply")
    lengths = [len(s.split()) for s in said]
    longest = said[lengths.index(max(lengths))]
    letters = [c for c in body if c.isalpha()]
    shouting = len(letters) > 20 and sum(c.isupper() for c in letters) / len(letters) > 0.5
    problems = []
    if sum(lengths) > MAX_WORDS:
        problems.append(f"{sum(lengths)} words")
    if sum(lengths) / len(lengths) > MAX_MEAN_SENTENCE or max(lengths) > MAX_SENTENCE:
        problems.append(f"sentences up to {max(lengths)} words")
    if shouting:
        problems.append("written in capitals")
    if problems:
        return Verdict(criterion="clarity", verdict="fail", evidence=longest, why="; ".join(problems))
    return Verdict(criterion="clarity", verdict="pass", evidence=longest, why=f"{len(said)} short sentence(s)")


def _next_step(reply: Reply, body: str) -> Verdict:
    said = sentences(body)
    step = next((s for s in reversed(said) if NEXT_STEP.search(s) and not GREETING.fullmatch(s)), None)
    if step:
        return Verdict(criterion="next_step", verdict="pass", evidence=step, why="says what happens next")
    return Verdict(
        criterion="next_step",
        verdict="fail",
        evidence=said[-1] if said else "",
        why="no next step for the customer or the agent",
    )


def approved_commitments(notes: Iterable[str]) -> set[str]:
    """Commitment kinds an internal note approves ("Refund of the duplicate approved by Finance"), not negated ones
    ("Do not offer discounts without sales approval")."""
    kinds: set[str] = set()
    for note in notes:
        for sentence in sentences(note):
            if APPROVAL.search(sentence) and not NEGATION.search(sentence):
                kinds |= set(detect_commitments(sentence))
    return kinds


def _policy(reply: Reply, body: str) -> Verdict:
    promised = detect_commitments(body)
    if not promised:
        return Verdict(criterion="policy", verdict="pass", why="promises nothing that would need an approval")
    allowed = approved_commitments(reply.notes) | (set(promised) if reply.confirmed else set())
    unapproved = [kind for kind in promised if kind not in allowed]
    if not unapproved:
        return Verdict(
            criterion="policy",
            verdict="pass",
            evidence=_sentence_with(body, promised[0]),
            source="reply",
            why=f"{', '.join(promised)} approved on record",
        )
    return Verdict(
        criterion="policy",
        verdict="fail",
        evidence=_sentence_with(body, unapproved[0]),
        why=f"promises {', '.join(unapproved)} with no approval on record",
    )


def _sentence_with(body: str, kind: str) -> str:
    return next((s for s in sentences(body) if kind in detect_commitments(s)), body[:300])


# -- the score -------------------------------------------------------------------------------------
def score_of(verdicts: list[Verdict], card: Scorecard) -> tuple[float, bool]:
    weights = {c.name: c.weight for c in card.criteria}
    required = {c.name for c in card.criteria if c.required}
    judged = [v for v in verdicts if v.verdict != "n/a" and weights.get(v.criterion, 0) > 0]
    total = sum(weights[v.criterion] for v in judged)
    score = sum(weights[v.criterion] for v in judged if v.verdict == "pass") / total if total else 1.0
    failed_required = any(v.verdict == "fail" and (v.criterion in required or v.severe) for v in verdicts)
    return round(score, 4), score >= card.threshold and not failed_required


def reply_sentiment(classifier: Any, replies: list[Reply]) -> dict[str, Any]:
    """Sentiment of every customer question and reply body the rules read, by text."""
    texts = list(dict.fromkeys([*(q for r in replies for q in r.question), *(body_of(r.text) for r in replies)]))
    return dict(zip(texts, classify_cached(classifier, texts), strict=True))


def scored(reply: Reply, verdicts: list[Verdict], card: Scorecard, method: str) -> ReplyScore:
    score, passed = score_of(verdicts, card)
    return ReplyScore(
        ticket_id=reply.ticket.id,
        message_id=reply.message_id,
        ai_result_id=reply.ai_result_id,
        author=reply.author,
        sent_at=reply.sent_at,
        topic=topic_of(reply.ticket),
        verdicts=verdicts,
        score=score,
        passed=passed,
        method=method,  # type: ignore[arg-type]
    )
