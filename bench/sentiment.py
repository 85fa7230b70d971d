"""Sentiment throughput: the classifier on N messages vs raw SentenceTransformer.encode on the same texts, same run.

ratio = raw encode time / classifier time (target >= 0.8). The classifier embeds with the backend of --backend
(default COPILOT_EMBEDDING_BACKEND); the baseline is always raw torch SentenceTransformer.encode. The two sides
alternate in blocks of --block messages, so load from other jobs on a shared machine hits both alike.
Last line: one JSON object.
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
from retrieval.embeddings import BACKENDS, embedder_for


def messages(n: int) -> list[str]:
    rng = random.Random(0)
    pool = [t for family in tickets.FAMILIES for mood in family.openings.values() for t in mood]
    pool += [t for theme in sales.NPS_THEMES.values() for side in theme.values() for t in side]
    return [f"{rng.choice(pool)} (ref {i})" for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--block", type=int, default=1000, help="Messages per alternating raw/classifier block.")
    parser.add_argument("--backend", choices=BACKENDS, help="Embedding backend (default: COPILOT_EMBEDDING_BACKEND).")
    args = parser.parse_args()
    texts = messages(args.n)
    load_before = [round(x, 1) for x in os.getloadavg()]
    settings = Settings(**({"embedding_backend": args.backend} if args.backend else {}))
    services = Services(settings)  # only its embedder and classifier are used: nothing is written
    classifier = services.sentiment  # the shipped head over the backend's embedder
    model = embedder_for(settings.model_copy(update={"embedding_backend": "torch"})).model  # the baseline
    classifier.classify(texts[:128])  # warm-up
    model.encode(texts[:128], batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    steps = {
        "raw": lambda part: model.encode(
            part, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        ),
        "classifier": classifier.classify,
    }
    seconds = dict.fromkeys(steps, 0.0)
    for block, start in enumerate(range(0, len(texts), args.block)):
        for side in ("raw", "classifier") if block % 2 == 0 else ("classifier", "raw"):
            started = time.perf_counter()
            steps[side](texts[start : start + args.block])
            seconds[side] += time.perf_counter() - started
    raw_s, ours_s = seconds["raw"], seconds["classifier"]
    figures = {
        "messages": args.n,
        "backend": services.embedder.name,
        "classifier_per_s": round(args.n / ours_s, 1),
        "raw_encode_per_s": round(args.n / raw_s, 1),
        "ratio": round(raw_s / ours_s, 3),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}",
        "load_average_before": load_before,
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
    }
    print(
        f"sentiment classifier ({figures['backend']}): {figures['classifier_per_s']} messages/s; "
        f"raw encode: {figures['raw_encode_per_s']}/s; ratio {figures['ratio']} (target >= 0.8)"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
