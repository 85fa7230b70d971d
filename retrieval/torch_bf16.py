"""all-MiniLM-L6-v2 on PyTorch with its matrix products in bfloat16, on CPUs that multiply bf16 natively.

``torch.autocast`` runs the linear layers and attention products in bf16 (fp32 accumulation) and keeps layer norms,
softmax, pooling and normalisation in fp32. On a CPU with AVX512-BF16 or AMX-BF16 (x86) or BF16 (Arm) oneDNN
multiplies bf16 at twice the fp32 rate; elsewhere bf16 is emulated and slower than fp32, so the backend is only
offered where the CPU says it has it.

The vectors are torch's to within bf16 rounding (measured on 10,000 real texts: mean cosine 0.99998, lowest
0.9999; README, "Embedding backends"). That is checked on the probe texts on the CPU that makes the vectors, and the
result is cached in ``check.json`` beside the ONNX exports with the sha256 of the weights, the torch version and the
CPU: if any of them changes, the check runs again (a few seconds). The same texts on the same number of threads give
the same vectors; on another number of threads (a Ray actor runs one) a few values may round one bf16 unit apart.
"""

from __future__ import annotations

import contextlib
import logging
import platform
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from retrieval.embeddings import BATCH_SIZE, MiniLMEmbedder, ModelSource
from retrieval.onnx_embedder import ExportError, ProbeAgreement, cpu_flags, file_sha256, locked, probe_texts

log = logging.getLogger("copilot.retrieval")

CHECK_FILE = "check.json"
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")  # x86 /proc/cpuinfo flags, then Arm's Features
PROBE_MEAN, PROBE_WORST = 0.9999, 0.999


class Bf16Check(BaseModel):
    """What ``check.json`` records: the vectors' agreement with fp32 torch, and what it was measured with."""

    source_sha256: str
    torch: str
    cpu: str
    probe: ProbeAgreement

    def passes(self) -> bool:
        return self.probe.mean_cosine >= PROBE_MEAN and self.probe.worst_cosine >= PROBE_WORST


def native_bf16() -> str | None:
    """The CPU flag that says it multiplies bf16 natively, or None."""
    flags = cpu_flags()
    return next((flag for flag in NATIVE_BF16_FLAGS if flag in flags), None)


def bf16_cpu() -> str:
    return f"{platform.machine()} {native_bf16() or 'no native bf16'}"


class TorchBf16Embedder(MiniLMEmbedder):
    """The torch backend's model, its matrix products in bf16: normalised fp32 vectors that agree with torch's."""

    backend = "torch-bf16"

    def __init__(self, source: ModelSource, cache_dir: Path, *, name: str) -> None:
        if native_bf16() is None:
            flags = ", ".join(NATIVE_BF16_FLAGS)
            raise ExportError(f"this CPU ({platform.machine()}) does not multiply bf16 natively (none of {flags})")
        super().__init__(source.directory, source.weights_sha256)
        self.name = name
        self.check = ensure_check(self, source, cache_dir)
        if not self.check.passes():
            probe = self.check.probe
            raise ExportError(
                f"bf16 vectors disagree with fp32 torch on this CPU ({self.check.cpu}): mean cosine "
                f"{probe.mean_cosine} (needs >= {PROBE_MEAN}), worst {probe.worst_cosine} (needs >= {PROBE_WORST}) on "
                f"{probe.texts} probe texts; use COPILOT_EMBEDDING_BACKEND=torch"
            )

    def encode(self, texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        with bf16():
            return super().encode(texts, batch_size)

    def encode_fp32(self, texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        return super().encode(texts, batch_size)


@contextlib.contextmanager
def bf16():
    import torch

    with torch.autocast("cpu", dtype=torch.bfloat16):
        yield


def ensure_check(embedder: TorchBf16Embedder, source: ModelSource, cache_dir: Path) -> Bf16Check:
    """The cached agreement check, measured again when the weights, torch or the CPU changed."""
    import torch

    current = {"source_sha256": file_sha256(source.weights), "torch": torch.__version__, "cpu": bf16_cpu()}
    cache_dir.mkdir(parents=True, exist_ok=True)
    with locked(cache_dir / ".lock"):
        cached = read_check(cache_dir)
        if cached is not None and cached.model_dump(exclude={"probe"}) == current:
            return cached
        check = Bf16Check(**current, probe=measure(embedder))
        (cache_dir / CHECK_FILE).write_text(check.model_dump_json(indent=2))
    log.info("bf16 embeddings checked: mean cosine %.5f, worst %.5f", check.probe.mean_cosine, check.probe.worst_cosine)
    return check


def read_check(cache_dir: Path) -> Bf16Check | None:
    try:
        return Bf16Check.model_validate_json((cache_dir / CHECK_FILE).read_text())
    except (OSError, ValueError):
        return None


def measure(embedder: TorchBf16Embedder) -> ProbeAgreement:
    texts = probe_texts()
    values = (embedder.encode_fp32(texts, 32) * embedder.encode(texts, 32)).sum(axis=1)
    return ProbeAgreement(
        texts=len(texts), mean_cosine=round(float(values.mean()), 5), worst_cosine=round(float(values.min()), 5)
    )
