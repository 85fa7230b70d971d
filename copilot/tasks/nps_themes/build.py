"""Building a theme report from comments, without the database: split, embed, fit, assign, describe.

Vectors are never all in memory at once: the model is fitted on a sample of the period's distinct sentences, then
the rest are embedded and assigned in chunks, keeping only each sentence's theme, fine cluster and sentiment.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from copilot.tasks.nps_themes.clustering import FIT_SAMPLE, ThemeModel, fit_theme_model
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
    theme_change,
    theme_keywords,
)
from copilot.tasks.nps_themes.models import (
    Driver,
    Quote,
    Theme,
    ThemeChange,
    ThemeError,
    ThemeFilters,
    ThemeReport,
    ThemeSide,
)
from copilot.tasks.nps_themes.naming import ThemeText
from copilot.tasks.nps_themes.phrases import name_options, name_themes, spell, theme_phrases
from copilot.tasks.nps_themes.sentences import EMBED_CHUNK, Responses, SentenceTable, embed
from copilot.tasks.sentiment import default_classifier

if TYPE_CHECKING:
    from copilot.tasks.sentiment import SentimentClassifier
    from retrieval.embeddings import Embedder

MIN_COMMENTS = 2  # fewer comments than this is a clear error, not a one-comment "theme"

NameThemes = Callable[[list[ThemeText]], list[tuple[str, str]]]  # per theme (name, "model") or ("", ...)
ThemeQuotes = dict[int | None, list[Quote]]  # None: the theme's quotes; 1 / -1: its positive / negative side's
Period = tuple[datetime | None, datetime, datetime | None, datetime | None]  # since, until, previous since, until
Pairs = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # response index, theme, sentences, sentiment sum


@dataclass(frozen=True)
class ThemeBuild:
    """What a theme report is built from: the period's comments, the embedder, and how to fit and describe them.

    ``previous`` are the previous period's comments (all of them, or a sample of ``previous_total``);
    ``responses_total``, ``nps`` and ``totals`` (driver impact is measured against it) count every response of the
    period, with or without a comment (default: from ``responses``); ``sentiment`` defaults to the shipped
    classifier. ``label`` "phrases" names themes by their noun phrases, "keywords" by their top keywords;
    ``name_themes`` (the model namer) may replace either with a grounded name.
    """

    responses: Responses
    embedder: Embedder
    _: KW_ONLY
    seed: int = 0
    k: int | None = None
    previous: Responses | None = None
    previous_total: int | None = None
    progress: Callable[[int, int], None] | None = None
    name_themes: NameThemes | None = None
    filters: ThemeFilters | None = None
    period: Period | None = None
    responses_total: int | None = None
    nps: float | None = None
    totals: Totals | None = None
    sentiment: SentimentClassifier | None = None
    label: str = "phrases"


@dataclass
class BuiltThemes:
    model: ThemeModel
    report: ThemeReport
    pairs: Pairs
    quote_ids: list[int]


class Progress:
    """Progress in units of sentences embedded, plus a share for the steps after embedding."""

    def __init__(self, callback: Callable[[int, int], None] | None, total: int) -> None:
        self.callback, self.total, self.done = callback, max(1, total), 0

    def advance(self, units: int) -> None:
        self.done = min(self.total, self.done + units)
        if self.callback is not None:
            self.callback(self.done, self.total)

    def finish(self) -> None:
        self.advance(self.total)


@dataclass
class _Tables:
    """Both periods' sentences; the previous table's distinct texts follow the current one's."""

    current: SentenceTable
    previous: SentenceTable | None
    commented: int
    lean: np.ndarray  # per distinct text: mean score_lean of its occurrences, both periods

    @property
    def texts(self) -> list[str]:
        return self.current.texts + (self.previous.texts if self.previous else [])


class _Assigned:
    """Per distinct sentence of both periods: theme, fine cluster and sentiment, filled as vectors stream by."""

    def __init__(self, model: ThemeModel, tables: _Tables, sentiment: SentenceSentiment) -> None:
        self.model, self.texts, self.score = model, tables.texts, sentiment
        self.n_current = len(tables.current.texts)
        self.lean = tables.lean
        self.theme = np.empty(len(self.texts), dtype=np.int64)
        self.fine = np.empty(len(self.texts), dtype=np.int64)
        self.sentiment = np.empty(len(self.texts), dtype=np.float64)
        self.pool = QuotePool(tables.current.texts, len(model.theme_of))
        self.assign_s = self.sentiment_s = 0.0

    def consume(self, indices: np.ndarray, vectors: np.ndarray) -> None:
        started = time.perf_counter()
        sentiment = self.score([self.texts[i] for i in indices], vectors)
        self.sentiment[indices] = sentiment
        self.sentiment_s += time.perf_counter() - started
        started = time.perf_counter()
        theme, fine, similarity = self.model.assign(vectors)
        self.theme[indices], self.fine[indices] = theme, fine
        current = indices < self.n_current
        side = np.sign(polarity(sentiment, self.lean[indices])).astype(np.int64)  # quotes lean one way or other
        self.pool.offer(indices[current], fine[current], similarity[current], vectors[current], side[current])
        self.assign_s += time.perf_counter() - started


def build_themes(request: ThemeBuild) -> BuiltThemes:
    """Themes over ``request.responses`` (and their change against ``request.previous``), without the database."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    tables = _split(request)
    distinct = len(tables.texts)
    tracker = Progress(request.progress, distinct + max(1, distinct // 10))
    timings["split_s"] = time.perf_counter() - started

    assigned = _embed_and_assign(request, tables, tracker, timings)
    tracker.advance(max(1, (tracker.total - tracker.done) // 3))

    started = time.perf_counter()
    themes, drivers, pairs, before = _describe(request, tables, assigned)
    timings["describe_s"] = time.perf_counter() - started
    tracker.finish()

    report = _report(request, tables, assigned.model, themes, before, timings)
    report.drivers = drivers
    quote_ids = [q.response_id for theme in themes for q in theme.quotes]
    return BuiltThemes(model=assigned.model, report=report, pairs=pairs, quote_ids=quote_ids)


def _split(request: ThemeBuild) -> _Tables:
    known: dict[str, int] = {}
    table = SentenceTable.build(request.responses.comments, known)
    commented = len(np.unique(table.response_of))
    if commented < MIN_COMMENTS:
        what = "no NPS comment matches" if commented == 0 else f"only {commented} NPS comment matches"
        where = request.filters.describe() if request.filters else "the input"
        raise ThemeError(f"{what} {where}: themes need at least {MIN_COMMENTS} comments")
    previous = request.previous
    previous_table = SentenceTable.build(previous.comments, known) if previous is not None and len(previous) else None
    lean_sum = np.zeros(len(known))
    for part, responses in ((table, request.responses), (previous_table, previous)):
        if part is not None and responses is not None:
            lean = score_lean(responses.scores[part.response_of], part.turned)
            lean_sum += np.bincount(part.unique_of, weights=lean, minlength=len(known))
    seen = np.bincount(
        np.concatenate([t.unique_of for t in (table, previous_table) if t is not None]), minlength=len(known)
    )
    return _Tables(table, previous_table, commented, lean_sum / np.maximum(seen, 1))


def _pairs(table: SentenceTable, responses: Responses, assigned: _Assigned) -> Pairs:
    """(response, theme) pairs with their sentences' summed polarity (score-informed sentiment)."""
    lean = score_lean(responses.scores[table.response_of], table.turned)
    values = polarity(assigned.sentiment[table.unique_of], lean)
    return response_theme_pairs(table, assigned.theme[table.unique_of], values, len(responses), assigned.model.k)


def _embed_and_assign(request: ThemeBuild, tables: _Tables, tracker: Progress, timings: dict[str, float]) -> _Assigned:
    """Fit on a sample of the current period's distinct sentences, then embed and assign the rest in chunks."""
    started = time.perf_counter()
    texts, encode = tables.texts, request.embedder.encode
    n_current = len(tables.current.texts)
    rng = np.random.default_rng(request.seed)
    fit_index = (
        np.sort(rng.choice(n_current, FIT_SAMPLE, replace=False)) if n_current > FIT_SAMPLE else np.arange(n_current)
    )
    fit_vectors = embed(encode, [texts[i] for i in fit_index], tracker.advance)
    embed_s = time.perf_counter() - started
    started = time.perf_counter()
    model = fit_theme_model(fit_vectors, seed=request.seed, k=request.k, weights=tables.current.counts[fit_index])
    fit_s = time.perf_counter() - started

    sentiment = SentenceSentiment(request.embedder, request.sentiment or default_classifier())
    assigned = _Assigned(model, tables, sentiment)
    assigned.consume(fit_index, fit_vectors)
    del fit_vectors
    rest = np.setdiff1d(np.arange(len(texts)), fit_index)
    rest = rest[np.argsort([-len(texts[i]) for i in rest], kind="stable")]  # longest first: little padding per batch
    for chunk_start in range(0, len(rest), EMBED_CHUNK):
        chunk = rest[chunk_start : chunk_start + EMBED_CHUNK]
        started = time.perf_counter()
        vectors = embed(encode, [texts[i] for i in chunk], tracker.advance)
        embed_s += time.perf_counter() - started
        assigned.consume(chunk, vectors)
    timings.update(embed_s=embed_s, fit_s=fit_s, assign_s=assigned.assign_s, sentiment_s=assigned.sentiment_s)
    return assigned


@dataclass
class _Before:
    """The previous period on the same themes: figures, commented responses, whether it was sampled."""

    figures: ThemeFigures | None = None
    commented: int | None = None
    sampled: bool = False
    scale: float = 1.0  # previous responses per sampled one


def _describe(
    request: ThemeBuild, tables: _Tables, assigned: _Assigned
) -> tuple[list[Theme], list[Driver], Pairs, _Before]:
    """The themes, biggest first, with names, keywords, figures, sides, quotes, driver impact and the change against
    the previous period."""
    current, table, k = request.responses, tables.current, assigned.model.k
    n_current = len(table.texts)
    keywords = theme_keywords(table.texts, assigned.theme[:n_current], table.counts, k, seed=request.seed)
    pairs = _pairs(table, current, assigned)
    figures = ThemeFigures.compute(k, pairs[1], current.scores[pairs[0]], pairs[2], pairs[3])
    totals = request.totals or Totals.of(current.scores)
    fine_weight = np.bincount(assigned.fine[:n_current], weights=table.counts, minlength=len(assigned.model.theme_of))
    side_weight = {side: figures.sides[side].responses for side in (1, -1)} if figures.sides else {}
    quotes = assigned.pool.quotes(current, table, assigned.model.theme_of, fine_weight, side_weight)
    before = _previous(request, tables, assigned)
    labels = _labels(request, table, assigned.theme[:n_current], keywords, quotes, figures.responses)
    themes = []
    for t in range(k):
        fields = figures.theme_fields(t, tables.commented, totals)
        sides = [
            ThemeSide(**side, quotes=quotes[t][1 if side["polarity"] == "positive" else -1])
            for side in figures.side_fields(t, totals)
        ]
        themes.append(
            Theme(
                id=t,
                label=labels[t][0],
                label_source=labels[t][1],
                keywords=keywords[t],
                quotes=quotes[t][None],
                sides=sides,
                change=_change(fields, before, t),
                **fields,
            )
        )
    themes.sort(key=lambda theme: (-theme.responses, theme.id))
    return themes, drivers_of(themes, figures, totals), pairs, before


def _change(fields: dict, before: _Before, t: int) -> ThemeChange | None:
    if before.figures is None or before.commented is None:
        return None
    return theme_change(fields, before.figures.theme_fields(t, before.commented), before.scale)


def _previous(request: ThemeBuild, tables: _Tables, assigned: _Assigned) -> _Before:
    previous, table = request.previous, tables.previous
    if previous is None:
        return _Before()
    if table is None:
        return _Before(commented=0)
    pairs = _pairs(table, previous, assigned)
    figures = ThemeFigures.compute(assigned.model.k, pairs[1], previous.scores[pairs[0]], pairs[2], pairs[3])
    sampled = request.previous_total is not None and request.previous_total > len(previous)
    scale = (request.previous_total / len(previous)) if sampled and len(previous) else 1.0
    return _Before(figures, len(np.unique(table.response_of)), sampled, scale)


def _labels(
    request: ThemeBuild,
    table: SentenceTable,
    theme: np.ndarray,
    keywords: list[list[str]],
    quotes: list[ThemeQuotes],
    sizes: np.ndarray,
) -> list[tuple[str, str]]:
    """(label, source) per theme: a grounded model name where the namer gave one, else the noun-phrase name (or the
    keyword label when asked for); names are distinct across the run."""
    k = len(keywords)
    fallback = [quotes[t][None][0].text if quotes[t][None] else f"theme {t + 1}" for t in range(k)]
    if request.label == "keywords":
        labels = [(keyword_label(keywords[t], fallback[t]), "keywords") for t in range(k)]
    else:
        phrases, usage = theme_phrases(table.texts, theme, table.counts, k, seed=request.seed)
        names = name_themes([name_options(p, usage) for p in phrases], sizes, fallback)
        labels = [(name, "phrases") for name in names]
    if request.name_themes is None:
        return labels
    if request.label == "keywords":
        phrases, usage = theme_phrases(table.texts, theme, table.counts, k, seed=request.seed)
    texts = [
        ThemeText(
            phrases=[spell(p.text, usage) for p in phrases[t].ranked],
            keywords=keywords[t],
            quotes=list({q.text: q for side in (None, 1, -1) for q in quotes[t][side]}.values()),
        )
        for t in range(k)
    ]
    taken = {label.lower() for label, _ in labels}
    out = []
    for t, (name, source) in enumerate(request.name_themes(texts)):
        distinct = source == "model" and (name.lower() not in taken or name.lower() == labels[t][0].lower())
        out.append((name, source) if distinct else labels[t])
        taken.add(out[-1][0].lower())
    return out


def _report(
    request: ThemeBuild,
    tables: _Tables,
    model: ThemeModel,
    themes: list[Theme],
    before: _Before,
    timings: dict[str, float],
) -> ThemeReport:
    since, until, previous_since, previous_until = request.period or (None, datetime.now(UTC), None, None)
    current = request.responses
    return ThemeReport(
        filters=request.filters or ThemeFilters(),
        since=since,
        until=until,
        previous_since=previous_since,
        previous_until=previous_until,
        responses=request.responses_total if request.responses_total is not None else len(current),
        commented=tables.commented,
        sentences=len(tables.current.unique_of),
        nps=request.nps if request.nps is not None else _nps(current.scores),
        previous_commented=before.commented,
        previous_sampled=before.sampled,
        seed=request.seed,
        k=model.k,
        k_mode=model.k_mode,
        themes=themes,
        embedding_model=request.embedder.name,
        timings={key: round(value, 3) for key, value in timings.items()},
    )


def _nps(scores: np.ndarray) -> float | None:
    if not len(scores):
        return None
    return round(100 * (float((scores >= 9).mean()) - float((scores <= 6).mean())), 1)
