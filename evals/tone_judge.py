"""A politeness judge for tone rewrites: did the rewrite move in the direction the tone asked for?

A ridge regression from MiniLM sentence embeddings to the human politeness score of the Stanford Politeness
Corpus, Stack Exchange requests (Apache-2.0, ../shared/data/stanford_politeness). It is fitted once and cached in
the eval cache folder (with the data file's sha256), and it is only ever used to score rewrites in evals, never in
the product. ``held_out_correlation`` reports how well it agrees with the human scores on a held-out fifth.

Directions: friendly, empathetic and formal rewrites should score as more polite than their input; concise ones
shorter; expanded ones longer.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

POLITE_TONES = ("friendly", "empathetic", "formal")
SHORTER_TONES = ("concise",)
LONGER_TONES = ("expand",)


@dataclass(frozen=True)
class PolitenessJudge:
    coef: np.ndarray
    intercept: float
    held_out_correlation: float

    def scores(self, texts: list[str], encode) -> np.ndarray:  # noqa: ANN001 - an Embedder's encode
        return encode(texts) @ self.coef + self.intercept

    def moved(self, tone: str, before: list[str], after: list[str], encode) -> list[bool | None]:  # noqa: ANN001
        """Per case: did the rewrite move the way the tone asks (None: the tone has no direction here)?"""
        if tone in SHORTER_TONES:
            return [len(a) < len(b) for b, a in zip(before, after, strict=True)]
        if tone in LONGER_TONES:
            return [len(a) > len(b) for b, a in zip(before, after, strict=True)]
        if tone not in POLITE_TONES:
            return [None] * len(before)
        gain = self.scores(after, encode) - self.scores(before, encode)
        return [bool(g > 0) for g in gain]


def load_judge(data_dir: Path, cache_dir: Path, encode) -> PolitenessJudge:  # noqa: ANN001
    """Fit (or load the cached) judge on the Stack Exchange politeness requests."""
    source = data_dir / "stanford_politeness" / "stack_exchange_dev.jsonl"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    cached = cache_dir / f"politeness-judge-{digest}.npz"
    if cached.is_file():
        data = np.load(cached)
        return PolitenessJudge(data["coef"], float(data["intercept"]), float(data["correlation"]))
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [row["request"] for row in rows]
    targets = np.array([float(row["normalized_score"]) for row in rows])
    vectors = encode(texts)
    judge = _fit(vectors, targets)
    cache_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, coef=judge.coef, intercept=judge.intercept, correlation=judge.held_out_correlation)
    cached.write_bytes(buffer.getvalue())
    return judge


def _fit(vectors: np.ndarray, targets: np.ndarray) -> PolitenessJudge:
    from sklearn.linear_model import Ridge

    order = np.random.default_rng(0).permutation(len(targets))
    cut = len(order) // 5
    test, train = order[:cut], order[cut:]
    probe = Ridge(alpha=1.0).fit(vectors[train], targets[train])
    correlation = float(np.corrcoef(probe.predict(vectors[test]), targets[test])[0, 1])
    model = Ridge(alpha=1.0).fit(vectors, targets)
    return PolitenessJudge(model.coef_.astype(np.float32), float(model.intercept_), round(correlation, 3))
