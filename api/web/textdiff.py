"""Word-level differences between two texts, for showing a rewrite against the draft it rewrote."""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from typing import Literal

from pydantic import BaseModel

TOKEN = re.compile(r"\s+|\w+|[^\w\s]")


class DiffPart(BaseModel):
    op: Literal["same", "del", "ins"]
    text: str


def word_diff(before: str, after: str) -> list[DiffPart]:
    """``before`` -> ``after`` as runs of kept, deleted and inserted words (whitespace kept as written)."""
    old, new = TOKEN.findall(before), TOKEN.findall(after)
    parts: list[DiffPart] = []
    for op, i1, i2, j1, j2 in SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if op == "equal":
            _add(parts, "same", "".join(old[i1:i2]))
            continue
        _add(parts, "del", "".join(old[i1:i2]))
        _add(parts, "ins", "".join(new[j1:j2]))
    return parts


def _add(parts: list[DiffPart], op: Literal["same", "del", "ins"], text: str) -> None:
    if not text:
        return
    if parts and parts[-1].op == op:
        parts[-1].text += text
    else:
        parts.append(DiffPart(op=op, text=text))
