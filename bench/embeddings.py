"""Embedding backends: texts/s of raw SentenceTransformer.encode, the torch backend, the ONNX fp32 and int8 backends
and (on CPUs with native bf16) the torch-bf16 backend on the same N real texts (default 10,000) in the same run, and
how far each backend's vectors agree with torch's.

The texts are public customer-support and social text from ../shared/data (banking77 messages, Bitext customer
requests and agent replies, TweetSumm support tweets, TweetEval tweets, Stack Exchange requests, SemEval reviews),
distinct, shuffled with a fixed seed. The four sides alternate in blocks (--block texts), each block in a rotating
order, so load from other jobs on a shared machine hits all of them alike.

  ratio            raw encode time / ONNX int8 backend time (texts/s over raw torch texts/s); target >= 2.0
  fp32_ratio       raw encode time / ONNX fp32 backend time
  torch_ratio      raw encode time / torch backend time (the product's own torch path)
  raw_batch_ratios raw encode time / raw encode time at batch 32 (sentence-transformers' default) and at the
                   product's batch size (retrieval.embeddings.BATCH_SIZE): how much of each ratio batch size alone
                   gives (the baseline stays raw encode at batch 64)
  bf16_ratio       raw encode time / torch-bf16 backend time (null where the CPU has no native bf16)
  agreement        per checked backend, torch fp32 vs its vectors of the same texts: cosine mean / 1st percentile / min;
                   neighbours@10: share of the exact top-10 by its vectors (query and corpus) that is in the exact
                   fp32 top-10 (tie-aware), over --queries texts against all N; sentiment: share of texts that the
                   shipped sentiment head labels alike; themes: share of texts assigned to the same of 20 k-means
                   centroids fitted on the fp32 vectors
  task quality     per backend, on labelled public data: the shipped sentiment head's macro-recall on TweetEval val
                   (2,000 tweets), and the NPS theme model's NMI against the gold aspect categories of SemEval-2015
                   ABSA train sentences with one category (restaurants, laptops), mean over --seeds fits; the same
                   NMI for the fp32 vectors plus random noise of cosine 0.999 shows how far any change of the vectors
                   moves the clustering. Target: within 0.01 of the torch backend.
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Bench scripts are named like the packages they measure: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import csv
import json
import os
import platform
import random
import time

import numpy as np

from copilot.settings import Settings
from retrieval.embeddings import BATCH_SIZE, load_embedder
from retrieval.torch_bf16 import native_bf16

RAW_BATCHES = (32, BATCH_SIZE)  # sentence-transformers' own default batch size, and the product's
CHECKED_SIDES = ("onnx-fp32", "onnx", "torch-bf16")  # backends whose vectors are compared with torch's

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _jsonl(name: str) -> list[dict]:
    path = SHARED_DATA / name
    return [json.loads(line) for line in path.open()] if path.is_file() else []


def real_texts(n: int, seed: int = 0) -> list[str]:
    """N distinct real texts from ../shared/data, shuffled with ``seed``."""
    texts: list[str] = []
    banking = SHARED_DATA / "banking77" / "train.csv"
    if banking.is_file():
        texts += [row["text"] for row in csv.DictReader(banking.open())]
    bitext = _jsonl("bitext_customer_support/dev.jsonl")
    texts += [row["instruction"] for row in bitext] + [row["response"] for row in bitext]
    texts += [turn["text"] for row in _jsonl("tweetsumm/dev.jsonl") for turn in row["turns"]]
    texts += [row["text"] for row in _jsonl("tweeteval_sentiment/val.jsonl")]
    texts += [row["request"] for row in _jsonl("stanford_politeness/stack_exchange_dev.jsonl")]
    for name in ("semeval_absa/restaurants_2015_train_reviews.jsonl", "semeval_absa/laptops_2015_train_reviews.jsonl"):
        texts += [row["text"] for row in _jsonl(name)]
    distinct = sorted({t.strip() for t in texts if t and t.strip()})
    if len(distinct) < n:
        raise SystemExit(f"only {len(distinct)} distinct texts in {SHARED_DATA}, fewer than --n {n}")
    random.Random(seed).shuffle(distinct)
    return distinct[:n]


def raw_encode(model, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """The baseline: SentenceTransformer.encode called directly, as a user of the library would (batch 64, what
    every bench here has measured against since the first one)."""
    return model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )


def timed_blocks(sides: dict, texts: list[str], block: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Seconds and vectors per side, the sides alternating block by block in a rotating order."""
    seconds = dict.fromkeys(sides, 0.0)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in sides}
    names = list(sides)
    for number, start in enumerate(range(0, len(texts), block)):
        part = texts[start : start + block]
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            parts[name].append(sides[name](part))
            seconds[name] += time.perf_counter() - started
    return seconds, {name: np.concatenate(vectors) for name, vectors in parts.items()}


def neighbour_agreement(reference: np.ndarray, vectors: np.ndarray, queries: int, k: int = 10) -> float:
    """Share of the exact top-k found with ``vectors`` that is as similar, in ``reference``, as the reference's k-th
    best (ties count), over ``queries`` texts of the set (each excluded from its own results)."""
    rng = np.random.default_rng(1)
    hits = 0
    chosen = rng.choice(len(reference), size=min(queries, len(reference)), replace=False)
    for q in chosen:
        exact = reference @ reference[q]
        approx = vectors @ vectors[q]
        exact[q] = approx[q] = -np.inf
        kth_best = np.sort(exact)[-k]
        found = np.argpartition(-approx, k)[:k]
        hits += int((exact[found] >= kth_best - 1e-6).sum())
    return hits / (k * len(chosen))


def sentiment_agreement(texts: list[str], reference: np.ndarray, vectors: np.ndarray) -> float:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from copilot.tasks.sentiment import features, shipped_head

    head, vader = shipped_head(), SentimentIntensityAnalyzer()
    lexical = features(np.zeros((len(texts), 0), dtype=np.float32), vader, texts)
    labels = [head.probabilities(np.hstack([v, lexical])).argmax(axis=1) for v in (reference, vectors)]
    return float((labels[0] == labels[1]).mean())


def theme_agreement(reference: np.ndarray, vectors: np.ndarray, k: int = 20) -> float:
    from sklearn.cluster import KMeans

    centroids = KMeans(n_clusters=k, n_init=1, random_state=0).fit(reference).cluster_centers_
    return float(((reference @ centroids.T).argmax(axis=1) == (vectors @ centroids.T).argmax(axis=1)).mean())


def absa_sentences(name: str) -> tuple[list[str], list[str]]:
    """SemEval-2015 ABSA sentences with exactly one gold aspect category, and that category."""
    texts, gold = [], []
    for row in _jsonl(f"semeval_absa/{name}_2015_train_reviews.jsonl"):
        for sentence in row["sentences"]:
            categories = {opinion["category"] for opinion in sentence.get("opinions") or []}
            if len(categories) == 1:
                texts.append(sentence["text"])
                gold.append(categories.pop())
    return texts, gold


def with_noise(vectors: np.ndarray, cosine: float, seed: int = 0) -> np.ndarray:
    """Unit vectors at exactly ``cosine`` from ``vectors``, in random directions."""
    noise = np.random.default_rng(seed).standard_normal(vectors.shape).astype(np.float32)
    noise -= (noise * vectors).sum(axis=1, keepdims=True) * vectors
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    return cosine * vectors + np.sqrt(1 - cosine**2) * noise


def theme_nmi(vectors: np.ndarray, gold: list[str], seeds: int) -> float:
    from sklearn.metrics import normalized_mutual_info_score

    from copilot.tasks.nps_themes import fit_theme_model

    values = [
        normalized_mutual_info_score(gold, fit_theme_model(vectors, seed=s).assign(vectors)[0]) for s in range(seeds)
    ]
    return round(float(np.mean(values)), 4)


def task_quality(backends: dict, seeds: int) -> dict:
    """Sentiment macro-recall (TweetEval val) and theme NMI (SemEval ABSA) per backend; None without the data."""
    from copilot.tasks.sentiment import SentimentClassifier
    from copilot.tasks.sentiment_train import scores

    figures: dict = {"sentiment_macro_recall": None, "nps_nmi": None}
    tweets = _jsonl("tweeteval_sentiment/val.jsonl")
    if tweets:
        texts, gold = [r["text"] for r in tweets], [r["label"] for r in tweets]
        figures["sentiment_macro_recall"] = {
            name: scores(
                gold, [s.label for s in SentimentClassifier(e.encode, embedding_model=e.name).classify(texts)]
            ).macro_recall
            for name, e in backends.items()
        }
    nmi = {}
    for dataset in ("restaurants", "laptops"):
        texts, gold = absa_sentences(dataset)
        if texts:
            vectors = {name: e.encode(texts) for name, e in backends.items()}
            vectors["torch + noise (cosine 0.999)"] = with_noise(vectors["torch"], 0.999)
            nmi[dataset] = {name: theme_nmi(v, gold, seeds) for name, v in vectors.items()}
    figures["nps_nmi"] = nmi or None
    figures["nmi_seeds"] = seeds
    return figures


def agreement(texts: list[str], reference: np.ndarray, vectors: np.ndarray, queries: int) -> dict[str, float]:
    """How far one backend's vectors agree with the torch backend's fp32 ones."""
    cosine = (reference * vectors).sum(axis=1)
    return {
        "cosine_mean": round(float(cosine.mean()), 5),
        "cosine_p1": round(float(np.percentile(cosine, 1)), 5),
        "cosine_min": round(float(cosine.min()), 5),
        "neighbours_at_10": round(neighbour_agreement(reference, vectors, queries), 4),
        "sentiment_label_agreement": round(sentiment_agreement(texts, reference, vectors), 4),
        "theme_assignment_agreement": round(theme_agreement(reference, vectors), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--block", type=int, default=1000, help="Texts per alternating block.")
    parser.add_argument("--queries", type=int, default=500, help="Texts whose top-10 neighbours are compared.")
    parser.add_argument("--seeds", type=int, default=10, help="Theme model fits (seeds) per backend for the NMI.")
    args = parser.parse_args()
    texts = real_texts(args.n)
    load_before = os.getloadavg()
    settings = Settings()  # the ONNX exports are cached under COPILOT_DATA_DIR (or COPILOT_EMBEDDING_CACHE_DIR)
    backends = {name: load_embedder(name, settings.resolved_embedding_cache_dir) for name in CHECKED_SIDES[:2]}
    if native_bf16():
        backends["torch-bf16"] = load_embedder("torch-bf16", settings.resolved_embedding_cache_dir)
    else:
        print("torch-bf16 left out: this CPU does not multiply bf16 natively")
    torch_backend = load_embedder("torch", settings.resolved_embedding_cache_dir)
    model = torch_backend.model  # the SentenceTransformer inside the torch backend
    sides = {"raw": lambda part: raw_encode(model, part), "torch": torch_backend.encode}
    sides.update({f"raw-{size}": lambda part, size=size: raw_encode(model, part, size) for size in RAW_BATCHES})
    sides.update({name: backend.encode for name, backend in backends.items()})
    for encode in sides.values():
        encode(texts[:256])  # warm-up
    seconds, vectors = timed_blocks(sides, texts, args.block)
    figures = {
        "texts": args.n,
        "mean_chars": round(sum(map(len, texts)) / len(texts), 1),
        **{f"{name.replace('-', '_')}_per_s": round(args.n / seconds[name], 1) for name in sides},
        "ratio": round(seconds["raw"] / seconds["onnx"], 3),
        "fp32_ratio": round(seconds["raw"] / seconds["onnx-fp32"], 3),
        "torch_ratio": round(seconds["raw"] / seconds["torch"], 3),
        "raw_batch_ratios": {str(size): round(seconds["raw"] / seconds[f"raw-{size}"], 3) for size in RAW_BATCHES},
        "bf16_ratio": round(seconds["raw"] / seconds["torch-bf16"], 3) if "torch-bf16" in seconds else None,
        "agreement": {name: agreement(texts, vectors["torch"], vectors[name], args.queries) for name in backends},
        **task_quality({"torch": torch_backend, **backends}, args.seeds),
        "onnx_exports": {
            name: backend.manifest.model_dump(include={"onnx_sha256", "source_sha256", "cpu", "probe"})
            for name, backend in backends.items()
            if name.startswith("onnx")
        },
        "bf16_check": backends["torch-bf16"].check.model_dump() if "torch-bf16" in backends else None,
        "machine": f"{platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, CPU only",
        "load_average_before": [round(x, 1) for x in load_before],
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
    }
    print(
        f"{args.n:,} real texts (mean {figures['mean_chars']} chars), blocks of {args.block}, "
        f"load average {figures['load_average_before']} -> {figures['load_average_after']}"
    )
    print(f"raw SentenceTransformer.encode: {figures['raw_per_s']} texts/s")
    print(f"torch backend: {figures['torch_per_s']} texts/s (ratio {figures['torch_ratio']})")
    print(f"raw encode at batch 32 and {BATCH_SIZE} (the product's), ratio: {figures['raw_batch_ratios']}")
    print(f"ONNX fp32 backend: {figures['onnx_fp32_per_s']} texts/s, ratio {figures['fp32_ratio']}")
    print(f"ONNX int8 backend: {figures['onnx_per_s']} texts/s, ratio {figures['ratio']} (target >= 2.0)")
    if figures["bf16_ratio"]:
        print(f"torch-bf16 backend: {figures['torch_bf16_per_s']} texts/s, ratio {figures['bf16_ratio']}")
    for name, figure in figures["agreement"].items():
        print(
            f"agreement torch fp32 vs {name}: cosine mean {figure['cosine_mean']} (target >= 0.99), 1st percentile "
            f"{figure['cosine_p1']}, min {figure['cosine_min']}; neighbours@10 {figure['neighbours_at_10']}; "
            f"sentiment labels {figure['sentiment_label_agreement']}; theme assignment "
            f"{figure['theme_assignment_agreement']}"
        )
    print(f"sentiment macro-recall, shipped head on TweetEval val: {figures['sentiment_macro_recall']}")
    print(f"NPS theme NMI on SemEval-2015 ABSA, mean of {args.seeds} seeds: {figures['nps_nmi']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
