"""Deal brief: what a rep needs before opening a deal, with every fact traceable to a record id.

Facts come from the records deterministically (`copilot.tasks.deal_facts`): stage and time in stage,
amount, close date, stakeholders, last touch, risks with evidence (stalled stage, no next step,
close date passed, open high-priority tickets, negative customer sentiment, detractor NPS),
recent call action items, and what changed since the previous brief of the deal. The model
writes only the narrative and the suggested next step, citing record ids; guards check that
its names, numbers and dates are in the facts. With the embedded 135M model, or when the
model fails or a guard does, a template narrative and a rule-based next step stand in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from copilot.auth import Permission
from copilot.errors import ModelError
from copilot.guards import FactKind, GuardVerdict, Severity, check_cited_ids, check_grounded, injection_flags, normalise
from copilot.profiles import Profile
from copilot.prompting import load_prompt
from copilot.store import Repo
from copilot.store.models import (
    AiResult,
    AiStatus,
    Deal,
    DealStage,
    utc,
)
from copilot.tasks.base import Provenance, TaskOutcome
from copilot.tasks.call_summary import check_names_anywhere
from copilot.tasks.context import TaskContext
from copilot.tasks.deal_facts import Classifier, DealFacts, Stakeholder, gather_facts
from copilot.tasks.registry import DEAL_UPDATED, RecordRef, TaskParams, task
from copilot.tasks.thread import clip, sentences

TASK = "deal_brief"
Strategy = Literal["auto", "model", "template"]  # its strategies: the API, CLI and registry read them here
MAX_BRIEF_TOKENS = 320


class BriefNarrative(BaseModel):
    """What the model writes (parsed from its plain text): prose over the facts and one next step, and the record
    ids it cites."""

    narrative: str = Field(max_length=900, description="Three to five sentences for the rep, only from the facts.")
    next_step: str = Field(max_length=240, description="One concrete next step for the rep.")
    source_ids: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="Record ids the narrative and next step rely on, e.g. deal:3, ticket:12.",
    )


class SuggestedStep(BaseModel):
    text: str
    reason: str
    source_ids: list[str] = Field(default_factory=list)


class Change(BaseModel):
    text: str
    source_ids: list[str] = Field(default_factory=list)


class DealBrief(BaseModel):
    facts: DealFacts
    narrative: str
    suggested_next_step: SuggestedStep
    changes: list[Change] = Field(default_factory=list)
    previous_brief_id: int | None = None
    source_ids: list[str] = Field(default_factory=list)

    def as_text(self) -> str:
        return f"{self.narrative}\nSuggested next step: {self.suggested_next_step.text}"


# -- what changed -----------------------------------------------------------------------------------
def previous_brief(repo: Repo, deal_id: int) -> AiResult | None:
    return repo.session.scalar(
        repo.select(AiResult)
        .where(
            AiResult.task == TASK,
            AiResult.subject_kind == "deal",
            AiResult.subject_id == deal_id,
            AiResult.status != AiStatus.failed,
        )
        .order_by(AiResult.id.desc())
        .limit(1)
    )


def diff_facts(old: DealFacts, new: DealFacts) -> list[Change]:
    deal_id = f"deal:{new.deal_id}"
    changes: list[Change] = []
    if old.stage != new.stage:
        changes.append(Change(text=f"Stage changed from {old.stage} to {new.stage}.", source_ids=[deal_id]))
    for label, before, after in (
        (
            "Amount",
            old.amount_text() if old.amount is not None else None,
            new.amount_text() if new.amount is not None else None,
        ),
        ("Close date", old.close_date and old.close_date.isoformat(), new.close_date and new.close_date.isoformat()),
        ("Owner", old.owner, new.owner),
        ("Next step", old.next_step, new.next_step),
    ):
        if before != after:
            changes.append(
                Change(text=f"{label} changed from {before or 'none'} to {after or 'none'}.", source_ids=[deal_id])
            )
    old_risks, new_risks = {r.kind: r for r in old.risks}, {r.kind: r for r in new.risks}
    changes += [
        Change(text=f"New risk: {r.text}", source_ids=r.evidence_ids)
        for kind, r in new_risks.items()
        if kind not in old_risks
    ]
    changes += [
        Change(text=f"Risk cleared: {r.text}", source_ids=r.evidence_ids)
        for kind, r in old_risks.items()
        if kind not in new_risks
    ]
    if new.last_touch and (old.last_touch is None or new.last_touch.source_id != old.last_touch.source_id):
        changes.append(
            Change(
                text=f"New activity: {new.last_touch.text} on {new.last_touch.at:%Y-%m-%d}.",
                source_ids=[new.last_touch.source_id],
            )
        )
    old_items = {normalise(a.what) for a in old.action_items}
    changes += [
        Change(text=f"New action item: {a.what}", source_ids=a.source_ids)
        for a in new.action_items
        if normalise(a.what) not in old_items
    ]
    old_people = {normalise(s.name) for s in old.stakeholders}
    changes += [
        Change(text=f"New stakeholder: {s.name}", source_ids=[s.source_id])
        for s in new.stakeholders
        if normalise(s.name) not in old_people
    ]
    return changes


# -- narrative and next step --------------------------------------------------------------------------
def _main_contact(facts: DealFacts) -> Stakeholder | None:
    customers = [s for s in facts.stakeholders if s.role in (None, "customer") and s.source_id.startswith("contact:")]
    return next((s for s in customers if s.role == "customer"), customers[0] if customers else None)


def _our_side(facts: DealFacts) -> set[str]:
    """The selling side's names: the deal owner and every non-customer call participant."""
    names = {normalise(s.name) for s in facts.stakeholders if s.role not in (None, "customer")}
    return names | ({normalise(facts.owner)} if facts.owner else set())


STAGE_PLAYS = {
    DealStage.prospecting.value: "book a discovery call with {who}",
    DealStage.qualification.value: "confirm budget, decision makers and timeline with {who}",
    DealStage.discovery.value: "propose a demo or technical validation to {who}",
    DealStage.proposal.value: "walk {who} through the proposal and agree a decision date",
    DealStage.negotiation.value: "agree the final terms and a signature date with {who}",
}
OBJECTION_PLAYS = {
    "price_objection": "answer the price concern with a revised or phased proposal",
    "security_objection": "send the security documents the customer asked for",
    "competitor": "ask {who} how the alternatives they are looking at compare, and answer the gaps",
    "integration_objection": "agree a technical validation of the integration with {who}",
}


def rule_next_step(facts: DealFacts) -> SuggestedStep:
    """A next step from the facts alone: clear blockers first (tickets, what we owe), then re-engage a stalled deal,
    else answer the last call's objection or follow its agreed next step, else the stage's usual move."""
    deal_id = f"deal:{facts.deal_id}"
    if facts.stage == DealStage.closed_won.value:
        return SuggestedStep(
            text="Hand the account over to onboarding and confirm the go-live date with the customer.",
            reason="the deal is won",
            source_ids=[deal_id],
        )
    if facts.stage == DealStage.closed_lost.value:
        return SuggestedStep(
            text="No action on this deal: it is closed lost. Log the loss reason if it is missing.",
            reason="the deal is lost",
            source_ids=[deal_id],
        )
    contact = _main_contact(facts)
    who = contact.name if contact else "the customer's main contact"
    steps: list[tuple[str, str, list[str]]] = []
    if facts.high_priority_tickets:
        ticket = facts.high_priority_tickets[0]
        steps.append(
            (
                f"get an update from support on ticket {ticket.ref} ('{ticket.subject}')",
                f"an open {ticket.priority}-priority ticket will come up in any conversation",
                [f"ticket:{ticket.id}"],
            )
        )
    steps += _deal_steps(facts, who, [deal_id, *([contact.source_id] if contact else [])])
    text = ", then ".join(step for step, _, _ in steps[:2])
    return SuggestedStep(
        text=text[0].upper() + text[1:] + ("" if text.endswith(".") else "."),
        reason="; ".join(reason for _, reason, _ in steps[:2]),
        source_ids=list(dict.fromkeys(i for _, _, ids in steps[:2] for i in ids)),
    )


def _deal_steps(facts: DealFacts, who: str, contact_ids: list[str]) -> list[tuple[str, str, list[str]]]:
    risks = {r.kind: r for r in facts.risks}
    ours = _our_side(facts)
    owed = [a for a in facts.action_items if a.owner and normalise(a.owner) in ours]
    overdue = [a for a in owed if a.overdue_days(facts.as_of) > 0]
    steps = []
    if overdue:
        item = overdue[0]
        steps.append(
            (
                f"deliver what is overdue: {clip(item.what, 120, one_line=True).rstrip('.')} "
                f"(due {item.due_date:%Y-%m-%d})",
                "an action item on our side is past due",
                item.source_ids[:2],
            )
        )
    if "stalled" in risks or "no_next_step" in risks:
        steps.append(
            (
                f"book a dated meeting with {who} to agree the next step in {facts.stage}",
                "the deal is stalled" if "stalled" in risks else "no next step is recorded",
                contact_ids,
            )
        )
        return steps
    play = next((kind for kind in OBJECTION_PLAYS if kind in risks), None)
    last = facts.calls[0] if facts.calls else None
    if play:
        steps.append(
            (
                OBJECTION_PLAYS[play].format(who=who),
                f"the last calls raised it ({risks[play].text.split(':')[0].lower()})",
                risks[play].evidence_ids[:2],
            )
        )
    elif owed:
        what = clip(owed[-1].what, 120, one_line=True).rstrip(".")
        steps.append((f"follow up on your action item: {what}", "an action item is yours", owed[-1].source_ids))
    elif last and last.next_step:
        steps.append(
            (
                f'follow through on what the last call agreed: "{clip(last.next_step.text, 120, one_line=True)}"',
                f"agreed on the call on {last.at:%Y-%m-%d}",
                [*last.next_step.source_ids, f"call:{last.id}"],
            )
        )
    elif facts.next_step:
        steps.append((f"go ahead with the recorded next step: {facts.next_step}", "no blocking risk", [contact_ids[0]]))
    steps.append((STAGE_PLAYS[facts.stage].format(who=who), f"the usual move in {facts.stage}", contact_ids))
    return steps


def template_narrative(facts: DealFacts) -> str:
    """The brief as fixed sentences over the facts, saying what the risk list does not: where the deal stands and how
    it got there, who is engaged, what the last call settled, what is owed (the fallback, and the small default)."""
    parts = [_position(facts)]
    if path := _path(facts):
        parts.append(path)
    parts.append(_engagement(facts))
    last = facts.calls[0] if facts.calls else None
    if last and last.decisions:
        parts.append(f'The last call settled: "{last.decisions[-1].text.rstrip(".")}."')
    if facts.action_items:
        parts.append(_owed(facts))
    parts.append(f"Next step on record: {facts.next_step}." if facts.next_step else "No next step is on record.")
    parts.append(
        f"{len(facts.risks)} risk(s), listed with evidence." if facts.risks else "No risks found in the records."
    )
    return " ".join(parts)


def _position(facts: DealFacts) -> str:
    stage = facts.stage.replace("_", " ")
    since = (
        f" for {facts.days_in_stage} days (since {facts.stage_entered_at:%Y-%m-%d})" if facts.stage_entered_at else ""
    )
    close = ""
    if facts.close_date:
        days = facts.close_in_days()
        when = f"in {days} days" if days >= 0 else f"{-days} days ago"
        close = f", expected to close on {facts.close_date.isoformat()}, {when}"
    account = f" ({facts.account_name})" if facts.account_name else ""
    owner = f", owned by {facts.owner}" if facts.owner else ""
    return f"{facts.name}{account} has been in {stage}{since}, worth {facts.amount_text()}{close}{owner}."


def _path(facts: DealFacts) -> str | None:
    days, changes = facts.path()
    if not changes or not facts.is_open:
        return None
    return f"It took {days} days and {changes} stage change(s) to get here."


def _engagement(facts: DealFacts) -> str:
    if facts.calls:
        last = facts.calls[0]
        people = f" with {', '.join(last.customers)}" if last.customers else ""
        return (
            f"{facts.deal_calls} call(s) on the deal; the last, '{last.title}' on {last.at:%Y-%m-%d} "
            f"({last.days_ago} days ago), was{people}."
        )
    if facts.last_touch:
        return (
            f"No call on the deal yet; the last contact with the account was a {facts.last_touch.kind} "
            f"{facts.last_touch.days_ago} days ago."
        )
    return "No call, note or message with this account is on record."


def _owed(facts: DealFacts) -> str:
    split = ", ".join(f"{count} for {name}" for name, count in facts.items_per_owner().items())
    return f"{len(facts.action_items)} action item(s) from recent calls: {split}."


def brief_guards(narrative: str, next_step: str, cited: Iterable[str], facts: DealFacts) -> list[GuardVerdict]:
    sources = facts.texts()
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
        check_cited_ids(cited, facts.record_ids(), what="record"),
        check_grounded(f"{narrative}\n{next_step}", sources, kinds),
        check_names_anywhere((narrative, next_step), sources),
        check_not_repeating(narrative, [r.text for r in facts.risks]),
        *injection_flags(("facts", line) for line in sources),  # NPS comments, notes and call items are customer text
    ]


def check_not_repeating(narrative: str, risks: list[str], shingle: int = 4, share: float = 0.5) -> GuardVerdict:
    """The narrative adds to the risk list: no sentence whose word 4-grams are mostly copied from a risk."""
    risk_grams = {g for text in risks for g in _grams(text, shingle)}
    copied = [
        sentence
        for sentence in sentences(narrative)
        if (grams := _grams(sentence, shingle)) and len(grams & risk_grams) / len(grams) >= share
    ]
    return GuardVerdict(
        name="adds_to_risks",
        passed=not copied,
        details=[f"repeats the risk list: {clip(c, 100, one_line=True)}" for c in copied],
    )


def _grams(text: str, size: int) -> set[tuple[str, ...]]:
    words = normalise(text).split()
    return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}


# -- the task -----------------------------------------------------------------------------------------
def build_brief(
    context: TaskContext,
    deal: Deal,
    strategy: str = "auto",
    *,
    now: datetime | None = None,
    classifier: Classifier | None = None,
) -> TaskOutcome[DealBrief]:
    """Gather the facts, diff them against the previous brief, and write the narrative (no storage)."""
    strategy = context.strategy(TASK, strategy)
    as_of = utc(now or datetime.now(UTC), keep_offset=True)
    facts = gather_facts(context, deal, as_of, classifier or context.sentiment)
    previous = previous_brief(context.repo, deal.id)
    draft = BriefDraft(facts, _changes_since(previous, facts), previous.id if previous else None, rule_next_step(facts))
    prompt = load_prompt(TASK)
    provenance = Provenance(
        task=TASK, prompt_name=prompt.name, prompt_version=prompt.version, input_ids=facts.record_ids()
    )
    template = provenance.model_copy(update={"model": "template"})
    if strategy != "model":
        return draft.from_template([], None, template)
    try:
        completion = context.gateway.complete(
            prompt.render(facts=facts, changes=draft.changes, suggested=draft.rule_step),
            max_tokens=MAX_BRIEF_TOKENS,
            temperature=0.0,
        )
    except ModelError as error:
        return draft.from_template([], f"model unavailable: {error}", template)
    return draft.from_model(parse_brief(completion.text), provenance.with_completion(completion))


def _changes_since(previous: AiResult | None, facts: DealFacts) -> list[Change]:
    if previous is None:
        return []
    try:
        return diff_facts(DealFacts.model_validate(previous.content["result"]["facts"]), facts)
    except (KeyError, TypeError, ValidationError):
        return [Change(text=f"The previous brief (AI result {previous.id}) could not be read; no comparison.")]


@dataclass(frozen=True)
class BriefDraft:
    """What both paths of a brief share: the facts, the changes since the previous brief and the rule's next step."""

    facts: DealFacts
    changes: list[Change]
    previous_brief_id: int | None
    rule_step: SuggestedStep

    @property
    def template_sources(self) -> list[str]:
        facts = self.facts
        return list(
            dict.fromkeys(
                [
                    f"deal:{facts.deal_id}",
                    *([facts.last_touch.source_id] if facts.last_touch else []),
                    *(i for r in facts.risks for i in r.evidence_ids),
                    *self.rule_step.source_ids,
                ]
            )
        )

    def brief(self, narrative: str, step: SuggestedStep, sources: list[str]) -> DealBrief:
        return DealBrief(
            facts=self.facts,
            narrative=narrative,
            suggested_next_step=step,
            changes=self.changes,
            previous_brief_id=self.previous_brief_id,
            source_ids=sources,
        )

    def from_template(
        self, verdicts: list[GuardVerdict], reason: str | None, provenance: Provenance
    ) -> TaskOutcome[DealBrief]:
        """The template narrative and the rule's next step (the non-LLM path, and the model path's fallback)."""
        sources = self.template_sources
        narrative = template_narrative(self.facts)
        return TaskOutcome[DealBrief](
            task=TASK,
            result=self.brief(narrative, self.rule_step, sources),
            verdicts=[*verdicts, *brief_guards(narrative, self.rule_step.text, sources, self.facts)],
            provenance=provenance.model_copy(update={"source_ids": sources}),
            used_fallback=reason is not None,
            fallback_reason=reason,
        )

    def from_model(self, value: BriefNarrative, provenance: Provenance) -> TaskOutcome[DealBrief]:
        """The model's narrative and next step when every guard passes, else the template with the failures flagged."""
        verdicts = brief_guards(value.narrative, value.next_step, value.source_ids, self.facts)
        if not value.narrative or not value.next_step:
            verdicts.append(
                GuardVerdict(name="complete", passed=False, details=["the model wrote no narrative or no next step"])
            )
        if any(not v.passed for v in verdicts):
            rejected = [
                v.model_copy(
                    update={"severity": Severity.flag, "details": [f"model output (replaced): {d}" for d in v.details]}
                )
                for v in verdicts
                if not v.passed
            ]
            return self.from_template(rejected, "model output failed a guard", provenance)
        sources = list(dict.fromkeys(value.source_ids or [f"deal:{self.facts.deal_id}"]))
        step = SuggestedStep(text=value.next_step, reason="written by the model from the facts", source_ids=sources)
        return TaskOutcome[DealBrief](
            task=TASK,
            result=self.brief(value.narrative, step, sources),
            verdicts=verdicts,
            provenance=provenance.model_copy(update={"source_ids": sources}),
        )


RECORD_ID = re.compile(r"\b(?:deal|account|contact|call|call_turn|ticket|message|note|nps_response|ai_result):\d+\b")
CITATION = re.compile(r"\s*\[([^\]]*)\]")
NEXT_STEP_LABEL = re.compile(r"^\W*(?:suggested\s+)?next\s+step\s*:\s*", re.I | re.M)
NARRATIVE_LABEL = re.compile(r"^\W*(?:narrative|brief|summary)\s*:\s*", re.I)


def parse_brief(text: str) -> BriefNarrative:
    """The model's plain-text brief: narrative sentences, then a "Next step:" line; the record ids it cites in
    square brackets become the source ids (and leave the text)."""
    parts = NEXT_STEP_LABEL.split(text.strip(), maxsplit=1)
    narrative, next_step = parts[0], parts[1] if len(parts) > 1 else ""
    cited = [i for group in CITATION.findall(text) for i in RECORD_ID.findall(group)]

    def clean(part: str) -> str:
        return " ".join(CITATION.sub("", NARRATIVE_LABEL.sub("", part.strip())).split())

    return BriefNarrative(
        narrative=clip(clean(narrative), 900, one_line=True),
        next_step=clip(clean(next_step.split("\n\n")[0]), 240, one_line=True),
        source_ids=list(dict.fromkeys(cited))[:8],
    )


class DealBriefParams(TaskParams):
    deal_id: RecordRef
    strategy: Strategy = "auto"
    as_of: datetime | None = Field(default=None, description="Brief the deal as of this time (default: now).")


@task(
    TASK,
    subject="deal",
    subject_field="deal_id",
    permission=Permission.run_sales,
    review=Permission.review_sales,
    needs_approval=False,
    defaults={Profile.small: "template", Profile.capable: "model"},
    prompt=TASK,
    stale_on=(DEAL_UPDATED,),
    carriers=("nps_comment", "call_turn"),
)
def deal_brief(context: TaskContext, params: DealBriefParams) -> TaskOutcome[DealBrief]:
    """Brief a rep on a deal: facts from the records, risks with evidence, what changed, a suggested next step."""
    deal = context.repo.resolve(Deal, params.deal_id)
    outcome = build_brief(context, deal, params.strategy, now=params.as_of)
    outcome.subject_id = deal.id
    return outcome
