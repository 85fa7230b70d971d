"""The topic classifier behind triage: a multinomial logistic-regression head over all-MiniLM-L6-v2 embeddings and
hashed word and character n-grams of the same text (``HASHED``: stateless, so a head stores no vocabulary; on
banking77 the n-grams add about 1 point of accuracy to the embedding alone), blended with a vote of the head's most
similar training examples (another 0.5 point; README "Triage and knowledge").

The shipped head (``triage_data/head.npz``, built by ``python -m evals.studies.triage_head`` from the demo help
center's topics) classifies into the shipped label set; a workspace can train its own head on its labelled tickets
(``copilot triage train``). Whatever head answers, ``suggest`` only ever picks among the workspace's current labels:
the head's scores for labels outside the set are dropped before the softmax, so an invented or removed label cannot
come out. A head that knows none of the workspace's labels gives no topic (unsure) and says so.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, Field

from copilot.errors import CopilotError
from copilot.store import Repo
from copilot.store.models import TriageHead
from retrieval.embeddings import vectors_agree

log = logging.getLogger(__name__)

WEIGHTS = Path(__file__).parent / "triage_data" / "head.npz"
SHIPPED_HEAD = "shipped head"
ALTERNATIVES = 3
EMBEDDING = "embedding"  # a head over the sentence vectors alone (heads saved before the n-grams)
HASHED = "embedding+hashed-ngrams-v1"  # vectors, then word 1-2-grams (2^13) and char_wb 3-5-grams (2^14), each x0.5
WORD_FEATURES, CHAR_FEATURES, NGRAM_WEIGHT = 2**13, 2**14, 0.5
LAYOUTS = (EMBEDDING, HASHED)
# A head may keep its training examples' sentence vectors: a vote of the NEIGHBOURS most similar ones (weights
# exp(SHARPNESS x cosine)) is blended in at NEIGHBOUR_WEIGHT. On banking77 (5-fold) 0.927 -> 0.932 accuracy.
NEIGHBOURS, SHARPNESS, NEIGHBOUR_WEIGHT, MAX_MEMORY = 10, 20.0, 0.3, 20_000
QUERY_CHUNK = 1024  # rows scored against the memory at once (a chunk x memory matrix of similarities)


class TriageModelError(CopilotError):
    """The shipped topic weights are missing."""


class LabelScore(BaseModel):
    label: str
    confidence: float = Field(ge=0, le=1)


class Topic(BaseModel):
    label: str | None = Field(description="One of the workspace's labels (None when no head knows any of them).")
    confidence: float = Field(ge=0, le=1)
    unsure: bool = Field(description="Below the workspace's threshold: a suggestion to check, never auto-applied.")
    alternatives: list[LabelScore] = Field(default_factory=list, description="The next best labels of the set.")
    head: str = Field(description="Which head classified: the shipped one or the workspace's own.")
    note: str | None = None


def text_hash(text: str) -> int:
    """A stable 63-bit hash of a normalised text (which rows a head was trained on)."""
    digest = hashlib.blake2b(" ".join(text.lower().split()).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


@dataclass(frozen=True)
class TopicHead:
    """Logistic-regression weights: one row per label, over the features of the ticket's text (``layout``)."""

    coef: np.ndarray
    intercept: np.ndarray
    labels: tuple[str, ...]
    embedding_model: str
    name: str = SHIPPED_HEAD
    trained_on: frozenset[int] = field(default_factory=frozenset, repr=False)
    layout: str = HASHED
    memory: np.ndarray | None = field(default=None, repr=False)  # unit sentence vectors of training examples (f32)
    memory_labels: np.ndarray | None = field(default=None, repr=False)  # each one's index into ``labels``

    def logits(self, x: np.ndarray | sp.csr_matrix) -> np.ndarray:
        return np.asarray(x @ self.coef.T) + self.intercept

    def probabilities(self, x: np.ndarray | sp.csr_matrix, columns: Sequence[int]) -> np.ndarray:
        """Probabilities over the labels at ``columns`` only: the regression's softmax, blended with the vote of the
        most similar training examples of those labels when the head keeps them."""
        columns = list(columns)
        regression = softmax(self.logits(x)[:, columns])
        if self.memory is None or self.memory_labels is None or not len(self.memory):
            return regression
        blended = (1 - NEIGHBOUR_WEIGHT) * regression + NEIGHBOUR_WEIGHT * self.neighbour_votes(x, columns)
        return blended / blended.sum(axis=1, keepdims=True)

    def neighbour_votes(self, x: np.ndarray | sp.csr_matrix, columns: list[int]) -> np.ndarray:
        """Each row's vote over ``columns`` by its NEIGHBOURS most similar kept examples of those labels (a row of
        zeros when the head keeps none of them)."""
        assert self.memory is not None and self.memory_labels is not None
        position = np.full(len(self.labels), -1)
        position[columns] = np.arange(len(columns))
        of_column = position[self.memory_labels]
        kept = of_column >= 0
        memory, of_column = (self.memory, of_column) if kept.all() else (self.memory[kept], of_column[kept])
        votes = np.zeros((x.shape[0], len(columns)), dtype=np.float64)
        if not len(memory):
            return votes
        vectors = unit_rows(sentence_vectors(x, self.layout))
        k = min(NEIGHBOURS, len(memory))
        for start in range(0, len(vectors), QUERY_CHUNK):
            similarity = vectors[start : start + QUERY_CHUNK] @ memory.T
            top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
            weights = np.exp(SHARPNESS * (np.take_along_axis(similarity, top, axis=1) - 1))
            rows = np.arange(start, start + len(top))[:, None]
            np.add.at(votes, (np.broadcast_to(rows, top.shape), of_column[top]), weights)
        return votes / votes.sum(axis=1, keepdims=True)

    def remembering(self, x: np.ndarray | sp.csr_matrix, labels: Sequence[str]) -> TopicHead:
        """This head keeping the sentence vectors of its training rows ``x`` (at most MAX_MEMORY, a seeded sample)."""
        rows = np.arange(x.shape[0])
        if len(rows) > MAX_MEMORY:
            rows = np.sort(np.random.default_rng(0).choice(rows, MAX_MEMORY, replace=False))
        index = {label: i for i, label in enumerate(self.labels)}
        # rounded as saved (float16), so a head just trained votes exactly as the same head loaded again
        memory = unit_rows(sentence_vectors(x[rows], self.layout)).astype(np.float16).astype(np.float32)
        return replace(self, memory=memory, memory_labels=np.array([index[labels[i]] for i in rows], dtype=np.int32))

    def to_bytes(self) -> bytes:
        kept = (
            {}
            if self.memory is None
            else {"memory": self.memory.astype(np.float16), "memory_labels": self.memory_labels}
        )
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            coef=self.coef.astype(np.float16),  # half the size; the softmax does not notice
            intercept=self.intercept.astype(np.float32),
            labels=np.array(self.labels),
            embedding_model=np.array(self.embedding_model),
            trained_on=np.array(sorted(self.trained_on), dtype=np.int64),
            layout=np.array(self.layout),
            **kept,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, name: str) -> TopicHead:
        arrays = np.load(io.BytesIO(data))
        return cls(
            coef=arrays["coef"].astype(np.float32),
            intercept=arrays["intercept"],
            labels=tuple(str(label) for label in arrays["labels"]),
            embedding_model=str(arrays["embedding_model"]),
            name=name,
            trained_on=frozenset(int(h) for h in arrays["trained_on"]) if "trained_on" in arrays else frozenset(),
            layout=str(arrays["layout"]) if "layout" in arrays else EMBEDDING,
            memory=arrays["memory"].astype(np.float32) if "memory" in arrays else None,
            memory_labels=arrays["memory_labels"] if "memory_labels" in arrays else None,
        )


@lru_cache(maxsize=4)
def shipped_head(weights: Path = WEIGHTS) -> TopicHead:
    if not weights.is_file():
        raise TriageModelError(f"triage weights {weights} are missing: run `python -m evals.studies.triage_head`")
    return TopicHead.from_bytes(weights.read_bytes(), SHIPPED_HEAD)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


@lru_cache(maxsize=1)
def _hashers() -> tuple[object, object]:
    from sklearn.feature_extraction.text import HashingVectorizer

    words = HashingVectorizer(n_features=WORD_FEATURES, ngram_range=(1, 2), alternate_sign=False, norm="l2")
    chars = HashingVectorizer(
        n_features=CHAR_FEATURES, analyzer="char_wb", ngram_range=(3, 5), alternate_sign=False, norm="l2"
    )
    return words, chars


def combine(embeddings: np.ndarray, texts: list[str], layout: str = HASHED) -> np.ndarray | sp.csr_matrix:
    """A head's input from the texts' sentence vectors: the vectors alone, or beside the texts' hashed n-grams."""
    if layout == EMBEDDING:
        return embeddings
    words, chars = _hashers()
    return sp.hstack(
        [
            sp.csr_matrix(embeddings),
            NGRAM_WEIGHT * words.transform(texts),  # type: ignore[attr-defined]
            NGRAM_WEIGHT * chars.transform(texts),  # type: ignore[attr-defined]
        ],
        format="csr",
    )


def sentence_vectors(x: np.ndarray | sp.csr_matrix, layout: str) -> np.ndarray:
    """The sentence-vector columns of a head's input (``combine`` puts them first)."""
    if layout == EMBEDDING:
        return np.asarray(x, dtype=np.float32)
    return x[:, : x.shape[1] - WORD_FEATURES - CHAR_FEATURES].toarray().astype(np.float32)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def topic_features(encoder: object, texts: list[str], layout: str = HASHED) -> np.ndarray | sp.csr_matrix:
    """What a head of this layout reads for these texts."""
    return combine(encoder.encode(texts), texts, layout)  # type: ignore[attr-defined]


class TopicClassifier:
    """A head plus the encoder its features come from."""

    def __init__(self, encoder: object, head: TopicHead) -> None:
        self.encoder, self.head = encoder, head

    def vectors(self, texts: list[str]) -> np.ndarray | sp.csr_matrix:
        return topic_features(self.encoder, texts, self.head.layout)

    def suggest(self, vectors: np.ndarray | sp.csr_matrix, allowed: Sequence[str], unsure_below: float) -> list[Topic]:
        """A topic per row of ``vectors``, chosen among ``allowed`` only (renormalised over them)."""
        allowed_set = set(allowed)
        columns = [i for i, label in enumerate(self.head.labels) if label in allowed_set]
        if not columns:
            note = (
                f"the {self.head.name} knows none of this workspace's labels; "
                "train a head on labelled tickets (`copilot triage train`)"
            )
            return [
                Topic(label=None, confidence=0.0, unsure=True, head=self.head.name, note=note)
                for _ in range(vectors.shape[0])
            ]
        labels = [self.head.labels[i] for i in columns]
        probabilities = self.head.probabilities(vectors, columns)
        untrained = sorted(allowed_set - set(labels))
        note = f"the {self.head.name} was not trained on: {', '.join(untrained)}" if untrained else None
        topics = []
        for row in probabilities:
            order = np.argsort(-row)
            best = float(row[order[0]])
            topics.append(
                Topic(
                    label=labels[order[0]],
                    confidence=round(best, 4),
                    unsure=best < unsure_below,
                    alternatives=[
                        LabelScore(label=labels[i], confidence=round(float(row[i]), 4))
                        for i in order[1 : 1 + ALTERNATIVES]
                    ],
                    head=self.head.name,
                    note=note,
                )
            )
        return topics


def workspace_head_row(repo: Repo) -> TriageHead | None:
    return repo.session.scalar(repo.select(TriageHead))


def workspace_head_name(row: TriageHead) -> str:
    return f"workspace head ({row.examples} examples, trained {row.updated_at:%Y-%m-%d} by {row.trained_by})"


def head_for(repo: Repo, encoder_name: str) -> TopicHead | None:
    """The head that would classify this workspace's tickets from this encoder's features, if any reads them."""
    row = workspace_head_row(repo)
    if row is not None and vectors_agree(row.embedding_model, encoder_name):
        return TopicHead.from_bytes(row.weights, workspace_head_name(row))
    head = shipped_head()
    return head if vectors_agree(head.embedding_model, encoder_name) else None


def classifier_for(repo: Repo, encoder: object) -> TopicClassifier:
    """The workspace's own head when it was trained on this encoder's vectors, else the shipped head (MiniLM)."""
    row = workspace_head_row(repo)
    name = getattr(encoder, "name", "")
    if row is not None:
        if vectors_agree(row.embedding_model, name):  # the same vectors, or another backend's that agree with them
            return TopicClassifier(encoder, TopicHead.from_bytes(row.weights, workspace_head_name(row)))
        log.warning(
            "workspace %s: its triage head was trained on %s vectors, not %s; using the shipped head",
            repo.workspace.slug,
            row.embedding_model,
            name,
        )
    head = shipped_head()
    if vectors_agree(head.embedding_model, name):
        return TopicClassifier(encoder, head)
    from retrieval.embeddings import default_embedder

    return TopicClassifier(default_embedder(), head)
