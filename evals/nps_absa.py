"""NPS theme quality on SemEval-2015 ABSA (restaurants, laptops): themes found vs gold aspect categories.

Sentence level: every review sentence with exactly one gold aspect category (e.g. FOOD#QUALITY) is a
document; sentences with none or several are left out. Both methods cluster the same all-MiniLM-L6-v2
embeddings (computed once, not timed):

  ours      copilot.tasks.nps_themes: spectral kNN fine clusters merged by centroid distance (automatic k),
            nearest-centroid assignment, c-TF-IDF keywords
  BERTopic  its defaults (UMAP 5-d + HDBSCAN min_cluster_size=10 + c-TF-IDF), embeddings passed in so it
            downloads nothing; outliers (topic -1) count as one cluster, as BERTopic reports them

Quality: NMI and ARI (scikit-learn) against the gold categories, mean over seeds 0-2. Time: wall time of
clustering + keywords per run, mean over the seeds; BERTopic's one-off numba compilation is done in a
warm-up before timing and reported apart. Targets: quality at least BERTopic's, at least 3x faster.
Run: python -m evals.nps_absa [--seeds 3]. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
import warnings

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from copilot.tasks.nps_themes import fit_theme_model, theme_keywords
from evals.data import DataUnavailable, dataset

DATASETS = {
    "restaurants": "semeval_absa/restaurants_2015_train_reviews.jsonl",
    "laptops": "semeval_absa/laptops_2015_train_reviews.jsonl",
}


def load(relative: str) -> tuple[list[str], list[str]]:
    texts, gold = [], []
    with dataset(relative).open(encoding="utf-8") as handle:
        for line in handle:
            for sentence in json.loads(line)["sentences"]:
                categories = {opinion["category"] for opinion in sentence.get("opinions") or []}
                if len(categories) == 1:
                    texts.append(sentence["text"])
                    gold.append(categories.pop())
    return texts, gold


def ours(texts: list[str], vectors: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    model = fit_theme_model(vectors, seed=seed)
    labels = model.assign(vectors)[0]
    theme_keywords(texts, labels, np.ones(len(texts)), model.k, seed=seed)
    return labels, time.perf_counter() - started


def bertopic_factory():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from bertopic import BERTopic
            from umap import UMAP
    except ImportError as error:
        print(
            f"note: BERTopic is not importable ({error}); "
            "reporting ours only (`.venv/bin/pip install bertopic` to compare)"
        )
        return None
    logging.getLogger("BERTopic").setLevel(logging.WARNING)
    warnings.filterwarnings(
        "ignore", message="n_jobs value", category=UserWarning
    )  # UMAP runs single-threaded with a seed

    def run(texts: list[str], vectors: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
        started = time.perf_counter()
        umap_model = UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", random_state=seed)
        topic_model = BERTopic(
            embedding_model=None, umap_model=umap_model, calculate_probabilities=False, verbose=False
        )
        topics, _ = topic_model.fit_transform(texts, embeddings=vectors)
        return np.asarray(topics), time.perf_counter() - started

    return run


def score(gold: list[str], labels: np.ndarray) -> dict[str, float]:
    return {"nmi": normalized_mutual_info_score(gold, labels), "ari": adjusted_rand_score(gold, labels)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    try:
        data = {name: load(relative) for name, relative in DATASETS.items()}
    except DataUnavailable as error:
        print(error)
        print(json.dumps({"skipped": str(error)}))
        return 0
    from copilot.services import Services
    from copilot.settings import Settings

    embedder = Services(Settings()).embedder
    bertopic = bertopic_factory()
    warmup_s = None
    if bertopic is not None:  # numba compiles UMAP's kernels on first use: keep that out of the per-run times
        texts, gold = data["restaurants"]
        sample = embedder.encode(texts[:200])
        started = time.perf_counter()
        bertopic(texts[:200], sample, 0)
        warmup_s = round(time.perf_counter() - started, 2)

    results: dict[str, dict] = {}
    print(
        f"SemEval-2015 ABSA, sentence level, seeds 0-{args.seeds - 1}; "
        f"machine: {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}"
    )
    for name, (texts, gold) in data.items():
        started = time.perf_counter()
        vectors = embedder.encode(texts)
        embed_s = time.perf_counter() - started
        methods = {"ours": ours, **({"bertopic": bertopic} if bertopic is not None else {})}
        entry: dict[str, dict] = {
            "sentences": len(texts),
            "gold_categories": len(set(gold)),
            "embed_s": round(embed_s, 2),
        }
        for method, run in methods.items():
            runs = []
            for seed in range(args.seeds):
                labels, seconds = run(texts, vectors, seed)
                runs.append(
                    {
                        **score(gold, labels),
                        "seconds": seconds,
                        "clusters": len(set(labels.tolist())),
                        "outliers": float(np.mean(labels == -1)),
                    }
                )
            entry[method] = {key: round(float(np.mean([r[key] for r in runs])), 4) for key in runs[0]}
            entry[method]["nmi_min"] = round(min(r["nmi"] for r in runs), 4)
            entry[method]["ari_min"] = round(min(r["ari"] for r in runs), 4)
        results[name] = entry

    print(f"{'dataset':<12} {'method':<9} {'NMI':>6} {'ARI':>6} {'clusters':>8} {'outliers':>8} {'seconds':>8}")
    for name, entry in results.items():
        for method in ("ours", "bertopic"):
            if method in entry:
                e = entry[method]
                print(
                    f"{name:<12} {method:<9} {e['nmi']:>6.3f} {e['ari']:>6.3f} "
                    f"{e['clusters']:>8.1f} {e['outliers']:>8.2f} {e['seconds']:>8.3f}"
                )
    summary: dict[str, object] = {"datasets": results}
    if bertopic is not None:
        speedups = {name: round(e["bertopic"]["seconds"] / e["ours"]["seconds"], 1) for name, e in results.items()}
        quality = all(
            e["ours"]["nmi"] >= e["bertopic"]["nmi"] and e["ours"]["ari"] >= e["bertopic"]["ari"]
            for e in results.values()
        )
        faster = all(s >= 3 for s in speedups.values())
        summary.update(
            {
                "speedup": speedups,
                "bertopic_warmup_s": warmup_s,
                "quality_at_least_bertopic": quality,
                "at_least_3x_faster": faster,
            }
        )
        print(
            f"speed-up vs BERTopic: {', '.join(f'{k} {v}x' for k, v in speedups.items())} (target >= 3x); "
            f"BERTopic warm-up (numba compile, not counted): {warmup_s}s"
        )
        print(f"quality at least BERTopic's on both datasets (NMI and ARI): {'yes' if quality else 'NO'}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
