"""NPS theme extraction: what promoters, passives and detractors talk about, over any filter.

A batch job over thousands to millions of comments, deterministic for a fixed seed:

1. comments are split into sentences (one comment often touches several themes); exact duplicates
   are embedded once (the context's embedder, all-MiniLM-L6-v2 by default: the cost that dominates the run)
   — :mod:`.sentences`;
2. the theme model is fitted on a sample of at most ``FIT_SAMPLE`` distinct sentences: spectral
   clustering of a k-nearest-neighbour graph into up to ``FINE_CLUSTERS`` fine clusters, merged by
   average linkage of their centroids up to ``MERGE_DISTANCE`` cosine distance (automatic number of
   themes) or down to exactly ``k`` themes when it is given — :mod:`.clustering`;
3. every sentence joins the theme of its nearest fine centroid; new responses are assigned the same
   way later (:func:`assign_new_responses`), so existing assignments never move — :mod:`.store`;
4. each theme is described by c-TF-IDF keywords (scikit-learn CountVectorizer), its size,
   promoter/passive/detractor shares, average score, sentiment (the sentiment head over the same
   embeddings when it reads them, pulled towards what the respondent's score says), its positive and
   negative sides (each with its responses, share, NPS, quotes), its driver impact on the NPS
   (NPS(all) - NPS(responses not mentioning it)), representative quotes and the change against the previous
   period (the window of the same length just before, assigned to the same themes) — :mod:`.describe`;
5. each theme is named by its noun phrases ("QuickBooks sync") — :mod:`.phrases` — or, with a capable model, by
   the model from its phrases, keywords and quotes, kept only when every word is grounded in them — :mod:`.naming`.

:mod:`.build` runs 1-4 without the database (:func:`build_themes`); this module declares the task.
The report is saved as an AiResult (task ``nps_themes``, subject ``nps_run``) and the theme model with
its per-response assignments in ``nps_theme_runs`` / ``nps_theme_assignments``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from pydantic import Field

from copilot.auth import Permission
from copilot.jobs import JobContext, job_kind
from copilot.profiles import Profile
from copilot.store.models import AiStatus
from copilot.tasks.base import Provenance, TaskOutcome, save_outcome
from copilot.tasks.context import TaskContext
from copilot.tasks.nps_themes.build import MIN_COMMENTS, BuiltThemes, Progress, ThemeBuild, build_themes
from copilot.tasks.nps_themes.clustering import FINE_CLUSTERS, FIT_SAMPLE, MERGE_DISTANCE, ThemeModel, fit_theme_model
from copilot.tasks.nps_themes.describe import (
    QuotePool,
    SentenceSentiment,
    ThemeFigures,
    Totals,
    drivers_of,
    keyword_label,
    polarity,
    response_theme_pairs,
    score_lean,
    sentence_sentiment,
    sentiment_label,
    theme_keywords,
)
from copilot.tasks.nps_themes.models import (
    METHOD,
    Driver,
    Quote,
    ScoreBand,
    Theme,
    ThemeChange,
    ThemeError,
    ThemeFilters,
    ThemeReport,
    ThemeSide,
)
from copilot.tasks.nps_themes.naming import PROMPT, Namer, ThemeName, ThemeText, name_is_grounded
from copilot.tasks.nps_themes.phrases import MAX_NAME_CHARS, MAX_NAME_WORDS, theme_phrases
from copilot.tasks.nps_themes.sentences import Responses, SentenceTable, embed, split_sentences
from copilot.tasks.nps_themes.store import (
    assign_new_responses,
    get_run,
    load_periods,
    load_report,
    load_responses,
    refresh_report,
    resolve_period,
    save_run,
    workspace_repo,
)
from copilot.tasks.nps_themes.trend import FilterOptions, NpsPoint, NpsTrend, filter_options, nps_trend
from copilot.tasks.registry import TaskParams, task

__all__ = [
    "FINE_CLUSTERS",
    "FIT_SAMPLE",
    "MERGE_DISTANCE",
    "MAX_NAME_CHARS",
    "MAX_NAME_WORDS",
    "METHOD",
    "MIN_COMMENTS",
    "PROMPT",
    "SUBJECT_KIND",
    "TASK",
    "BuiltThemes",
    "Driver",
    "FilterOptions",
    "Namer",
    "NpsPoint",
    "NpsTrend",
    "NpsThemesParams",
    "Progress",
    "Quote",
    "QuotePool",
    "Responses",
    "ScoreBand",
    "SentenceSentiment",
    "SentenceTable",
    "Theme",
    "ThemeBuild",
    "ThemeChange",
    "ThemeError",
    "ThemeFigures",
    "ThemeFilters",
    "ThemeModel",
    "ThemeName",
    "ThemeReport",
    "ThemeSide",
    "ThemeText",
    "Totals",
    "assign_job",
    "assign_new_responses",
    "build_themes",
    "drivers_of",
    "embed",
    "filter_options",
    "fit_theme_model",
    "get_run",
    "keyword_label",
    "load_report",
    "load_responses",
    "name_is_grounded",
    "nps_themes",
    "nps_trend",
    "polarity",
    "refresh_report",
    "resolve_period",
    "response_theme_pairs",
    "run_themes",
    "score_lean",
    "sentence_sentiment",
    "sentiment_label",
    "split_sentences",
    "theme_keywords",
    "theme_phrases",
]

TASK = "nps_themes"
SUBJECT_KIND = "nps_run"


def run_themes(
    context: TaskContext,
    filters: ThemeFilters,
    *,
    seed: int = 0,
    k: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    name_with_model: bool | None = None,
    label: str = "phrases",
    now: datetime | None = None,
) -> TaskOutcome[ThemeReport]:
    """Find the themes of the NPS comments matching ``filters``; save the theme model, assignments and report.

    ``name_with_model`` None names themes with the model when the task's default strategy for the model's profile
    is "model" (noun-phrase names are better than what a small local model writes); ``label`` is what stands when
    the model does not name a theme: "phrases" (noun-phrase names) or "keywords" (the top keywords). Raises
    :class:`ThemeError` when fewer than ``MIN_COMMENTS`` comments match.
    """
    repo = workspace_repo(context)
    started = time.perf_counter()
    periods = load_periods(repo, filters, now=now, seed=seed)
    load_s = time.perf_counter() - started

    namer = Namer(context) if _names_with_model(context, name_with_model) else None
    request = ThemeBuild(
        periods.current,
        context.embedder,
        seed=seed,
        k=k,
        previous=periods.previous,
        previous_total=periods.previous_total,
        progress=progress,
        name_themes=namer,
        filters=filters,
        period=periods.period,
        responses_total=periods.responses_total,
        nps=periods.nps,
        totals=periods.totals,
        sentiment=context.sentiment,
        label=label,
    )
    built = build_themes(request)

    started = time.perf_counter()
    run = save_run(repo, filters, seed, built, periods.current)
    report = built.report
    report.timings = {"load_s": round(load_s, 3), **report.timings, "save_s": round(time.perf_counter() - started, 3)}
    outcome = _outcome(context, built, namer, label)
    row = save_outcome(repo, outcome, subject_kind=SUBJECT_KIND, subject_id=run.id)
    run.ai_result_id = row.id
    repo.session.flush()
    return outcome


def _names_with_model(context: TaskContext, asked: bool | None) -> bool:
    if asked is not None:
        return asked
    return context.strategy(TASK, "auto") == "model"


def _outcome(context: TaskContext, built: BuiltThemes, namer: Namer | None, label: str) -> TaskOutcome[ThemeReport]:
    provenance = Provenance(
        task=TASK, model=label, input_ids=[f"nps_response:{i}" for i in dict.fromkeys(built.quote_ids)]
    )
    fallback_reason = None
    if namer is not None:
        provenance = namer.provenance(provenance, context.settings.model)
        fallback_reason = namer.fallback_reason()
    return TaskOutcome[ThemeReport](
        task=TASK,
        result=built.report,
        verdicts=[namer.verdict()] if namer is not None else [],
        provenance=provenance,
        status=AiStatus.completed,
        used_fallback=fallback_reason is not None,
        fallback_reason=fallback_reason,
    )


class NpsThemesParams(TaskParams):
    filters: ThemeFilters = Field(default_factory=ThemeFilters)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    k: int | None = Field(
        default=None, ge=2, le=100, description="Number of themes; chosen automatically when omitted."
    )
    strategy: Literal["auto", "model", "phrases", "keywords"] = Field(
        default="auto",
        description="How themes are named: model (a grounded model name), phrases (noun phrases) or keywords.",
    )
    as_of: datetime | None = Field(default=None, description="Periods end here (default: now).")


@task(
    TASK,
    subject=SUBJECT_KIND,
    permission=Permission.run_marketing,
    review=Permission.review_marketing,
    needs_approval=False,
    defaults={Profile.small: "phrases", Profile.capable: "model"},
    prompt=PROMPT,
    carriers=("nps_comment",),
)
def nps_themes(context: TaskContext, params: NpsThemesParams) -> TaskOutcome[ThemeReport]:
    """What promoters, passives and detractors talk about: themes with shares, NPS, sentiment and quotes."""
    return run_themes(
        context,
        params.filters,
        seed=params.seed,
        k=params.k,
        progress=context.progress,
        name_with_model=params.strategy == "model",
        label="keywords" if params.strategy == "keywords" else "phrases",
        now=params.as_of,
    )


@job_kind("nps_assign", Permission.run_marketing)
def assign_job(job: JobContext) -> dict[str, object]:
    """Put responses that came in after a run into its themes (no refit)."""
    run_id = int(job.params["run_id"])
    with job.services.store.repo(job.workspace) as repo:
        context = job.services.context(repo, task=TASK)
        assigned = assign_new_responses(context, run_id, progress=lambda done, total: job.progress(done, total))
    return {"run_id": run_id, "assigned": assigned}
