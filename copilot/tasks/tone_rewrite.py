"""Tone rewrite: friendly, formal, empathetic, concise, expand, fix grammar, neutral, plus workspace tones.

The signature block is set aside before rewriting and put back after, so it always survives.
The fact-preservation guard then checks that numbers, dates, emails, URLs, prices, order ids,
names and quoted lines survived; a rewrite that lost any is rejected with the list of what was
lost. A rewrite may not add a link, email, phone number, price, order id or date either, and
commitments it adds (a refund, credit, ... the original did not make) need explicit approval.
A text that carries a prompt injection is rewritten by the rules, never sent to the model.
A rewrite identical to its input is reported as unchanged, not as success.

With the embedded 135M model the default is a deterministic rewrite (removes insults and
profanity, calms shouting and punctuation, expands contractions for formal, fixes basic
grammar): on ParaDetox it beats the model path (see evals/tone.py).
"""

from __future__ import annotations

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
    signature_block,
)
from copilot.profiles import Profile
from copilot.prompting import load_prompt, prompts_dir
from copilot.store import Repo
from copilot.store.models import AiResult, AiStatus
from copilot.tasks import registry
from copilot.tasks.base import Provenance, TaskOutcome
from copilot.tasks.context import TaskContext
from copilot.tasks.registry import TaskParams, task

TASK = "tone_rewrite"
Strategy = Literal["auto", "model", "rules"]  # its strategies: the API, CLI and registry read them here
RUDE = re.compile(
    r"\b(stupid|idiot(ic|s)?|moron(ic|s)?|dumb(ass)?|crap(py)?|shit(ty)?|bullshit|damn(ed)?|hell|fuck(ing|ed|er)?|wtf|"
    r"sucks?|suck(ed|ing)|useless|pathetic|ridiculous|incompetent|clowns?|garbage|trash|morons?|jerks?|losers?|"
    r"ass(hole)?s?|bastards?|screw(ed)?|freaking|bloody|dick|pig|fools?|fool|retard(ed)?|scum)\b",
    re.I,
)
CONTRACTIONS = {
    "don't": "do not",
    "can't": "cannot",
    "won't": "will not",
    "isn't": "is not",
    "aren't": "are not",
    "didn't": "did not",
    "doesn't": "does not",
    "I'm": "I am",
    "I've": "I have",
    "I'll": "I will",
    "we're": "we are",
    "we'll": "we will",
    "you're": "you are",
    "it's": "it is",
    "that's": "that is",
    "there's": "there is",
    "let's": "let us",
}
FILLER = re.compile(r"\b(just|really|actually|basically|literally|very|quite|simply|honestly|kind of|sort of)\s+", re.I)


class RewriteText(BaseModel):
    text: str = Field(max_length=4000)


class Rewrite(BaseModel):
    tone: str
    original: str
    text: str
    unchanged: bool = False
    lost: list[str] = Field(default_factory=list)
    needs_explicit_approval: list[str] = Field(
        default_factory=list, description="Commitments the rewrite added; a human must approve them."
    )


@lru_cache(maxsize=1)
def builtin_tones() -> dict[str, str]:
    return yaml.safe_load((prompts_dir() / "tones.yaml").read_text(encoding="utf-8"))


def workspace_tones(repo: Repo | None) -> dict[str, str]:
    custom = (repo.workspace.settings or {}).get("tones", {}) if repo is not None else {}
    return {**builtin_tones(), **custom}


def set_custom_tone(repo: Repo, name: str, instruction: str) -> None:
    if not re.fullmatch(r"[a-z][a-z0-9_-]{1,39}", name):
        raise InvalidInput("tone name: use 2-40 lower-case letters, digits, '-' or '_'")
    if not instruction.strip():
        raise InvalidInput("tone instruction: must not be empty")
    settings = dict(repo.workspace.settings or {})
    settings["tones"] = {**settings.get("tones", {}), name: instruction.strip()}
    repo.workspace.settings = settings


def reset_tones(repo: Repo) -> None:
    settings = dict(repo.workspace.settings or {})
    settings.pop("tones", None)
    repo.workspace.settings = settings


def rule_rewrite(text: str, tone: str) -> str:
    """Deterministic rewrite: never invents content, only removes or normalises wording."""
    out = []
    for line in text.split("\n"):
        if line.lstrip().startswith(">"):
            out.append(line)  # quoted customer text stays as it is
            continue
        if tone != "fix_grammar":
            line = RUDE.sub("", line)
            line = re.sub(r"!{2,}", "!", re.sub(r"\?{2,}", "?", line))
            line = re.sub(
                r"\b([A-Z]{4,})\b", lambda m: m.group(1).capitalize() if m.group(1).isalpha() else m.group(1), line
            )
        if tone == "formal":
            for short, long in CONTRACTIONS.items():
                line = re.sub(
                    rf"\b{re.escape(short)}\b",
                    lambda m, long=long: long[0].upper() + long[1:] if m.group(0)[0].isupper() else long,
                    line,
                    flags=re.I,
                )
        if tone == "concise":
            line = FILLER.sub("", line)
        out.append(_tidy(line))
    return "\n".join(out).strip()


def _tidy(line: str) -> str:
    line = re.sub(r"\s{2,}", " ", line)
    line = re.sub(r"\s+([,.!?;:])", r"\1", line)
    line = re.sub(r"([,;:])\1+", r"\1", line)
    line = re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), line)
    line = re.sub(r"\bi\b", "I", line)
    return line.strip().lstrip(",;").strip()


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


def rewrite_text(context: TaskContext, text: str, tone: str, strategy: str = "auto") -> TaskOutcome[Rewrite]:
    tones = workspace_tones(context.repo)
    if tone not in tones:
        raise InvalidInput(f"tone: unknown tone '{tone}' (one of: {', '.join(sorted(tones))})")
    if not text.strip():
        raise InvalidInput("text: nothing to rewrite")
    body, signature = split_signature(text)
    prompt = load_prompt(TASK)
    provenance = Provenance(task=TASK, prompt_name=prompt.name, prompt_version=prompt.version, model="rules")
    reason, verdicts = None, []
    rewritten, checks = None, None
    if injection_flags([("text", text)]):
        reason = "the text carries a prompt injection: rewritten by the rules, not sent to the model"
    elif registry.get(TASK).resolve_strategy(strategy, context.profile) == "model":
        try:
            result = context.gateway.structured(
                prompt.render(text=body, instruction=tones[tone]), RewriteText, max_tokens=800
            )
            completion = result.completion
            provenance = provenance.with_completion(completion)
            if result.ok:
                candidate = _join(result.value.text.strip(), signature)
                candidate_checks = rewrite_guards(text, candidate)
                verdicts = candidate_checks.verdicts
                if candidate_checks.preserved.passed and candidate_checks.grounded.passed:
                    rewritten, checks = candidate, candidate_checks
                else:
                    reason = (
                        "model rewrite lost facts"
                        if not candidate_checks.preserved.passed
                        else "model rewrite added facts"
                    )
            else:
                verdicts, reason = (
                    [GuardVerdict(name="schema", passed=False, details=[result.error or "invalid"])],
                    "model output failed validation",
                )
        except ModelError as error:
            reason = f"model unavailable: {error}"
    if rewritten is None or checks is None:
        rewritten = _join(rule_rewrite(body, tone), signature)
        checks = rewrite_guards(text, rewritten)
        verdicts = [*verdicts, *checks.verdicts]
    already_promised = detect_commitments(text)
    added = [kind for kind in detect_commitments(rewritten) if kind not in already_promised]
    result = Rewrite(
        tone=tone,
        original=text,
        text=rewritten,
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
    defaults={Profile.small: "rules", Profile.capable: "model"},
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
