"""Bulk ticket summaries (the ``task_batch`` job) with their model calls fanned out, in one run:

  fan-out   = a provider that takes --latency s per call (the fake model, sleeping; a remote API's share of a
              call), items one at a time against --width at a time on threads (COPILOT_MODEL_CONCURRENCY);
              speed-up = 1-wide time / N-wide time (at most --width; the task's own CPU work caps it on 2 cores)
  ray       = the fake model answering at once, --width threads in this process against --width Ray actors on a
              local head this script starts (``ray start --head``); overhead = Ray time / thread time (the actors
              share this machine's cores with this process)

Each side summarises the same --n generated tickets (3 messages each) in a new data dir through a real job runner
(claim, steps, ``job_items`` rows, lease), timed after a warm-up job on the same services (a running worker has
loaded its task registry and classifiers, and keeps its Ray actors between jobs). Last line: one JSON object.
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

from copilot.gateway.fake import FakeModel, echo
from copilot.jobs import JobRunner
from copilot.services import Services
from copilot.settings import Settings
from copilot.store import Store, get_or_create_workspace
from copilot.store.models import AuthorKind, Job, JobStatus, Message, Ticket
from retrieval.ray_embedder import local_ray_cluster

ISSUES = ["I was charged twice for", "I cannot log in to", "The CSV export is empty from", "It crashes when opening"]
THINGS = ["invoice {n}", "the mobile app", "the dashboard", "QuickBooks", "the API"]
ASKS = ["Please help.", "When will this be fixed?", "Can you refund me?", "Any update?", "I need this today."]


def seed(store: Store, n: int) -> None:
    rng = random.Random(0)
    with store.session() as session:
        get_or_create_workspace(session, "bulk")
    with store.repo("bulk") as repo:
        for t in range(n):
            thing = rng.choice(THINGS).format(n=rng.randint(1000, 9999))
            ticket = repo.add(Ticket(external_id=f"T-{t}", subject=f"{rng.choice(ISSUES)} {thing}"[:60]))
            repo.session.flush()
            for m in range(3):
                body = f"{rng.choice(ISSUES)} {thing} since {rng.randint(1, 28)} May. {rng.choice(ASKS)} ({m})"
                repo.add(Message(ticket_id=ticket.id, author_kind=AuthorKind.customer, body=body))


def summarise_all(data_dir: Path, n: int, width: int, *, latency: float = 0.0, address: str | None = None) -> float:
    """Seconds for one bulk-summary job over ``n`` tickets, ``width`` model calls in flight, after a warm-up job over
    ``width`` other tickets (a long-running worker has loaded its task registry, classifiers and actors)."""
    settings = Settings(
        data_dir=data_dir, model="fake/echo", index_on_ingest=False, model_concurrency={"fake": width},
        ray_address=address,
    )  # fmt: skip

    def slow(messages: list, params: dict) -> str:
        time.sleep(latency)
        return echo(messages, params)

    store = Store.from_settings(settings)
    seed(store, n + width)
    services = Services(settings, store, fake=FakeModel(slow), sleep=lambda _seconds: None)
    try:
        run_job(services, range(n, n + width))
        started = time.perf_counter()
        run_job(services, range(n))
        return time.perf_counter() - started
    finally:
        services.close()
        store.engine.dispose()


def run_job(services: Services, tickets: range) -> None:
    runner = JobRunner(services, threads=0)
    with services.store.repo("bulk") as repo:
        items = [{"ticket_id": f"T-{t}"} for t in tickets]
        job_id = runner.submit(repo, "task_batch", {"task": "ticket_summary", "items": items}).id
    assert runner.run_once()
    with services.store.session() as session:
        job = session.get(Job, job_id)
        if job.status is not JobStatus.succeeded or job.done != len(tickets) or job.result["failed"]:
            raise SystemExit(f"bulk job {job_id} did not summarise every ticket: {job.status} {job.error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="tickets per side")
    parser.add_argument("--width", type=int, default=4, help="model calls in flight on the wide sides")
    parser.add_argument("--latency", type=float, default=0.25, help="seconds per call of the slow provider")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray head")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        seconds = {
            "slow_provider_1_wide": summarise_all(root / "s1", args.n, 1, latency=args.latency),
            f"slow_provider_{args.width}_wide": summarise_all(root / "sw", args.n, args.width, latency=args.latency),
            "threads": summarise_all(root / "threads", args.n, args.width),
        }
        with local_ray_cluster(root / "ray", cpus=args.cpus) as address:
            seconds["ray"] = summarise_all(root / "rayside", args.n, args.width, address=address)
    figures = {
        "tickets": args.n,
        "width": args.width,
        "provider_latency_s": args.latency,
        "tickets_per_s": {side: round(args.n / value, 2) for side, value in seconds.items()},
        "seconds": {side: round(value, 1) for side, value in seconds.items()},
        "fan_out_speedup": round(seconds["slow_provider_1_wide"] / seconds[f"slow_provider_{args.width}_wide"], 2),
        "ray_overhead": round(seconds["ray"] / seconds["threads"], 2),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, CPU only",
        "load_average_before": [round(x, 1) for x in load_before],
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
    }
    for side, value in seconds.items():
        print(f"{side}: {args.n / value:,.1f} tickets/s ({value:.1f} s)")
    print(
        f"fan-out speed-up with {args.width} calls in flight: {figures['fan_out_speedup']}x; "
        f"Ray actors against threads: {figures['ray_overhead']}x the time"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
