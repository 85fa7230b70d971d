"""Reply quality scoring (auto-QA) of a ticket's agent replies against the workspace's scorecard.

``rules`` (the default for small models) grades from deterministic signals and the classifiers
(``copilot.insights.quality``); ``model`` grades under the rubric prompt ``prompts/reply_qa.j2``. A model answer is
used only when it judges every criterion once and quotes its evidence from the texts it was shown; the policy
verdict is held to the commitment detector; a thread carrying a prompt injection is graded by the rules. Results are
informational (saved ``completed``) and visible to leads and admins only (``Permission.read_scorecards``: they score
agents).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from copilot.auth import Permission
from copilot.errors import ModelError
from copilot.guards import GuardVerdict, Severity, find_injection, normalise
from copilot.insights.quality import (
    Reply,
    ReplyScore,
    Scorecard,
    Verdict,
    VerdictValue,
    body_of,
    grade_rules,
    replies_of,
    reply_sentiment,
    scorecard_of,
    scored,
)
from copilot.profiles import Profile
from copilot.prompting import load_prompt
from copilot.store.models import Ticket
from copilot.tasks.base import Provenance, TaskOutcome
from copilot.tasks.context import TaskContext
from copilot.tasks.registry import CUSTOMER_MESSAGE, RecordRef, TaskParams, task

TASK = "reply_qa"
Strategy = Literal["auto", "model", "rules"]


class RubricVerdict(BaseModel):
    criterion: str = Field(max_length=40)
    verdict: VerdictValue
    evidence: str = Field(default="", max_length=300)


class RubricAnswer(BaseModel):
    """What the model answers for one reply."""

    verdicts: list[RubricVerdict] = Field(min_length=1, max_length=12)


class ReplyQaResult(BaseModel):
    ticket_id: int
    ticket_ref: str
    threshold: float
    criteria: list[str]
    replies: list[ReplyScore]


class ReplyQaParams(TaskParams):
    ticket_id: RecordRef
    message_id: int | None = Field(default=None, description="Only this agent reply (default: every reply).")
    strategy: Strategy = "auto"


def shown_texts(reply: Reply) -> list[tuple[str, str]]:
    return [
        ("reply", reply.text),
        *(("customer message", q) for q in reply.question),
        *(("customer follow-up", f) for f in [reply.follow_up] if f),
        *(("internal note", n) for n in reply.notes),
        *(("kb article", k) for k in reply.kb),
    ]


def _quoted(evidence: str, reply: Reply) -> bool:
    haystack = normalise(" ".join(text for _, text in shown_texts(reply)))
    return normalise(evidence).strip(" .\"'") in haystack


def grade_model(
    context: TaskContext, reply: Reply, card: Scorecard, rules: list[Verdict]
) -> tuple[list[Verdict] | None, list[str], Provenance]:
    """The model's verdicts for one reply, or None with the reasons it was not used."""
    prompt = load_prompt(TASK)
    provenance = Provenance(task=TASK, prompt_name=prompt.name, prompt_version=prompt.version)
    messages = prompt.render(
        criteria=card.criteria,
        subject=reply.ticket.subject,
        question=reply.question,
        notes=reply.notes,
        kb=reply.kb,
        reply=body_of(reply.text),
        follow_up=reply.follow_up,
    )
    try:
        answer = context.gateway.structured(messages, RubricAnswer, max_tokens=700)
    except ModelError as error:
        return None, [f"model unavailable: {error}"], provenance
    provenance = provenance.with_completion(answer.completion)
    if not answer.ok:
        return None, [f"model output failed validation: {answer.error or 'invalid'}"], provenance
    by_name = {}
    for item in answer.value.verdicts:
        by_name.setdefault(item.criterion, item)
    problems = [f"no verdict for {name}" for name in card.names() if name not in by_name]
    problems += [
        f"{v.criterion}: evidence not quoted from the texts: '{v.evidence[:60]}'"
        for v in answer.value.verdicts
        if v.criterion in card.names()
        and v.verdict != "n/a"
        and (not v.evidence.strip() or not _quoted(v.evidence, reply))
    ]
    if problems:
        return None, problems, provenance
    rule_policy = next((v for v in rules if v.criterion == "policy"), None)
    verdicts = []
    for name in card.names():
        item = by_name[name]
        if name == "policy" and rule_policy is not None and rule_policy.verdict == "fail":
            verdicts.append(rule_policy)  # the commitment detector has the last word on unapproved promises
        else:
            verdicts.append(Verdict(criterion=name, verdict=item.verdict, evidence=item.evidence, why="model"))
    return verdicts, [], provenance


@task(
    TASK,
    subject="ticket",
    subject_field="ticket_id",
    permission=Permission.read_scorecards,
    review=Permission.read_scorecards,
    needs_approval=False,
    defaults={Profile.small: "rules", Profile.capable: "model"},
    prompt=TASK,
    stale_on=(CUSTOMER_MESSAGE,),
    carriers=("message",),
)
def reply_qa(context: TaskContext, params: ReplyQaParams) -> TaskOutcome[ReplyQaResult]:
    """Score a ticket's agent replies against the workspace's QA scorecard (verdict and evidence per criterion)."""
    repo = context.repo
    ticket = repo.resolve(Ticket, params.ticket_id)
    card = scorecard_of(repo)
    replies = replies_of(repo, ticket, params.message_id)
    sentiment = reply_sentiment(context.sentiment, replies) if replies else {}
    provenance = Provenance(task=TASK, model="rules", input_ids=[f"ticket:{ticket.id}"])
    verdicts: list[GuardVerdict] = []
    scores, fell_back = [], []
    for reply in replies:
        rules = grade_rules(reply, card, sentiment)
        provenance.input_ids.append(
            f"message:{reply.message_id}" if reply.message_id else f"ai_result:{reply.ai_result_id}"
        )
        injected = [f"{where}: {hit}" for where, text in shown_texts(reply) if (hit := find_injection(text))]
        if injected:
            verdicts.append(
                GuardVerdict(
                    name="prompt_injection",
                    passed=False,
                    severity=Severity.flag,
                    details=[f"graded by the rules: {d}" for d in injected],
                )
            )
        if params.strategy != "model" or injected:
            scores.append(scored(reply, rules, card, "rules"))
            continue
        graded, problems, used = grade_model(context, reply, card, rules)
        provenance = _merge(provenance, used)
        if graded is None:
            fell_back.append(f"reply {reply.message_id or reply.ai_result_id}: " + "; ".join(problems))
            scores.append(scored(reply, rules, card, "rules"))
        else:
            scores.append(scored(reply, graded, card, "model"))
    if fell_back:
        verdicts.append(
            GuardVerdict(
                name="rubric_answer",
                passed=False,
                severity=Severity.flag,
                details=[f"model grades replaced by the rules: {d}" for d in fell_back],
            )
        )
    result = ReplyQaResult(
        ticket_id=ticket.id,
        ticket_ref=ticket.external_id or str(ticket.id),
        threshold=card.threshold,
        criteria=card.names(),
        replies=scores,
    )
    return TaskOutcome[ReplyQaResult](
        task=TASK,
        result=result,
        verdicts=verdicts,
        provenance=provenance,
        used_fallback=bool(fell_back),
        fallback_reason="model grades failed their checks" if fell_back else None,
        subject_id=ticket.id,
    )


def _merge(total: Provenance, used: Provenance) -> Provenance:
    """Usage of every model call of the run, with the prompt that made them."""
    return total.model_copy(
        update={
            "prompt_name": used.prompt_name,
            "prompt_version": used.prompt_version,
            "model": used.model or total.model,
            "model_file": used.model_file or total.model_file,
            "tokens_in": total.tokens_in + used.tokens_in,
            "tokens_out": total.tokens_out + used.tokens_out,
            "latency_ms": round(total.latency_ms + used.latency_ms, 1),
            "cost_usd": None
            if total.cost_usd is None and used.cost_usd is None
            else (total.cost_usd or 0) + (used.cost_usd or 0),
            "pii_masked": sorted(set(total.pii_masked) | set(used.pii_masked)),
        }
    )
