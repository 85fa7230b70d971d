"""NPS advocacy and recovery: a promoter's thank-you with a review or referral ask (``nps_thank_you``) and a
detractor's follow-up from their account owner or support (``nps_follow_up``), in the respondent's language, quoting
the words of the comment they answer.

Who they are, their theme and who sends the message: copilot/tasks/nps_respondents.py. ``template`` (the small-model
default) fills the workspace's wording in prompts/nps_advocacy.yaml around the quote; ``model`` (capable models)
writes the message from prompts/nps_thank_you.j2 / nps_follow_up.j2, and a model text that misquotes the comment,
holds a link, email address or phone number (never repeated, even from the comment), adds a price, date or name not
in the records, is in another language or carries markup is replaced by the template. A comment carrying a prompt
injection is never quoted nor sent to the model. Drafts wait in the review
queue (``pending``) and are never sent here; approving one marks the respondent as asked (``NpsAdvocacy.asked_at``)
and hands it to delivery (the workspace webhook), and a respondent already asked is not drafted for again unless
``again`` is given.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field
from rapidfuzz import fuzz

from copilot.auth import Permission
from copilot.errors import InvalidInput, ModelError
from copilot.guards import (
    FactKind,
    GuardVerdict,
    Severity,
    check_commitments,
    check_grounded,
    detect_commitments,
    extract_facts,
    find_injection,
    normalise,
    proper_names,
    prose_problem,
)
from copilot.language import detect_language
from copilot.profiles import Profile
from copilot.prompting import load_prompt, prompts_dir
from copilot.review import record_event
from copilot.store import Repo
from copilot.store.models import AiResult, AiStatus, NpsAdvocacy, NpsResponse
from copilot.tasks.base import Provenance, TaskOutcome
from copilot.tasks.context import TaskContext
from copilot.tasks.nps_respondents import SUBJECT_KIND, TASK_OF_KIND, Kind, Respondent, RouteName, describe, kind_for
from copilot.tasks.registry import RecordRef, TaskParams, task

THANK_YOU, FOLLOW_UP = TASK_OF_KIND["thank_you"], TASK_OF_KIND["follow_up"]
TEMPLATES = "nps_advocacy"  # prompts/nps_advocacy.yaml: the template strategy's wording
Strategy = Literal["auto", "model", "template"]
CONTACT_FACTS = (FactKind.url, FactKind.email, FactKind.phone)  # never in these messages, whoever wrote them first
GUARDED_FACTS = (FactKind.price, FactKind.order_id, FactKind.date)  # only as the respondent wrote them
ASKS: dict[str, list[str]] = {"thank_you": ["review", "referral"], "follow_up": ["call"]}
QUOTE_CHARS = 200
MAX_TEXT_CHARS = 1200
QUOTE_MATCH = 90  # rapidfuzz partial ratio: a quoted span must be the comment's words (punctuation aside)
QUOTED_SPAN = re.compile(r"“([^”]{3,})”|\"([^\"]{3,})\"|«\s?([^»]{3,}?)\s?»|„([^“”]{3,})[“”]")
SENTENCE = re.compile(r"(?<=[.!?…])\s+|\n+")
CONTRAST = re.compile(r"(?:(?<=[.!?…;])\s+|,\s+|\s+)(?=(?:but|however|that said|though|yet)\b)", re.I)
COMPLAINT = re.compile(
    r"\b(?:too (?:many|much|long|slow|expensive|basic)|missing|crash\w*|breaks?|broken|bugs?|slow\w*|outages?|"
    r"unreliable|confusing|hard to|nightmare|overpriced|expensive|duplicates|takes days|nobody|without fixing)\b",
    re.I,
)
LEADING_CONNECTOR = re.compile(r"^(?:but|however|also|and|plus|still|though|that said|on top of that)\b[,:]?\s+", re.I)
GREETING_LINE = re.compile(
    r"^(?:hi|hello|dear|hola|hallo|guten tag|bonjour|olá|ciao|buongiorno|goedendag)\b.{0,40}[,!]$", re.I
)
SIGN_OFF_LINE = re.compile(
    r"^(?:best(?: regards)?|kind regards|regards|thanks|saludos|viele grüße|cordialement|atenciosamente|"
    r"cordiali saluti|met vriendelijke groet)[,!.]?$",
    re.I,
)
NAME_LINE = re.compile(r"^[A-Z][\w'.-]*(?: [A-Z][\w'.-]*){0,2}$")  # a signature: "Marcus", "Marcus Hughes"
MARKUP = re.compile(r"<\s*/?\s*data|^:::|\[S\d+\]|\{\w+\}", re.I | re.M)


class AdvocacyDraft(BaseModel):
    kind: Kind
    text: str = Field(description="The message to the respondent, in their language; sent only once approved.")
    language: str
    response_id: int
    response_ref: str | None = None
    score: int
    quote: str | None = Field(default=None, description="The respondent's own words the message quotes.")
    theme: str | None = None
    account_id: int | None = None
    account: str | None = None
    contact_id: int | None = None
    contact: str | None = None
    owner: str | None = Field(default=None, description="Who sends it; None: the support queue or the team.")
    route: RouteName
    route_reason: str
    asks: list[str] = Field(description="What the message asks for: review and referral, or a call.")
    needs_explicit_approval: list[str] = Field(default_factory=list, description="Commitments a human must approve.")
    injection_suspected: bool = False


class AdvocacyParams(TaskParams):
    response_id: RecordRef
    strategy: Strategy = "auto"
    again: bool = Field(default=False, description="Draft again for a respondent an approved draft already asked.")


# -- the respondent's words ---------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def pick_quote(comment: str | None, kind: Kind) -> str | None:
    """The respondent's words a message quotes, verbatim: the whole comment, or for a comment that turns ("Love the
    reports. But payouts arrive late.") the side that matches the message (the praise for a thank-you, the complaint
    for a follow-up) when its wording tells; cut at a word boundary when long. None when nothing is safe to quote."""
    if not comment or find_injection(comment) or not re.search(r"[^\W\d_]{2,}", comment):
        return None
    sides = [side.strip() for side in CONTRAST.split(comment.strip()) if re.search(r"[^\W\d_]{2,}", side)]
    if len(sides) > 1:
        sign = 1 if kind == "thank_you" else -1
        ranked = sorted(((sign * polarity(side), -n) for n, side in enumerate(sides)), reverse=True)
        if ranked[0][0] > ranked[1][0]:  # the wording tells the sides apart; else the whole comment is quoted
            return _safe(clip_quote(sides[-ranked[0][1]]))
    return _safe(clip_quote(comment))


def _safe(quote: str) -> str | None:
    """A link, email address or phone number is never repeated to the customer: a quote that carries one shrinks to
    its first sentence that does not (None when every sentence does)."""
    if not _contact_details(quote):
        return quote
    clean = [s for s in SENTENCE.split(quote) if re.search(r"[^\W\d_]{2,}", s) and not _contact_details(s)]
    return clip_quote(clean[0]) if clean else None


def _contact_details(text: str) -> list[str]:
    return [f"{kind.value}: {value}" for kind, values in extract_facts(text, CONTACT_FACTS).items() for value in values]


def polarity(text: str) -> float:
    """VADER's compound score, moved down for complaints its lexicon does not know ("breaks", "too slow")."""
    return _vader().polarity_scores(text)["compound"] - 0.5 * len(COMPLAINT.findall(text))


def clip_quote(sentence: str) -> str:
    text = " ".join(sentence.split()).rstrip(".,;: ")
    if (elided := LEADING_CONNECTOR.sub("", text, count=1)) != text and len(elided.split()) >= 3:
        text = elided[0].upper() + elided[1:]  # "But payouts arrive late" is quoted as "Payouts arrive late"
    if len(text) <= QUOTE_CHARS:
        return text
    return text[:QUOTE_CHARS].rsplit(" ", 1)[0].rstrip(".,;: ") + "…"


def quoted_spans(text: str) -> list[str]:
    return [next(g for g in match.groups() if g) for match in QUOTED_SPAN.finditer(text)]


def _words(text: str) -> str:
    return " ".join(re.findall(r"[^\W_]+", normalise(text)))


# -- the guards ---------------------------------------------------------------------------------------------------
class Grounds(BaseModel):
    """What a message may draw on: the comment (unless it carries an injection), the people, our own wording."""

    comment: str | None
    quote: str | None
    names: list[str]
    language: str
    injection: str | None


def check_quotes(text: str, grounds: Grounds) -> GuardVerdict:
    """Every quoted span is the respondent's words, and a message to someone who left words quotes them."""
    spans = quoted_spans(text)
    comment = _words(grounds.comment or "")
    details = [
        f"not in the comment: “{span[:80]}”"
        for span in spans
        if fuzz.partial_ratio(_words(span.rstrip("…")), comment) < QUOTE_MATCH or not _words(span)
    ]
    if grounds.quote and not spans:
        details.append("the message does not quote the comment it answers")
    return GuardVerdict(name="quotes_comment", passed=not details, details=details)


def check_names(text: str, grounds: Grounds) -> GuardVerdict:
    known = _words(" ".join([grounds.comment or "", *grounds.names, *wording_of(grounds.language)]))
    unknown = sorted(name for name in proper_names(text) if _words(name) not in known)
    return GuardVerdict(
        name="grounded_names", passed=not unknown, details=[f"name not in the records: {n}" for n in unknown]
    )


def check_language(text: str, language: str) -> GuardVerdict:
    """The message (its quotes aside: the respondent may have written in another language) is in theirs."""
    detected = detect_language(QUOTED_SPAN.sub(" ", text))
    wrong = detected.code != language and detected.confidence >= 0.8
    details = [f"written in {detected.code} ({detected.confidence:.2f}), not {language}"] if wrong else []
    return GuardVerdict(name="language", passed=not wrong, details=details)


def check_contact_details(text: str) -> GuardVerdict:
    found = _contact_details(text)
    return GuardVerdict(name="no_contact_details", passed=not found, details=[f"in the message: {f}" for f in found])


def check_format(text: str) -> GuardVerdict:
    details = [f"markup in the message: {m.group(0)!r}" for m in MARKUP.finditer(text)][:3]
    if len(text) > MAX_TEXT_CHARS:
        details.append(f"{len(text)} characters (at most {MAX_TEXT_CHARS})")
    if len(text.split()) < 8:
        details.append("too short to be a message")
    return GuardVerdict(name="format", passed=not details, details=details)


def advocacy_guards(text: str, grounds: Grounds) -> list[GuardVerdict]:
    grounding = [grounds.comment or ""] if not grounds.injection else []
    commitments = check_commitments(text)
    if grounds.injection and not commitments.passed:
        details = [*commitments.details, "promise made while the comment carries a prompt injection"]
        commitments = commitments.model_copy(update={"severity": Severity.block, "details": details})
    verdicts = [
        check_contact_details(text),
        check_grounded(text, [*grounding, *grounds.names], GUARDED_FACTS),
        check_quotes(text, grounds),
        check_names(text, grounds),
        check_language(text, grounds.language),
        check_format(text),
        commitments,
    ]
    if grounds.injection:
        verdicts.append(
            GuardVerdict(
                name="prompt_injection",
                passed=False,
                severity=Severity.flag,
                details=[f"the comment carries a prompt injection ({grounds.injection}): it is not quoted"],
            )
        )
    return verdicts


def _blocked(verdicts: list[GuardVerdict]) -> list[GuardVerdict]:
    return [v for v in verdicts if not v.passed and v.severity is Severity.block]


# -- the wording --------------------------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _templates(directory: str) -> tuple[dict[str, Any], str]:
    raw = (prompts_dir() / f"{TEMPLATES}.yaml").read_bytes()
    return yaml.safe_load(raw), hashlib.sha256(raw).hexdigest()[:12]


def templates() -> tuple[dict[str, Any], str]:
    """The template wording and its version (the sha256 of the file, as prompt versions are)."""
    return _templates(str(prompts_dir()))


def wording_of(language: str) -> list[str]:
    wording = templates()[0]
    return [text for kind in ("thank_you", "follow_up") for text in wording[kind][language].values()]


def template_body(kind: Kind, language: str, score: int, quote: str | None) -> str:
    parts = templates()[0][kind][language]
    opening = (parts["quoted"] if quote else parts["unquoted"]).format(score=score, quote=quote or "")
    return f"{opening} {parts['ask']}"


def frame(body: str, language: str, contact: str | None, sender: str) -> str:
    parts, first = templates()[0]["frame"][language], (contact or "").split(" ")[0]
    greeting = parts["greeting"].format(name=first) if first else parts["anonymous"]
    return f"{greeting}\n\n{body}\n\n{parts['closing']}\n{sender}"


def clean_body(text: str) -> str:
    """The model's text without a greeting or sign-off it added anyway (the frame adds ours)."""
    lines = [line.strip() for line in text.strip().split("\n") if line.strip()]
    if lines and GREETING_LINE.match(lines[0]):
        lines = lines[1:]
    while len(lines) > 1 and (SIGN_OFF_LINE.match(lines[-1]) or NAME_LINE.match(lines[-1])):
        lines.pop()
    return " ".join(lines)


# -- drafting -----------------------------------------------------------------------------------------------------
class Drafting(BaseModel):
    kind: Kind
    who: Respondent
    grounds: Grounds
    sender: str


def gather(repo: Repo, response: NpsResponse, kind: Kind) -> Drafting:
    who = describe(repo, [response])[0]
    names = [n for n in (who.contact, who.account, who.owner, repo.workspace.name) if n]
    grounds = Grounds(
        comment=response.comment,
        quote=pick_quote(response.comment, kind),
        names=names,
        language=who.language,
        injection=find_injection(response.comment),
    )
    return Drafting(kind=kind, who=who, grounds=grounds, sender=who.owner or repo.workspace.name)


def model_body(context: TaskContext, drafting: Drafting, provenance: Provenance) -> tuple[str | None, Provenance]:
    who = drafting.who
    prompt = load_prompt(TASK_OF_KIND[drafting.kind])
    messages = prompt.render(
        score=who.score,
        comment=who.comment or "(no comment)",
        response_id=who.response_id,
        quote=drafting.grounds.quote or "(none: thank them for the score)",
        theme=who.theme,
        language=templates()[0]["frame"][who.language]["name"],
        sender=drafting.sender,
    )
    completion = context.gateway.complete(messages, max_tokens=220, temperature=0.0)
    body = clean_body(completion.text)
    return (None if prose_problem(body, messages) else body), provenance.with_completion(completion)


def draft(context: TaskContext, params: AdvocacyParams, expected: Kind) -> TaskOutcome[AdvocacyDraft]:
    repo = _repo(context)
    response = repo.resolve(NpsResponse, params.response_id)
    kind = kind_for(response)
    if kind != expected:
        raise InvalidInput(
            f"response_id: response {response.external_id or response.id} scored {response.score}: "
            f"it gets {TASK_OF_KIND[kind]}, not {TASK_OF_KIND[expected]}"
        )
    state = _state(repo, response.id)
    if state is not None and state.asked_at is not None and not params.again:
        raise InvalidInput(
            f"again: respondent {response.external_id or response.id} was already asked on {state.asked_at:%Y-%m-%d} "
            f"(AI result {state.asked_result_id}); pass again=true to draft once more"
        )
    drafting = gather(repo, response, kind)
    strategy = context.strategy(TASK_OF_KIND[kind], params.strategy)
    outcome = _write(context, drafting, strategy)
    _remember(repo, drafting)
    outcome.subject_kind, outcome.subject_id = SUBJECT_KIND, response.id
    return outcome


def _write(context: TaskContext, drafting: Drafting, strategy: str) -> TaskOutcome[AdvocacyDraft]:
    who, grounds = drafting.who, drafting.grounds
    version = templates()[1]
    provenance = Provenance(task=TASK_OF_KIND[drafting.kind], input_ids=[f"nps_response:{who.response_id}"])
    template = provenance.model_copy(update={"prompt_name": TEMPLATES, "prompt_version": version, "model": "template"})
    if strategy != "model":
        return _outcome(drafting, _template_text(drafting), template)
    if grounds.injection:
        return _outcome(drafting, _template_text(drafting), template, "the comment carries a prompt injection")
    prompt = load_prompt(TASK_OF_KIND[drafting.kind])
    provenance = provenance.model_copy(update={"prompt_name": prompt.name, "prompt_version": prompt.version})
    try:
        body, provenance = model_body(context, drafting, provenance)
    except ModelError as error:
        return _outcome(drafting, _template_text(drafting), template, f"model unavailable: {error}")
    if body is None:
        return _outcome(drafting, _template_text(drafting), template, "the model wrote no message")
    text = frame(body, grounds.language, who.contact, drafting.sender)
    failed = _blocked(advocacy_guards(text, grounds))
    if not failed:
        return _outcome(drafting, text, provenance)
    replaced = [  # shown to the reviewer; they do not block the template text that replaced the model's
        v.model_copy(update={"severity": Severity.flag, "details": [f"model draft (replaced): {d}" for d in v.details]})
        for v in failed
    ]
    kept = provenance.model_copy(update={"model": f"template (after {provenance.model})"})
    return _outcome(drafting, _template_text(drafting), kept, "the model draft failed a guard", replaced)


def _template_text(drafting: Drafting) -> str:
    who, grounds = drafting.who, drafting.grounds
    body = template_body(drafting.kind, grounds.language, who.score, grounds.quote)
    return frame(body, grounds.language, who.contact, drafting.sender)


def _outcome(
    drafting: Drafting,
    text: str,
    provenance: Provenance,
    reason: str | None = None,
    earlier: list[GuardVerdict] | None = None,
) -> TaskOutcome[AdvocacyDraft]:
    who, grounds = drafting.who, drafting.grounds
    spans = quoted_spans(text) if grounds.comment else []
    result = AdvocacyDraft(
        kind=drafting.kind,
        text=text,
        language=grounds.language,
        response_id=who.response_id,
        response_ref=who.response_ref,
        score=who.score,
        quote=spans[0] if spans else None,
        theme=who.theme,
        account_id=who.account_id,
        account=who.account,
        contact_id=who.contact_id,
        contact=who.contact,
        owner=who.owner,
        route=who.route,
        route_reason=who.route_reason,
        asks=ASKS[drafting.kind],
        needs_explicit_approval=detect_commitments(text),
        injection_suspected=bool(grounds.injection),
    )
    return TaskOutcome[AdvocacyDraft](
        task=TASK_OF_KIND[drafting.kind],
        result=result,
        verdicts=[*(earlier or []), *advocacy_guards(text, grounds)],
        provenance=provenance,
        used_fallback=reason is not None,
        fallback_reason=reason,
    )


# -- the record of who was asked ----------------------------------------------------------------------------------
def _repo(context: TaskContext) -> Repo:
    if context.repo is None:
        raise InvalidInput("NPS advocacy needs a workspace")
    return context.repo


def _state(repo: Repo, response_id: int) -> NpsAdvocacy | None:
    return repo.session.scalar(repo.select(NpsAdvocacy).where(NpsAdvocacy.response_id == response_id))


def _remember(repo: Repo, drafting: Drafting) -> None:
    """Who sends this respondent's message (the review queue shows it as the assignee); older pending drafts for
    them are superseded, so one respondent is never asked twice from the queue."""
    who = drafting.who
    state = _state(repo, who.response_id) or repo.add(NpsAdvocacy(response_id=who.response_id))
    state.kind, state.owner, state.route = drafting.kind, who.owner, who.route
    repo.session.flush()
    _supersede(repo, who.response_id, keep=None, by=f"task:{TASK_OF_KIND[drafting.kind]}")


def _supersede(repo: Repo, response_id: int, *, keep: int | None, by: str) -> list[int]:
    pending = repo.all(
        repo.select(AiResult).where(
            AiResult.subject_kind == SUBJECT_KIND,
            AiResult.subject_id == response_id,
            AiResult.task.in_(list(TASK_OF_KIND.values())),
            AiResult.status == AiStatus.pending,
            AiResult.id != (keep or 0),
        )
    )
    for row in pending:
        row.status = AiStatus.superseded  # the flush bumps its version: a reviewer holding the old one gets a 409
        record_event(repo, by, "review.superseded", row, before={"status": "pending"}, after={"status": "superseded"})
    repo.session.flush()
    return [row.id for row in pending]


def mark_asked(repo: Repo, result_id: int) -> NpsAdvocacy:
    """Approval hook: the respondent counts as asked from now on; their other pending drafts are superseded."""
    row = repo.get(AiResult, result_id)
    if row is None or row.subject_kind != SUBJECT_KIND or row.subject_id is None:
        raise InvalidInput(f"AI result {result_id} is not an NPS advocacy draft")
    state = _state(repo, row.subject_id)
    if state is None:  # a draft saved outside this task: the record is made from the draft itself
        result = AdvocacyDraft.model_validate(row.content.get("result", {}))
        state = repo.add(
            NpsAdvocacy(response_id=row.subject_id, kind=result.kind, owner=result.owner, route=result.route)
        )
    state.asked_at, state.asked_result_id = datetime.now(UTC), row.id
    repo.session.flush()
    _supersede(repo, row.subject_id, keep=row.id, by=f"task:{row.task}")
    return state


def check_edited(repo: Repo, row: AiResult, text: str) -> list[GuardVerdict]:
    """A reviewer's edit, held to the draft's guards (quotes, facts, names, language, markup, commitments)."""
    response = repo.get(NpsResponse, row.subject_id) if row.subject_id else None
    if response is None:
        return [GuardVerdict(name="response", passed=False, details=["the NPS response no longer exists"])]
    return advocacy_guards(text, gather(repo, response, kind_for(response)).grounds)


DECLARATION: dict[str, Any] = {
    "subject": SUBJECT_KIND,
    "subject_field": "response_id",
    "permission": Permission.run_marketing,
    "review": Permission.review_marketing,
    "defaults": {Profile.small: "template", Profile.capable: "model"},
    "delivers": True,
    "on_approve": mark_asked,
    "check_edit": check_edited,
}


@task(THANK_YOU, prompt=THANK_YOU, **DECLARATION)
def thank_promoter(context: TaskContext, params: AdvocacyParams) -> TaskOutcome[AdvocacyDraft]:
    """Thank a promoter, quoting their comment, and ask for a review or a referral; waits for review, never sent."""
    return draft(context, params, "thank_you")


@task(FOLLOW_UP, prompt=FOLLOW_UP, carriers=("nps_comment",), **DECLARATION)
def follow_up_detractor(context: TaskContext, params: AdvocacyParams) -> TaskOutcome[AdvocacyDraft]:
    """Follow up with a detractor for their account owner or support, quoting their comment; waits for review."""
    return draft(context, params, "follow_up")
