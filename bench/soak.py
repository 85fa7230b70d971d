"""Soak: concurrent clients mixing drafts, approvals, ingest, searches and bulk-summary jobs (fake model).

Embedded (default): one in-process server on SQLite, its own job thread. Fleet (``--replicas N --workers M``, with
``--database-url`` of a PostgreSQL server and ``--chroma-url`` of a chroma server): a fresh database, N ``copilot
serve`` processes on loopback ports (COPILOT_JOB_THREADS=0) and M ``copilot worker`` processes; every request goes
to a random replica, and one worker is killed with SIGKILL while it runs a bulk job (its job must complete on
another worker after the lease; a replacement worker starts once it has).

Then a consistency check on the database: every approved draft has exactly one approval and one audit event, no
audit event or chunk points at a missing row, no decided draft lacks its final text; every job ended (succeeded, or
cancelled when asked), none failed; and every bulk job's work was done exactly once: each reserved ticket has as
many saved summaries as jobs that reached it. Target: zero errors, zero inconsistencies (the exit status is 1
otherwise). 409 conflicts (two reviewers on one draft, a draft gone stale, a job that finished before its cancel)
are expected and counted apart. Last line: one JSON object.
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
import random
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from api.app import create_app
from api.server import background_server, free_port
from copilot.auth import create_key
from copilot.demo.generator import seed_demo
from copilot.services import Services
from copilot.settings import Settings
from copilot.store import Store
from copilot.store.models import AiResult, AiStatus, AuditEvent, Job, JobItem, JobStatus, Ticket

ROOT = Path(__file__).resolve().parents[1]
WORDS = [
    "refund",
    "invoice",
    "charged twice",
    "login",
    "password reset",
    "export csv",
    "android crash",
    "api rate limit",
    "sso",
    "upgrade plan",
]
CLIENT_TICKETS, RESERVED_TICKETS, BULK_SIZE = 60, 40, 30  # bulk jobs summarise reserved tickets only
# Idle connections close on the client first (the server keeps them COPILOT_KEEP_ALIVE_S, 75 s): a request sent on a
# connection the server is closing at that moment fails with ReadError (the keep-alive race).
KEEPALIVE = httpx.Limits(keepalive_expiry=2.0)


@dataclass
class Kill:
    """The worker killed mid-job, and the job it held."""

    pid: int
    job_id: int
    done_when_killed: int
    total: int
    after_s: float


class Soak:
    def __init__(self, bases: list[str], agent: str, admin: str, tickets: list[tuple[int, str]], seed: int) -> None:
        self.bases, self.agent, self.admin, self.tickets = bases, agent, admin, tickets
        self.reserved: list[int] = []
        self.latencies: list[float] = []
        self.outcomes: Counter[str] = Counter()
        self.errors: list[str] = []
        self.rng = random.Random(seed)
        self.sequence = 0
        self.jobs: list[int] = []
        self.cancels: set[int] = set()

    async def request(
        self,
        client: httpx.AsyncClient,
        action: str,
        method: str,
        path: str,
        ok: tuple[int, ...] = (200,),
        expected: tuple[int, ...] = (),
        **kwargs,
    ) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = await client.request(method, self.rng.choice(self.bases) + path, **kwargs)
        except httpx.HTTPError as error:
            self.errors.append(f"{action}: {type(error).__name__}")
            return None
        self.latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code in ok:
            self.outcomes[action] += 1
        elif response.status_code in expected:
            self.outcomes[f"{action}_{response.status_code}"] += 1
        else:
            self.errors.append(f"{action}: HTTP {response.status_code} {response.text[:160]}")
        return response

    async def draft(self, client: httpx.AsyncClient) -> None:
        ticket_id, _ = self.rng.choice(self.tickets)
        await self.request(client, "draft", "POST", f"/v1/tickets/{ticket_id}/draft", headers={"X-API-Key": self.agent})

    async def approve(self, client: httpx.AsyncClient) -> None:
        queue = await self.request(
            client,
            "queue",
            "GET",
            "/v1/review/queue",
            headers={"X-API-Key": self.agent},
            params={"task": "reply_draft", "limit": 20},
        )
        if queue is None or queue.status_code != 200 or not queue.json()["items"]:
            return
        item = self.rng.choice(queue.json()["items"])
        blocked = any(not v["passed"] and v.get("severity", "block") == "block" for v in item["guard_verdicts"])
        body = (
            {
                "decision": "edit",
                "version": item["version"],
                "text": (item["content"]["result"]["text"] + "\n(checked)"),
                "confirm_commitments": True,
            }
            if blocked
            else {"decision": "approve", "version": item["version"], "confirm_commitments": True}
        )
        await self.request(
            client,
            "decide",
            "POST",
            f"/v1/review/{item['id']}/decision",
            headers={"X-API-Key": self.agent},
            json=body,
            expected=(409,),
        )

    async def ingest(self, client: httpx.AsyncClient) -> None:
        _, external = self.rng.choice(self.tickets)
        self.sequence += 1
        row = {
            "external_id": f"SOAK-{os.getpid()}-{self.sequence}",
            "ticket": external,
            "author_kind": "customer",
            "body": f"Any update on this? {self.rng.choice(WORDS)}",
            "sent_at": datetime.now(UTC).isoformat(),
        }
        await self.request(
            client, "ingest", "POST", "/v1/records/message", headers={"X-API-Key": self.admin}, json=[row]
        )

    async def search(self, client: httpx.AsyncClient) -> None:
        params = {"q": self.rng.choice(WORDS)}
        await self.request(client, "search", "GET", "/v1/search", headers={"X-API-Key": self.agent}, params=params)

    async def client_loop(self, deadline: float) -> None:
        actions = [self.draft] * 35 + [self.approve] * 25 + [self.ingest] * 15 + [self.search] * 25
        async with httpx.AsyncClient(timeout=180, limits=KEEPALIVE) as client:
            while time.perf_counter() < deadline:
                await self.rng.choice(actions)(client)

    async def bulk_loop(self, deadline: float, every_s: float) -> None:
        """Bulk-summary jobs over reserved tickets, submitted to one replica, read (and one in ten cancelled)
        through another."""
        async with httpx.AsyncClient(timeout=180, limits=KEEPALIVE) as client:
            while time.perf_counter() < deadline:
                ids = self.rng.sample(self.reserved, BULK_SIZE)
                submitted = await self.request(
                    client,
                    "bulk",
                    "POST",
                    "/v1/tickets/summaries",
                    ok=(202,),
                    headers={"X-API-Key": self.agent},
                    json={"ticket_ids": ids},
                )
                if submitted is not None and submitted.status_code == 202:
                    job_id = submitted.json()["id"]
                    self.jobs.append(job_id)
                    await self.request(client, "job", "GET", f"/v1/jobs/{job_id}", headers={"X-API-Key": self.agent})
                    if self.rng.random() < 0.1:
                        await asyncio.sleep(self.rng.uniform(0, 2))
                        self.cancels.add(job_id)
                        await self.request(
                            client,
                            "cancel",
                            "POST",
                            f"/v1/jobs/{job_id}/cancel",
                            headers={"X-API-Key": self.agent},
                            expected=(409,),
                        )
                await asyncio.sleep(every_s)


# -- the fleet: API replicas and workers as processes ------------------------------------------------
@dataclass
class Fleet:
    """``copilot serve`` and ``copilot worker`` processes on one database, chroma server and data dir."""

    env: dict[str, str]
    logs: Path
    replicas: list[tuple[subprocess.Popen, str]] = field(default_factory=list)
    workers: list[subprocess.Popen] = field(default_factory=list)

    def _spawn(self, name: str, args: list[str], extra: dict[str, str]) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("w")
        command = [sys.executable, "-m", "copilot.cli.main", *args]
        return subprocess.Popen(command, cwd=ROOT, env={**self.env, **extra}, stdout=log, stderr=subprocess.STDOUT)

    def start_replica(self) -> str:
        port = free_port()
        process = self._spawn(
            f"replica-{len(self.replicas)}", ["serve", "--port", str(port)], {"COPILOT_JOB_THREADS": "0"}
        )
        base = f"http://127.0.0.1:{port}"
        self.replicas.append((process, base))
        return base

    def start_worker(self) -> subprocess.Popen:
        process = self._spawn(f"worker-{len(self.workers)}", ["worker", "--grace", "20"], {})
        self.workers.append(process)
        return process

    def wait_ready(self, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        for process, base in self.replicas:
            while True:
                if process.poll() is not None:
                    raise SystemExit(f"replica {base} exited: {self.tail(process)}")
                try:
                    if httpx.get(base + "/health", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"replica {base} did not start in {timeout_s:g} s")
                time.sleep(0.5)

    def tail(self, process: subprocess.Popen) -> str:
        names = [f"replica-{i}" for i, (p, _) in enumerate(self.replicas) if p is process]
        names += [f"worker-{i}" for i, p in enumerate(self.workers) if p is process]
        return (self.logs / f"{names[0]}.log").read_text()[-1500:] if names else ""

    def stop(self) -> dict[int, int | None]:
        """SIGTERM everything still running; returns each worker's exit status by pid."""
        processes = [p for p, _ in self.replicas] + self.workers
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        return {w.pid: w.returncode for w in self.workers}


def job_row(store: Store, job_id: int) -> Job | None:
    with store.session() as session:
        return session.get(Job, job_id)


async def kill_one_worker(store: Store, fleet: Fleet, after_s: float, started: float, deadline: float) -> Kill | None:
    """SIGKILL the worker holding a bulk job midway (done > 0, several items left); once the job has completed
    elsewhere, start a replacement worker."""
    await asyncio.sleep(after_s)
    by_pid = {w.pid: w for w in fleet.workers}

    def victim() -> tuple[int, int, int, int] | None:
        with store.session() as session:
            rows = session.execute(
                select(Job.id, Job.lease_owner, Job.done, Job.total).where(
                    Job.kind == "task_batch", Job.status == JobStatus.running, Job.done >= 1
                )
            ).all()
        for job_id, owner, done, total in rows:
            pid = int(owner.split(":")[1]) if owner and owner.count(":") >= 2 else None
            if pid in by_pid and total and done <= total - 5 and by_pid[pid].poll() is None:
                return pid, job_id, done, total
        return None

    while time.perf_counter() < deadline:
        if (found := await asyncio.to_thread(victim)) is not None:
            pid, job_id, done, total = found
            os.kill(pid, signal.SIGKILL)
            kill = Kill(pid, job_id, done, total, round(time.perf_counter() - started, 1))
            print(f"  killed worker {pid} (SIGKILL) at job {job_id}, {done}/{total} done", flush=True)
            while (row := await asyncio.to_thread(job_row, store, job_id)) is not None and row.status in (
                JobStatus.queued,
                JobStatus.running,
            ):
                await asyncio.sleep(0.5)
            fleet.start_worker()
            return kill
        await asyncio.sleep(0.05)
    return None


# -- checks ------------------------------------------------------------------------------------------
def consistency(store: Store) -> list[str]:
    problems = []
    with store.session() as session:
        decided = session.scalars(
            select(AiResult).where(
                AiResult.task == "reply_draft", AiResult.status.in_([AiStatus.approved, AiStatus.edited, AiStatus.sent])
            )
        ).all()
        events = Counter(
            session.scalars(
                select(AuditEvent.ai_result_id).where(AuditEvent.action.in_(["review.approve", "review.edit"]))
            )
        )
        for row in decided:
            if events[row.id] != 1:
                problems.append(f"AI result {row.id} has {events[row.id]} approval events")
            if not row.final_text:
                problems.append(f"AI result {row.id} is {row.status.value} without a final text")
        rejected_or_pending = set(
            session.scalars(select(AiResult.id).where(AiResult.status.in_([AiStatus.pending, AiStatus.stale])))
        )
        problems += [f"AI result {i} is undecided but has an approval event" for i in rejected_or_pending if events[i]]
        orphans = {
            "audit events without their AI result": (
                "SELECT count(*) FROM audit_events e LEFT JOIN ai_results r ON r.id = e.ai_result_id "
                "WHERE e.ai_result_id IS NOT NULL AND r.id IS NULL"
            ),
            "messages without their ticket": (
                "SELECT count(*) FROM messages m LEFT JOIN tickets t ON t.id = m.ticket_id WHERE t.id IS NULL"
            ),
            "search chunks of missing messages": (
                "SELECT count(*) FROM search_chunks c LEFT JOIN messages m ON m.id = c.record_id "
                "WHERE c.record_kind = 'message' AND m.id IS NULL"
            ),
        }
        for name, sql in orphans.items():
            if count := session.execute(text(sql)).scalar():
                problems.append(f"{count} {name}")
    return problems


def job_consistency(store: Store, soak: Soak, kill: Kill | None) -> list[str]:
    """Every job ended as asked; each reserved ticket has exactly as many summaries as bulk jobs recorded it done."""
    problems = []
    with store.session() as session:
        jobs = session.scalars(select(Job).order_by(Job.id)).all()
        summaries = Counter(
            session.scalars(
                select(AiResult.subject_id).where(
                    AiResult.task == "ticket_summary", AiResult.subject_id.in_(soak.reserved)
                )
            )
        )
        items_done: dict[int, list[int]] = {}
        for job_id, item in session.execute(select(JobItem.job_id, JobItem.item)):
            items_done.setdefault(job_id, []).append(item)
    known = {job.id for job in jobs}
    problems += [f"job {job_id} was accepted but is not in the database" for job_id in set(soak.jobs) - known]
    expected: Counter[int] = Counter()
    for job in jobs:
        if job.status in (JobStatus.queued, JobStatus.running):
            problems.append(f"job {job.id} ({job.kind}) still {job.status.value} after the drain")
        elif job.status is JobStatus.failed:
            problems.append(f"job {job.id} ({job.kind}) failed: {job.error}")
        elif job.status is JobStatus.cancelled and job.id not in soak.cancels:
            problems.append(f"job {job.id} ({job.kind}) was cancelled without being asked")
        if job.kind == "task_batch" and job.params.get("task") == "ticket_summary":
            done = items_done.get(job.id, [])  # items run in parallel: the done ones are any of them
            expected.update(job.params["items"][n]["ticket_id"] for n in done)
            if len(done) != job.done:
                problems.append(f"job {job.id}: {job.done} items counted done, {len(done)} recorded")
            if job.status is JobStatus.succeeded and job.done != len(job.params["items"]):
                problems.append(f"job {job.id} succeeded with {job.done} of {len(job.params['items'])} items done")
    for ticket_id in soak.reserved:
        if summaries[ticket_id] != expected[ticket_id]:
            problems.append(
                f"ticket {ticket_id}: {summaries[ticket_id]} summaries saved; {expected[ticket_id]} bulk jobs got to it"
            )
    if kill is not None:
        row = next(job for job in jobs if job.id == kill.job_id)
        if row.status is not JobStatus.succeeded or row.attempts != 2 or f":{kill.pid}:" in (row.finished_by or ":"):
            problems.append(
                f"killed worker's job {row.id}: {row.status.value} after {row.attempts} attempts by {row.finished_by}"
            )
    return problems


def job_figures(store: Store, soak: Soak, kill: Kill | None) -> dict:
    with store.session() as session:
        jobs = session.scalars(select(Job)).all()
    bulk = [
        j for j in jobs if j.kind == "task_batch" and j.status is JobStatus.succeeded and j.id != (kill and kill.job_id)
    ]
    rates = [
        len(j.params["items"]) / max((j.finished_at - j.started_at).total_seconds(), 1e-3)
        for j in bulk
        if j.started_at and j.finished_at
    ]
    return {
        "submitted_bulk": len(soak.jobs),
        "by_status": dict(Counter(f"{j.kind}:{j.status.value}" for j in jobs)),
        "claimed_more_than_once": sorted(j.id for j in jobs if j.attempts > 1),
        "bulk_summaries_per_s_per_job_median": round(statistics.median(rates), 2) if rates else None,
        "finished_by_runners": len({j.finished_by for j in jobs if j.finished_by}),
    }


# -- set-up -------------------------------------------------------------------------------------------
@contextmanager
def fresh_database(server_url: str, keep: bool) -> Iterator[str]:
    """A new database on the server for this run, dropped afterwards (unless ``keep``)."""
    name = f"copilot_soak_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        if not keep:
            with admin.connect() as connection:
                connection.execute(
                    text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
                )
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def seed(services: Services) -> tuple[str, str, list[tuple[int, str]], list[int]]:
    store = services.store
    seed_demo(store, "demo", 7)
    with store.repo("demo") as repo:
        services.index.rebuild(repo)  # also leaves the embedder's export in the shared data dir for the fleet
        agent, _ = create_key(repo, "agent", "soak agent")
        admin, _ = create_key(repo, "admin", "soak admin")
        rows = repo.all(repo.select(Ticket).order_by(Ticket.id).limit(CLIENT_TICKETS + RESERVED_TICKETS))
    if len(rows) < CLIENT_TICKETS + RESERVED_TICKETS:
        raise SystemExit(
            f"the demo workspace has {len(rows)} tickets; the soak needs {CLIENT_TICKETS + RESERVED_TICKETS}"
        )
    tickets = [(t.id, t.external_id) for t in rows[:CLIENT_TICKETS]]
    return agent, admin, tickets, [t.id for t in rows[CLIENT_TICKETS:]]


def fleet_env(data_dir: Path, database_url: str, chroma_url: str, lease_s: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COPILOT_")}
    return {
        **env,
        "COPILOT_DATA_DIR": str(data_dir),
        "COPILOT_DATABASE_URL": database_url,
        "COPILOT_CHROMA_URL": chroma_url,
        "COPILOT_MODEL": "fake/echo",
        "COPILOT_INDEX_ON_INGEST": "true",
        "COPILOT_JOB_LEASE_S": str(lease_s),
        "COPILOT_JOB_POLL_S": "0.5",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "ANONYMIZED_TELEMETRY": "False",
    }


async def drive(soak: Soak, args: argparse.Namespace, fleet: Fleet | None, store: Store) -> tuple[float, Kill | None]:
    started = time.perf_counter()
    deadline = started + args.seconds
    loops = [soak.client_loop(deadline) for _ in range(args.clients)]
    loops.append(soak.bulk_loop(deadline, args.bulk_every))
    killer = None
    if fleet is not None and args.kill:
        killer = asyncio.ensure_future(kill_one_worker(store, fleet, args.seconds * 0.25, started, deadline))
    await asyncio.gather(*loops)
    elapsed = time.perf_counter() - started
    return elapsed, (await killer if killer is not None else None)


def drain(store: Store, timeout_s: float) -> float:
    """Wait until no job is queued or running; returns how long that took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        with store.session() as session:
            active = session.scalar(
                select(func.count()).select_from(Job).where(Job.status.in_([JobStatus.queued, JobStatus.running]))
            )
        if not active:
            break
        time.sleep(1)
    return round(time.monotonic() - started, 1)


def run_embedded(args: argparse.Namespace, tmp: Path) -> tuple[dict, Soak, list[str]]:
    settings = Settings(data_dir=tmp, model="fake/echo", index_on_ingest=True)
    services = Services(settings, Store.from_settings(settings))
    store = services.store
    agent, admin, tickets, reserved = seed(services)
    with background_server(create_app(services=services)) as base:
        soak = Soak([base], agent, admin, tickets, args.seed)
        soak.reserved = reserved
        elapsed, _ = asyncio.run(drive(soak, args, None, store))
        drained = drain(store, args.drain_s)
    problems = consistency(store) + job_consistency(store, soak, None)
    figures = {"seconds": round(elapsed, 1), "drain_s": drained, "jobs": job_figures(store, soak, None)}
    figures["approved_drafts"] = approved(store)
    store.engine.dispose()
    return figures, soak, problems


def run_fleet(args: argparse.Namespace, tmp: Path) -> tuple[dict, Soak, list[str]]:
    if not (args.database_url and args.chroma_url):
        raise SystemExit("--replicas/--workers need --database-url (a PostgreSQL server) and --chroma-url")
    began = time.monotonic()
    with fresh_database(args.database_url, args.keep_database) as url:
        settings = Settings(data_dir=tmp, model="fake/echo", index_on_ingest=True, database_url=url,
                            chroma_url=args.chroma_url)  # fmt: skip
        services = Services(settings, Store.from_settings(settings))
        store = services.store
        agent, admin, tickets, reserved = seed(services)
        logs = Path(args.logs) if args.logs else tmp / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        print(f"  seeded and indexed in {time.monotonic() - began:.0f} s; logs in {logs}", flush=True)
        fleet = Fleet(fleet_env(tmp, url, args.chroma_url, args.lease_s), logs)
        try:
            bases = [fleet.start_replica() for _ in range(args.replicas)]
            for _ in range(args.workers):
                fleet.start_worker()
            fleet.wait_ready()
            print(f"  {args.replicas} replicas serving after {time.monotonic() - began:.0f} s", flush=True)
            soak = Soak(bases, agent, admin, tickets, args.seed)
            soak.reserved = reserved
            elapsed, kill = asyncio.run(drive(soak, args, fleet, store))
            drained = drain(store, args.drain_s)
        finally:
            exits = fleet.stop()
        problems = consistency(store) + job_consistency(store, soak, kill)
        if args.kill and kill is None:
            problems.append("no worker was caught mid-job to kill (no bulk job ran long enough)")
        bad_exits = {pid: code for pid, code in exits.items() if code != 0 and not (kill and pid == kill.pid)}
        problems += [f"worker {pid} exited with status {code}" for pid, code in bad_exits.items()]
        figures = {
            "replicas": args.replicas,
            "workers": args.workers,
            "seconds": round(elapsed, 1),
            "drain_s": drained,
            "killed": kill.__dict__ if kill else None,
            "jobs": job_figures(store, soak, kill),
            "approved_drafts": approved(store),
        }
        store.engine.dispose()
        services.close()
    if problems:
        for name in sorted(p.name for p in logs.iterdir()):
            print(f"  -- {name}: {(logs / name).read_text()[-600:]}")
    return figures, soak, problems


def approved(store: Store) -> int:
    with store.session() as session:
        return session.scalar(
            select(func.count()).select_from(AiResult).where(AiResult.status.in_([AiStatus.approved, AiStatus.edited]))
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bulk-every", type=float, default=15.0, help="Seconds between bulk-summary jobs.")
    parser.add_argument("--replicas", type=int, default=0, help="API replicas as processes (fleet mode).")
    parser.add_argument("--workers", type=int, default=0, help="`copilot worker` processes (fleet mode).")
    parser.add_argument("--database-url", default=os.environ.get("COPILOT_TEST_DATABASE_URL"))
    parser.add_argument("--chroma-url", default=os.environ.get("COPILOT_TEST_CHROMA_URL"))
    parser.add_argument("--lease-s", type=float, default=10.0, help="COPILOT_JOB_LEASE_S of the fleet.")
    parser.add_argument("--no-kill", dest="kill", action="store_false", help="Do not SIGKILL a worker mid-job.")
    parser.add_argument("--drain-s", type=float, default=300.0, help="How long queued jobs may take after the run.")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--logs", help="Folder for the fleet's process logs (default: a temporary one).")
    args = parser.parse_args()
    fleet_mode = args.replicas > 0 or args.workers > 0
    if fleet_mode and (args.replicas < 1 or args.workers < 1):
        parser.error("fleet mode needs --replicas >= 1 and --workers >= 1")
    args.kill = args.kill and fleet_mode and args.workers >= 2
    with tempfile.TemporaryDirectory() as tmp:
        run = run_fleet if fleet_mode else run_embedded
        figures, soak, problems = run(args, Path(tmp))
    report(args, figures, soak, problems)
    if soak.errors or problems:
        raise SystemExit(1)


def report(args: argparse.Namespace, figures: dict, soak: Soak, problems: list[str]) -> None:
    latencies = sorted(soak.latencies)
    figures = {
        "clients": args.clients,
        **figures,
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / figures["seconds"], 2),
        "errors": len(soak.errors),
        "inconsistencies": len(problems),
        "p50_ms": round(latencies[len(latencies) // 2], 1) if latencies else None,
        "p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1) if latencies else None,
        "outcomes": dict(sorted(soak.outcomes.items())),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, CPU only",
    }
    for line in soak.errors[:10] + problems[:10]:
        print("  !", line)
    print(
        f"{figures['requests']} requests in {figures['seconds']} s from {args.clients} clients: "
        f"{figures['errors']} errors, "
        f"{figures['inconsistencies']} inconsistencies, p99 {figures['p99_ms']} ms; outcomes {figures['outcomes']}"
    )
    print(json.dumps(figures, default=str))


if __name__ == "__main__":
    main()
