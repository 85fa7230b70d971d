"""Test doubles shared by the test modules: handed to the code under test as objects, never module state."""

from __future__ import annotations

import numpy as np

from copilot.gateway.fake import FakeModel

__all__ = ["FakeEmbedder", "FakeModel"]


class FakeEmbedder:
    """Deterministic bag-of-letters vectors: enough for centroid ranking and clustering in unit tests."""

    name = "fake-letters"
    dimensions = 26

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        self.calls += 1
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        counts = [[t.lower().count(c) for c in "abcdefghijklmnopqrstuvwxyz"] for t in texts]
        vectors = np.array(counts, dtype=np.float32) + 1e-3
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
