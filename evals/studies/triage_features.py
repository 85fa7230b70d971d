"""Feature variants of the triage head on banking77 train: which hashed n-grams beside the MiniLM vectors help.

Each variant changes one thing of the shipped layout (``embedding+hashed-ngrams-v1``: word 1-2-grams in 2^13 and
char_wb 3-5-grams in 2^14 hashed features, each block x0.5, beside the sentence vectors) and is scored like
``triage_public``: the same 5 stratified folds (seed 0), logistic regression, accuracy. ``--folds 1`` screens on the
first fold only (about 20 s a variant on 2 cores).

Run: python -m evals.studies.triage_features [--variant v1 --variant char25 ...] [--c 30] [--folds 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from copilot.services import Services
from copilot.settings import Settings
from copilot.tasks.triage_train import encode_in_chunks
from evals.data import DataUnavailable
from evals.studies.triage_public import banking77

SHIPPED = {"word_range": (1, 2), "char_range": (3, 5), "analyzer": "char_wb", "word_bits": 13, "char_bits": 14}
VARIANTS: dict[str, dict] = {
    "v1": {},
    "ngrams_x1.0": {"word_weight": 1.0, "char_weight": 1.0},
    "ngrams_x0.7": {"word_weight": 0.7, "char_weight": 0.7},
    "chars_x0.8": {"char_weight": 0.8},
    "char25": {"char_range": (2, 5)},
    "char36": {"char_range": (3, 6)},
    "word13": {"word_range": (1, 3)},
    "char_plain": {"analyzer": "char"},
    "char25_vectors_x1.5": {"char_range": (2, 5), "vector_weight": 1.5},
    "char25_more_bits": {"char_range": (2, 5), "word_bits": 14, "char_bits": 15},
    "char25_words_x0.3": {"char_range": (2, 5), "word_weight": 0.3},
}


def features(vectors: np.ndarray, texts: list[str], variant: dict) -> sp.csr_matrix:
    v = {**SHIPPED, "word_weight": 0.5, "char_weight": 0.5, "vector_weight": 1.0, **variant}
    words = HashingVectorizer(
        n_features=2 ** v["word_bits"], ngram_range=v["word_range"], alternate_sign=False, norm="l2"
    )
    chars = HashingVectorizer(
        n_features=2 ** v["char_bits"],
        analyzer=v["analyzer"],
        ngram_range=v["char_range"],
        alternate_sign=False,
        norm="l2",
    )
    blocks = [
        sp.csr_matrix(vectors * v["vector_weight"]),
        v["word_weight"] * words.transform(texts),
        v["char_weight"] * chars.transform(texts),
    ]
    return sp.hstack(blocks, format="csr")


def accuracy(x: sp.csr_matrix, gold: np.ndarray, c: float, folds: int) -> float:
    splits = list(StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(len(gold)), gold))[:folds]
    correct = 0
    for train, test in splits:
        with threadpool_limits(1):
            model = LogisticRegression(C=c, max_iter=3000, random_state=0).fit(x[train], gold[train])
        correct += int((model.predict(x[test]) == gold[test]).sum())
    return correct / sum(len(test) for _, test in splits)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS), help="Repeatable (default: all).")
    parser.add_argument("--c", type=float, action="append", help="Regularisation; repeatable (default 30).")
    parser.add_argument("--folds", type=int, default=5, choices=range(1, 6))
    args = parser.parse_args(argv)
    try:
        examples = banking77()
    except DataUnavailable as error:
        print(f"skipped: {error}")
        return 0
    texts, gold = [e.text for e in examples], np.array([e.label for e in examples])
    with tempfile.TemporaryDirectory() as workdir:
        services = Services(Settings(data_dir=Path(workdir)))
        vectors = encode_in_chunks(services.embedder, texts, None)
        embedder = services.embedder.name
    results = {}
    for name in args.variant or list(VARIANTS):
        x = features(vectors, texts, VARIANTS[name])
        for c in args.c or [30.0]:
            started, key = time.perf_counter(), f"{name} C={c:g}"
            results[key] = round(accuracy(x, gold, c, args.folds), 4)
            print(f"{key:30} accuracy {results[key]:.4f}  ({time.perf_counter() - started:.0f} s)", flush=True)
    summary = {"dataset": "banking77/train.csv", "embedder": embedder, "folds": args.folds, "accuracy": results}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
