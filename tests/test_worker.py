"""Jobs on one shared queue: leases that fence out a runner that lost its job, exactly-once steps, cancellation,
deduplication across API replicas, hand-back at shutdown, and `copilot worker` processes (one killed mid-job).

Runs on SQLite by default and on PostgreSQL under `.ci/servers.sh` (COPILOT_TEST_DATABASE_URL)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select, update

from api.app import create_app
from copilot.auth import Permission
from copilot.errors import Conflict
from copilot.jobs import JobKind, JobRunner
from copilot.services import Services
from copilot.settings import Settings
from copilot.store import Store, get_or_create_workspace, migrate
from copilot.store.db import SCHEMA_HEAD, make_engine
from copilot.store.models import AiResult, AiStatus, Job, JobStatus, Note

ROOT = Path(__file__).resolve().parents[1]
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def alpha(store):
    with store.session() as session:
        get_or_create_workspace(session, "alpha")
    return "alpha"


def expire_lease(store, job_id: int) -> None:
    """What a runner that stopped heartbeating looks like from the database."""
    with store.session() as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def job_row(store, job_id: int) -> Job:
    with store.session() as session:
        return session.get(Job, job_id)


def notes(store) -> list[str]:
    with store.session() as session:
        return sorted(session.scalars(select(Note.body)))


def stepping_kind(total: int, pause=lambda job, i: None) -> dict[str, JobKind]:
    """A job of ``total`` steps, each adding one note; it resumes after the steps already recorded."""

    def handler(job):
        start = job_row(job.services.store, job.job_id).done
        job.progress(start, total, force=True)
        for i in range(start, total):
            pause(job, i)
            with job.step(i + 1) as repo:
                repo.add(Note(body=f"step {i}"))
        return {"runner": job.owner}

    return {"steps": JobKind("steps", handler, Permission.manage)}


class PausingServices(Services):
    """Services whose task runs block at one item until released: a runner that stalls mid-job."""

    def __init__(self, *args, pause_at: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pause_at, self.paused, self.resume = pause_at, threading.Event(), threading.Event()

    def run_task(self, repo, name, params, **kwargs):
        if params.get("text") == self.pause_at:
            self.paused.set()
            assert self.resume.wait(30)
        return super().run_task(repo, name, params, **kwargs)


def rewrite_items(n: int) -> list[dict]:
    return [{"text": f"hey, send me invoice {i} now", "tone": "formal", "strategy": "rules"} for i in range(n)]


# -- leases fence out a runner that lost its job -----------------------------------------------------
def batch_taken_over(settings, store, alpha, fake_model, *, items, cap, stall_at, done_before_takeover):
    """A bulk job whose runner stalls at item ``stall_at`` (``cap`` items in flight) and loses its lease once
    ``done_before_takeover`` items are recorded; a second runner resumes it; then the stalled one wakes up.
    Returns the job's row and the runner that took over."""
    capped = settings.model_copy(update={"model_concurrency": {"fake": cap}})
    stalled = PausingServices(capped, store, fake=fake_model, pause_at=items[stall_at]["text"])
    first, second = JobRunner(stalled, threads=0), JobRunner(Services(capped, store, fake=fake_model), threads=0)
    with store.repo(alpha) as repo:
        job_id = first.submit(repo, "task_batch", {"task": "tone_rewrite", "items": items}).id
    running = threading.Thread(target=first.run_once)
    running.start()
    assert stalled.paused.wait(60)
    deadline = time.monotonic() + 60
    while job_row(store, job_id).done < done_before_takeover:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    expire_lease(store, job_id)
    assert second.run_once()  # claims attempt 2 and resumes the items not recorded
    stalled.resume.set()
    running.join(30)
    return job_row(store, job_id), second


def saved_originals(store) -> dict[int, str]:
    with store.session() as session:
        return {r.id: r.content["result"]["original"] for r in session.scalars(select(AiResult))}


def test_a_stalled_runner_never_saves_a_result_its_successor_saved(settings, store, alpha, fake_model):
    items = rewrite_items(6)  # one at a time: two items saved; the third is in flight when its lease runs out
    row, second = batch_taken_over(
        settings, store, alpha, fake_model, items=items, cap=1, stall_at=2, done_before_takeover=2
    )
    assert (row.status, row.attempts, row.done, row.finished_by) == (JobStatus.succeeded, 2, 6, second.owner)
    assert row.result["skipped_as_done_before"] == 2 and len(set(row.result["ai_result_ids"])) == 6
    assert sorted(saved_originals(store).values()) == sorted(item["text"] for item in items)  # each saved once


def test_a_resumed_parallel_batch_runs_only_the_items_nobody_finished(settings, store, alpha, fake_model):
    """Items run three at a time: the second item stalls while the other seven finish around it; the runner that
    resumes the job runs that one item, and the stalled runner's late result is never saved."""
    items = rewrite_items(8)
    row, second = batch_taken_over(
        settings, store, alpha, fake_model, items=items, cap=3, stall_at=1, done_before_takeover=7
    )
    assert (row.status, row.attempts, row.done, row.finished_by) == (JobStatus.succeeded, 2, 8, second.owner)
    assert row.result["skipped_as_done_before"] == 7 and row.result["concurrency"] == 1  # one item left to run
    saved = saved_originals(store)
    assert sorted(saved.values()) == sorted(item["text"] for item in items)  # each item saved exactly once
    assert [saved[i] for i in row.result["ai_result_ids"]] == [item["text"] for item in items]  # in item order


class CountingServices(Services):
    """Services whose task runs take a while and count how many are in flight at once."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lock, self.in_flight, self.most = threading.Lock(), 0, 0

    def run_task(self, repo, name, params, **kwargs):
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            time.sleep(0.1)
            return super().run_task(repo, name, params, **kwargs)
        finally:
            with self.lock:
                self.in_flight -= 1


@pytest.mark.parametrize(("caps", "expected"), [({"fake": 3}, 3), ({}, 4), ({"fake": 1, "openai": 9}, 1)])
def test_a_batch_keeps_its_providers_cap_of_calls_in_flight(settings, store, alpha, fake_model, caps, expected):
    services = CountingServices(settings.model_copy(update={"model_concurrency": caps}), store, fake=fake_model)
    runner = JobRunner(services, threads=0)
    with store.repo(alpha) as repo:
        job_id = runner.submit(repo, "task_batch", {"task": "tone_rewrite", "items": rewrite_items(12)}).id
    assert runner.run_once()
    row = job_row(store, job_id)
    assert row.status is JobStatus.succeeded and row.done == 12 and len(row.result["ai_result_ids"]) == 12
    assert services.most == row.result["concurrency"] == expected


def test_a_runner_that_lost_its_lease_can_neither_step_nor_finish(services, store, alpha):
    arrived, go = threading.Event(), threading.Event()

    def pause(job, i):
        if i == 2 and job.attempt == 1:
            arrived.set()
            assert go.wait(30)

    kinds = stepping_kind(5, pause)
    first, second = JobRunner(services, threads=0, kinds=kinds), JobRunner(services, threads=0, kinds=kinds)
    with store.repo(alpha) as repo:
        job_id = first.submit(repo, "steps").id
    running = threading.Thread(target=first.run_once)
    running.start()
    assert arrived.wait(30)
    expire_lease(store, job_id)
    assert second.run_once()
    go.set()
    running.join(30)
    assert notes(store) == [f"step {i}" for i in range(5)]
    row = job_row(store, job_id)
    assert row.status is JobStatus.succeeded and row.result == {"runner": second.owner}


# -- cancellation ----------------------------------------------------------------------------------
def test_cancelling_a_running_job_stops_it_after_the_step_in_flight(services, store, alpha):
    def pause(job, i):
        if i == 2:
            with store.repo(alpha) as repo:
                assert runner.cancel(repo, job.job_id).cancel_requested  # from another process, say

    runner = JobRunner(services, threads=0, kinds=stepping_kind(6, pause))
    with store.repo(alpha) as repo:
        job_id = runner.submit(repo, "steps").id
    assert runner.run_once()
    row = job_row(store, job_id)
    assert (row.status, row.done) == (JobStatus.cancelled, 3) and len(notes(store)) == 3


def test_a_queued_job_cancelled_is_never_claimed(services, store, alpha):
    runner = JobRunner(services, threads=0, kinds=stepping_kind(1))
    with store.repo(alpha) as repo:
        job_id = runner.submit(repo, "steps").id
        assert runner.cancel(repo, job_id).status is JobStatus.cancelled
    assert runner.run_once() is False and notes(store) == []


# -- one queued job per key, whichever replica submits it ----------------------------------------------
def test_replicas_submitting_one_key_at_once_make_one_job(settings, store, alpha, fake_model):
    runners = [JobRunner(Services(settings, store, fake=fake_model), threads=0, kinds=stepping_kind(1)) for _ in "ab"]
    barrier, ids = threading.Barrier(6), []

    def submit(runner):
        barrier.wait()
        with store.repo(alpha) as repo:
            ids.append(runner.submit(repo, "steps", dedupe_key="precompute:ticket:7").id)

    threads = [threading.Thread(target=submit, args=(runners[n % 2],)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(ids) == 6 and len(set(ids)) == 1
    assert runners[0].run_once()
    with store.repo(alpha) as repo:  # the job ran (or runs): the next message queues a fresh one
        again = runners[1].submit(repo, "steps", dedupe_key="precompute:ticket:7").id
    assert again != ids[0]


def test_retry_waits_while_an_equal_job_is_queued(services, store, alpha):
    runner = JobRunner(services, threads=0, kinds=stepping_kind(1))
    with store.repo(alpha) as repo:
        failed = repo.add(Job(kind="steps", params={}, status=JobStatus.failed, dedupe_key="k", error="boom"))
        repo.session.flush()
        queued = runner.submit(repo, "steps", dedupe_key="k")
        with pytest.raises(Conflict, match=f"job {queued.id} does the same work"):
            runner.retry(repo, failed.id)


# -- stopping a runner ------------------------------------------------------------------------------
def test_a_runner_stopping_hands_its_unfinished_job_to_another_at_once(services, store, alpha):
    arrived, go = threading.Event(), threading.Event()

    def pause(job, i):
        if i == 1 and job.attempt == 1:
            arrived.set()
            go.wait(30)

    kinds = stepping_kind(3, pause)
    stopping = JobRunner(services, threads=1, kinds=kinds)
    other = JobRunner(services, threads=0, kinds=kinds)
    with store.repo(alpha) as repo:
        job_id = stopping.submit(repo, "steps").id
    stopping.start()
    assert arrived.wait(30)
    stopping.shutdown(wait_s=0.2)  # its job is still running: handed back, not left to wait out a 60 s lease
    assert other.run_once()
    go.set()
    time.sleep(0.3)  # the stopped runner's thread tries its next step, and is fenced out
    row = job_row(store, job_id)
    assert (row.status, row.attempts, row.finished_by) == (JobStatus.succeeded, 2, other.owner)
    assert notes(store) == ["step 0", "step 1", "step 2"]


# -- API replicas are stateless ---------------------------------------------------------------------
def test_two_api_replicas_share_sessions_and_jobs(world):
    client, store, keys, _, app = world
    settings = app.state.services.settings.model_copy(update={"job_threads": 0})
    replica = create_app(services=Services(settings, store, fake=app.state.services.gateway.fake))
    app.state.services.jobs.shutdown()  # no runner in either replica: the job stays queued for the check
    with TestClient(replica) as other:
        token = CSRF.search(client.get("/login").text).group(1)
        login = client.post("/login", data={"api_key": keys[("alpha", "admin")], "csrf": token})
        assert login.status_code == 200 and "copilot_session" in client.cookies
        other.cookies.set("copilot_session", client.cookies.get("copilot_session"))
        page = other.get("/review", follow_redirects=False)
        assert page.status_code == 200  # a session started on one replica is served by the other

        submitted = client.post("/v1/admin/reindex", headers={"X-API-Key": keys[("alpha", "admin")]})
        job_id = submitted.json()["id"]
        seen = other.get(f"/v1/jobs/{job_id}", headers={"X-API-Key": keys[("alpha", "admin")]})
        assert seen.json()["status"] == "queued"
        cancelled = other.post(f"/v1/jobs/{job_id}/cancel", headers={"X-API-Key": keys[("alpha", "admin")]})
        assert cancelled.json()["status"] == "cancelled"

        csrf = CSRF.search(page.text).group(1)
        assert other.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
        assert client.get("/review", follow_redirects=False).status_code in (302, 303, 307)  # logged out everywhere


def pending_drafts(store, ticket_id: int, label: str) -> list[int]:
    with store.repo("alpha") as repo:
        rows = [
            repo.add(
                AiResult(
                    task="reply_draft",
                    status=AiStatus.pending,
                    subject_kind="ticket",
                    subject_id=ticket_id,
                    content={"result": {"text": f"Thanks for writing, we looked at it ({label}, draft {n})."}},
                )
            )
            for n in range(2)
        ]
        repo.session.flush()
        return [row.id for row in rows]


def approve_at_once(pairs: list[tuple[TestClient, int]], headers: dict) -> list[int]:
    barrier, codes = threading.Barrier(len(pairs)), []

    def approve(http: TestClient, result_id: int) -> None:
        barrier.wait()
        body = {"decision": "approve", "version": 1}
        codes.append(http.post(f"/v1/review/{result_id}/decision", headers=headers, json=body).status_code)

    threads = [threading.Thread(target=approve, args=pair) for pair in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return sorted(codes)


def test_two_reviewers_on_two_replicas_approving_sibling_drafts_get_one_409(world):
    """Approving a reply supersedes the ticket's other drafts: two approvals at once on one ticket take turns (the
    second is a 409), never a database deadlock (503)."""
    client, store, keys, tickets, app = world
    replica = create_app(services=Services(app.state.services.settings, store, fake=app.state.services.gateway.fake))
    headers = {"X-API-Key": keys[("alpha", "agent")]}
    with TestClient(replica) as other:
        for round_ in range(6):
            first, second = pending_drafts(store, tickets["alpha"], f"round {round_}")
            assert approve_at_once([(client, first), (other, second)], headers) == [200, 409]


# -- the schema --------------------------------------------------------------------------------------
def test_the_upgrade_keeps_the_oldest_of_two_queued_twins(settings):
    engine = make_engine(settings.resolved_database_url)
    settings.ensure_dirs()
    try:
        migrate(engine, "0011_sales_marketing")
        store = Store(engine)
        with store.session() as session:
            workspace = get_or_create_workspace(session, "alpha").id
        with engine.begin() as connection:  # the table as two processes left it before the unique index
            for _ in range(2):
                connection.execute(
                    Job.__table__.insert().values(
                        workspace_id=workspace, kind="reindex", params={}, status="queued", dedupe_key="k"
                    )
                )
        migrate(engine)
        with store.session() as session:
            statuses = list(session.scalars(select(Job.status).order_by(Job.id)))
        assert statuses == [JobStatus.queued, JobStatus.cancelled]
    finally:
        engine.dispose()


def test_processes_starting_together_migrate_one_at_a_time(settings):
    if not settings.database_url:
        pytest.skip("the migration lock is PostgreSQL's (one SQLite file has one writer anyway)")
    engines = [make_engine(settings.database_url) for _ in range(3)]
    errors: list[BaseException] = []

    def upgrade(engine):
        try:
            migrate(engine)
        except BaseException as error:  # collected, asserted below
            errors.append(error)

    threads = [threading.Thread(target=upgrade, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    try:
        assert errors == []
        with engines[0].connect() as connection:
            assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == SCHEMA_HEAD
    finally:
        for engine in engines:
            engine.dispose()


# -- `copilot worker` processes ----------------------------------------------------------------------
def start_worker(settings, log: Path, *args: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "COPILOT_DATA_DIR": str(settings.data_dir),
        "COPILOT_MODEL": "fake/echo",
        "COPILOT_JOB_LEASE_S": "3",
        "COPILOT_JOB_POLL_S": "0.2",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    if settings.database_url:
        env["COPILOT_DATABASE_URL"] = settings.database_url
    command = [sys.executable, "-m", "copilot.cli.main", "worker", *args]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_a_job_whose_worker_was_killed_completes_on_the_other_worker(settings, store, alpha, tmp_path):
    """Two worker processes; the one running a bulk job gets SIGKILL mid-job; the other resumes it after the lease
    and every item is saved exactly once."""
    items = rewrite_items(400)
    workers = [start_worker(settings, tmp_path / f"worker-{n}.log") for n in range(2)]
    try:
        with store.repo(alpha) as repo:
            job = repo.add(Job(kind="task_batch", params={"task": "tone_rewrite", "items": items}))
            repo.session.flush()
            job_id = job.id
        deadline = time.monotonic() + 180
        while (row := job_row(store, job_id)).done < 20:
            assert time.monotonic() < deadline, (tmp_path / "worker-0.log").read_text()[-2000:]
            time.sleep(0.05)
        assert row.status is JobStatus.running and row.done < len(items)
        killed = next(w for w in workers if f":{w.pid}:" in row.lease_owner)
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        survivor = next(w for w in workers if w is not killed)
        while job_row(store, job_id).status is JobStatus.running:
            assert time.monotonic() < deadline and survivor.poll() is None
            time.sleep(0.1)
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(60) == 0
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    row = job_row(store, job_id)
    assert (row.status, row.attempts, row.done) == (JobStatus.succeeded, 2, len(items))
    assert f":{survivor.pid}:" in row.finished_by
    with store.session() as session:
        originals = list(session.scalars(select(AiResult.content)))
    assert sorted(c["result"]["original"] for c in originals) == sorted(item["text"] for item in items)
    log = (tmp_path / f"worker-{workers.index(survivor)}.log").read_text()
    assert "stopped after 1 job(s)" in log


# -- how many model calls a bulk job keeps in flight -------------------------------------------------
@pytest.mark.parametrize(
    ("model", "caps", "expected"),
    [
        ("local/qwen2.5-coder-0.5b", {}, 1),  # one local model server answers one call at a time
        ("openai/gpt-4o-mini", {}, 4),
        ("gpt-4o-mini", {"openai": 16}, 16),  # litellm names the provider of a bare model name
        ("ollama/llama3", {"openai": 16}, 4),
        ("local/qwen2.5-coder-1.5b", {"local": 2}, 2),
    ],
)
def test_a_bulk_jobs_width_is_its_providers_cap(model, caps, expected):
    from copilot.batch import concurrency_for

    assert concurrency_for(Settings(model_concurrency=caps), model) == expected


def test_provider_caps_come_from_the_environment_and_must_be_positive(monkeypatch):
    monkeypatch.setenv("COPILOT_MODEL_CONCURRENCY", "openai=16, local=1")
    assert Settings().model_concurrency == {"openai": 16, "local": 1}
    monkeypatch.setenv("COPILOT_MODEL_CONCURRENCY", "openai=0")
    with pytest.raises(ValidationError, match="at least 1"):
        Settings()
