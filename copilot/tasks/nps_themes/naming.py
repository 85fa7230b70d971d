"""Model naming (optional): a short name from a theme's keywords and quotes, kept only when grounded in them."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from copilot.errors import ModelError
from copilot.guards import GuardVerdict, Severity, find_injection
from copilot.prompting import load_prompt
from copilot.tasks.base import Provenance
from copilot.tasks.nps_themes.models import Quote

if TYPE_CHECKING:
    from copilot.gateway.gateway import Completion
    from copilot.tasks.context import TaskContext

PROMPT = "nps_theme_label"
WORD = re.compile(r"[a-z][a-z'-]+")
GENERIC_NAME_WORDS = set(
    """issue issues problem problems complaint complaints concern concerns praise feedback experience quality request
    requests general overall comments mentions positive negative""".split()
)
KEYWORDS_KEPT = ("", "keywords")  # what a theme the model does not name gets: its keyword label stays


class ThemeName(BaseModel):
    name: str = Field(
        min_length=3,
        max_length=40,
        description="A 2-5 word name for the theme, using words from the keywords or quotes.",
    )


def name_is_grounded(name: str, keywords: list[str], quotes: list[str]) -> tuple[bool, list[str]]:
    """A name may only use words of its keywords and quotes (prefix match, so 'pricing' fits 'price');
    returns (ok, stray words)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    words = WORD.findall(name.lower())
    content = [w for w in words if w not in ENGLISH_STOP_WORDS and w not in GENERIC_NAME_WORDS and len(w) > 2]
    if not content or len(words) > 6 or len(name) > 40:
        return False, content or [name]
    source = set(WORD.findall(" ".join([*keywords, *quotes]).lower()))

    def fits(word: str) -> bool:
        return any(_common_prefix(word, s) >= max(3, min(4, len(word), len(s))) for s in source)

    stray = [w for w in content if not fits(w)]
    return not stray, stray


def _common_prefix(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))


@dataclass
class Namer:
    """Names themes with the model; collects provenance and a guard verdict."""

    context: TaskContext
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    cost_usd: float | None = None
    model: str | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        self.prompt = load_prompt(PROMPT)
        self.rejected: list[str] = []

    def __call__(self, keywords: list[list[str]], quotes: list[list[Quote]]) -> list[tuple[str, str]]:
        """Per theme: (name, "model") when the model's name is grounded, else ("", "keywords")."""
        return [
            self._name(t, words, theme_quotes)
            for t, (words, theme_quotes) in enumerate(zip(keywords, quotes, strict=True))
        ]

    def _name(self, t: int, words: list[str], theme_quotes: list[Quote]) -> tuple[str, str]:
        if self.error is not None or not words:
            return KEYWORDS_KEPT
        # never send an injection to the model
        if hit := next((h for q in theme_quotes if (h := find_injection(q.text))), None):
            self.rejected.append(f"theme {t}: a quote carries a prompt injection ({hit}); keyword label kept")
            return KEYWORDS_KEPT
        texts = [q.text for q in theme_quotes]
        messages = self.prompt.render(keywords=words, quotes=texts)
        try:
            result = self.context.gateway.structured(messages, ThemeName, max_tokens=24)
        except ModelError as error:
            self.error = f"model unavailable: {error}"
            return KEYWORDS_KEPT
        self._count(result.completion)
        name = " ".join(result.value.name.split()) if result.ok and result.value else ""
        ok, stray = name_is_grounded(name, words, texts) if name else (False, ["(no valid name)"])
        if ok:
            return name[0].upper() + name[1:], "model"
        self.rejected.append(
            f"theme {t}: '{name[:40]}' uses words not in its keywords or quotes ({', '.join(stray[:4])})"
        )
        return KEYWORDS_KEPT

    def _count(self, completion: Completion) -> None:
        self.model = completion.model
        self.tokens_in += completion.tokens_in
        self.tokens_out += completion.tokens_out
        self.latency_ms += completion.latency_ms
        if completion.cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + completion.cost_usd

    def verdict(self) -> GuardVerdict:
        return GuardVerdict(
            name="theme_names_grounded",
            passed=not self.rejected,
            severity=Severity.flag,
            details=[*self.rejected, *([self.error] if self.error else [])],
        )

    def provenance(self, provenance: Provenance, default_model: str) -> Provenance:
        """``provenance`` with the prompt and the model calls of the naming."""
        return provenance.model_copy(
            update={
                "prompt_name": self.prompt.name,
                "prompt_version": self.prompt.version,
                "model": self.model or default_model,
                "tokens_in": self.tokens_in,
                "tokens_out": self.tokens_out,
                "latency_ms": round(self.latency_ms, 1),
                "cost_usd": self.cost_usd,
            }
        )

    def fallback_reason(self) -> str | None:
        """Why keyword labels stand in for model names, if they do."""
        if not (self.error or self.rejected):
            return None
        return self.error or f"{len(self.rejected)} model theme name(s) were not grounded: keyword labels used"
