"""Retrieval quality on banking77: do the top hits for a customer message share its intent?

History: banking77 training messages indexed through the product's indexer (one workspace).
Queries: held-out messages from the same file. For vector, lexical and hybrid search we report
  recall@10  - share of queries with at least one same-intent message in the top 10,
  precision@10 - share of the top-10 hits that have the query's intent,
  MRR@10 - mean reciprocal rank of the first same-intent hit.
Run: python -m evals.studies.retrieval_banking77 [--queries 1000]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from copilot.services import Services
from copilot.settings import Settings
from copilot.store import Store, get_or_create_workspace
from copilot.store.models import Account, AuthorKind, Message, Ticket
from evals.data import DataUnavailable, dataset
from retrieval.index import HistoryIndex
from retrieval.search import Searcher, SearchFilters

MODES = ("vector", "lexical", "hybrid")


def load(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [(row["text"], row["category"]) for row in csv.DictReader(handle)]


def build_workspace(store: Store, index: HistoryIndex, history: list[tuple[str, str]]) -> dict[int, str]:
    with store.session() as session:
        get_or_create_workspace(session, "banking77")
    with store.repo("banking77") as repo:
        account = repo.add(Account(name="Banking77 customers"))
        repo.session.flush()
        messages = []
        for text, _ in history:
            ticket = repo.add(Ticket(subject="customer message", account_id=account.id))
            messages.append(Message(ticket=ticket, author_kind=AuthorKind.customer, body=text))
        for message in messages:
            repo.add(message)
        repo.session.flush()
        intent_by_message = {m.id: intent for m, (_, intent) in zip(messages, history, strict=True)}
        index.index_records(repo, "message", list(intent_by_message))
    return intent_by_message


def evaluate(
    store: Store, searcher: Searcher, queries: list[tuple[str, str]], intents: dict[int, str]
) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    filters = SearchFilters(kinds=["message"])
    with store.repo("banking77") as repo:
        for mode in MODES:
            found, precision, reciprocal = 0, 0.0, 0.0
            started = time.perf_counter()
            for text, intent in queries:
                hits = searcher.search(repo, text, filters, limit=10, mode=mode)
                same = [intents.get(h.record_id) == intent for h in hits]
                found += any(same)
                precision += sum(same) / 10
                reciprocal += next((1 / (i + 1) for i, s in enumerate(same) if s), 0.0)
            n = len(queries)
            results[mode] = {
                "recall_at_10": round(found / n, 4),
                "precision_at_10": round(precision / n, 4),
                "mrr_at_10": round(reciprocal / n, 4),
                "ms_per_query": round((time.perf_counter() - started) * 1000 / n, 1),
            }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        rows = load(dataset("banking77/train.csv"))
    except DataUnavailable as error:
        print(error)
        return 0
    random.Random(args.seed).shuffle(rows)
    queries, history = rows[: args.queries], rows[args.queries :]
    with tempfile.TemporaryDirectory() as tmp:
        services = Services(Settings(data_dir=Path(tmp)))
        intents = build_workspace(services.store, services.index, history)
        results = evaluate(services.store, services.searcher, queries, intents)
        services.close()
        services.store.engine.dispose()
    print(f"banking77: {len(history)} messages indexed, {len(queries)} held-out queries")
    print(f"{'mode':<8} {'recall@10':>10} {'precision@10':>13} {'MRR@10':>8} {'ms/query':>9}")
    for mode, figures in results.items():
        print(
            f"{mode:<8} {figures['recall_at_10']:>10.4f} {figures['precision_at_10']:>13.4f} "
            f"{figures['mrr_at_10']:>8.4f} {figures['ms_per_query']:>9.1f}"
        )
    best_single = max(results["vector"]["recall_at_10"], results["lexical"]["recall_at_10"])
    verdict = (
        "hybrid >= best single ranker"
        if results["hybrid"]["recall_at_10"] >= best_single
        else "hybrid BELOW the best single ranker"
    )
    print(verdict)
    print(
        json.dumps(
            {
                "queries": len(queries),
                "history": len(history),
                **{f"{m}_{k}": v for m, f in results.items() for k, v in f.items()},
            }
        )
    )
    return 0 if results["hybrid"]["recall_at_10"] >= best_single else 1


if __name__ == "__main__":
    sys.exit(main())
