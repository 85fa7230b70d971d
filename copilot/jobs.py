"""Background jobs: long work (reindexing, bulk task runs, NPS themes, precompute) with persisted progress.

A job row is the source of truth, and jobs are claimed from the table by any runner on the database: the API
process runs one (a worker thread), and ``copilot worker`` processes run more. A claim is a lease: the runner
heartbeats while it works; a job whose runner died (its lease expired) is claimed again and resumes (handlers are
written to pick up where they stopped), and nothing else marks a live runner's job as interrupted. Finishing is
conditional on still holding the lease, so a runner that lost its lease never overwrites the new owner's result.

Kinds are declared once with ``@job_kind(name, permission)`` next to their handler; running a registered task in
the background is the generic ``task`` kind (one run) or ``task_batch`` (many subjects).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select, update

from copilot.auth import Permission
from copilot.errors import Conflict, CopilotError, InvalidInput, NotFound
from copilot.store import Repo
from copilot.store.models import Job, JobStatus

if TYPE_CHECKING:
    from copilot.services import Services

log = logging.getLogger(__name__)

LEASE_S = 60.0  # a runner that has not heartbeaten for this long is taken as dead
MAX_ATTEMPTS = 3  # claims of one job (first run plus resumptions after a dead runner)
ACTIVE = (JobStatus.queued, JobStatus.running)


class JobCancelled(CopilotError):
    """Raised inside a handler (at its next progress report) once someone cancelled its job."""


@dataclass
class JobContext:
    """What a job handler gets: the services, where to work, its parameters, and a progress reporter."""

    services: Services
    workspace: str
    params: dict[str, Any]
    job_id: int
    owner: str
    _last_report: float = field(default=0.0, repr=False)

    def progress(self, done: int, total: int | None = None, *, force: bool = False) -> None:
        """Persist progress (at most a few times a second); raises JobCancelled once the job was cancelled."""
        now = time.monotonic()
        if not force and now - self._last_report < 0.25:
            return
        self._last_report = now
        values: dict[str, Any] = {"done": done}
        if total is not None:
            values["total"] = total
        with self.services.store.session() as session:
            session.execute(update(Job).where(Job.id == self.job_id, Job.lease_owner == self.owner).values(**values))
            if session.scalar(select(Job.cancel_requested).where(Job.id == self.job_id)):
                raise JobCancelled(f"job {self.job_id} was cancelled")


Handler = Callable[[JobContext], dict[str, Any]]
PermissionFor = Callable[[Mapping[str, Any]], Permission]


@dataclass(frozen=True)
class JobKind:
    name: str
    handler: Handler
    permission: Permission | PermissionFor  # who may submit and see it (a function of the params for task jobs)

    def permission_for(self, params: Mapping[str, Any]) -> Permission:
        return self.permission(params) if callable(self.permission) else self.permission


KINDS: dict[str, JobKind] = {}


def job_kind(name: str, permission: Permission | PermissionFor) -> Callable[[Handler], Handler]:
    """Declare a job kind: its handler and who may run it."""

    def register(handler: Handler) -> Handler:
        KINDS[name] = JobKind(name, handler, permission)
        return handler

    return register


def job_permission(kind: str, params: Mapping[str, Any]) -> Permission:
    entry = KINDS.get(kind)
    return entry.permission_for(params) if entry else Permission.manage


def _utcnow() -> datetime:
    return datetime.now(UTC)


class JobRunner:
    """Claims and runs jobs from the table: ``threads`` worker threads in this process."""

    def __init__(
        self, services: Services, *, threads: int = 1, poll_s: float = 1.0, kinds: Mapping[str, JobKind] | None = None
    ) -> None:
        from copilot.tasks import registry

        registry.load()  # task modules declare their job kinds too
        self.services = services
        self.kinds = kinds if kinds is not None else KINDS
        self.threads, self.poll_s = threads, poll_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._running: set[int] = set()
        self._done = threading.Condition()
        self._lock = threading.Lock()

    @property
    def store(self):  # noqa: ANN201 - copilot.store.Store
        return self.services.store

    # -- submitting ------------------------------------------------------------------------------
    def submit(
        self, repo: Repo, kind: str, params: dict[str, Any] | None = None, *, dedupe_key: str | None = None
    ) -> Job:
        """Queue a job in the repo's workspace; it runs once the caller's transaction commits.

        With ``dedupe_key``, a job with that key already queued (not yet running) is returned instead of a new one.
        """
        if kind not in self.kinds:
            raise InvalidInput(f"kind: unknown job kind '{kind}' (one of: {', '.join(sorted(self.kinds))})")
        if dedupe_key is not None:
            queued = repo.session.scalar(
                repo.select(Job).where(Job.dedupe_key == dedupe_key, Job.status == JobStatus.queued).limit(1)
            )
            if queued is not None:
                return queued
        job = repo.add(Job(kind=kind, params=params or {}, status=JobStatus.queued, dedupe_key=dedupe_key))
        repo.session.flush()
        return job

    def start(self, _job_id: int | None = None, _workspace: str | None = None) -> None:
        """Make sure the worker threads run, and wake one (call after the submitting transaction committed)."""
        with self._lock:
            self._workers = [w for w in self._workers if w.is_alive()]
            while len(self._workers) < self.threads and not self._stop.is_set():
                worker = threading.Thread(target=self._loop, name=f"copilot-job-{len(self._workers)}", daemon=True)
                worker.start()
                self._workers.append(worker)
        self._wake.set()

    def retry(self, repo: Repo, job_id: int) -> Job:
        """Queue a failed or cancelled job again, in place (one row: retrying twice never makes two runs)."""
        job = get_job(repo, job_id)
        if job.status in ACTIVE:
            raise Conflict(f"job {job_id} is {job.status.value}: wait for it to finish (or cancel it) before a retry")
        if job.status is JobStatus.succeeded:
            raise Conflict(f"job {job_id} succeeded: its work is done; submit a new job to run it again")
        changed = repo.session.execute(
            update(Job)
            .where(Job.id == job.id, Job.status == job.status)
            .values(
                status=JobStatus.queued,
                error=None,
                finished_at=None,
                lease_owner=None,
                lease_expires_at=None,
                attempts=0,
                cancel_requested=False,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        if not changed:
            raise Conflict(f"job {job_id} changed meanwhile; reload it")
        repo.session.refresh(job)
        return job

    def cancel(self, repo: Repo, job_id: int) -> Job:
        """Cancel a queued job at once, a running one at its next progress report."""
        job = get_job(repo, job_id)
        if job.status is JobStatus.queued:
            job.status, job.finished_at, job.error = JobStatus.cancelled, _utcnow(), "cancelled before it started"
        elif job.status is JobStatus.running:
            job.cancel_requested = True
        else:
            raise Conflict(f"job {job_id} is {job.status.value}: nothing to cancel")
        repo.session.flush()
        return job

    # -- running ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                claimed = self.claim()
            except Exception:  # a database hiccup must not kill the worker thread
                log.exception("job claim failed")
                claimed = None
            if claimed is None:
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            self.run_claimed(*claimed)

    def run_once(self) -> bool:
        """Claim and run one job in this thread (workers and tests); False when none was waiting."""
        claimed = self.claim()
        if claimed is None:
            return False
        self.run_claimed(*claimed)
        return True

    def claim(self) -> tuple[int, str, str, dict[str, Any]] | None:
        """Take the next job (queued, or running under an expired lease), fairly across workspaces."""
        from copilot.store.models import Workspace

        now = _utcnow()
        with self.store.session() as session:
            claimable = or_(
                Job.status == JobStatus.queued, (Job.status == JobStatus.running) & (Job.lease_expires_at < now)
            )
            query = select(Job.id, Job.workspace_id, Job.attempts).where(claimable, Job.kind.in_(list(self.kinds)))
            query = query.order_by(Job.id).limit(50)
            if session.bind.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            candidates = session.execute(query).all()
            if not candidates:
                return None
            busy = dict(
                session.execute(
                    select(Job.workspace_id, func.count())
                    .where(Job.status == JobStatus.running, Job.lease_expires_at >= now)
                    .group_by(Job.workspace_id)
                ).all()
            )
            job_id, workspace_id, attempts = min(candidates, key=lambda c: (busy.get(c.workspace_id, 0), c.id))
            if attempts >= MAX_ATTEMPTS:
                self._give_up(session, job_id, attempts)
                return None
            claimed = session.execute(
                update(Job)
                .where(Job.id == job_id, claimable)
                .values(
                    status=JobStatus.running,
                    lease_owner=self.owner,
                    lease_expires_at=now + timedelta(seconds=LEASE_S),
                    attempts=Job.attempts + 1,
                    started_at=func.coalesce(Job.started_at, now),
                )
                .execution_options(synchronize_session=False)
            ).rowcount
            if not claimed:
                return None
            job = session.get(Job, job_id)
            slug = session.scalar(select(Workspace.slug).where(Workspace.id == workspace_id))
            return job.id, slug, job.kind, dict(job.params)

    def _give_up(self, session: Any, job_id: int, attempts: int) -> None:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                status=JobStatus.failed,
                finished_at=_utcnow(),
                lease_owner=None,
                error=f"interrupted {attempts} times (its worker stopped each time); retry it to run it again",
            )
        )

    def run_claimed(self, job_id: int, workspace: str, kind: str, params: dict[str, Any]) -> None:
        context = JobContext(self.services, workspace, params, job_id, self.owner)
        with self._done:
            self._running.add(job_id)
        heartbeat = threading.Thread(target=self._heartbeat, args=(job_id,), daemon=True)
        heartbeat.start()
        try:
            result = self.kinds[kind].handler(context)
        except JobCancelled as error:
            self._finish(job_id, JobStatus.cancelled, error=str(error))
        except Exception as error:  # a job must end failed with a message, whatever went wrong
            message = str(error) if isinstance(error, CopilotError) else f"{type(error).__name__}: {error}"
            log.warning("job %s (%s) failed: %s", job_id, kind, message)
            self._finish(job_id, JobStatus.failed, error=message[:2000])
        else:
            self._finish(job_id, JobStatus.succeeded, result=result)
        finally:
            with self._done:
                self._running.discard(job_id)
                self._done.notify_all()

    def _heartbeat(self, job_id: int) -> None:
        while True:
            with self._done:
                if job_id not in self._running:
                    return
                self._done.wait(LEASE_S / 3)
                if job_id not in self._running:
                    return
            try:
                with self.store.session() as session:
                    session.execute(
                        update(Job)
                        .where(Job.id == job_id, Job.lease_owner == self.owner)
                        .values(lease_expires_at=_utcnow() + timedelta(seconds=LEASE_S))
                    )
            except Exception:
                log.exception("job %s heartbeat failed", job_id)

    def _finish(
        self, job_id: int, status: JobStatus, *, result: dict[str, Any] | None = None, error: str | None = None
    ) -> None:
        with self.store.session() as session:
            job = session.get(Job, job_id)
            if job is None or job.lease_owner != self.owner:
                log.warning("job %s: lease lost to %s; not recording this run's end", job_id, job and job.lease_owner)
                return
            job.status, job.result, job.error, job.finished_at = status, result, error, _utcnow()
            job.lease_owner, job.lease_expires_at = None, None
            if status is JobStatus.succeeded and job.total is not None:
                job.done = job.total

    def wait(self, job_id: int, timeout: float | None = None) -> None:
        """Block until the job has finished (any runner)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self.store.session() as session:
                status = session.scalar(select(Job.status).where(Job.id == job_id))
            if status not in ACTIVE:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {status.value} after {timeout} s")
            self._wake.set()
            time.sleep(0.05)

    def shutdown(self, wait_s: float = 5.0) -> None:
        """Stop claiming; give running jobs ``wait_s`` to finish (an unfinished one resumes after its lease)."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + wait_s
        for worker in self._workers:
            if worker is not threading.current_thread():
                worker.join(max(0.0, deadline - time.monotonic()))


def list_jobs(repo: Repo, *, kind: str | None = None, offset: int = 0, limit: int = 50) -> list[Job]:
    query = repo.select(Job)
    if kind:
        query = query.where(Job.kind == kind)
    return repo.all(query.order_by(Job.id.desc()).offset(offset).limit(limit))


def get_job(repo: Repo, job_id: int) -> Job:
    job = repo.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id} in workspace '{repo.workspace.slug}'")
    return job


# -- the job kinds --------------------------------------------------------------------------------
@job_kind("reindex", Permission.manage)
def reindex(job: JobContext) -> dict[str, Any]:
    """Index the workspace for search, resuming where a previous run stopped (unless ``rebuild``)."""
    history = job.services.index
    with job.services.store.repo(job.workspace) as repo:
        total = history.count_records(repo)
        job.progress(0, total, force=True)
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            job.progress(done, total)

        written = history.rebuild(repo, resume=not job.params.get("rebuild", False), progress=advance)
    return {"records_reindexed": written, "records": total}


def _task_permission(params: Mapping[str, Any]) -> Permission:
    from copilot.tasks import registry

    return registry.tasks()[params["task"]].permission if params.get("task") in registry.tasks() else Permission.manage


@job_kind("task", _task_permission)
def run_task_job(job: JobContext) -> dict[str, Any]:
    """One run of a registered task in the background (e.g. NPS themes over a year of comments)."""
    outcome = job.services.run_in_workspace(
        job.workspace,
        job.params["task"],
        job.params.get("params", {}),
        progress=lambda done, total: job.progress(done, total),
    )
    return {
        "ai_result_id": outcome.ai_result_id,
        "status": outcome.status.value if outcome.status else None,
        "used_fallback": outcome.used_fallback,
        **summary_of(outcome.result),
    }


def summary_of(result: Any) -> dict[str, Any]:
    """A few figures of a task result worth showing on its job (what ``job_summary()`` returns, when defined)."""
    summary = getattr(result, "job_summary", None)
    return summary() if callable(summary) else {}


@job_kind("task_batch", _task_permission)
def run_task_batch(job: JobContext) -> dict[str, Any]:
    """A registered task over many subjects, each in its own transaction; resumes after the last one done."""
    task, items = job.params["task"], job.params["items"]
    with job.services.store.session() as session:
        already = session.scalar(select(Job.done).where(Job.id == job.job_id)) or 0  # a resumed run skips those
    done_ids: list[int | None] = []
    failed: list[dict[str, Any]] = []
    job.progress(already, len(items), force=True)
    for n, item in enumerate(items[already:], already + 1):
        try:
            outcome = job.services.run_in_workspace(job.workspace, task, item)
            done_ids.append(outcome.ai_result_id)
        except CopilotError as error:
            failed.append({"params": item, "error": str(error)})
        job.progress(n, len(items))
    return {"ai_result_ids": done_ids, "failed": failed, "skipped_as_done_before": already}
