"""Sentiment throughput: the classifier on N messages vs raw SentenceTransformer.encode on the same texts, same run.

ratio = raw encode time / classifier time (target >= 0.8). Last line: one JSON object.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/retrieval.py would shadow the retrieval package: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import os
import platform
import random
import time

from copilot.demo import sales, tickets
from copilot.services import Services
from copilot.settings import Settings


def messages(n: int) -> list[str]:
    rng = random.Random(0)
    pool = [t for family in tickets.FAMILIES for mood in family.openings.values() for t in mood]
    pool += [t for theme in sales.NPS_THEMES.values() for side in theme.values() for t in side]
    return [f"{rng.choice(pool)} (ref {i})" for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    texts = messages(args.n)
    services = Services(Settings())  # only its embedder and classifier are used: nothing is written
    classifier = services.sentiment  # the shipped head over the shared embedder
    classifier.classify(texts[:128])  # warm-up
    model = services.embedder.model  # the SentenceTransformer inside the embedder
    started = time.perf_counter()
    model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    raw_s = time.perf_counter() - started
    started = time.perf_counter()
    classifier.classify(texts)
    ours_s = time.perf_counter() - started
    figures = {
        "messages": args.n,
        "classifier_per_s": round(args.n / ours_s, 1),
        "raw_encode_per_s": round(args.n / raw_s, 1),
        "ratio": round(raw_s / ours_s, 3),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}",
    }
    print(
        f"sentiment classifier: {figures['classifier_per_s']} messages/s; "
        f"raw encode: {figures['raw_encode_per_s']}/s; ratio {figures['ratio']} (target >= 0.8)"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
