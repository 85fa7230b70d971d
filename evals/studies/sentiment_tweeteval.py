"""Sentiment quality on TweetEval (val): macro-F1 and macro-recall against VADER, same run.

Two heads are measured:
  - the shipped head, trained only on commercially usable text (TweetEval is never part of it);
  - a workspace head, as ``copilot sentiment train`` fits it on a workspace's own labelled messages, here on
    TweetEval val itself and therefore scored by 5-fold cross-validation (each tweet labelled by a head that never
    saw it), repeated over three fold seeds. TweetEval is research-use data: such a head is measured, never shipped.
Run: python -m evals.studies.sentiment_tweeteval
"""

from __future__ import annotations

import json
import sys

import numpy as np

from copilot.services import Services
from copilot.settings import Settings
from copilot.tasks.sentiment import features, vader_label
from copilot.tasks.sentiment_train import cross_validated, scores
from evals.data import DataUnavailable, dataset

SEEDS = (0, 1, 2)


def learning_curve(
    x: np.ndarray, gold: list[str], vader: list[str], sizes: tuple[int, ...] = (250, 500, 1000)
) -> dict[int, float]:
    order = np.random.default_rng(0).permutation(len(gold))
    curve = {}
    for n in (*sizes, len(gold)):
        subset = order[:n]
        labels = [gold[i] for i in subset]
        gain = (
            scores(labels, cross_validated(x[subset], labels)).macro_recall
            - scores(labels, [vader[i] for i in subset]).macro_recall
        )
        curve[n] = round(gain, 4)
    return curve


def main() -> int:
    try:
        rows = [json.loads(line) for line in dataset("tweeteval_sentiment/val.jsonl").open(encoding="utf-8")]
    except DataUnavailable as error:
        print(error)
        return 0
    texts, gold = [r["text"] for r in rows], [r["label"] for r in rows]
    classifier = Services(Settings()).sentiment  # the shipped head on the shared embedder
    x = features(classifier.encode(texts), classifier.vader, texts)
    vader = [vader_label(classifier.vader, t) for t in texts]
    report = {
        "VADER": scores(gold, vader).model_dump(),
        "shipped head": scores(gold, [s.label for s in classifier.classify(texts)]).model_dump(),
    }
    folds = [scores(gold, cross_validated(x, gold, seed=seed)) for seed in SEEDS]
    report["workspace head (5-fold CV)"] = {
        "macro_f1": round(float(np.mean([f.macro_f1 for f in folds])), 4),
        "macro_recall": round(float(np.mean([f.macro_recall for f in folds])), 4),
        "macro_recall_per_seed": [f.macro_recall for f in folds],
    }
    print(f"tweeteval sentiment val ({len(texts)} tweets)       macro-F1  macro-recall")
    for name, figures in report.items():
        print(f"  {name:<32} {figures['macro_f1']:>8.4f}  {figures['macro_recall']:>12.4f}")
    gains = {
        name: round(report[name]["macro_recall"] - report["VADER"]["macro_recall"], 4)
        for name in ("shipped head", "workspace head (5-fold CV)")
    }
    for name, gain in gains.items():
        print(f"macro-recall gain over VADER, {name}: {gain:+.4f} (target +0.05)")
    print(
        f"workspace head per fold seed {list(SEEDS)}: {report['workspace head (5-fold CV)']['macro_recall_per_seed']}"
    )
    curve = learning_curve(x, gold, vader)
    print(
        "how many labels a workspace needs "
        "(random subsets, 5-fold CV; macro-recall gain over VADER on the same subset): "
        + ", ".join(f"{n}: {gain:+.4f}" for n, gain in curve.items())
    )
    print(json.dumps({**report, "gain_over_vader": gains, "gain_by_examples": curve}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
