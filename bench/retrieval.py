"""Retrieval at scale: indexer throughput vs raw SentenceTransformer.encode, search latency, ANN recall.

On N chunks (default 100,000) of generated support text:
  ratio         = raw encode time / indexer time (embed + chroma upsert + full-text insert); target >= 0.85.
                  The two sides alternate block by block on the same texts, so load from other jobs hits both alike.
  p50/p95 ms    = hybrid search latency over the built index
  recall_at_10  = share of chroma's HNSW top-10 that belong to the exact brute-force cosine top-10 (ties count)
                  on the same embeddings; target >= 0.95
Last line: one JSON object with the figures.

--embeddings FILE.npy saves the corpus embeddings of a run; given an existing file (from a run with the same --n)
the run indexes those vectors instead of encoding again: no throughput ratio (null), search latency and recall only.
Embedding 100,000 texts twice takes over an hour on a small machine; this lets HNSW settings be measured at full size
in minutes.
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


def raw_encode(embedder, texts: list[str]) -> np.ndarray:
    """The baseline: SentenceTransformer.encode called directly, as a user of the library would."""
    return embedder.model.encode(
        texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )


class _Replay:
    """Stands in for the embedder when the corpus embeddings are reused: hands out the saved rows in corpus order."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors, self.next = vectors, 0

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

    with tempfile.TemporaryDirectory() as tmp:
        services = Services(Settings(data_dir=Path(tmp)))
        embedder, store, index = services.embedder, services.store, services.index
        embedder.encode(texts[:256])  # warm-up
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
            if cached is not None:  # the indexer's own path, minus the encoding; the index holds exactly these vectors
                index.embedder = _Replay(cached)
                for start in range(0, len(chunks), args.block):
                    index.write_chunks(repo, chunks[start : start + args.block])
                index.embedder, raw_parts = embedder, [cached]
            else:
                for block, start in enumerate(range(0, len(chunks), args.block)):
                    part = chunks[start : start + args.block]
                    steps = {
                        "raw": lambda part=part: raw_parts.append(raw_encode(embedder, [c.text for c in part])),
                        "index": lambda part=part: index.write_chunks(repo, part),
                    }
                    for side in ("raw", "index") if block % 2 == 0 else ("index", "raw"):
                        seconds[side] += timed(steps[side])
        raw = np.concatenate(raw_parts)
        if args.embeddings and cached is None:
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
        query_vectors = embedder.encode(queries)
        overlap = 0
        for vector in query_vectors:
            ann = [int(cid.split(":")[1]) for cid, _ in index.vector_candidates(workspace_id, vector, None, 10)]
            similarities = raw @ vector
            tenth_best = np.sort(similarities)[-10]
            # Tie-aware: a hit is correct when it is as similar as the exact 10th best (generated texts repeat).
            overlap += sum(1 for i in ann if similarities[i] >= tenth_best - 1e-6)
        store.engine.dispose()
    figures = {
        "chunks": args.n,
        "raw_encode_per_s": round(args.n / seconds["raw"], 1) if cached is None else None,
        "indexer_per_s": round(args.n / seconds["index"], 1) if cached is None else None,
        "ratio": round(seconds["raw"] / seconds["index"], 3) if cached is None else None,
        "search_p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "search_p95_ms": round(float(np.percentile(latencies, 95)), 1),
        "recall_at_10": round(overlap / (10 * len(queries)), 4),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, CPU only",
    }
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
    print(f"HNSW recall@10 vs exact cosine: {figures['recall_at_10']} (target >= 0.95)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
