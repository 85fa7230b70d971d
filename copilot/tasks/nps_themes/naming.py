"""Model naming (the capable profile): a 2-5 word name from a theme's phrases, keywords and quotes, kept only when
grounded in them (every content word traceable to the theme's own words); otherwise the noun-phrase name stays."""

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
from copilot.tasks.nps_themes.phrases import MAX_NAME_CHARS, MAX_NAME_WORDS

if TYPE_CHECKING:
    from copilot.gateway.gateway import Completion
    from copilot.tasks.context import TaskContext

PROMPT = "nps_theme_label"
WORD = re.compile(r"[a-z][a-z'-]*")
GENERIC_NAME_WORDS = set(
    """issue issues problem problems complaint complaints concern concerns praise feedback experience quality request
    requests general overall comments mentions positive negative""".split()
)
LIST_MARKS = re.compile(r"[,;/|]")  # "Excel export, CSV work, report": the keyword lists names replace
NOT_NAMED = ("", "phrases")  # what a theme the model does not name gets: its noun-phrase name stays
MIN_WORDS, MAX_WORDS = 2, MAX_NAME_WORDS


class ThemeName(BaseModel):
    name: str = Field(
        min_length=3,
        max_length=MAX_NAME_CHARS,
        description="A 2-5 word name for the theme, using words from the phrases, keywords or quotes.",
    )


@dataclass(frozen=True)
class ThemeText:
    """What a theme is named from: its noun phrases (best first), c-TF-IDF keywords and quotes (both sides)."""

    phrases: list[str]
    keywords: list[str]
    quotes: list[Quote]


def name_is_grounded(name: str, keywords: list[str], quotes: list[str]) -> tuple[bool, list[str]]:
    """A name of 2-5 whole words may only use words of its keywords (and phrases) and quotes (prefix match, so
    'pricing' fits 'price'); returns (ok, stray words)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    words = WORD.findall(name.lower())
    content = [w for w in words if w not in ENGLISH_STOP_WORDS and w not in GENERIC_NAME_WORDS]
    if not content or not MIN_WORDS <= len(name.split()) <= MAX_WORDS or len(name) > MAX_NAME_CHARS:
        return False, content or [name]
    source = set(WORD.findall(" ".join([*keywords, *quotes]).lower()))

    def fits(word: str) -> bool:
        if len(word) <= 2:  # "HP", "UI": only as written
            return word in source
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

    def __call__(self, themes: list[ThemeText]) -> list[tuple[str, str]]:
        """Per theme: (name, "model") when the model's name is grounded, else ("", "phrases")."""
        return [self._name(t, theme) for t, theme in enumerate(themes)]

    def _name(self, t: int, theme: ThemeText) -> tuple[str, str]:
        words = [*theme.phrases, *theme.keywords]
        if self.error is not None or not words:
            return NOT_NAMED
        # never send an injection to the model
        if hit := next((h for q in theme.quotes if (h := find_injection(q.text))), None):
            self.rejected.append(f"theme {t}: a quote carries a prompt injection ({hit}); noun-phrase name kept")
            return NOT_NAMED
        texts = [q.text for q in theme.quotes]
        messages = self.prompt.render(phrases=theme.phrases, keywords=theme.keywords, quotes=texts)
        try:
            result = self.context.gateway.structured(messages, ThemeName, max_tokens=24)
        except ModelError as error:
            self.error = f"model unavailable: {error}"
            return NOT_NAMED
        self._count(result.completion)
        name = " ".join(result.value.name.split()).strip(" .,:;\"'") if result.ok and result.value else ""
        if LIST_MARKS.search(name):
            self.rejected.append(f"theme {t}: '{name[:MAX_NAME_CHARS]}' is a list of keywords, not a name")
            return NOT_NAMED
        ok, stray = name_is_grounded(name, words, texts) if name else (False, ["(no valid name)"])
        if ok:
            return name[0].upper() + name[1:], "model"
        self.rejected.append(
            f"theme {t}: '{name[:MAX_NAME_CHARS]}' is not 2-5 words of its phrases, keywords or quotes "
            f"({', '.join(stray[:4])})"
        )
        return NOT_NAMED

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
        """Why noun-phrase names stand in for model names, if they do."""
        if not (self.error or self.rejected):
            return None
        return self.error or f"{len(self.rejected)} model theme name(s) were not grounded: noun-phrase names used"
