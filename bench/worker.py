"""Sizing: what one job worker does per hour on this machine, through the job runner a `copilot worker` runs.

On the demo workspace (seed 7), one runner thread claims and runs real jobs from the jobs table:
  reindex      the whole workspace rebuilt for search (chunking, embedding, chroma upsert, lexical index)
  summaries    a bulk-summary job (task_batch of ticket_summary), one saved AI result per ticket
  precompute   precompute_ticket jobs (the ticket's summary and a reply draft), as queued when a customer writes
with the fake model (everything but generation: the floor of a worker's cost) and with the embedded local model
(the model server started and warmed before timing). Figures per hour are the measured rate x 3600 for one
runner thread; a worker with --threads N on N free cores scales until the model server or the database is the
bottleneck. Last line: one JSON object.
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
import tempfile
import time

from sqlalchemy import select

from copilot.demo.generator import seed_demo
from copilot.jobs import JobRunner
from copilot.services import Services
from copilot.settings import DEFAULT_MODEL, Settings
from copilot.store import Store
from copilot.store.models import AiResult, Job, JobStatus, Ticket


def timed_jobs(runner: JobRunner, submissions: list[tuple[str, dict]]) -> tuple[float, list[Job]]:
    """Queue the jobs, then claim and run them one by one as a worker does; seconds and the finished rows."""
    store = runner.services.store
    with store.repo("demo") as repo:
        ids = [runner.submit(repo, kind, params).id for kind, params in submissions]
    started = time.perf_counter()
    while runner.run_once():
        pass
    elapsed = time.perf_counter() - started
    with store.session() as session:
        rows = [session.get(Job, job_id) for job_id in ids]
    failed = [f"job {r.id} {r.status.value}: {r.error}" for r in rows if r.status is not JobStatus.succeeded]
    if failed:
        raise SystemExit("; ".join(failed))
    return elapsed, rows


def measure(runner: JobRunner, tickets: list[int], strategy: str | None = None) -> dict[str, dict]:
    """Summaries (with ``strategy``, default the profile's) and, with the default strategy, precompute jobs."""
    items = [{"ticket_id": t} | ({"strategy": strategy} if strategy else {}) for t in tickets]
    seconds, (job,) = timed_jobs(runner, [("task_batch", {"task": "ticket_summary", "items": items})])
    figures = {"summaries": rate(len(items), seconds, "summaries") | {"fallbacks": fallbacks(runner, job)}}
    if strategy is None:  # precompute always runs the tasks' default strategies
        seconds, _ = timed_jobs(runner, [("precompute_ticket", {"ticket_id": t}) for t in tickets])
        figures["precompute"] = rate(len(tickets), seconds, "jobs")
    return figures


def fallbacks(runner: JobRunner, job: Job) -> int:
    """Results that took the task's non-model path (the model failed or timed out, or the profile's default)."""
    with runner.services.store.session() as session:
        rows = session.scalars(select(AiResult).where(AiResult.id.in_(job.result["ai_result_ids"])))
        return sum(bool(row.content.get("used_fallback")) for row in rows)


def rate(count: int, seconds: float, unit: str) -> dict:
    return {unit: count, "seconds": round(seconds, 2), "per_hour": round(count / seconds * 3600)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=40, help="Tickets per job kind with the fake model.")
    parser.add_argument("--model-tickets", type=int, default=8, help="Tickets per job kind with the local model.")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="The local model measured (default: the embedded one).")
    parser.add_argument("--skip-model", action="store_true", help="Only the fake-model figures.")
    parser.add_argument("--database-url", default=None, help="A database server (default: SQLite in a temp dir).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), model="fake/echo", database_url=args.database_url, job_threads=0)
        store = Store.from_settings(settings)
        seed_demo(store, "demo", 7)
        with store.repo("demo") as repo:
            tickets = list(repo.session.scalars(select(Ticket.id).where(Ticket.workspace_id == repo.workspace_id)))
        fake = Services(settings, store)
        runner = JobRunner(fake)
        seconds, (job,) = timed_jobs(runner, [("reindex", {"rebuild": True})])
        figures = {"reindex": rate(job.result["records"], seconds, "records"), "embedder": fake.embedder.name}
        figures["fake_model"] = measure(runner, tickets[: args.tickets])
        if not args.skip_model:
            local = Services(settings.model_copy(update={"model": args.model}), store)
            local.gateway.check_ready()  # start the model server before timing
            local_runner = JobRunner(local)
            measure(local_runner, tickets[-1:])  # warm: first prompt, caches
            sample = tickets[args.tickets : args.tickets + args.model_tickets]
            figures["local_model"] = {
                "model": args.model,
                "auto": measure(local_runner, sample),
                "model_strategy": measure(local_runner, sample, "model"),
            }
            local.close()
        fake.close()
        store.engine.dispose()
    figures["machine"] = f"{platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, CPU only"
    figures["load_average_1m"] = round(os.getloadavg()[0], 1)
    print_table(figures)
    print(json.dumps(figures))


def print_table(figures: dict) -> None:
    print(f"reindex: {figures['reindex']['per_hour']:,} records/hour ({figures['embedder']})")
    rows = [("fake model", figures["fake_model"])]
    if "local_model" in figures:
        rows += [(f"{figures['local_model']['model']} (auto)", figures["local_model"]["auto"])]
        rows += [(f"{figures['local_model']['model']} (model)", figures["local_model"]["model_strategy"])]
    for name, entry in rows:
        line = f"{name}: {entry['summaries']['per_hour']:,} ticket summaries/hour"
        line += f" ({entry['summaries']['fallbacks']} of {entry['summaries']['summaries']} on the fallback path)"
        if "precompute" in entry:
            line += f", {entry['precompute']['per_hour']:,} precompute jobs (summary + draft)/hour"
        print(line)


if __name__ == "__main__":
    main()
