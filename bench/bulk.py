"""Bulk work on Ray: reindexing N messages (default 20,000) in one process against the same reindex with its
embedding on 1 and 2 Ray actors, in the same run, on a local Ray head this script starts (``ray start --head``).

Each side indexes the same generated support messages into a new data dir (chunking, embedding, chroma upsert,
full-text rows), with the active embedding backend (COPILOT_EMBEDDING_BACKEND). Printed per side: messages/s.
  overhead      = Ray time with --cpus actors / single-process time; target <= 1.3 on a small machine, where the
                  actors share the cores the single process uses (no speed-up is possible there)
  scaling       = 1-actor time / 2-actor time
  projection    = hours to reindex 100 million messages with W workers of one core each (default 64), by
                  hours = 1e8 / (W * r1 * e) / 3600, with r1 the 1-actor rate measured here and e the scaling
                  efficiency measured here from 1 to 2 actors (capped at 1); the driver's writes (chroma, database)
                  are assumed not to be the bottleneck, which a chroma server cluster must ensure
Last line: one JSON object.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/retrieval.py would shadow the retrieval package: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import os
import platform
import random
import tempfile
import time

from copilot.services import Services
from copilot.settings import Settings
from copilot.store import Store, get_or_create_workspace
from copilot.store.models import AuthorKind, Message, Ticket
from retrieval.ray_embedder import RayEmbedder, local_ray_cluster

ISSUES = ["charged twice for", "cannot log in to", "an empty CSV export from", "a crash when opening", "no sync with"]
THINGS = ["invoice {n}", "the mobile app", "the dashboard", "QuickBooks", "the API", "my team's workspace"]
ASKS = ["Please help.", "When will this be fixed?", "Can you refund me?", "Any update?", "I need this today."]


def messages(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        thing = rng.choice(THINGS).format(n=rng.randint(1000, 9999))
        out.append(f"Hi, since {rng.randint(1, 28)} May I get {rng.choice(ISSUES)} {thing}. {rng.choice(ASKS)} #{i}")
    return out


def reindex(texts: list[str], data_dir: Path, models_dir: Path, address: str | None, workers: int) -> float:
    """Seconds to index ``texts`` (10 messages per ticket) in a new data dir, embedding on Ray when ``address``."""
    settings = Settings(
        data_dir=data_dir,
        model="fake/echo",
        index_on_ingest=False,
        embedding_cache_dir=models_dir,
        ray_address=address,
        ray_workers=workers,
    )
    store = Store.from_settings(settings)
    with store.session() as session:
        get_or_create_workspace(session, "bulk")
    with store.repo("bulk") as repo:
        for start in range(0, len(texts), 10):
            ticket = repo.add(Ticket(external_id=f"T-{start}", subject=texts[start][:60]))
            repo.session.flush()
            for body in texts[start : start + 10]:
                repo.add(Message(ticket_id=ticket.id, author_kind=AuthorKind.customer, body=body))
    services = Services(settings, store, sleep=lambda _seconds: None)
    try:
        if address:
            embedder = services.embedder
            assert isinstance(embedder, RayEmbedder)
            embedder.actors()  # started before the clock, as a long-lived worker's would be
        else:
            services.embedder.encode(["warm up"])
        started = time.perf_counter()
        with store.repo("bulk") as repo:
            services.index.rebuild(repo)
        return time.perf_counter() - started
    finally:
        services.close()
        store.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="messages to reindex per side")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray head (and actors of its side)")
    parser.add_argument("--workers", type=int, default=64, help="workers of the 100-million-message projection")
    args = parser.parse_args()
    texts = messages(args.n)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = Path(os.environ.get("COPILOT_EMBEDDING_CACHE_DIR", root / "models"))
        seconds = {"single_process": reindex(texts, root / "single", models, None, 1)}
        with local_ray_cluster(root / "ray", cpus=args.cpus) as address:
            seconds["ray_1"] = reindex(texts, root / "ray1", models, address, 1)
            seconds[f"ray_{args.cpus}"] = reindex(texts, root / "ray2", models, address, args.cpus)
    figures = figures_of(args, seconds, load_before)
    for side, value in seconds.items():
        print(f"{side}: {args.n / value:,.0f} messages/s ({value:.1f} s)")
    print(
        f"overhead with {args.cpus} actors: {figures['overhead']}x the single process (target <= 1.3); "
        f"100 million messages on {args.workers} one-core workers: {figures['projection_hours']} h"
    )
    print(json.dumps(figures))


def figures_of(args: argparse.Namespace, seconds: dict[str, float], load_before: tuple[float, ...]) -> dict:
    full = seconds[f"ray_{args.cpus}"]
    rate_1 = args.n / seconds["ray_1"]
    efficiency = min(1.0, seconds["ray_1"] / full / args.cpus) if args.cpus > 1 else 1.0
    return {
        "messages": args.n,
        "messages_per_s": {side: round(args.n / value, 1) for side, value in seconds.items()},
        "seconds": {side: round(value, 1) for side, value in seconds.items()},
        "overhead": round(full / seconds["single_process"], 3),
        "scaling": round(seconds["ray_1"] / full, 3),
        "projection_hours": round(1e8 / (args.workers * rate_1 * efficiency) / 3600, 1),
        "projection": f"1e8 / ({args.workers} workers * {rate_1:.1f} msg/s * efficiency {efficiency:.2f}) / 3600",
        "machine": f"{platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, CPU only",
        "load_average_before": [round(x, 1) for x in load_before],
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
    }


if __name__ == "__main__":
    main()
