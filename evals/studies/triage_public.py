"""Triage topic quality on public intent data, through the product's own training path.

Each dataset becomes a workspace's labelled tickets: its intents are the workspace's label set, and
``train_workspace_head(..., dry_run=True)`` (what ``copilot triage train FILE --dry-run`` runs) scores the head by
5-fold cross-validation, with its unsure rate and its accuracy on the confident part at the default threshold.
For comparison the same folds are run on the sentence vectors alone (the head without its hashed n-grams).

  banking77/train.csv                    10,003 banking messages, 77 intents (CC BY 4.0)
  bitext_customer_support/dev.jsonl      2,514 customer-support requests, 27 intents (CDLA-Sharing-1.0)

Run: python -m evals.studies.triage_public [--dataset banking77|bitext] [--no-compare]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from copilot.services import Services
from copilot.settings import Settings
from copilot.store import get_or_create_workspace
from copilot.tasks.triage_labels import LabelSpec, set_labels, triage_settings
from copilot.tasks.triage_model import EMBEDDING
from copilot.tasks.triage_train import (
    LabelledTicket,
    cross_validated,
    encode_in_chunks,
    scores,
    train_workspace_head,
)
from evals.data import DataUnavailable, dataset

WORKSPACE = "public-intents"


def slug(label: str) -> str:
    """A label name of the label set: banking77 has 'Refund_not_showing_up' and 'reverted_card_payment?'."""
    return re.sub(r"[^a-z0-9_-]", "", label.lower())


def banking77() -> list[LabelledTicket]:
    with dataset("banking77/train.csv").open(encoding="utf-8", newline="") as handle:
        return [LabelledTicket(text=r["text"], label=slug(r["category"])) for r in csv.DictReader(handle)]


def bitext() -> list[LabelledTicket]:
    with dataset("bitext_customer_support/dev.jsonl").open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [LabelledTicket(text=r["instruction"], label=slug(r["intent"])) for r in rows]


DATASETS = {"banking77": banking77, "bitext": bitext}


def measure(name: str, examples: list[LabelledTicket], services: Services, compare: bool) -> dict:
    labels = sorted({e.label for e in examples})
    with services.store.repo(WORKSPACE) as repo:
        set_labels(repo, [LabelSpec(name=label, queue="support") for label in labels], "evals")
        threshold = triage_settings(repo).unsure_below
        started = time.perf_counter()
        info = train_workspace_head(repo, services.embedder, examples, source=name, actor="evals", dry_run=True)
        seconds = round(time.perf_counter() - started, 1)
    report = {
        "dataset": name,
        "examples": len(examples),
        "labels": len(labels),
        "head": info.evaluation.new_head.model_dump(),
        "seconds": seconds,
    }
    if compare:
        texts, gold = [e.text for e in examples], [e.label for e in examples]
        vectors = encode_in_chunks(services.embedder, texts, None)
        predicted, confidence = cross_validated(vectors, gold, services.embedder.name, c=10.0, layout=EMBEDDING)
        report["sentence vectors alone"] = scores(gold, predicted, confidence, threshold).model_dump()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), action="append")
    parser.add_argument("--no-compare", action="store_true", help="Skip the sentence-vectors-only comparison.")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="copilot-triage-eval-") as folder:
        settings = Settings(
            data_dir=Path(folder), model="fake/echo", embedding_cache_dir=Settings().resolved_embedding_cache_dir
        )
        services = Services(settings)
        with services.store.session() as session:
            get_or_create_workspace(session, WORKSPACE)
        print(f"embedder: {services.embedder.name}")
        for name in args.dataset or sorted(DATASETS):
            try:
                examples = DATASETS[name]()
            except DataUnavailable as error:
                print(error)
                continue
            report = measure(name, examples, services, not args.no_compare)
            print(json.dumps(report), flush=True)
        services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
