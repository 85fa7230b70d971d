"""Ingest throughput: `copilot ingest` of N messages vs a plain DB-API executemany of the same rows.

Both write into a fresh SQLite database with the product schema, in the same process.
Each side runs --repeat times, interleaved; the medians are compared.
Prints one JSON object on its last line: rows, rows_per_s, raw_rows_per_s, ratio (target >= 0.5).
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from copilot.ingest import ingest_file
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="messages to ingest")
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs of each side; the medians are compared")
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
