"""What a theme run reads and writes: its filters, the report with its themes, quotes and changes."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from copilot.errors import InvalidInput
from copilot.store.models import utc

METHOD = (
    "sentence embeddings (all-MiniLM-L6-v2) + spectral kNN clustering + centroid merge + c-TF-IDF keywords; "
    "noun-phrase names; sides by score-informed sentence sentiment; driver impact on NPS"
)
Polarity = Literal["positive", "negative"]


class ThemeError(InvalidInput):
    """Too few comments to find themes in, or a run that cannot be extended."""


class ScoreBand(str, Enum):
    all = "all"
    promoters = "promoters"  # 9-10
    passives = "passives"  # 7-8
    detractors = "detractors"  # 0-6

    @property
    def scores(self) -> tuple[int, int]:
        return {"all": (0, 10), "promoters": (9, 10), "passives": (7, 8), "detractors": (0, 6)}[self.value]


class ThemeFilters(BaseModel):
    """Which NPS responses a run covers. ``until`` is exclusive; naive datetimes are taken as UTC."""

    since: datetime | None = None
    until: datetime | None = None
    campaign: str | None = Field(default=None, max_length=120)
    survey: str | None = Field(default=None, max_length=120)
    segment: str | None = Field(default=None, max_length=50)
    plan: str | None = Field(default=None, max_length=80, description="The responding account's plan.")
    score_band: ScoreBand = ScoreBand.all

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else utc(value)

    @model_validator(mode="after")
    def _ordered(self) -> ThemeFilters:
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError("until must be after since")
        return self

    def describe(self) -> str:
        parts = [
            f"{name} {value:%Y-%m-%d}"
            for name, value in (("since", self.since), ("until", self.until))
            if value is not None
        ]
        named = (("campaign", self.campaign), ("survey", self.survey), ("segment", self.segment), ("plan", self.plan))
        parts += [f"{name} '{value}'" for name, value in named if value]
        if self.score_band is not ScoreBand.all:
            parts.append(self.score_band.value)
        return ", ".join(parts) or "all responses"


class Quote(BaseModel):
    response_id: int
    external_id: str | None = None
    score: int
    text: str


class ThemeChange(BaseModel):
    """This period against the previous one, on the same themes."""

    previous_responses: int = Field(
        description="responses of the previous period in this theme (estimated when sampled)"
    )
    previous_share: float
    previous_avg_score: float | None = None
    previous_sentiment: float | None = None
    share_delta: float = Field(description="change of the share of commented responses, in percentage points")
    avg_score_delta: float | None = None
    sentiment_delta: float | None = None


class ThemeSide(BaseModel):
    """The praise or the complaints within a theme: the responses whose sentences in the theme lean that way."""

    polarity: Polarity
    responses: int
    share: float = Field(description="share of the theme's responses on this side")
    nps: float
    sentiment: float = Field(ge=-1, le=1)
    impact: float | None = Field(
        default=None, description="NPS(all) - NPS(responses not on this side of the theme), in NPS points"
    )
    quotes: list[Quote]


class Driver(BaseModel):
    """A theme as a driver of the NPS: how much the NPS would change without the responses that mention it."""

    theme_id: int
    label: str
    impact: float = Field(description="NPS(all) - NPS(responses not mentioning the theme), in NPS points")
    responses: int
    nps_without: float


class Theme(BaseModel):
    id: int
    label: str
    label_source: str = "keywords"  # "phrases" (noun-phrase namer), "model" (a grounded model name) or "keywords"
    keywords: list[str]
    responses: int = Field(description="responses with at least one sentence in this theme")
    share: float = Field(description="share of the period's commented responses (a response can touch several themes)")
    promoters: float
    passives: float
    detractors: float
    nps: float
    avg_score: float
    sentiment: float = Field(
        ge=-1, le=1, description="mean score-informed sentiment of the theme's sentences (see describe.polarity)"
    )
    sentiment_label: str  # positive, neutral, negative, or mixed when both sides are substantial
    quotes: list[Quote]
    sides: list[ThemeSide] = Field(
        default_factory=list, description="positive side first; a side with no response is left out"
    )
    mixed: bool = Field(default=False, description="both sides hold a substantial share of the theme's responses")
    impact: float | None = Field(
        default=None, description="driver impact: NPS(all) - NPS(responses not mentioning the theme), in NPS points"
    )
    change: ThemeChange | None = None


class ThemeReport(BaseModel):
    run_id: int | None = None
    filters: ThemeFilters
    since: datetime | None
    until: datetime
    previous_since: datetime | None = None
    previous_until: datetime | None = None
    responses: int = Field(description="responses matching the filters, with or without a comment")
    commented: int
    sentences: int
    nps: float | None
    previous_commented: int | None = None
    previous_sampled: bool = False
    seed: int
    k: int
    k_mode: str  # "auto" or "given"
    themes: list[Theme]
    drivers: list[Driver] = Field(default_factory=list, description="themes by driver impact, most negative first")
    method: str = METHOD
    embedding_model: str
    assigned_after_run: int = 0
    timings: dict[str, float] = Field(default_factory=dict)

    def job_summary(self) -> dict[str, object]:
        return {"run_id": self.run_id, "themes": len(self.themes), "commented": self.commented}
