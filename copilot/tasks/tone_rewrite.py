"""Tone rewrite: friendly, formal, empathetic, concise, expand, fix grammar, neutral, plus workspace tones.

The signature block is set aside before rewriting and put back after, so it always survives.
The fact-preservation guard then checks that numbers, dates, emails, URLs, prices, order ids,
names and quoted lines survived; a rewrite that lost any is rejected with the list of what was
lost. A rewrite may not add a link, email, phone number, price, order id or date either, and
commitments it adds (a refund, credit, ... the original did not make) need explicit approval.
A text that carries a prompt injection is rewritten by the rules, never sent to the model.
A rewrite identical to its input is reported as unchanged, not as success.

Two paths. The rules (copilot/tasks/tone_rules.py: softeners and a thank-you for friendly, an acknowledgement for
empathetic, contractions and slang written out for formal, filler cut for concise, grammar fixes) are the default
for every profile: on ParaDetox and the Bitext tone set they beat both local Qwen models (README). The ``model``
strategy rewrites from a few-shot prompt (prompts/tone_rewrite.j2 with the examples in prompts/tone_examples.yaml),
and a model answer that loses or adds a fact, or comes back unchanged when the rules find something to change,
gives way to the rules, flagged.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import yaml
from pydantic import BaseModel, Field

from copilot.auth import Permission
from copilot.errors import InvalidInput, ModelError
from copilot.guards import (
    GuardVerdict,
    Severity,
    check_fact_preservation,
    check_grounded,
    detect_commitments,
    injection_flags,
    normalise,
    prose_problem,
    signature_block,
)
from copilot.language import detect_language
from copilot.profiles import Profile
from copilot.prompting import load_prompt, prompts_dir
from copilot.store import Repo
from copilot.store.models import AiResult, AiStatus
from copilot.tasks import registry
from copilot.tasks.base import Provenance, TaskOutcome
from copilot.tasks.context import TaskContext
from copilot.tasks.registry import TaskParams, task
from copilot.tasks.tone_rules import rewrite_by_rules
from copilot.tasks.tones import workspace_tones

TASK = "tone_rewrite"
Strategy = Literal["auto", "model", "rules"]  # its strategies: the API, CLI and registry read them here


class Rewrite(BaseModel):
    tone: str
    original: str
    text: str
    unchanged: bool = False
    lost: list[str] = Field(default_factory=list)
    needs_explicit_approval: list[str] = Field(
        default_factory=list, description="Commitments the rewrite added; a human must approve them."
    )


def split_signature(text: str) -> tuple[str, str | None]:
    signature = signature_block(text)
    if signature is None:
        return text.strip(), None
    return text[: text.rfind(signature)].strip(), signature


@dataclass(frozen=True)
class RewriteChecks:
    """The guards a rewrite must pass, by name."""

    preserved: GuardVerdict  # kept every fact, quoted line and the signature
    changed: GuardVerdict  # differs from the input (a flag, not a failure)
    grounded: GuardVerdict  # added no link, contact, price, order id or date
    injection: list[GuardVerdict]  # a flag when the input carries a prompt injection

    @property
    def verdicts(self) -> list[GuardVerdict]:
        return [self.preserved, self.changed, self.grounded, *self.injection]


def rewrite_guards(original: str, rewritten: str) -> RewriteChecks:
    preserved = check_fact_preservation(original, rewritten)
    quoted = [line.strip() for line in original.split("\n") if line.lstrip().startswith(">")]
    lost_quotes = [f"lost quoted line: {q[:60]}" for q in quoted if q not in rewritten]
    if lost_quotes:
        preserved = preserved.model_copy(update={"passed": False, "details": [*preserved.details, *lost_quotes]})
    unchanged = normalise(original) == normalise(rewritten)
    changed = GuardVerdict(
        name="changed",
        passed=not unchanged,
        severity=Severity.flag,
        details=["the rewrite is identical to the input"] if unchanged else [],
    )
    return RewriteChecks(
        preserved, changed, check_grounded(rewritten, [original]), injection_flags([("text", original)])
    )


@lru_cache(maxsize=1)
def tone_examples() -> dict[str, list[dict[str, str]]]:
    return yaml.safe_load((prompts_dir() / "tone_examples.yaml").read_text(encoding="utf-8"))


def examples_version() -> str:
    return hashlib.sha256((prompts_dir() / "tone_examples.yaml").read_bytes()).hexdigest()[:6]


PREAMBLE = re.compile(r"^(here is|here's|sure[,!]|rewritten( message)?|the rewritten message)[^\n]*:\s*\n*", re.I)


def clean_model_text(text: str) -> str:
    """The rewrite without a preamble ("Here is the rewritten message:") or quotes around it."""
    text = PREAMBLE.sub("", text.strip()).strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def rewrite_text(context: TaskContext, text: str, tone: str, strategy: str = "auto") -> TaskOutcome[Rewrite]:
    tones = workspace_tones(context.repo)
    if tone not in tones:
        raise InvalidInput(f"tone: unknown tone '{tone}' (one of: {', '.join(sorted(tones))})")
    if not text.strip():
        raise InvalidInput("text: nothing to rewrite")
    body, signature = split_signature(text)
    prompt = load_prompt(TASK)
    version = f"{prompt.version}-{examples_version()}"
    provenance = Provenance(task=TASK, prompt_name=prompt.name, prompt_version=version, model="rules")
    language = detect_language(body).code
    by_rules = _join(rewrite_by_rules(body, tone, language), signature)
    reason, verdicts, chosen = None, [], None
    injected = bool(injection_flags([("text", text)]))
    if injected:
        reason = "the text carries a prompt injection: rewritten by the rules, not sent to the model"
    elif context.strategy(TASK, strategy) == "model":
        chosen, verdicts, reason, provenance = _model_rewrite(
            context, prompt, text, body, signature, tone, tones, provenance, by_rules
        )
    if chosen is None:
        chosen = by_rules
        verdicts = [*verdicts, *rewrite_guards(text, by_rules).verdicts]
    checks = rewrite_guards(text, chosen)
    already_promised = [] if injected else detect_commitments(text)  # an attacker's "offer" is nobody's promise
    added = [kind for kind in detect_commitments(chosen) if kind not in already_promised]
    result = Rewrite(
        tone=tone,
        original=text,
        text=chosen,
        unchanged=not checks.changed.passed,
        lost=checks.preserved.details,
        needs_explicit_approval=added,
    )
    return TaskOutcome[Rewrite](
        task=TASK,
        result=result,
        verdicts=verdicts,
        provenance=provenance,
        used_fallback=reason is not None,
        fallback_reason=reason,
    )


def _model_rewrite(
    context: TaskContext,
    prompt,
    text: str,
    body: str,
    signature: str | None,
    tone: str,  # noqa: ANN001
    tones: dict[str, str],
    provenance: Provenance,
    by_rules: str,
):  # noqa: ANN202
    """The model's rewrite when it keeps every fact and changes something (or the rules change nothing either)."""
    examples = tone_examples().get(tone) or tone_examples()["friendly"]
    messages = prompt.render(text=body, instruction=tones[tone], examples=examples)
    try:
        completion = context.gateway.complete(messages, max_tokens=min(900, 40 + len(body) // 2), temperature=0.0)
    except ModelError as error:
        return None, [], f"model unavailable: {error}", provenance
    provenance = provenance.with_completion(completion)
    if problem := prose_problem(completion.text, messages):
        return None, [GuardVerdict(name="prose", passed=False, details=[problem])], problem, provenance
    candidate = _join(clean_model_text(completion.text), signature)
    checks = rewrite_guards(text, candidate)
    if not checks.preserved.passed or not checks.grounded.passed:
        reason = "model rewrite lost facts" if not checks.preserved.passed else "model rewrite added facts"
        return None, _as_rejected(checks.verdicts), reason, provenance
    if not checks.changed.passed and rewrite_guards(text, by_rules).changed.passed:
        return None, [checks.changed], "the model returned the text unchanged: the rules rewrote it", provenance
    return candidate, checks.verdicts, None, provenance


def _as_rejected(verdicts: list[GuardVerdict]) -> list[GuardVerdict]:
    return [
        v.model_copy(update={"details": [f"model rewrite (replaced): {d}" for d in v.details]})
        for v in verdicts
        if not v.passed
    ]


def _join(body: str, signature: str | None) -> str:
    return f"{body}\n\n{signature}" if signature else body


class RewriteParams(TaskParams):
    tone: str = Field(default="friendly", max_length=64)
    text: str | None = Field(default=None, max_length=20_000, description="The text to rewrite, or give draft_id.")
    draft_id: int | None = Field(default=None, ge=1, description="Rewrite a stored draft (AI result id) instead.")
    strategy: Strategy = "auto"


def check_edited_rewrite(_repo: Repo, row: AiResult, text: str) -> list[GuardVerdict]:
    """A reviewer's edit of a rewrite keeps every fact of the original and adds none."""
    return rewrite_guards(row.content.get("result", {}).get("original", ""), text).verdicts


def draft_to_rewrite(repo: Repo, draft_id: int) -> AiResult:
    """A stored customer-facing draft (a reply or a rewrite); other results are never rewritten or echoed back."""
    draft = repo.get(AiResult, draft_id)
    if draft is None:
        raise InvalidInput(f"draft_id: no AI result {draft_id} in this workspace")
    if draft.task not in registry.delivered():
        raise InvalidInput(f"draft_id: AI result {draft_id} is a {draft.task} result, not a reply draft")
    return draft


@task(
    TASK,
    subject="text",
    permission=Permission.run_support,
    review=Permission.review_support,
    defaults={Profile.small: "rules", Profile.capable: "rules"},
    prompt=TASK,
    delivers=True,
    carriers=("text",),
    check_edit=check_edited_rewrite,
)
def rewrite(context: TaskContext, params: RewriteParams) -> TaskOutcome[Rewrite]:
    """Rewrite a reply in another tone; numbers, dates, links, names and the signature must survive."""
    text = params.text
    subject_kind, subject_id = "text", None
    if params.draft_id is not None:
        draft = draft_to_rewrite(context.repo, params.draft_id)
        text = draft.final_text or draft.content.get("result", {}).get("text")
        subject_kind, subject_id = "ai_result", draft.id
    if text is None:
        raise InvalidInput("text: give the text to rewrite or a draft_id")
    outcome = rewrite_text(context, text, params.tone, params.strategy)
    if outcome.result.lost:
        outcome.status = AiStatus.rejected
    outcome.subject_kind, outcome.subject_id = subject_kind, subject_id
    return outcome
