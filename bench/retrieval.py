"""Retrieval at scale: indexer throughput vs raw SentenceTransformer.encode, search latency, ANN recall.

On N chunks (default 100,000) of generated support text, with the embedding backend of --backend (default
COPILOT_EMBEDDING_BACKEND; its ONNX export is cached under COPILOT_DATA_DIR):
  ratio         = raw encode time / indexer time (embed + chroma upsert + full-text insert); target >= 0.85.
                  The baseline is always raw torch SentenceTransformer.encode (fp32), whatever the backend.
                  The two sides alternate block by block on the same texts, so load from other jobs hits both alike.
  p50/p95 ms    = hybrid search latency over the built index
  recall_at_10  = share of chroma's HNSW top-10 (the index's vectors, queries embedded by the backend) that belong to
                  the exact brute-force cosine top-10 of fp32 torch vectors (corpus and queries; ties count): what
                  the ONNX export and HNSW lose together; target >= 0.95 (>= 0.97 for an ONNX backend)
  recall_at_10_same_vectors = the same against exact search on the index's own vectors: what HNSW alone loses
Last line: one JSON object with the figures.

--embeddings FILE.npy saves the raw (torch fp32) corpus embeddings of a run; given an existing file (from a run with
the same --n) the run indexes those vectors instead of encoding again: no throughput ratio (null), search latency and
recall only (with another backend than torch: an index of torch vectors queried with that backend's). Embedding
100,000 texts twice takes over an hour on a small machine; this lets HNSW settings be measured at full size in minutes.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the package it measures: keep its folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import os
import platform
import random
import tempfile
import time

import numpy as np

from copilot.demo import tickets
from copilot.demo.people import FIRST_NAMES, INTEGRATIONS
from copilot.services import Services
from copilot.settings import Settings
from copilot.store import get_or_create_workspace
from retrieval.chunking import Chunk
from retrieval.embeddings import BACKENDS, MODEL_NAME, embedder_for


def generate_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    templates = [t for family in tickets.FAMILIES for mood in family.openings.values() for t in mood]
    templates += [t for family in tickets.FAMILIES for t in (*family.agent_replies, *family.resolutions, *family.notes)]
    texts = []
    for i in range(n):
        slots = {
            "first": rng.choice(FIRST_NAMES),
            "agent_first": rng.choice(FIRST_NAMES),
            "invoice": f"INV-2026-{rng.randint(1, 9999):04d}",
            "amount": f"${rng.randint(10, 990)}.00",
            "date": f"March {rng.randint(1, 28)}",
            "order": f"#{rng.randint(10000, 99999)}",
            "integration": rng.choice(INTEGRATIONS),
            "device": "iPhone 15",
            "plan": "Business",
            "count": str(rng.randint(10, 5000)),
            "company": f"Company {i % 997}",
            "error": "E42",
        }
        text = rng.choice(templates)
        for key, value in slots.items():
            text = text.replace("{" + key + "}", value)
        texts.append(text)
    return texts


def raw_encode(model, texts: list[str]) -> np.ndarray:
    """The baseline: SentenceTransformer.encode called directly, as a user of the library would."""
    return model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)


def raw_model(settings: Settings):
    """The SentenceTransformer (torch, fp32) of the torch backend: the baseline whatever backend is measured."""
    return embedder_for(settings.model_copy(update={"embedding_backend": "torch"})).model


def index_vectors(collection, count: int, batch: int = 5000) -> np.ndarray:
    """The vectors the index holds, in corpus order (chunk ids are message:<i>:0)."""
    vectors = np.zeros((count, 384), dtype=np.float32)
    for start in range(0, count, batch):
        got = collection.get(
            ids=[f"message:{i}:0" for i in range(start, min(count, start + batch))], include=["embeddings"]
        )
        for chunk_id, vector in zip(got["ids"], got["embeddings"], strict=True):
            vectors[int(chunk_id.split(":")[1])] = vector
    return vectors


def tie_aware_hits(found: list[int], similarities: np.ndarray, k: int = 10) -> int:
    """Hits among ``found`` that are as similar as the exact k-th best (generated texts repeat: ties count)."""
    kth_best = np.sort(similarities)[-k]
    return sum(1 for i in found if similarities[i] >= kth_best - 1e-6)


class _Replay:
    """Stands in for the embedder when the corpus embeddings are reused: hands out the saved rows in corpus order."""

    dimensions = 384

    def __init__(self, vectors: np.ndarray, name: str = MODEL_NAME) -> None:
        self.vectors, self.next, self.name = vectors, 0, name

    def encode(self, texts: list[str]) -> np.ndarray:
        part = self.vectors[self.next : self.next + len(texts)]
        self.next += len(texts)
        return part.astype(np.float32, copy=False)


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--block", type=int, default=10_000, help="Texts per alternating raw/indexer block.")
    parser.add_argument("--backend", choices=BACKENDS, help="Embedding backend (default: COPILOT_EMBEDDING_BACKEND).")
    parser.add_argument(
        "--recall-only",
        action="store_true",
        help="Embed each distinct text once with both sides and index the backend's vectors: recall and latency at "
        "full size in a fraction of the time (no throughput ratio).",
    )
    parser.add_argument(
        "--embeddings",
        type=Path,
        help="Save the corpus embeddings here, or reuse them if the file exists (skips the ratio).",
    )
    args = parser.parse_args()
    cached = np.load(args.embeddings) if args.embeddings and args.embeddings.exists() else None
    if cached is not None and cached.shape[0] != args.n:
        parser.error(f"{args.embeddings} holds {cached.shape[0]} embeddings, not --n {args.n}")
    texts = generate_texts(args.n)
    load_before = [round(x, 1) for x in os.getloadavg()]

    settings = Settings(**({"embedding_backend": args.backend} if args.backend else {}))
    embedder, model = embedder_for(settings), raw_model(settings)  # loaded from COPILOT_DATA_DIR, not the temp dir
    replay = None
    if args.recall_only:  # every copy of a text gets the vectors of its one encoding, on both sides
        distinct = list(dict.fromkeys(texts))
        position = {t: i for i, t in enumerate(distinct)}
        rows = np.array([position[t] for t in texts])
        cached = raw_encode(model, distinct)[rows]
        replay = _Replay(embedder.encode(distinct)[rows], embedder.name)
    elif cached is not None:
        replay = _Replay(cached)
    with tempfile.TemporaryDirectory() as tmp:
        services = Services(settings.model_copy(update={"data_dir": Path(tmp), "chroma_path": None}), embedder=embedder)
        store, index = services.store, services.index
        embedder.encode(texts[:256])  # warm-up
        raw_encode(model, texts[:256])
        with store.session() as session:
            workspace_id = get_or_create_workspace(session, "bench").id
        chunks = [
            Chunk(
                chunk_id=f"message:{i}:0",
                workspace_id=workspace_id,
                record_kind="message",
                record_id=i,
                account_id=i % 500,
                ts=float(i),
                text=text,
            )
            for i, text in enumerate(texts)
        ]
        raw_parts: list[np.ndarray] = []
        seconds = {"raw": 0.0, "index": 0.0}
        with store.repo("bench") as repo:
            if replay is not None:  # the indexer's own path, minus the encoding; the index holds exactly these vectors
                index.embedder = replay
                for start in range(0, len(chunks), args.block):
                    index.write_chunks(repo, chunks[start : start + args.block])
                index.embedder, raw_parts = embedder, [cached]
            else:
                for block, start in enumerate(range(0, len(chunks), args.block)):
                    part = chunks[start : start + args.block]
                    steps = {
                        "raw": lambda part=part: raw_parts.append(raw_encode(model, [c.text for c in part])),
                        "index": lambda part=part: index.write_chunks(repo, part),
                    }
                    for side in ("raw", "index") if block % 2 == 0 else ("index", "raw"):
                        seconds[side] += timed(steps[side])
        raw = np.concatenate(raw_parts)
        if args.embeddings and cached is None and not args.recall_only:
            np.save(args.embeddings, raw)

        rng = random.Random(1)
        queries = [texts[rng.randrange(len(texts))] for _ in range(args.queries)]
        searcher = services.searcher
        latencies = []
        with store.repo("bench") as repo:
            for query in queries:
                t0 = time.perf_counter()
                searcher.search(repo, query, limit=10)
                latencies.append((time.perf_counter() - t0) * 1000)
        query_vectors, raw_queries = embedder.encode(queries), raw_encode(model, queries)
        own = index_vectors(index.collection(workspace_id), len(texts))
        overlap = same_vectors_overlap = 0
        for vector, raw_vector in zip(query_vectors, raw_queries, strict=True):
            ann = [int(cid.split(":")[1]) for cid, _ in index.vector_candidates(workspace_id, vector, None, 10)]
            overlap += tie_aware_hits(ann, raw @ raw_vector)
            same_vectors_overlap += tie_aware_hits(ann, own @ vector)
        store.engine.dispose()
    figures = {
        "chunks": args.n,
        "raw_encode_per_s": round(args.n / seconds["raw"], 1) if cached is None else None,
        "indexer_per_s": round(args.n / seconds["index"], 1) if cached is None else None,
        "ratio": round(seconds["raw"] / seconds["index"], 3) if cached is None else None,
        "search_p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "search_p95_ms": round(float(np.percentile(latencies, 95)), 1),
        "recall_at_10": round(overlap / (10 * len(queries)), 4),
        "recall_at_10_same_vectors": round(same_vectors_overlap / (10 * len(queries)), 4),
        "backend": embedder.name,
        "index_vectors": replay.name if replay is not None else embedder.name,
        "recall_only": args.recall_only,
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
        "machine": f"{platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, CPU only",
        "load_average_before": load_before,
    }
    print(f"backend {figures['backend']}; load average {load_before} -> {figures['load_average_after']}")
    if cached is None:
        print(f"raw SentenceTransformer.encode: {figures['raw_encode_per_s']} chunks/s")
        print(
            f"indexer (embed + chroma + full text): {figures['indexer_per_s']} chunks/s, "
            f"ratio {figures['ratio']} (target >= 0.85)"
        )
    else:
        print(f"embeddings reused from {args.embeddings}: throughput not measured")
    print(
        f"hybrid search latency: p50 {figures['search_p50_ms']} ms, p95 {figures['search_p95_ms']} ms "
        f"over {len(queries)} queries"
    )
    print(
        f"recall@10 vs exact fp32 cosine: {figures['recall_at_10']} (target >= 0.95; ONNX >= 0.97); "
        f"vs exact search on the index's own vectors (HNSW alone): {figures['recall_at_10_same_vectors']}"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
