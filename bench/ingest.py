"""Ingest throughput: `copilot ingest` of N messages vs a plain DB-API executemany of the same rows.

Both write into a fresh SQLite database with the product schema, in the same process.
Each side runs --repeat times, interleaved; the medians are compared.
Prints one JSON object on its last line: rows, rows_per_s, raw_rows_per_s, ratio (target >= 0.5).

--end-to-end measures what a user waits for: N messages (default 100,000) of generated support text from JSONL to
indexed and searchable, through the default ingest path (validation, reference resolution, upsert, and the
after-write hooks: stale marking, precompute and triage queueing, chunking, embedding with the backend of
--backend / COPILOT_EMBEDDING_BACKEND, chroma upsert, full-text insert), in files of --block messages, against the
sum of its parts' baselines on the same rows: a plain executemany of the rows plus raw torch
SentenceTransformer.encode of the bodies. The two sides alternate block by block.
  ratio = (executemany + raw encode) time / ingest-to-searchable time (target >= 0.5), with where the time went.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/retrieval.py would shadow the retrieval package: keep this folder off the import path.
BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]

import argparse
import importlib.util
import json
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from copilot.ingest import ingest_file
from copilot.records import after_write_hooks
from copilot.services import Services
from copilot.settings import Settings
from copilot.store import Store, get_or_create_workspace

TICKETS = 1000


def write_files(folder: Path, n: int) -> tuple[Path, Path, list[dict]]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    tickets = folder / "tickets.jsonl"
    with tickets.open("w") as handle:
        for t in range(TICKETS):
            handle.write(
                json.dumps({"external_id": f"T-{t}", "subject": f"Billing question {t}", "channel": "email"}) + "\n"
            )
    rows = [
        {
            "external_id": f"M-{i}",
            "ticket": f"T-{i % TICKETS}",
            "author_kind": "customer" if i % 2 else "agent",
            "author": "Ana Lima" if i % 2 else "Liam Chen",
            "body": f"Message {i}: we were charged twice for invoice INV-{i:06d}, please look into it.",
            "sent_at": (start + timedelta(minutes=i)).isoformat(),
        }
        for i in range(n)
    ]
    messages = folder / "messages.jsonl"
    messages.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return tickets, messages, rows


def fresh_store(folder: Path, name: str) -> Store:
    store = Services(Settings(data_dir=folder / name)).store
    with store.session() as session:
        get_or_create_workspace(session, "bench")
    return store


def time_ingest(folder: Path, tickets: Path, messages: Path) -> float:
    store = fresh_store(folder, f"ingest-{time.monotonic_ns()}")
    ingest_file(store, "bench", tickets)
    started = time.perf_counter()
    report = ingest_file(store, "bench", messages)
    elapsed = time.perf_counter() - started
    assert report.inserted["message"] == sum(1 for _ in messages.open())
    return elapsed


def time_raw_executemany(folder: Path, tickets: Path, rows: list[dict]) -> float:
    store = fresh_store(folder, f"raw-{time.monotonic_ns()}")
    ingest_file(store, "bench", tickets)
    db_path = str(store.engine.url.database)
    store.engine.dispose()
    connection = sqlite3.connect(db_path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")  # as on every product connection (copilot.store.db)
    ticket_ids = dict(connection.execute("SELECT external_id, id FROM tickets").fetchall())
    now = datetime.now(UTC).isoformat()
    params = [
        (1, r["external_id"], ticket_ids[r["ticket"]], r["author_kind"], r["author"], r["body"], r["sent_at"], now, now)
        for r in rows
    ]
    started = time.perf_counter()
    connection.executemany(
        "INSERT INTO messages"
        " (workspace_id, external_id, ticket_id, author_kind, author, body, sent_at, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params,
    )
    connection.commit()
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


# -- end to end: ingest to searchable ------------------------------------------------------------


def support_texts(n: int) -> list[str]:
    """The retrieval bench's generated support text (bench/retrieval.py), loaded from its file."""
    spec = importlib.util.spec_from_file_location("bench_retrieval", BENCH / "retrieval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.generate_texts(n)


def message_rows(bodies: list[str]) -> list[dict]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        {
            "external_id": f"M-{i}",
            "ticket": f"T-{i % TICKETS}",
            "author_kind": "customer" if i % 2 else "agent",
            "author": "Ana Lima" if i % 2 else "Liam Chen",
            "body": body,
            "sent_at": (start + timedelta(minutes=i)).isoformat(),
        }
        for i, body in enumerate(bodies)
    ]


class Stopwatch:
    """Seconds per named part of the ingest, summed over blocks."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, name: str, function: Callable) -> Callable:
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started

        return timed


class TimedEmbedder:
    """The backend's embedder, its encode time counted apart."""

    def __init__(self, inner, stopwatch: Stopwatch) -> None:
        self.name, self.dimensions = inner.name, inner.dimensions
        self.encode = stopwatch.wrap("embedding", inner.encode)


HOOK_NAMES = {
    "mark_tickets_stale": "stale marking",
    "precompute_written": "precompute queue",
    "triage_written": "triage queue",
    "index_written": "indexing",
}


def instrumented(services: Services, stopwatch: Stopwatch) -> list[Callable]:
    """The default after-write hooks, each timed; inside indexing, chunking and the chroma upsert timed too."""
    import retrieval.index as index_module

    index_module.load_chunks = stopwatch.wrap("chunking", index_module.load_chunks)
    services.index.add_vectors = stopwatch.wrap("vector write (chroma upsert)", services.index.add_vectors)
    hooks = []
    for hook in after_write_hooks(services):
        qualname = getattr(hook, "__qualname__", hook.__class__.__name__).split(".")[0]
        hooks.append(stopwatch.wrap(HOOK_NAMES.get(qualname, qualname), hook))
    return hooks


def end_to_end(n: int, block: int, backend: str | None) -> dict:
    from retrieval.embeddings import embedder_for
    from retrieval.search import Searcher

    settings = Settings(**({"embedding_backend": backend} if backend else {}))
    embedder = embedder_for(settings)  # the ONNX export is cached under COPILOT_DATA_DIR
    model = embedder_for(settings.model_copy(update={"embedding_backend": "torch"})).model
    rows = message_rows(support_texts(n))
    stopwatch = Stopwatch()
    seconds = {"ingest": 0.0, "executemany": 0.0, "raw_encode": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tickets = write_files(folder, 0)[0]
        services = Services(
            settings.model_copy(update={"data_dir": folder / "product", "index_on_ingest": True}),
            embedder=TimedEmbedder(embedder, stopwatch),
        )
        with services.store.session() as session:
            get_or_create_workspace(session, "bench")
        hooks = instrumented(services, stopwatch)
        ingest_file(services.store, "bench", tickets, after_write=hooks)  # not timed: the tickets are indexed too
        stopwatch.seconds.clear()
        raw = RawMessages(fresh_store(folder, "raw"), tickets)
        embedder.encode([r["body"] for r in rows[:256]])  # warm-up
        model.encode([r["body"] for r in rows[:256]], batch_size=64, normalize_embeddings=True)
        for number, start in enumerate(range(0, n, block)):
            part = rows[start : start + block]
            path = folder / f"messages-{number}.jsonl"
            path.write_text("".join(json.dumps(row) + "\n" for row in part))
            sides = {
                "ingest": lambda path=path: ingest_file(
                    services.store, "bench", path, kind="message", after_write=hooks
                ),
                "executemany": lambda part=part: raw.insert(part),
                "raw_encode": lambda part=part: model.encode(
                    [r["body"] for r in part], batch_size=64, normalize_embeddings=True, show_progress_bar=False
                ),
            }
            order = (
                ["ingest", "executemany", "raw_encode"] if number % 2 == 0 else ["raw_encode", "executemany", "ingest"]
            )
            for side in order:
                started = time.perf_counter()
                sides[side]()
                seconds[side] += time.perf_counter() - started
        searchable = check_searchable(services, Searcher(services.index), rows)
        raw.close()
        services.close()
        services.store.engine.dispose()
    return figures_end_to_end(n, block, embedder.name, seconds, stopwatch.seconds, searchable)


class RawMessages:
    """The executemany baseline: pre-built tuples into the messages table of a fresh product-schema database."""

    def __init__(self, store: Store, tickets: Path) -> None:
        ingest_file(store, "bench", tickets)
        db_path = str(store.engine.url.database)
        store.engine.dispose()
        self.connection = sqlite3.connect(db_path)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=NORMAL")
        self.connection.execute("PRAGMA foreign_keys=ON")
        self.ticket_ids = dict(self.connection.execute("SELECT external_id, id FROM tickets").fetchall())

    def insert(self, rows: list[dict]) -> None:
        now = datetime.now(UTC).isoformat()
        self.connection.executemany(
            "INSERT INTO messages"
            " (workspace_id, external_id, ticket_id, author_kind, author, body, sent_at, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    1,
                    r["external_id"],
                    self.ticket_ids[r["ticket"]],
                    r["author_kind"],
                    r["author"],
                    r["body"],
                    r["sent_at"],
                    now,
                    now,
                )
                for r in rows
            ],
        )
        self.connection.commit()

    def close(self) -> None:
        self.connection.close()


def check_searchable(services: Services, searcher, rows: list[dict]) -> dict:
    """Every message is in the vector and full-text index, and a message's own text finds it by vector search."""
    from sqlalchemy import func, select

    from copilot.store.models import Message, SearchChunk

    with services.store.repo("bench") as repo:
        chunks = repo.session.scalar(
            select(func.count()).select_from(SearchChunk).where(SearchChunk.record_kind == "message")
        )
        vectors = services.index.collection(repo.workspace_id).count()
        probe = rows[len(rows) // 2]
        message_id = repo.session.scalar(select(Message.id).where(Message.external_id == probe["external_id"]))
        hits = searcher.search(repo, probe["body"], limit=50, mode="vector")
    found = any(h.record_kind == "message" and h.record_id == message_id for h in hits)
    return {"message_chunks": chunks, "vectors": vectors, "probe_found": found}


def figures_end_to_end(
    n: int, block: int, backend: str, seconds: dict[str, float], parts: dict[str, float], searchable: dict
) -> dict:
    hooks = sum(parts[name] for name in HOOK_NAMES.values() if name in parts)
    indexing = parts.get("indexing", 0.0)
    inside_index = sum(parts.get(k, 0.0) for k in ("chunking", "embedding", "vector write (chroma upsert)"))
    breakdown = {
        "validation + reference resolution + upsert": seconds["ingest"] - hooks,
        **{name: parts[name] for name in ("stale marking", "precompute queue", "triage queue") if name in parts},
        "chunking": parts.get("chunking", 0.0),
        "embedding": parts.get("embedding", 0.0),
        "vector write (chroma upsert)": parts.get("vector write (chroma upsert)", 0.0),
        "full-text insert + old chunk removal": indexing - inside_index,
    }
    baseline = seconds["executemany"] + seconds["raw_encode"]
    return {
        "mode": "end-to-end",
        "messages": n,
        "block": block,
        "backend": backend,
        "ingest_to_searchable_s": round(seconds["ingest"], 1),
        "messages_per_s": round(n / seconds["ingest"], 1),
        "executemany_s": round(seconds["executemany"], 2),
        "raw_encode_s": round(seconds["raw_encode"], 1),
        "raw_encode_per_s": round(n / seconds["raw_encode"], 1),
        "ratio": round(baseline / seconds["ingest"], 3),
        "breakdown_s": {k: round(v, 2) for k, v in breakdown.items()},
        "breakdown_share": {k: round(v / seconds["ingest"], 3) for k, v in breakdown.items()},
        "searchable": searchable,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="messages to ingest")
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs of each side; the medians are compared")
    parser.add_argument("--end-to-end", action="store_true", help="JSONL to indexed and searchable (see above)")
    parser.add_argument("--block", type=int, default=10_000, help="--end-to-end: messages per file / block")
    parser.add_argument("--backend", help="--end-to-end: embedding backend (default: COPILOT_EMBEDDING_BACKEND)")
    args = parser.parse_args()
    if args.end_to_end:
        load_before = [round(x, 1) for x in os.getloadavg()]
        figures = end_to_end(args.n, args.block, args.backend)
        figures["machine"] = f"{platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}"
        figures["load_average"] = [load_before, [round(x, 1) for x in os.getloadavg()]]
        print_end_to_end(figures)
        return
    raw_runs, ingest_runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tickets, messages, rows = write_files(folder, args.n)
        for _ in range(args.repeat):  # interleaved, so a burst of load on the shared machine hits both sides
            raw_runs.append(time_raw_executemany(folder, tickets, rows))
            ingest_runs.append(time_ingest(folder, tickets, messages))
    raw_s, ingest_s = statistics.median(raw_runs), statistics.median(ingest_runs)
    figures = {
        "rows": args.n,
        "repeat": args.repeat,
        "ratio_per_run": [round(raw / ingest, 3) for raw, ingest in zip(raw_runs, ingest_runs, strict=True)],
        "rows_per_s": round(args.n / ingest_s),
        "raw_rows_per_s": round(args.n / raw_s),
        "ratio": round(raw_s / ingest_s, 3),
        "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}".strip(),
    }
    print(f"ingest: {figures['rows_per_s']} rows/s (validation + reference resolution + upsert, from the JSONL file)")
    print(f"raw executemany: {figures['raw_rows_per_s']} rows/s (pre-built tuples)")
    print(
        f"ratio of medians over {args.repeat} interleaved runs: {figures['ratio']} (target >= 0.5); "
        f"per run {figures['ratio_per_run']}"
    )
    print(json.dumps(figures))


def print_end_to_end(figures: dict) -> None:
    print(
        f"{figures['messages']:,} messages JSONL -> indexed and searchable ({figures['backend']}): "
        f"{figures['ingest_to_searchable_s']}s, {figures['messages_per_s']} messages/s; "
        f"load average {figures['load_average'][0]} -> {figures['load_average'][1]}"
    )
    print(
        f"parts' baselines: executemany {figures['executemany_s']}s + raw torch encode {figures['raw_encode_s']}s "
        f"({figures['raw_encode_per_s']} texts/s); ratio {figures['ratio']} (target >= 0.5)"
    )
    for name, value in figures["breakdown_s"].items():
        print(f"  {name:45s} {value:9.2f}s  {100 * figures['breakdown_share'][name]:5.1f}%")
    print(f"searchable: {figures['searchable']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
