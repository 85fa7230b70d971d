"""NPS theme extraction: what promoters, passives and detractors talk about, over any filter.

A batch job over thousands to millions of comments, deterministic for a fixed seed:

1. comments are split into sentences (one comment often touches several themes); exact duplicates
   are embedded once (all-MiniLM-L6-v2, the cost that dominates the run);
2. the theme model is fitted on a sample of at most ``FIT_SAMPLE`` distinct sentences: spectral
   clustering of a k-nearest-neighbour graph into up to ``FINE_CLUSTERS`` fine clusters, merged by
   average linkage of their centroids up to ``MERGE_DISTANCE`` cosine distance (automatic number of
   themes) or down to exactly ``k`` themes when it is given;
3. every sentence joins the theme of its nearest fine centroid; new responses are assigned the same
   way later (:func:`assign_new_responses`), so existing assignments never move;
4. each theme is described by c-TF-IDF keywords (scikit-learn CountVectorizer), optionally named by
   the model from its keywords and quotes (the name must use their words, else the keywords stay),
   its size, promoter/passive/detractor shares, average score, sentiment (the shipped sentiment head
   over the same embeddings), representative quotes and the change against the previous period
   (the window of the same length just before, assigned to the same themes).

The report is saved as an AiResult (task ``nps_themes``, subject ``nps_run``) and the theme model with
its per-response assignments in ``nps_theme_runs`` / ``nps_theme_assignments``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import Select, and_, case, exists, func, insert, select

from copilot.errors import InvalidInput, NotFound
from copilot.gateway import ModelError
from copilot.guards import GuardVerdict, Severity, find_injection
from copilot.prompting import load_prompt
from copilot.store import Repo
from copilot.store.models import AiResult, AiStatus, NpsResponse, NpsThemeAssignment, NpsThemeRun
from copilot.tasks.base import Provenance, TaskOutcome, save_outcome
from copilot.tasks.context import TaskContext

TASK = "nps_themes"
PROMPT = "nps_theme_label"
SUBJECT_KIND = "nps_run"
METHOD = "sentence embeddings (all-MiniLM-L6-v2) + spectral kNN clustering + centroid merge + c-TF-IDF keywords"

MIN_COMMENTS = 2  # fewer comments than this is a clear error, not a one-comment "theme"
MAX_SENTENCES = 10  # per comment
MAX_SENTENCE_CHARS = 600
FIT_SAMPLE = 10_000  # distinct sentences the clustering is fitted on; everything else is assigned
FINE_CLUSTERS = 40
MIN_FINE_SIZE = 6  # fewer fine clusters on small inputs, so that their centroids average several sentences
NEIGHBOURS = 15
MIN_NEIGHBOURS = 4
MERGE_DISTANCE = 0.45  # cosine distance between fine-cluster centroids (average linkage) below which they merge
MIN_THEME_SHARE = 0.01  # automatic mode: smaller themes fold into their nearest theme
MAX_AUTO_THEMES = 20  # automatic mode: more than this is not a readable dashboard; merge further up the same tree
QUOTES = 3
KEYWORDS = 8
KEYWORD_SAMPLE = 200_000  # distinct sentences c-TF-IDF is computed on
PREVIOUS_SAMPLE = 20_000  # previous-period responses assigned to estimate the change
EMBED_CHUNK = 4096
ASSIGN_BATCH = 20_000
SENTIMENT_BAND = 0.2

SENTENCE_SPLIT = re.compile(r"(?<=[.!?…])\s+|\s*[\n;]+\s*")
LEADING_CONNECTOR = re.compile(
    r"^(?:but|however|also|and|plus|still|though|besides|otherwise|that said|on top of that|then again"
    r"|in addition)\b[,:]?\s+",
    re.I,
)
TOKEN = re.compile(r"(?u)\b[^\W\d_][^\W\d_'’-]+\b")
HAS_WORD = re.compile(r"[^\W\d_]", re.U)
WORD = re.compile(r"[a-z][a-z'-]+")
EXTRA_STOP_WORDS = {
    "really",
    "just",
    "like",
    "thing",
    "things",
    "lot",
    "bit",
    "way",
    "make",
    "makes",
    "made",
    "does",
    "did",
    "doing",
    "got",
    "get",
    "gets",
    "getting",
    "ve",
    "ll",
    "don",
    "didn",
    "doesn",
    "isn",
    "wasn",
    "aren",
    "won",
    "can't",
    "it's",
    "i'm",
    "we're",
    "they're",
    "that's",
    "there's",
    "let",
    "use",
    "used",
    "using",
    "able",
    "want",
    "need",
    "needs",
    "say",
    "said",
    "know",
    "think",
    "thought",
    "going",
    "went",
    "come",
    "came",
    "actually",
    "definitely",
    "overall",
    "pretty",
    "quite",
    "don't",
    "doesn't",
    "didn't",
    "isn't",
    "aren't",
    "wasn't",
    "won't",
    "i've",
    "we've",
    "you're",
    "i'd",
    "we'd",
    "it'd",
}
GENERIC_NAME_WORDS = {
    "issue",
    "issues",
    "problem",
    "problems",
    "complaint",
    "complaints",
    "concern",
    "concerns",
    "praise",
    "feedback",
    "experience",
    "quality",
    "request",
    "requests",
    "general",
    "overall",
    "comments",
    "mentions",
    "positive",
    "negative",
}


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
    segment: str | None = Field(default=None, max_length=50)
    score_band: ScoreBand = ScoreBand.all

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _utc(value)

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
        parts += [
            f"{name} '{value}'" for name, value in (("campaign", self.campaign), ("segment", self.segment)) if value
        ]
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


class Theme(BaseModel):
    id: int
    label: str
    label_source: str = "keywords"  # or "model"
    keywords: list[str]
    responses: int = Field(description="responses with at least one sentence in this theme")
    share: float = Field(description="share of the period's commented responses (a response can touch several themes)")
    promoters: float
    passives: float
    detractors: float
    nps: float
    avg_score: float
    sentiment: float = Field(ge=-1, le=1, description="mean P(positive) - P(negative) of the theme's sentences")
    sentiment_label: str
    quotes: list[Quote]
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
    method: str = METHOD
    embedding_model: str
    assigned_after_run: int = 0
    timings: dict[str, float] = Field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Core: sentences, theme model, keywords, figures (no database; evals and benchmarks call these)
# --------------------------------------------------------------------------------------------


def split_sentences(text: str | None) -> list[str]:
    """Sentences of a comment that carry words, at most ``MAX_SENTENCES`` (the rest joins the last)."""
    if not text:
        return []
    pieces = [_without_connector(p.strip(" \t\"'()[]-–—•*")) for p in SENTENCE_SPLIT.split(text)]
    pieces = [p[:MAX_SENTENCE_CHARS] for p in pieces if p and HAS_WORD.search(p)]
    if len(pieces) > MAX_SENTENCES:
        pieces = [*pieces[: MAX_SENTENCES - 1], " ".join(pieces[MAX_SENTENCES - 1 :])[:MAX_SENTENCE_CHARS]]
    return pieces


def _without_connector(sentence: str) -> str:
    """'But support takes days.' -> 'Support takes days.': the connector belongs to the comment, not the theme."""
    stripped, changed = LEADING_CONNECTOR.subn("", sentence, count=1)
    if not changed or len(stripped.split()) < 2:
        return sentence
    return stripped[0].upper() + stripped[1:]


def _dedupe_key(sentence: str) -> str:
    return " ".join(sentence.lower().split()).rstrip(".!?… ")


@dataclass
class SentenceTable:
    """The sentences of a list of comments, with distinct texts listed once."""

    texts: list[str]  # distinct sentences new to this table, first spelling seen
    unique_of: (
        np.ndarray
    )  # per sentence occurrence: index into the texts of all tables built with the same ``known`` dict
    response_of: np.ndarray  # per sentence occurrence: index of its comment
    counts: np.ndarray  # per distinct text: occurrences

    @classmethod
    def build(cls, comments: Sequence[str | None], known: dict[str, int] | None = None) -> SentenceTable:
        index: dict[str, int] = {} if known is None else known
        texts: list[str] = []
        unique_of: list[int] = []
        response_of: list[int] = []
        base = len(index)
        for position, comment in enumerate(comments):
            for sentence in split_sentences(comment):
                key = _dedupe_key(sentence)
                slot = index.get(key)
                if slot is None:
                    slot = index[key] = base + len(texts)
                    texts.append(sentence)
                unique_of.append(slot)
                response_of.append(position)
        unique = np.asarray(unique_of, dtype=np.int64)
        own = unique[unique >= base] - base  # occurrences of the texts new in this table
        counts = np.bincount(own, minlength=len(texts)) if len(texts) else np.zeros(0, dtype=np.int64)
        return cls(texts, unique, np.asarray(response_of, dtype=np.int64), counts)


def embed(
    encode: Callable[[list[str]], np.ndarray],
    texts: list[str],
    progress: Callable[[int], None] | None = None,
    chunk: int = EMBED_CHUNK,
) -> np.ndarray:
    """Embed texts longest first in chunks (little padding, progress after each chunk), returned in input order."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out: np.ndarray | None = None
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        vectors = np.asarray(encode([texts[i] for i in part]), dtype=np.float32)
        if out is None:
            out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
        out[part] = vectors
        if progress is not None:
            progress(len(part))
    return _normalise(out)


@dataclass
class ThemeModel:
    """Fine-cluster centroids and the theme each belongs to: all that assigning a sentence needs."""

    centroids: np.ndarray  # (fine clusters, dimensions) float32, unit length
    theme_of: np.ndarray  # (fine clusters,) theme id, themes numbered by size in the fitted sample
    k_mode: str = "auto"

    @property
    def k(self) -> int:
        return int(self.theme_of.max()) + 1 if len(self.theme_of) else 0

    def assign(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per vector: theme, fine cluster and cosine similarity to that cluster's centroid."""
        fine = np.empty(len(vectors), dtype=np.int64)
        similarity = np.empty(len(vectors), dtype=np.float32)
        for start in range(0, len(vectors), 65_536):
            sims = vectors[start : start + 65_536] @ self.centroids.T
            best = sims.argmax(axis=1)
            fine[start : start + len(best)] = best
            similarity[start : start + len(best)] = sims[np.arange(len(best)), best]
        return self.theme_of[fine], fine, similarity

    def to_bytes(self) -> bytes:
        return np.ascontiguousarray(self.centroids, dtype=np.float32).tobytes()

    @classmethod
    def from_run(cls, run: NpsThemeRun) -> ThemeModel:
        centroids = np.frombuffer(run.centroids, dtype=np.float32).reshape(-1, run.dimensions)
        return cls(centroids=centroids, theme_of=np.asarray(run.theme_of, dtype=np.int64))


def fit_theme_model(
    vectors: np.ndarray, *, seed: int = 0, k: int | None = None, weights: np.ndarray | None = None
) -> ThemeModel:
    """Fit themes on unit-length sentence vectors (at most ``FIT_SAMPLE`` of them are used).

    Deterministic for a fixed seed. ``k`` None chooses the number of themes from the data.
    """
    n = len(vectors)
    if n == 0:
        raise ThemeError("there are no sentences to find themes in")
    if k is not None and k < 1:
        raise ThemeError("k must be at least 1")
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, FIT_SAMPLE, replace=False)) if n > FIT_SAMPLE else np.arange(n)
    points = np.ascontiguousarray(vectors[sample], dtype=np.float32)
    point_weights = np.ones(len(points)) if weights is None else np.asarray(weights, dtype=np.float64)[sample]
    fine_count = max(min(FINE_CLUSTERS, len(points) // MIN_FINE_SIZE), k or 0, 2)
    if len(points) <= max(fine_count, 3):
        fine = np.arange(len(points))  # a handful of sentences: each one is its own fine cluster
    else:
        fine = _spectral_clusters(points, fine_count, seed)
    fine = np.unique(fine, return_inverse=True)[1]
    centroids = _normalise(np.stack([points[fine == c].mean(axis=0) for c in range(fine.max() + 1)]))
    for _ in range(
        10
    ):  # sentences go to their nearest centroid: drop centroids nearest to none, or a theme could come out empty
        used = np.unique((points @ centroids.T).argmax(axis=1))
        if len(used) == len(centroids):
            break
        centroids = centroids[used]
    sizes = np.bincount((points @ centroids.T).argmax(axis=1), weights=point_weights, minlength=len(centroids))
    theme_of = _merge(centroids, sizes, k)
    # Number themes by their weight in the sample, biggest first (ties by first fine cluster).
    theme_weight = np.bincount(theme_of, weights=sizes)
    order = sorted(range(len(theme_weight)), key=lambda t: (-theme_weight[t], t))
    renumber = np.empty(len(order), dtype=np.int64)
    renumber[order] = np.arange(len(order))
    return ThemeModel(
        centroids=centroids.astype(np.float32), theme_of=renumber[theme_of], k_mode="given" if k else "auto"
    )


def _spectral_clusters(points: np.ndarray, clusters: int, seed: int) -> np.ndarray:
    """Spectral clustering of the symmetric k-nearest-neighbour graph (cosine similarity weights)."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import eigsh
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    n = len(points)
    neighbours = min(NEIGHBOURS, max(MIN_NEIGHBOURS, n // 8), n - 1)
    # Small dense steps run on one thread: on a busy machine, BLAS/OpenMP thread teams cost more than they save here.
    with threadpool_limits(1 if n < 4096 else None):
        rows, cols, weights = [], [], []
        for start in range(0, n, 2048):
            sims = points[start : start + 2048] @ points.T
            block = np.arange(len(sims))
            sims[block, start + block] = -np.inf
            nearest = np.argpartition(-sims, neighbours - 1, axis=1)[:, :neighbours]
            rows.append(np.repeat(start + block, neighbours))
            cols.append(nearest.ravel())
            weights.append(np.take_along_axis(sims, nearest, axis=1).ravel())
    graph = sp.csr_matrix(
        (np.clip(np.concatenate(weights), 0.0, None) + 1e-6, (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    graph = graph.maximum(graph.T).astype(np.float64)
    degree = np.asarray(graph.sum(axis=1)).ravel()
    scale = sp.diags(1.0 / np.sqrt(degree))
    affinity = (scale @ graph @ scale).tocsr()
    start_vector = np.random.default_rng(seed).uniform(-1.0, 1.0, n)
    with threadpool_limits(1):
        if n < 200:
            values, vectors = np.linalg.eigh(affinity.toarray())
        else:
            values, vectors = eigsh(affinity, k=clusters, which="LA", v0=start_vector, tol=1e-6)
        top = np.argsort(-values)[:clusters]
        embedding = vectors[:, top]
        embedding /= np.linalg.norm(embedding, axis=1, keepdims=True).clip(1e-12)
        return KMeans(clusters, n_init=4, random_state=seed).fit(embedding).labels_


def _merge(centroids: np.ndarray, sizes: np.ndarray, k: int | None) -> np.ndarray:
    """Fine cluster -> theme: average-linkage merge by centroid cosine distance (or down to k themes)."""
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(centroids) == 1:
        return np.zeros(1, dtype=np.int64)
    tree = linkage(centroids.astype(np.float64), method="average", metric="cosine")
    if k is not None:
        labels = fcluster(tree, min(k, len(centroids)), criterion="maxclust") - 1
        return np.unique(labels, return_inverse=True)[1]
    labels = fcluster(tree, MERGE_DISTANCE, criterion="distance") - 1
    if labels.max() + 1 > MAX_AUTO_THEMES:
        labels = fcluster(tree, MAX_AUTO_THEMES, criterion="maxclust") - 1
    labels = np.unique(labels, return_inverse=True)[1]
    # Themes below MIN_THEME_SHARE of the sample fold into the nearest bigger theme.
    while True:
        weight = np.bincount(labels, weights=sizes)
        small = [t for t in np.argsort(weight) if weight[t] < MIN_THEME_SHARE * sizes.sum()]
        if not small or len(weight) <= 1:
            return labels
        tiny = small[0]
        theme_centroids = _normalise(
            np.stack([(centroids[labels == t] * sizes[labels == t, None]).sum(axis=0) for t in range(len(weight))])
        )
        sims = theme_centroids @ theme_centroids[tiny]
        sims[tiny] = -np.inf
        labels[labels == tiny] = int(sims.argmax())
        labels = np.unique(labels, return_inverse=True)[1]


def theme_keywords(
    texts: Sequence[str], themes: np.ndarray, weights: np.ndarray, k: int, *, top: int = KEYWORDS, seed: int = 0
) -> list[list[str]]:
    """c-TF-IDF keywords per theme:
    term frequency in the theme x log(1 + average theme size / term frequency overall)."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

    if len(texts) > KEYWORD_SAMPLE:
        keep = np.sort(np.random.default_rng(seed).choice(len(texts), KEYWORD_SAMPLE, replace=False))
        texts, themes, weights = [texts[i] for i in keep], themes[keep], weights[keep]
    stop = ENGLISH_STOP_WORDS | EXTRA_STOP_WORDS

    def terms(text: str) -> list[str]:
        tokens = [t.replace("’", "'") for t in TOKEN.findall(text.lower())]
        keep = [t not in stop for t in tokens]
        return [t for t, k in zip(tokens, keep, strict=True) if k] + [
            f"{a} {b}" for a, b, ka, kb in zip(tokens, tokens[1:], keep, keep[1:], strict=False) if ka and kb
        ]

    vectorizer = CountVectorizer(
        analyzer=terms, min_df=2 if len(texts) >= 200 else 1, max_features=100_000, dtype=np.float64
    )
    try:
        counts = vectorizer.fit_transform(texts)
    except ValueError:  # nothing but stop words
        return [[] for _ in range(k)]
    membership = sp.csr_matrix(
        (np.asarray(weights, dtype=np.float64), (themes, np.arange(len(themes)))), shape=(k, len(themes))
    )
    tf = np.asarray((membership @ counts).todense())
    words = tf.sum(axis=1, keepdims=True)
    average = words.mean() or 1.0
    idf = np.log1p(average / tf.sum(axis=0).clip(1e-12))
    scores = tf / words.clip(1e-12) * idf
    vocabulary = vectorizer.get_feature_names_out()
    keywords = []
    for row, theme_tf in zip(scores, tf, strict=True):
        chosen: list[str] = []
        for index in np.argsort(-row, kind="stable")[: top * 4]:
            if row[index] <= 0 or theme_tf[index] < 1:
                break
            _add_keyword(chosen, str(vocabulary[index]))
            if len(chosen) >= top:
                break
        keywords.append(chosen)
    return keywords


def _add_keyword(chosen: list[str], term: str) -> None:
    """Add a term unless a chosen one already covers it; a phrase replaces the single words it covers
    ("mobile" -> "mobile app")."""
    words = set(term.split())
    if any(words <= set(existing.split()) for existing in chosen):
        return
    covered = [i for i, existing in enumerate(chosen) if set(existing.split()) < words]
    if covered:
        chosen[covered[0]] = term
        for i in reversed(covered[1:]):
            del chosen[i]
    else:
        chosen.append(term)


def keyword_label(keywords: list[str], fallback: str) -> str:
    if not keywords:
        words = fallback.split()
        return " ".join(words[:6]) + ("…" if len(words) > 6 else "")
    label = ", ".join(keywords[:3])
    return label[0].upper() + label[1:]


@dataclass
class ThemeFigures:
    """Per theme: responses, score bands, average score and sentiment; from (response, theme) pairs."""

    responses: np.ndarray
    promoters: np.ndarray
    passives: np.ndarray
    detractors: np.ndarray
    score_sum: np.ndarray
    sentiment_sum: np.ndarray
    sentences: np.ndarray

    @classmethod
    def compute(
        cls, k: int, theme: np.ndarray, score: np.ndarray, sentences: np.ndarray, sentiment_sum: np.ndarray
    ) -> ThemeFigures:
        keep = theme >= 0
        theme, score, sentences, sentiment_sum = theme[keep], score[keep], sentences[keep], sentiment_sum[keep]

        def count(weights: np.ndarray | None = None) -> np.ndarray:
            return np.bincount(theme, weights=weights, minlength=k)[:k].astype(np.float64)

        return cls(
            responses=count(),
            promoters=count((score >= 9).astype(float)),
            passives=count(((score >= 7) & (score <= 8)).astype(float)),
            detractors=count((score <= 6).astype(float)),
            score_sum=count(score.astype(float)),
            sentiment_sum=count(sentiment_sum),
            sentences=count(sentences.astype(float)),
        )

    def theme_fields(self, t: int, commented: int) -> dict[str, float | int | str]:
        n = self.responses[t]
        share = lambda x: round(float(x / n), 4) if n else 0.0  # noqa: E731
        sentiment = float(self.sentiment_sum[t] / self.sentences[t]) if self.sentences[t] else 0.0
        return {
            "responses": int(n),
            "share": round(float(n / commented), 4) if commented else 0.0,
            "promoters": share(self.promoters[t]),
            "passives": share(self.passives[t]),
            "detractors": share(self.detractors[t]),
            "nps": round(100 * float(self.promoters[t] - self.detractors[t]) / n, 1) if n else 0.0,
            "avg_score": round(float(self.score_sum[t] / n), 2) if n else 0.0,
            "sentiment": round(max(-1.0, min(1.0, sentiment)), 4),
            "sentiment_label": sentiment_label(sentiment),
        }


def sentiment_label(score: float) -> str:
    return "negative" if score < -SENTIMENT_BAND else "positive" if score > SENTIMENT_BAND else "neutral"


def response_theme_pairs(
    table: SentenceTable, sentence_theme: np.ndarray, sentence_sentiment: np.ndarray, responses: int, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(response, theme) pairs with the number of sentences and their summed sentiment;
    theme -1 for comments without a sentence."""
    width = k + 1
    keys = table.response_of * width + (sentence_theme + 1)
    unique, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    sentiment_sum = np.bincount(inverse, weights=sentence_sentiment, minlength=len(unique))
    response = unique // width
    theme = unique % width - 1
    empty = np.setdiff1d(np.arange(responses), response)
    if len(empty):
        response = np.concatenate([response, empty])
        theme = np.concatenate([theme, np.full(len(empty), -1)])
        counts = np.concatenate([counts, np.zeros(len(empty), dtype=counts.dtype)])
        sentiment_sum = np.concatenate([sentiment_sum, np.zeros(len(empty))])
    return response, theme, counts, sentiment_sum


# --------------------------------------------------------------------------------------------
# Sentiment over the same embeddings
# --------------------------------------------------------------------------------------------


def sentence_sentiment(texts: list[str], vectors: np.ndarray, encoder: object) -> np.ndarray:
    """P(positive) - P(negative) per sentence with the shipped sentiment head;
    reuses the vectors when they come from its encoder."""
    from copilot.tasks.sentiment import default_classifier, features

    if not texts:
        return np.zeros(0)
    classifier = default_classifier()
    same_encoder = vectors.shape[1] + 4 == classifier.head.coef.shape[1] and (
        getattr(classifier.encode, "__self__", None) is encoder or _is_default(encoder)
    )
    if same_encoder:
        probabilities = []
        for start in range(0, len(texts), 50_000):
            chunk = texts[start : start + 50_000]
            probabilities.append(
                classifier.head.probabilities(features(vectors[start : start + 50_000], classifier.vader, chunk))
            )
        p = np.vstack(probabilities)
    else:
        p = classifier.probabilities(texts)
    return (p[:, 2] - p[:, 0]).astype(np.float64)


def _is_default(encoder: object) -> bool:
    from retrieval.embeddings import Embedder

    return isinstance(encoder, Embedder)


def embedding_model_name(embedder: object) -> str:
    return "all-MiniLM-L6-v2" if _is_default(embedder) else type(embedder).__name__


# --------------------------------------------------------------------------------------------
# Building a report from comments (no database)
# --------------------------------------------------------------------------------------------


@dataclass
class Responses:
    """Comments with their response ids and scores (one row per response)."""

    ids: np.ndarray
    scores: np.ndarray
    comments: list[str | None]
    external_ids: list[str | None]

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[int, int, str | None, str | None]]) -> Responses:
        rows = list(rows)
        return cls(
            ids=np.asarray([r[0] for r in rows], dtype=np.int64),
            scores=np.asarray([r[1] for r in rows], dtype=np.int64),
            comments=[r[2] for r in rows],
            external_ids=[r[3] for r in rows],
        )

    def __len__(self) -> int:
        return len(self.comments)


@dataclass
class BuiltThemes:
    model: ThemeModel
    report: ThemeReport
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # response index, theme, sentences, sentiment sum
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


def build_themes(
    current: Responses,
    embedder: object,
    *,
    seed: int = 0,
    k: int | None = None,
    previous: Responses | None = None,
    previous_total: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    name_themes: Callable[[list[list[str]], list[list[Quote]]], list[tuple[str, str]]] | None = None,
    filters: ThemeFilters | None = None,
    period: tuple[datetime | None, datetime, datetime | None, datetime | None] | None = None,
    responses_total: int | None = None,
    nps: float | None = None,
) -> BuiltThemes:
    """Themes over ``current`` comments (and their change against ``previous``), without touching the database."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    known: dict[str, int] = {}
    table = SentenceTable.build(current.comments, known)
    commented = len(np.unique(table.response_of))
    if commented < MIN_COMMENTS:
        what = "no NPS comment matches" if commented == 0 else f"only {commented} NPS comment matches"
        raise ThemeError(
            f"{what} {filters.describe() if filters else 'the input'}: themes need at least {MIN_COMMENTS} comments"
        )
    previous_table = SentenceTable.build(previous.comments, known) if previous is not None and len(previous) else None
    new_previous = len(previous_table.texts) if previous_table else 0
    tracker = Progress(progress, len(table.texts) + new_previous + max(1, (len(table.texts) + new_previous) // 10))
    timings["split_s"] = time.perf_counter() - started

    # Fit on a sample of the current period's distinct sentences, then embed and assign the rest in chunks:
    # vectors are never all in memory at once, only the per-sentence theme, similarity and sentiment.
    started = time.perf_counter()
    texts = table.texts + (previous_table.texts if previous_table else [])
    n_current = len(table.texts)
    rng = np.random.default_rng(seed)
    fit_index = (
        np.sort(rng.choice(n_current, FIT_SAMPLE, replace=False)) if n_current > FIT_SAMPLE else np.arange(n_current)
    )
    fit_vectors = embed(embedder.encode, [texts[i] for i in fit_index], tracker.advance)
    embed_s = time.perf_counter() - started
    started = time.perf_counter()
    model = fit_theme_model(fit_vectors, seed=seed, k=k, weights=table.counts[fit_index])
    fit_s = time.perf_counter() - started

    themes_of_text = np.empty(len(texts), dtype=np.int64)
    fine_of_text = np.empty(len(texts), dtype=np.int64)
    sentiment_of_text = np.empty(len(texts), dtype=np.float64)
    pool = QuotePool(table.texts, len(model.theme_of))
    assign_s = sentiment_s = 0.0

    def consume(indices: np.ndarray, vectors: np.ndarray) -> None:
        nonlocal assign_s, sentiment_s
        started = time.perf_counter()
        theme, fine, similarity = model.assign(vectors)
        themes_of_text[indices], fine_of_text[indices] = theme, fine
        current = indices < n_current
        pool.offer(indices[current], fine[current], similarity[current], vectors[current])
        assign_s += time.perf_counter() - started
        started = time.perf_counter()
        sentiment_of_text[indices] = sentence_sentiment([texts[i] for i in indices], vectors, embedder)
        sentiment_s += time.perf_counter() - started

    consume(fit_index, fit_vectors)
    del fit_vectors
    rest = np.setdiff1d(np.arange(len(texts)), fit_index)
    rest = rest[np.argsort([-len(texts[i]) for i in rest], kind="stable")]  # longest first: little padding per batch
    for chunk_start in range(0, len(rest), EMBED_CHUNK):
        chunk = rest[chunk_start : chunk_start + EMBED_CHUNK]
        started = time.perf_counter()
        vectors = embed(embedder.encode, [texts[i] for i in chunk], tracker.advance)
        embed_s += time.perf_counter() - started
        consume(chunk, vectors)
    timings.update(embed_s=embed_s, fit_s=fit_s, assign_s=assign_s, sentiment_s=sentiment_s)
    tracker.advance(max(1, (tracker.total - tracker.done) // 3))

    started = time.perf_counter()
    k_found = model.k
    keywords = theme_keywords(table.texts, themes_of_text[:n_current], table.counts, k_found, seed=seed)
    pairs = response_theme_pairs(
        table, themes_of_text[table.unique_of], sentiment_of_text[table.unique_of], len(current), k_found
    )
    figures = ThemeFigures.compute(k_found, pairs[1], current.scores[pairs[0]], pairs[2], pairs[3])
    fine_weight = np.bincount(fine_of_text[:n_current], weights=table.counts, minlength=len(model.theme_of))
    quotes = pool.quotes(current, table, model.theme_of, fine_weight)

    change_figures, previous_commented, sampled = None, None, False
    if previous_table is not None and previous is not None:
        previous_commented = len(np.unique(previous_table.response_of))
        previous_pairs = response_theme_pairs(
            previous_table,
            themes_of_text[previous_table.unique_of],
            sentiment_of_text[previous_table.unique_of],
            len(previous),
            k_found,
        )
        change_figures = ThemeFigures.compute(
            k_found, previous_pairs[1], previous.scores[previous_pairs[0]], previous_pairs[2], previous_pairs[3]
        )
        sampled = previous_total is not None and previous_total > len(previous)
    elif previous is not None:
        previous_commented = 0

    labels = [
        (keyword_label(keywords[t], quotes[t][0].text if quotes[t] else f"theme {t + 1}"), "keywords")
        for t in range(k_found)
    ]
    if name_themes is not None:
        labels = [
            (name, source) if source == "model" else labels[t]
            for t, (name, source) in enumerate(name_themes(keywords, quotes))
        ]
    theme_list = []
    for t in range(k_found):
        fields = figures.theme_fields(t, commented)
        change = None
        if change_figures is not None and previous_commented is not None:
            before = change_figures.theme_fields(t, previous_commented)
            scale = (previous_total / len(previous)) if sampled and previous is not None and len(previous) else 1.0
            has_before = before["responses"] > 0
            change = ThemeChange(
                previous_responses=int(round(before["responses"] * scale)),
                previous_share=before["share"],
                previous_avg_score=before["avg_score"] if has_before else None,
                previous_sentiment=before["sentiment"] if has_before else None,
                share_delta=round(100 * (fields["share"] - before["share"]), 2),
                avg_score_delta=round(fields["avg_score"] - before["avg_score"], 2)
                if has_before and fields["responses"]
                else None,
                sentiment_delta=round(fields["sentiment"] - before["sentiment"], 4)
                if has_before and fields["responses"]
                else None,
            )
        theme_list.append(
            Theme(
                id=t,
                label=labels[t][0],
                label_source=labels[t][1],
                keywords=keywords[t],
                quotes=quotes[t],
                change=change,
                **fields,
            )
        )
    theme_list.sort(key=lambda theme: (-theme.responses, theme.id))
    timings["describe_s"] = time.perf_counter() - started
    tracker.finish()

    since, until, previous_since, previous_until = period or (None, datetime.now(UTC), None, None)
    report = ThemeReport(
        filters=filters or ThemeFilters(),
        since=since,
        until=until,
        previous_since=previous_since,
        previous_until=previous_until,
        responses=responses_total if responses_total is not None else len(current),
        commented=commented,
        sentences=len(table.unique_of),
        nps=nps if nps is not None else _nps(current.scores),
        previous_commented=previous_commented,
        previous_sampled=sampled,
        seed=seed,
        k=k_found,
        k_mode=model.k_mode,
        themes=theme_list,
        embedding_model=embedding_model_name(embedder),
        timings={key: round(value, 3) for key, value in timings.items()},
    )
    quote_ids = [q.response_id for theme in theme_list for q in theme.quotes]
    return BuiltThemes(model=model, report=report, pairs=pairs, quote_ids=quote_ids)


def _nps(scores: np.ndarray) -> float | None:
    if not len(scores):
        return None
    return round(100 * (float((scores >= 9).mean()) - float((scores <= 6).mean())), 1)


class QuotePool:
    """Quote candidates per fine cluster, kept while sentences stream by:
    substantial sentences first, then the most central."""

    def __init__(self, texts: list[str], fine_clusters: int, keep: int = 4 * QUOTES) -> None:
        words = np.asarray([len(text.split()) for text in texts], dtype=np.int64)
        self.substantial = (words >= 3) & (words <= 40)
        self.keep = keep
        self.texts = texts
        self.candidates: list[list[tuple[bool, float, int]]] = [
            [] for _ in range(fine_clusters)
        ]  # (not substantial, -similarity, index)
        self.vectors: dict[int, np.ndarray] = {}

    def offer(self, indices: np.ndarray, fine: np.ndarray, similarity: np.ndarray, vectors: np.ndarray) -> None:
        order = np.lexsort((indices, -similarity, ~self.substantial[indices], fine))
        taken: dict[int, int] = {}
        for position in order:
            cluster = int(fine[position])
            if taken.get(cluster, 0) >= self.keep:
                continue
            taken[cluster] = taken.get(cluster, 0) + 1
            index = int(indices[position])
            self.candidates[cluster].append((not bool(self.substantial[index]), -float(similarity[position]), index))
            self.vectors[index] = vectors[position].copy()
        for cluster in taken:
            ranked = sorted(self.candidates[cluster])
            for _, _, dropped in ranked[self.keep :]:
                self.vectors.pop(dropped, None)
            self.candidates[cluster] = ranked[: self.keep]

    def quotes(
        self, responses: Responses, table: SentenceTable, theme_of: np.ndarray, fine_weight: np.ndarray
    ) -> list[list[Quote]]:
        """Per theme: round-robin over its fine clusters, biggest first; no two quotes near-duplicates."""
        _, first = np.unique(table.unique_of, return_index=True)
        first_response = table.response_of[first]  # per distinct sentence (0..n-1): the first response that wrote it
        out: list[list[Quote]] = []
        for t in range(int(theme_of.max()) + 1 if len(theme_of) else 0):
            clusters = sorted(
                (int(f) for f in np.flatnonzero(theme_of == t) if fine_weight[f] > 0),
                key=lambda f: (-fine_weight[f], f),
            )
            queues = [[index for _, _, index in self.candidates[c]] for c in clusters]
            picked: list[int] = []
            while len(picked) < QUOTES and any(queues):
                for queue in queues:
                    while queue and len(picked) < QUOTES:
                        index = queue.pop(0)
                        if all(float(self.vectors[p] @ self.vectors[index]) < 0.9 for p in picked):
                            picked.append(index)
                            break
            out.append(
                [
                    Quote(
                        response_id=int(responses.ids[first_response[i]]),
                        external_id=responses.external_ids[first_response[i]],
                        score=int(responses.scores[first_response[i]]),
                        text=self.texts[i],
                    )
                    for i in picked
                ]
            )
        return out


# --------------------------------------------------------------------------------------------
# Model naming (optional): a short name from the keywords and quotes, kept only when grounded
# --------------------------------------------------------------------------------------------


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
        names: list[tuple[str, str]] = []
        for t, (words, theme_quotes) in enumerate(zip(keywords, quotes, strict=True)):
            if self.error is not None or not words:
                names.append(("", "keywords"))
                continue
            if hit := next(
                (h for q in theme_quotes if (h := find_injection(q.text))), None
            ):  # never send an injection to the model
                self.rejected.append(f"theme {t}: a quote carries a prompt injection ({hit}); keyword label kept")
                names.append(("", "keywords"))
                continue
            messages = self.prompt.render(keywords=words, quotes=[q.text for q in theme_quotes])
            try:
                result = self.context.gateway.structured(messages, ThemeName, max_tokens=24)
            except ModelError as error:
                self.error = f"model unavailable: {error}"
                names.append(("", "keywords"))
                continue
            completion = result.completion
            self.model = completion.model
            self.tokens_in += completion.tokens_in
            self.tokens_out += completion.tokens_out
            self.latency_ms += completion.latency_ms
            if completion.cost_usd is not None:
                self.cost_usd = (self.cost_usd or 0.0) + completion.cost_usd
            name = " ".join(result.value.name.split()) if result.ok and result.value else ""
            ok, stray = (
                name_is_grounded(name, words, [q.text for q in theme_quotes]) if name else (False, ["(no valid name)"])
            )
            if ok:
                names.append((name[0].upper() + name[1:], "model"))
            else:
                self.rejected.append(
                    f"theme {t}: '{name[:40]}' uses words not in its keywords or quotes ({', '.join(stray[:4])})"
                )
                names.append(("", "keywords"))
        return names

    def verdict(self) -> GuardVerdict:
        return GuardVerdict(
            name="theme_names_grounded",
            passed=not self.rejected,
            severity=Severity.flag,
            details=[*self.rejected, *([self.error] if self.error else [])],
        )


# --------------------------------------------------------------------------------------------
# The task over the record store
# --------------------------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def resolve_period(
    filters: ThemeFilters, now: datetime | None = None
) -> tuple[datetime | None, datetime, datetime | None, datetime | None]:
    """(since, until, previous since, previous until):
    the previous period is the window of the same length just before."""
    until = filters.until or _utc(now or datetime.now(UTC))
    if filters.since is None:
        return None, until, None, None
    length = until - filters.since
    return filters.since, until, filters.since - length, filters.since


def _where(query: Select, repo: Repo, filters: ThemeFilters, since: datetime | None, until: datetime | None) -> Select:
    low, high = filters.score_band.scores
    conditions = [NpsResponse.workspace_id == repo.workspace_id, NpsResponse.score >= low, NpsResponse.score <= high]
    if since is not None:
        conditions.append(NpsResponse.submitted_at >= since)
    if until is not None:
        conditions.append(NpsResponse.submitted_at < until)
    if filters.campaign:
        conditions.append(NpsResponse.campaign == filters.campaign)
    if filters.segment:
        conditions.append(NpsResponse.segment == filters.segment)
    return query.where(and_(*conditions))


def _commented(query: Select) -> Select:
    return query.where(NpsResponse.comment.is_not(None), func.length(func.trim(NpsResponse.comment)) > 0)


def load_responses(
    repo: Repo,
    filters: ThemeFilters,
    since: datetime | None,
    until: datetime | None,
    *,
    limit: int | None = None,
    seed: int = 0,
) -> tuple[Responses, int]:
    """Commented responses in the window (all, or an even sample of ``limit``) and how many there are."""
    columns = select(NpsResponse.id, NpsResponse.score, NpsResponse.comment, NpsResponse.external_id)
    query = _commented(_where(columns, repo, filters, since, until)).order_by(NpsResponse.id)
    total = (
        repo.session.scalar(
            _commented(_where(select(func.count()).select_from(NpsResponse), repo, filters, since, until))
        )
        or 0
    )
    if limit is not None and total > limit:
        ids = np.asarray(
            repo.session.scalars(_commented(_where(select(NpsResponse.id), repo, filters, since, until))).all()
        )
        keep = np.sort(np.random.default_rng(seed).choice(ids, limit, replace=False))
        rows = []
        for start in range(0, len(keep), 5000):
            rows += repo.session.execute(
                columns.where(NpsResponse.id.in_(keep[start : start + 5000].tolist())).order_by(NpsResponse.id)
            ).all()
    else:
        rows = list(repo.session.execute(query.execution_options(yield_per=10_000)))
    return Responses.from_rows(rows), total


def _overall(
    repo: Repo, filters: ThemeFilters, since: datetime | None, until: datetime | None
) -> tuple[int, float | None]:
    """Responses in the window (with or without a comment) and their NPS."""
    promoters = func.sum(case((NpsResponse.score >= 9, 1), else_=0))
    detractors = func.sum(case((NpsResponse.score <= 6, 1), else_=0))
    total, promoted, detracted = repo.session.execute(
        _where(select(func.count(), promoters, detractors).select_from(NpsResponse), repo, filters, since, until)
    ).one()
    total = total or 0
    return total, (round(100 * ((promoted or 0) - (detracted or 0)) / total, 1) if total else None)


def run_themes(
    context: TaskContext,
    filters: ThemeFilters,
    *,
    seed: int = 0,
    k: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    name_with_model: bool | None = None,
    now: datetime | None = None,
) -> TaskOutcome[ThemeReport]:
    """Find the themes of the NPS comments matching ``filters``; save the theme model, assignments and report.

    ``name_with_model`` None names themes with the model unless it is the embedded small local one
    (keyword labels are better than what a 135M model writes). Raises :class:`ThemeError` when fewer
    than ``MIN_COMMENTS`` comments match.
    """
    repo = context.repo
    if repo is None:
        raise InvalidInput("NPS themes need a workspace")
    started = time.perf_counter()
    since, until, previous_since, previous_until = resolve_period(filters, now)
    current, _ = load_responses(repo, filters, since, until)
    previous, previous_total = (None, None)
    if previous_since is not None:
        previous, previous_total = load_responses(
            repo, filters, previous_since, previous_until, limit=PREVIOUS_SAMPLE, seed=seed
        )
    responses_total, nps = _overall(repo, filters, since, until)
    load_s = time.perf_counter() - started

    use_model = name_with_model if name_with_model is not None else not context.small_local_model
    namer = Namer(context) if use_model else None
    built = build_themes(
        current,
        context.embedder,
        seed=seed,
        k=k,
        previous=previous,
        previous_total=previous_total,
        progress=progress,
        name_themes=namer,
        filters=filters,
        period=(since, until, previous_since, previous_until),
        responses_total=responses_total,
        nps=nps,
    )

    started = time.perf_counter()
    run = repo.add(
        NpsThemeRun(
            filters=filters.model_dump(mode="json"),
            seed=seed,
            k=built.model.k,
            embedding_model=built.report.embedding_model,
            dimensions=int(built.model.centroids.shape[1]),
            centroids=built.model.to_bytes(),
            theme_of=[int(t) for t in built.model.theme_of],
            assigned=len(current),
        )
    )
    repo.session.flush()
    response_index, theme, sentences, sentiment_sum = built.pairs
    _insert_assignments(repo, run.id, current.ids[response_index], theme, sentences, sentiment_sum)
    report = built.report
    report.run_id = run.id
    report.timings = {"load_s": round(load_s, 3), **report.timings, "save_s": round(time.perf_counter() - started, 3)}

    provenance = Provenance(
        task=TASK, model="keywords", input_ids=[f"nps_response:{i}" for i in dict.fromkeys(built.quote_ids)]
    )
    verdicts: list[GuardVerdict] = []
    fallback_reason = None
    if namer is not None:
        provenance = provenance.model_copy(
            update={
                "prompt_name": namer.prompt.name,
                "prompt_version": namer.prompt.version,
                "model": namer.model or context.settings.model,
                "tokens_in": namer.tokens_in,
                "tokens_out": namer.tokens_out,
                "latency_ms": round(namer.latency_ms, 1),
                "cost_usd": namer.cost_usd,
            }
        )
        verdicts.append(namer.verdict())
        if namer.error or namer.rejected:
            fallback_reason = (
                namer.error or f"{len(namer.rejected)} model theme name(s) were not grounded: keyword labels used"
            )
    outcome = TaskOutcome[ThemeReport](
        task=TASK,
        result=report,
        verdicts=verdicts,
        provenance=provenance,
        status=AiStatus.completed,
        used_fallback=fallback_reason is not None,
        fallback_reason=fallback_reason,
    )
    row = save_outcome(repo, outcome, subject_kind=SUBJECT_KIND, subject_id=run.id)
    run.ai_result_id = row.id
    repo.session.flush()
    return outcome


def _insert_assignments(
    repo: Repo,
    run_id: int,
    response_ids: np.ndarray,
    theme: np.ndarray,
    sentences: np.ndarray,
    sentiment_sum: np.ndarray,
) -> None:
    mean = np.divide(sentiment_sum, sentences, out=np.zeros(len(sentences)), where=sentences > 0)
    rows = [
        {
            "workspace_id": repo.workspace_id,
            "run_id": run_id,
            "response_id": int(r),
            "theme": int(t),
            "sentences": int(s),
            "sentiment": round(float(m), 4),
        }
        for r, t, s, m in zip(response_ids, theme, sentences, mean, strict=True)
    ]
    for start in range(0, len(rows), 10_000):
        repo.session.execute(insert(NpsThemeAssignment), rows[start : start + 10_000])


def get_run(repo: Repo, run_id: int) -> NpsThemeRun:
    run = repo.get(NpsThemeRun, run_id)
    if run is None:
        raise NotFound(f"no NPS theme run {run_id} in workspace '{repo.workspace.slug}'")
    return run


def load_report(repo: Repo, run_id: int) -> ThemeReport:
    run = get_run(repo, run_id)
    row = repo.get(AiResult, run.ai_result_id) if run.ai_result_id else None
    if row is None:
        raise NotFound(f"NPS theme run {run_id} has no saved report")
    return ThemeReport.model_validate(row.content["result"])


def assign_new_responses(
    context: TaskContext, run_id: int, *, progress: Callable[[int, int], None] | None = None
) -> int:
    """Assign commented responses that match the run's filters and are not in it yet to its existing themes.

    Nothing is refitted and no existing assignment changes; the saved report's figures are refreshed.
    Returns how many responses were assigned.
    """
    repo = context.repo
    if repo is None:
        raise InvalidInput("NPS themes need a workspace")
    run = get_run(repo, run_id)
    model = ThemeModel.from_run(run)
    filters = ThemeFilters.model_validate(run.filters)
    load_report(repo, run_id)  # a run without its report cannot be refreshed: fail before writing anything
    pending = ~exists().where(NpsThemeAssignment.run_id == run.id, NpsThemeAssignment.response_id == NpsResponse.id)
    columns = select(NpsResponse.id, NpsResponse.score, NpsResponse.comment, NpsResponse.external_id)
    query = (
        _commented(_where(columns, repo, filters, filters.since, filters.until)).where(pending).order_by(NpsResponse.id)
    )
    rows = list(repo.session.execute(query))
    if not rows:
        return 0
    tracker = Progress(progress, len(rows))
    for start in range(0, len(rows), ASSIGN_BATCH):
        batch = Responses.from_rows(rows[start : start + ASSIGN_BATCH])
        table = SentenceTable.build(batch.comments)
        vectors = embed(context.embedder.encode, table.texts)
        if len(table.texts) and vectors.shape[1] != model.centroids.shape[1]:
            raise ThemeError(
                f"run {run_id} was built with {run.embedding_model} ({run.dimensions} dimensions); "
                f"the embedder gives {vectors.shape[1]}"
            )
        themes = model.assign(vectors)[0] if len(table.texts) else np.zeros(0, dtype=np.int64)
        sentiment = sentence_sentiment(table.texts, vectors, context.embedder)
        response_index, theme, sentences, sentiment_sum = response_theme_pairs(
            table,
            themes[table.unique_of] if len(table.unique_of) else np.zeros(0, dtype=np.int64),
            sentiment[table.unique_of] if len(table.unique_of) else np.zeros(0),
            len(batch),
            model.k,
        )
        _insert_assignments(repo, run.id, batch.ids[response_index], theme, sentences, sentiment_sum)
        tracker.advance(len(batch))
    run.assigned += len(rows)
    refresh_report(repo, run, added=len(rows))
    return len(rows)


def refresh_report(repo: Repo, run: NpsThemeRun, *, added: int = 0) -> ThemeReport:
    """Recompute the saved report's per-theme figures from the stored assignments (labels, keywords and quotes stay)."""
    row = repo.get(AiResult, run.ai_result_id) if run.ai_result_id else None
    if row is None:
        raise NotFound(f"NPS theme run {run.id} has no saved report")
    report = ThemeReport.model_validate(row.content["result"])
    pairs = repo.session.execute(
        select(NpsThemeAssignment.theme, NpsResponse.score, NpsThemeAssignment.sentences, NpsThemeAssignment.sentiment)
        .join(NpsResponse, NpsResponse.id == NpsThemeAssignment.response_id)
        .where(NpsThemeAssignment.run_id == run.id)
    ).all()
    data = np.asarray(pairs, dtype=np.float64).reshape(-1, 4)
    theme, score, sentences, sentiment = (
        data[:, 0].astype(np.int64),
        data[:, 1].astype(np.int64),
        data[:, 2],
        data[:, 3],
    )
    figures = ThemeFigures.compute(run.k, theme, score, sentences, sentiment * sentences)
    commented = int(
        repo.session.scalar(
            select(func.count(func.distinct(NpsThemeAssignment.response_id))).where(
                NpsThemeAssignment.run_id == run.id, NpsThemeAssignment.theme >= 0
            )
        )
        or 0
    )
    filters = report.filters
    until = filters.until or datetime.now(UTC)
    report.responses, report.nps = _overall(repo, filters, report.since, until)
    report.until = until
    report.commented = commented
    report.sentences = int(
        repo.session.scalar(
            select(func.coalesce(func.sum(NpsThemeAssignment.sentences), 0)).where(NpsThemeAssignment.run_id == run.id)
        )
        or 0
    )
    report.assigned_after_run += added
    for theme_row in report.themes:
        fields = figures.theme_fields(theme_row.id, commented)
        for name, value in fields.items():
            setattr(theme_row, name, value)
        change = theme_row.change
        if change is not None:
            change.share_delta = round(100 * (theme_row.share - change.previous_share), 2)
            change.avg_score_delta = (
                round(theme_row.avg_score - change.previous_avg_score, 2)
                if change.previous_avg_score is not None and theme_row.responses
                else None
            )
            change.sentiment_delta = (
                round(theme_row.sentiment - change.previous_sentiment, 4)
                if change.previous_sentiment is not None and theme_row.responses
                else None
            )
    report.themes.sort(key=lambda theme_row: (-theme_row.responses, theme_row.id))
    content = dict(row.content)
    content["result"] = report.model_dump(mode="json")
    row.content = content
    repo.session.flush()
    return report


def _normalise(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)).astype(np.float32)
