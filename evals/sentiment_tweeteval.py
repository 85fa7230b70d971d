"""Sentiment quality on TweetEval (val): macro-F1 and macro-recall of the shipped head vs VADER, same run.

Also reports, for reference only, a head of the same shape trained on TweetEval itself with
5-fold cross-validation (TweetEval is research-use data, so such weights are not shipped).
Run: python -m evals.sentiment_tweeteval
"""

from __future__ import annotations

import json
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from copilot.tasks.sentiment import default_classifier, features
from evals.data import DataUnavailable, dataset
from evals.metrics import macro_f1, macro_recall


def vader_label(vader, text: str) -> str:
    compound = vader.polarity_scores(text)["compound"]
    return "positive" if compound >= 0.05 else "negative" if compound <= -0.05 else "neutral"


def main() -> int:
    try:
        rows = [json.loads(line) for line in dataset("tweeteval_sentiment/val.jsonl").open(encoding="utf-8")]
    except DataUnavailable as error:
        print(error)
        return 0
    texts, gold = [r["text"] for r in rows], [r["label"] for r in rows]
    classifier = default_classifier()
    ours = [s.label for s in classifier.classify(texts)]
    vader = [vader_label(classifier.vader, t) for t in texts]
    x = features(classifier.encode(texts), classifier.vader, texts)
    reference = cross_val_predict(LogisticRegression(C=1.0, max_iter=3000, class_weight="balanced"), x, np.array(gold), cv=5)
    report = {}
    for name, predicted in (("shipped head", ours), ("VADER", vader), ("CV on TweetEval (not shipped)", list(reference))):
        report[name] = {"macro_f1": round(macro_f1(gold, predicted), 4), "macro_recall": round(macro_recall(gold, predicted), 4)}
    print(f"tweeteval sentiment val ({len(texts)} tweets)       macro-F1  macro-recall")
    for name, figures in report.items():
        print(f"  {name:<32} {figures['macro_f1']:>8.4f}  {figures['macro_recall']:>12.4f}")
    gain = report["shipped head"]["macro_recall"] - report["VADER"]["macro_recall"]
    print(f"macro-recall gain over VADER: {gain:+.4f} (target +0.05)")
    print(json.dumps({**report, "gain_over_vader": round(gain, 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
