"""Comments into sentences: splitting, the table of distinct sentences, and embedding them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from copilot.tasks.nps_themes.clustering import normalise

MAX_SENTENCES = 10  # per comment
MAX_SENTENCE_CHARS = 600
EMBED_CHUNK = 4096

SENTENCE_SPLIT = re.compile(r"(?<=[.!?…])\s+|\s*[\n;]+\s*")
LEADING_CONNECTOR = re.compile(
    r"^(?:but|however|also|and|plus|still|though|besides|otherwise|that said|on top of that|then again"
    r"|in addition)\b[,:]?\s+",
    re.I,
)
CONTRAST = re.compile(r"^(?:but|however|though|although|still|yet|that said|then again)\b", re.I)
HAS_WORD = re.compile(r"[^\W\d_]", re.U)


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


def split_sentences(text: str | None) -> list[str]:
    """Sentences of a comment that carry words, at most ``MAX_SENTENCES`` (the rest joins the last)."""
    return [sentence for sentence, _ in split_with_turns(text)]


def split_with_turns(text: str | None) -> list[tuple[str, bool]]:
    """(sentence, turned) pairs: ``turned`` when an odd number of contrast connectors ("But ...", "However, ...")
    came before it in the comment, so the sentence likely leans the other way than the score."""
    if not text:
        return []
    pieces: list[tuple[str, bool]] = []
    turned = False
    for raw in SENTENCE_SPLIT.split(text):
        piece = raw.strip(" \t\"'()[]-–—•*")
        if not piece or not HAS_WORD.search(piece):
            continue
        turned ^= bool(CONTRAST.match(piece))
        pieces.append((_without_connector(piece)[:MAX_SENTENCE_CHARS], turned))
    if len(pieces) > MAX_SENTENCES:
        rest = " ".join(p for p, _ in pieces[MAX_SENTENCES - 1 :])[:MAX_SENTENCE_CHARS]
        pieces = [*pieces[: MAX_SENTENCES - 1], (rest, pieces[MAX_SENTENCES - 1][1])]
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
    # per sentence occurrence: index into the texts of all tables built with the same ``known`` dict
    unique_of: np.ndarray
    response_of: np.ndarray  # per sentence occurrence: index of its comment
    counts: np.ndarray  # per distinct text: occurrences
    turned: np.ndarray | None = None  # per sentence occurrence: after a contrast connector (split_with_turns)

    @classmethod
    def build(cls, comments: Sequence[str | None], known: dict[str, int] | None = None) -> SentenceTable:
        index: dict[str, int] = {} if known is None else known
        texts: list[str] = []
        unique_of: list[int] = []
        response_of: list[int] = []
        turned: list[bool] = []
        base = len(index)
        for position, comment in enumerate(comments):
            for sentence, after_contrast in split_with_turns(comment):
                key = _dedupe_key(sentence)
                slot = index.get(key)
                if slot is None:
                    slot = index[key] = base + len(texts)
                    texts.append(sentence)
                unique_of.append(slot)
                response_of.append(position)
                turned.append(after_contrast)
        unique = np.asarray(unique_of, dtype=np.int64)
        own = unique[unique >= base] - base  # occurrences of the texts new in this table
        counts = np.bincount(own, minlength=len(texts)) if len(texts) else np.zeros(0, dtype=np.int64)
        return cls(texts, unique, np.asarray(response_of, dtype=np.int64), counts, np.asarray(turned, dtype=bool))


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
    return normalise(out)
