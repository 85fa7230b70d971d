"""What each theme is about and how it scores: c-TF-IDF keywords, per-theme figures, sentiment and quotes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from copilot.tasks.nps_themes.models import Driver, Quote, Theme, ThemeChange
from copilot.tasks.sentiment import default_classifier, features
from retrieval.embeddings import MODEL_NAME, vectors_agree

if TYPE_CHECKING:
    from copilot.tasks.nps_themes.sentences import Responses, SentenceTable
    from copilot.tasks.sentiment import SentimentClassifier
    from retrieval.embeddings import Embedder

QUOTES = 3
KEYWORDS = 8
KEYWORD_SAMPLE = 200_000  # distinct sentences c-TF-IDF is computed on
SENTIMENT_BAND = 0.2
SENTIMENT_CHUNK = 50_000
SCORE_WEIGHT = 0.5  # how much the respondent's score (turned by a "but") weighs in a sentence's polarity
MIXED_SHARE = 0.2  # a theme is mixed when each side holds at least this share of its responses
MIXED_MIN = 2  # ... and at least this many responses
SIDES = ((1, "positive"), (-1, "negative"))
# The sentiment heads (the shipped one and a workspace's own) are trained on all-MiniLM-L6-v2 vectors.
SENTIMENT_EMBEDDER = MODEL_NAME

TOKEN = re.compile(r"(?u)\b[^\W\d_][^\W\d_'’-]+\b")
EXTRA_STOP_WORDS = set(
    """really just like thing things lot bit way make makes made does did doing got get gets getting ve ll don didn
    doesn isn wasn aren won can't it's i'm we're they're that's there's let use used using able want need needs say
    said know think thought going went come came actually definitely overall pretty quite don't doesn't didn't isn't
    aren't wasn't won't i've we've you're i'd we'd it'd""".split()
)


# -- keywords ----------------------------------------------------------------------------------


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
    vectorizer = CountVectorizer(
        analyzer=partial(_terms, stop=ENGLISH_STOP_WORDS | EXTRA_STOP_WORDS),
        min_df=2 if len(texts) >= 200 else 1,
        max_features=100_000,
        dtype=np.float64,
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
    return [_top_terms(row, theme_tf, vocabulary, top) for row, theme_tf in zip(scores, tf, strict=True)]


def _terms(text: str, stop: frozenset[str]) -> list[str]:
    """Words and two-word phrases of a text, without stop words."""
    tokens = [t.replace("’", "'") for t in TOKEN.findall(text.lower())]
    keep = [t not in stop for t in tokens]
    return [t for t, k in zip(tokens, keep, strict=True) if k] + [
        f"{a} {b}" for a, b, ka, kb in zip(tokens, tokens[1:], keep, keep[1:], strict=False) if ka and kb
    ]


def _top_terms(row: np.ndarray, theme_tf: np.ndarray, vocabulary: np.ndarray, top: int) -> list[str]:
    chosen: list[str] = []
    for index in np.argsort(-row, kind="stable")[: top * 4]:
        if row[index] <= 0 or theme_tf[index] < 1:
            break
        _add_keyword(chosen, str(vocabulary[index]))
        if len(chosen) >= top:
            break
    return chosen


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


# -- figures -----------------------------------------------------------------------------------


@dataclass
class ThemeFigures:
    """Per theme (and per side of a theme): responses, score bands, average score and sentiment, from (response,
    theme) pairs. A pair is on the positive or negative side by the mean polarity of its sentences in the theme."""

    responses: np.ndarray
    promoters: np.ndarray
    passives: np.ndarray
    detractors: np.ndarray
    score_sum: np.ndarray
    sentiment_sum: np.ndarray
    sentences: np.ndarray
    sides: dict[int, ThemeFigures] | None = None

    @classmethod
    def compute(
        cls, k: int, theme: np.ndarray, score: np.ndarray, sentences: np.ndarray, sentiment_sum: np.ndarray
    ) -> ThemeFigures:
        keep = theme >= 0
        theme, score, sentences, sentiment_sum = theme[keep], score[keep], sentences[keep], sentiment_sum[keep]
        figures = cls._counted(k, theme, score, sentences, sentiment_sum)
        mean = np.divide(sentiment_sum, sentences, out=np.zeros(len(sentences)), where=sentences > 0)
        side = side_of(mean)
        figures.sides = {
            s: cls._counted(k, theme[side == s], score[side == s], sentences[side == s], sentiment_sum[side == s])
            for s, _ in SIDES
        }
        return figures

    @classmethod
    def _counted(
        cls, k: int, theme: np.ndarray, score: np.ndarray, sentences: np.ndarray, sentiment_sum: np.ndarray
    ) -> ThemeFigures:
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

    def theme_fields(self, t: int, commented: int, totals: Totals | None = None) -> dict[str, Any]:
        """The scalar fields of a Theme (sides without their quotes: see ``side_fields``)."""
        n = self.responses[t]
        share = lambda x: round(float(x / n), 4) if n else 0.0  # noqa: E731
        sentiment = float(self.sentiment_sum[t] / self.sentences[t]) if self.sentences[t] else 0.0
        mixed = self.mixed(t)
        return {
            "responses": int(n),
            "share": round(float(n / commented), 4) if commented else 0.0,
            "promoters": share(self.promoters[t]),
            "passives": share(self.passives[t]),
            "detractors": share(self.detractors[t]),
            "nps": nps_of(n, self.promoters[t], self.detractors[t]) or 0.0,
            "avg_score": round(float(self.score_sum[t] / n), 2) if n else 0.0,
            "sentiment": round(max(-1.0, min(1.0, sentiment)), 4),
            "sentiment_label": "mixed" if mixed else sentiment_label(sentiment),
            "mixed": mixed,
            "impact": totals.impact(n, self.promoters[t], self.detractors[t]) if totals else None,
        }

    def mixed(self, t: int) -> bool:
        if not self.sides or not self.responses[t]:
            return False
        counts = [self.sides[s].responses[t] for s, _ in SIDES]
        return all(c >= MIXED_MIN and c >= MIXED_SHARE * self.responses[t] for c in counts)

    def side_fields(self, t: int, totals: Totals | None = None) -> list[dict[str, Any]]:
        """Per side with responses, positive first: the ThemeSide fields but its quotes."""
        out = []
        for s, name in SIDES:
            side = (self.sides or {}).get(s)
            n = side.responses[t] if side is not None else 0
            if not n:
                continue
            sentiment = float(side.sentiment_sum[t] / side.sentences[t]) if side.sentences[t] else 0.0
            out.append(
                {
                    "polarity": name,
                    "responses": int(n),
                    "share": round(float(n / self.responses[t]), 4),
                    "nps": nps_of(n, side.promoters[t], side.detractors[t]) or 0.0,
                    "sentiment": round(max(-1.0, min(1.0, sentiment)), 4),
                    "impact": totals.impact(n, side.promoters[t], side.detractors[t]) if totals else None,
                }
            )
        return out


def sentiment_label(score: float) -> str:
    return "negative" if score < -SENTIMENT_BAND else "positive" if score > SENTIMENT_BAND else "neutral"


def score_lean(scores: np.ndarray, turned: np.ndarray | None = None) -> np.ndarray:
    """Which way a sentence leans by its respondent's score: +1 promoters, -1 detractors, 0 passives; the other
    way for a sentence after a contrast connector ("Great app. But support is slow.")."""
    lean = np.where(scores >= 9, 1.0, np.where(scores <= 6, -1.0, 0.0))
    return lean if turned is None else np.where(turned, -lean, lean)


def polarity(sentiment: np.ndarray, lean: np.ndarray) -> np.ndarray:
    """A sentence's polarity, -1..1: the sentiment head's reading, pulled towards what the score says (a passive's
    score says nothing: the head's reading stands).

    NPS comments answer "why this score", so the score is strong evidence the head alone misses (it reads
    "Support closed my ticket without fixing anything." as positive)."""
    pulled = (1 - SCORE_WEIGHT) * sentiment + SCORE_WEIGHT * lean
    return np.clip(np.where(lean == 0, sentiment, pulled), -1.0, 1.0)


def side_of(values: np.ndarray) -> np.ndarray:
    """+1 positive, -1 negative, 0 neither, per polarity value."""
    return np.where(values > SENTIMENT_BAND, 1, np.where(values < -SENTIMENT_BAND, -1, 0))


def _raw_nps(responses: float, promoters: float, detractors: float) -> float | None:
    return 100 * (promoters - detractors) / responses if responses else None


def nps_of(responses: float, promoters: float, detractors: float) -> float | None:
    value = _raw_nps(responses, promoters, detractors)
    return None if value is None else round(value, 1)


@dataclass(frozen=True)
class Totals:
    """Every response of the period (with or without a comment): what driver impact is measured against."""

    responses: int
    promoters: int
    detractors: int

    @property
    def nps(self) -> float | None:
        return nps_of(self.responses, self.promoters, self.detractors)

    def impact(self, responses: float, promoters: float, detractors: float) -> float | None:
        """NPS(all) - NPS(the responses left without these): the NPS points these responses are worth."""
        every = _raw_nps(self.responses, self.promoters, self.detractors)
        rest = _raw_nps(self.responses - responses, self.promoters - promoters, self.detractors - detractors)
        if every is None or rest is None or not responses:
            return None
        return round(every - rest, 1)

    def nps_without(self, responses: float, promoters: float, detractors: float) -> float | None:
        return nps_of(self.responses - responses, self.promoters - promoters, self.detractors - detractors)

    @classmethod
    def of(cls, scores: np.ndarray) -> Totals:
        return cls(len(scores), int((scores >= 9).sum()), int((scores <= 6).sum()))


def drivers_of(themes: Sequence[Theme], figures: ThemeFigures, totals: Totals) -> list[Driver]:
    """Themes as NPS drivers, most negative impact first (the biggest drag on the NPS leads)."""
    drivers = []
    for theme in themes:
        if theme.impact is None:
            continue
        t = theme.id
        without = totals.nps_without(figures.responses[t], figures.promoters[t], figures.detractors[t])
        drivers.append(
            Driver(
                theme_id=theme.id,
                label=theme.label,
                impact=theme.impact,
                responses=theme.responses,
                nps_without=without if without is not None else 0.0,
            )
        )
    return sorted(drivers, key=lambda d: (d.impact, d.theme_id))


def theme_change(fields: dict[str, Any], before: dict[str, Any], scale: float) -> ThemeChange:
    """A theme's figures (``theme_fields``) against the previous period's; ``scale`` undoes its sampling."""
    has_before = before["responses"] > 0
    both = has_before and bool(fields["responses"])
    return ThemeChange(
        previous_responses=int(round(before["responses"] * scale)),
        previous_share=before["share"],
        previous_avg_score=before["avg_score"] if has_before else None,
        previous_sentiment=before["sentiment"] if has_before else None,
        share_delta=round(100 * (fields["share"] - before["share"]), 2),
        avg_score_delta=round(fields["avg_score"] - before["avg_score"], 2) if both else None,
        sentiment_delta=round(fields["sentiment"] - before["sentiment"], 4) if both else None,
    )


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


# -- sentiment over the same embeddings ----------------------------------------------------------


def head_reads(embedder: Embedder, classifier: SentimentClassifier) -> bool:
    """Whether the classifier's head takes this embedder's vectors as they are (with its lexical features)."""
    if not vectors_agree(SENTIMENT_EMBEDDER, embedder.name):  # torch or ONNX int8 MiniLM vectors
        return False
    probe = features(np.zeros((1, embedder.dimensions), dtype=np.float32), classifier.vader, [""])
    return probe.shape[1] == classifier.head.coef.shape[1]


class SentenceSentiment:
    """P(positive) - P(negative) per sentence: the head over the theme vectors when it reads that embedder's,
    else the classifier embeds the sentences itself."""

    def __init__(self, embedder: Embedder, classifier: SentimentClassifier) -> None:
        self.classifier = classifier
        self.reuses_vectors = head_reads(embedder, classifier)

    def __call__(self, texts: list[str], vectors: np.ndarray) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        if self.reuses_vectors:
            head, vader = self.classifier.head, self.classifier.vader
            p = np.vstack(
                [
                    head.probabilities(
                        features(
                            vectors[start : start + SENTIMENT_CHUNK], vader, texts[start : start + SENTIMENT_CHUNK]
                        )
                    )
                    for start in range(0, len(texts), SENTIMENT_CHUNK)
                ]
            )
        else:
            p = self.classifier.probabilities(texts)
        return (p[:, 2] - p[:, 0]).astype(np.float64)


def sentence_sentiment(
    texts: list[str], vectors: np.ndarray, embedder: Embedder, classifier: SentimentClassifier | None = None
) -> np.ndarray:
    """P(positive) - P(negative) per sentence (the shipped classifier when none is given)."""
    return SentenceSentiment(embedder, classifier or default_classifier())(texts, vectors)


# -- quotes ------------------------------------------------------------------------------------


class QuotePool:
    """Quote candidates per fine cluster and side (positive, negative, neither), kept while sentences stream by:
    substantial sentences first, then the most central."""

    def __init__(self, texts: list[str], fine_clusters: int, keep: int = 4 * QUOTES) -> None:
        words = np.asarray([len(text.split()) for text in texts], dtype=np.int64)
        self.substantial = (words >= 3) & (words <= 40)
        self.keep = keep
        self.texts = texts
        # (fine cluster, side) -> [(not substantial, -similarity, index)]
        self.candidates: dict[tuple[int, int], list[tuple[bool, float, int]]] = {}
        self.vectors: dict[int, np.ndarray] = {}

    def offer(
        self, indices: np.ndarray, fine: np.ndarray, similarity: np.ndarray, vectors: np.ndarray, side: np.ndarray
    ) -> None:
        order = np.lexsort((indices, -similarity, ~self.substantial[indices], side, fine))
        taken: dict[tuple[int, int], int] = {}
        for position in order:
            bucket = (int(fine[position]), int(side[position]))
            if taken.get(bucket, 0) >= self.keep:
                continue
            taken[bucket] = taken.get(bucket, 0) + 1
            index = int(indices[position])
            entry = (not bool(self.substantial[index]), -float(similarity[position]), index)
            self.candidates.setdefault(bucket, []).append(entry)
            self.vectors[index] = vectors[position].copy()
        for bucket in taken:
            ranked = sorted(self.candidates[bucket])
            for _, _, dropped in ranked[self.keep :]:
                self.vectors.pop(dropped, None)
            self.candidates[bucket] = ranked[: self.keep]

    def quotes(
        self,
        responses: Responses,
        table: SentenceTable,
        theme_of: np.ndarray,
        fine_weight: np.ndarray,
        side_weight: dict[int, np.ndarray],
    ) -> list[dict[int | None, list[Quote]]]:
        """Per theme: its quotes (key None: both sides, the bigger first, then neither) and each side's (keys 1, -1);
        round-robin over the theme's fine clusters, biggest first; no two quotes near-duplicates."""
        _, first = np.unique(table.unique_of, return_index=True)
        first_response = table.response_of[first]  # per distinct sentence (0..n-1): the first response that wrote it
        out: list[dict[int | None, list[Quote]]] = []
        for t in range(int(theme_of.max()) + 1 if len(theme_of) else 0):
            clusters = sorted(
                (int(f) for f in np.flatnonzero(theme_of == t) if fine_weight[f] > 0),
                key=lambda f: (-fine_weight[f], f),
            )
            picks = {side: self._pick(self._queues(clusters, (side,))) for side in (1, -1)}
            order = sorted((1, -1), key=lambda side: (-side_weight[side][t], -side))
            both = [i for pair in zip(picks[order[0]], picks[order[1]], strict=False) for i in pair]
            both = list(dict.fromkeys([*both, *picks[order[0]], *picks[order[1]]]))
            overall = self._pick(self._queues(clusters, (0,)), self._pick([both]))
            quote = lambda i: self._quote(responses, int(first_response[i]), i)  # noqa: E731
            out.append({None: [quote(i) for i in overall], **{s: [quote(i) for i in picks[s]] for s in (1, -1)}})
        return out

    def _queues(self, clusters: list[int], sides: tuple[int, ...]) -> list[list[int]]:
        return [[index for _, _, index in self.candidates.get((c, s), [])] for c in clusters for s in sides]

    def _pick(self, queues: list[list[int]], picked: list[int] | None = None) -> list[int]:
        picked = list(picked or [])
        queues = [list(queue) for queue in queues]
        while len(picked) < QUOTES and any(queues):
            for queue in queues:
                while queue and len(picked) < QUOTES:
                    index = queue.pop(0)
                    if all(float(self.vectors[p] @ self.vectors[index]) < 0.9 for p in picked):
                        picked.append(index)
                        break
        return picked

    def _quote(self, responses: Responses, row: int, index: int) -> Quote:
        return Quote(
            response_id=int(responses.ids[row]),
            external_id=responses.external_ids[row],
            score=int(responses.scores[row]),
            text=self.texts[index],
        )
