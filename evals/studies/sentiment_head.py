"""Build the shipped sentiment head (copilot/tasks/sentiment_data/head.npz): reproducible, seed 0.

It is trained on text licensed for commercial use (see README, "Sentiment"):
  ParaDetox (CC0): rude sentences -> negative, their human neutral rewrites -> neutral
  Stanford Politeness, Stack Exchange (Apache-2.0), banking77 (CC BY 4.0), Bitext support requests
  (CDLA-Sharing-1.0): labelled by the VADER lexicon (MIT) with wide margins (|compound| >= 0.4)
  the demo workspace's NPS comments and thank-you lines (written by the team): by their polarity

Run: python -m evals.studies.sentiment_head [--data DIR] [--out PATH]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path

from copilot.demo import sales, tickets
from copilot.tasks.sentiment import LABELS, WEIGHTS, features
from copilot.tasks.sentiment_train import fit_head
from evals.data import shared_data_dir

PER_SOURCE = 1500
SHIPPED_C = 0.1  # strong regularisation: the shipped head's training text is far from any one workspace's


def teacher(vader, text: str) -> str:
    compound = vader.polarity_scores(text)["compound"]
    return "positive" if compound >= 0.4 else "negative" if compound <= -0.4 else "neutral"


def training_set(data: Path, vader) -> list[tuple[str, str]]:
    rng = random.Random(0)
    rows: list[tuple[str, str]] = []
    for line in (data / "paradetox" / "dev.jsonl").open(encoding="utf-8"):
        record = json.loads(line)
        rows.append((record["toxic"], "negative"))
        rows += [(text, "neutral") for text in record["neutral_references"][:1]]
    weak = [
        json.loads(line)["request"]
        for line in (data / "stanford_politeness" / "stack_exchange_dev.jsonl").open(encoding="utf-8")
    ]
    weak_banking = [
        row["text"] for row in csv.DictReader((data / "banking77" / "train.csv").open(encoding="utf-8", newline=""))
    ]
    weak_bitext = [
        json.loads(line)["instruction"]
        for line in (data / "bitext_customer_support" / "dev.jsonl").open(encoding="utf-8")
    ]
    for texts in (weak, weak_banking, weak_bitext):
        rng.shuffle(texts)
        rows += [(text, teacher(vader, text)) for text in texts[:PER_SOURCE]]
    for theme in sales.NPS_THEMES.values():
        rows += [(text, polarity) for polarity in ("positive", "negative") for text in theme[polarity]]
    rows += [(text.replace("{agent_first}", "Liam"), "positive") for text in tickets.THANKS]
    return rows


def main() -> None:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from retrieval.embeddings import default_embedder

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=shared_data_dir())
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args()
    vader = SentimentIntensityAnalyzer()
    rows = training_set(args.data, vader)
    texts, labels = [t for t, _ in rows], [label for _, label in rows]
    head = fit_head(features(default_embedder().encode(texts), vader, texts), labels, SHIPPED_C, "shipped head")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(head.to_bytes())
    counts = {label: labels.count(label) for label in LABELS}
    print(f"trained on {len(rows)} texts {counts}; weights written to {args.out}")


if __name__ == "__main__":
    main()
