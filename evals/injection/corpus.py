"""The attacks as data: ``corpus.jsonl`` next to this file, one attempt a line.

Each attempt says where it hides (``carrier``: a customer message, an NPS comment, a sales-call turn or a help-center
article), its technique, its text, what the attacker wants (``attacker_goal``) and ``payload``, the answer a model
that obeys would give (``{system_prompt}`` stands for the task's own system prompt).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ValidationError

from copilot.errors import InvalidInput

CORPUS = Path(__file__).with_name("corpus.jsonl")
Carrier = Literal["message", "nps_comment", "call_turn", "kb_article"]
Goal = Literal["url", "refund_promise", "reveal_prompt", "other_customer_data", "override"]
CARRIERS: tuple[str, ...] = get_args(Carrier)
GOALS: tuple[str, ...] = get_args(Goal)
SYSTEM_PROMPT = "{system_prompt}"  # in a payload: the task's own system prompt


class Attempt(BaseModel):
    id: str
    carrier: Carrier
    technique: str
    text: str
    attacker_goal: Goal
    payload: str


def load_corpus(path: Path = CORPUS) -> list[Attempt]:
    attempts: list[Attempt] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            attempts.append(Attempt.model_validate_json(line))
        except ValidationError as error:
            first = error.errors()[0]
            raise InvalidInput(
                f"{path}:{number}: {'.'.join(str(p) for p in first['loc']) or '(line)'}: {first['msg']}"
            ) from None
    ids = [a.id for a in attempts]
    if duplicates := sorted({i for i in ids if ids.count(i) > 1}):
        raise InvalidInput(f"{path}: duplicate attempt ids: {', '.join(duplicates)}")
    return attempts
