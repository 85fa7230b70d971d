"""API throughput and overhead: the reply-draft endpoint under concurrent clients vs the task function called directly.

With the fake model (no generation cost), on the seeded and indexed demo workspace, served by uvicorn on loopback:
  concurrent     = 32 clients posting /v1/tickets/{id}/draft for --seconds: p50/p99 latency, requests/s, errors
  overhead_p50   = p50 of one sequential client through HTTP minus p50 of the task run in-process on the same
                   tickets through the app's own services (services.run_task), same run (target <= 5 ms, zero errors)
Last line: one JSON object.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/retrieval.py would shadow the retrieval package: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time

import httpx

from api.app import create_app
from api.server import background_server
from copilot.auth import create_key
from copilot.demo.generator import seed_demo
from copilot.services import Services
from copilot.settings import Settings
from copilot.store import Store
from copilot.store.models import Ticket


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def direct_latencies(services: Services, ticket_ids: list[int]) -> list[float]:
    times = []
    for ticket_id in ticket_ids:
        started = time.perf_counter()
        with services.store.repo("demo") as repo:
            services.run_task(repo, "reply_draft", {"ticket_id": ticket_id})
        times.append((time.perf_counter() - started) * 1000)
    return times


def sequential_latencies(base: str, key: str, ticket_ids: list[int]) -> tuple[list[float], int]:
    times, errors = [], 0
    with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=60) as client:
        for ticket_id in ticket_ids:
            started = time.perf_counter()
            response = client.post(f"/v1/tickets/{ticket_id}/draft")
            times.append((time.perf_counter() - started) * 1000)
            errors += response.status_code != 200
    return times, errors


async def concurrent_run(
    base: str, key: str, ticket_ids: list[int], clients: int, seconds: float
) -> tuple[list[float], int, float]:
    times: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client_loop(n: int) -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, timeout=120) as client:
            i = n
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.post(f"/v1/tickets/{ticket_ids[i % len(ticket_ids)]}/draft")
                times.append((time.perf_counter() - started) * 1000)
                errors += response.status_code != 200
                i += clients

    started = time.perf_counter()
    await asyncio.gather(*(client_loop(n) for n in range(clients)))
    return times, errors, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--sequential", type=int, default=60, help="Requests for the overhead comparison.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), model="fake/echo", index_on_ingest=False)
        services = Services(settings, Store.from_settings(settings))
        seed_demo(services.store, "demo", 7)
        with services.store.repo("demo") as repo:
            services.index.rebuild(repo)
            key, _ = create_key(repo, "agent", "bench")
            ticket_ids = [t.id for t in repo.all(repo.select(Ticket).order_by(Ticket.id).limit(args.sequential))]
        app = create_app(services=services)
        with background_server(app) as base:
            figures = measure(args, base, key, ticket_ids, services)
        services.store.engine.dispose()
    print(
        f"{args.clients} clients for {figures['seconds']} s: {figures['requests']} requests, "
        f"{figures['requests_per_s']} req/s, "
        f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, errors {figures['errors']}"
    )
    print(
        f"reply_draft direct p50 {figures['direct_p50_ms']} ms, through HTTP p50 {figures['http_p50_ms']} ms: "
        f"overhead {figures['overhead_p50_ms']} ms (target <= 5)"
    )
    print(json.dumps(figures))


def measure(args: argparse.Namespace, base: str, key: str, ticket_ids: list[int], services: Services) -> dict:
    """Overhead (sequential, alternating sides) then throughput under concurrent clients."""
    # the app's own services on both sides: the same warm embedder, index and gateway
    sequential_latencies(base, key, ticket_ids[:5])  # warm-up
    direct_latencies(services, ticket_ids[:5])
    direct, http_seq, http_errors = [], [], 0
    for half in (ticket_ids[::2], ticket_ids[1::2]):  # alternate so drift on a shared machine hits both sides
        direct += direct_latencies(services, half)
        times, errors = sequential_latencies(base, key, half)
        http_seq += times
        http_errors += errors
    times, errors, elapsed = asyncio.run(concurrent_run(base, key, ticket_ids, args.clients, args.seconds))
    return {
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "requests": len(times),
        "errors": errors + http_errors,
        "requests_per_s": round(len(times) / elapsed, 1),
        "p50_ms": round(percentile(times, 0.5), 1),
        "p99_ms": round(percentile(times, 0.99), 1),
        "direct_p50_ms": round(statistics.median(direct), 2),
        "http_p50_ms": round(statistics.median(http_seq), 2),
        "overhead_p50_ms": round(statistics.median(http_seq) - statistics.median(direct), 2),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, CPU only",
    }


if __name__ == "__main__":
    main()
