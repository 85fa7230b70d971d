"""Optional LLM-as-judge metric: a capable model grades each output with the rubric in ``prompts/judge_rubric.j2``.

Off by default (the embedded 135M model is not a useful judge): ``copilot eval run --judge-model M``
adds the ``judge`` metric (score 1-5 mapped to 0-1) to every suite. Judge calls go through the
gateway and its response cache like any other model call.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, Field

from copilot.gateway import Gateway
from copilot.prompting import load_prompt
from evals.metrics import CaseOutput
from evals.suite import Case

RUBRIC = "judge_rubric"


class JudgeVerdict(BaseModel):
    score: int = Field(ge=1, le=5)
    reason: str = Field(default="", max_length=300)


def judge_case(gateway: Gateway, task: str, case: Case, output: CaseOutput) -> tuple[float | None, str]:
    """The rubric score mapped to 0-1 (None when the judge's answer was unusable) and its reason."""
    prompt = load_prompt(RUBRIC)
    messages = prompt.render(
        task=task,
        inputs=json.dumps(case.inputs, ensure_ascii=False, indent=1)[:6000],
        output=(output.text or output.label or "")[:4000],
        reference="\n---\n".join(case.references)[:4000],
    )
    result = gateway.structured(messages, JudgeVerdict, max_tokens=200)
    if not result.ok:
        return None, f"judge answer unusable: {result.error}"
    return round((result.value.score - 1) / 4, 4), result.value.reason
