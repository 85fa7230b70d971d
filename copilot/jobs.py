"""Background jobs: long work (reindexing, bulk task runs, NPS themes, precompute) with persisted progress.

A job row is the source of truth, and jobs are claimed from the table by any runner on the database: ``copilot
serve`` runs ``COPILOT_JOB_THREADS`` runner threads (1 by default; 0 when workers run the jobs), and any number of
``copilot worker`` processes, on any host, claim from the same table when it lives on PostgreSQL (rows are locked
with ``FOR UPDATE SKIP LOCKED``, so two runners never wait on each other). On the embedded SQLite default the API
process's runner is the whole queue.

A claim is a lease of ``COPILOT_JOB_LEASE_S``: the runner heartbeats while it works; a job whose runner died (its
lease expired) is claimed again and resumes (handlers are written to pick up where they stopped), at most
``MAX_ATTEMPTS`` times. Every claim is a new attempt, and the attempt number fences the old runner out: progress,
the steps of a handler and the job's end are recorded only while ``(lease_owner, attempts)`` is still the runner's
own, so a runner that lost its lease (a long pause, a partition) can neither overwrite the new owner's result nor
commit work twice. A handler that does its work in ``job.step()`` transactions gets exactly-once effects: each step
commits together with the job's progress, or not at all.

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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import ColumnElement, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from copilot.auth import Permission
from copilot.errors import BudgetExceeded, Conflict, CopilotError, InvalidInput, ModelError, NotFound
from copilot.store import Repo
from copilot.store.models import Job, JobStatus

if TYPE_CHECKING:
    from copilot.services import Services
    from copilot.tasks.base import TaskOutcome

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # claims of one job (first run plus resumptions after a dead runner)
ACTIVE = (JobStatus.queued, JobStatus.running)
QUEUED_WITH_KEY = "status = 'queued' AND dedupe_key IS NOT NULL"  # the partial unique index uq_jobs_queued_dedupe


class JobCancelled(CopilotError):
    """Raised inside a handler (at its next progress report or step) once someone cancelled its job."""


class LeaseLost(CopilotError):
    """Raised inside a handler whose runner no longer holds the job (another runner claimed it after the lease)."""


class Claim(NamedTuple):
    job_id: int
    workspace: str
    kind: str
    params: dict[str, Any]
    attempt: int = 1


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class JobContext:
    """What a job handler gets: the services, where to work, its parameters, a progress reporter and steps."""

    services: Services
    workspace: str
    params: dict[str, Any]
    job_id: int
    owner: str
    attempt: int = 1
    lease_s: float = 60.0
    _last_report: float = field(default=0.0, repr=False)

    def held(self) -> ColumnElement[bool]:
        """The condition "this runner still holds this job" (the fence every write of the job goes through)."""
        return (
            (Job.id == self.job_id)
            & (Job.lease_owner == self.owner)
            & (Job.attempts == self.attempt)
            & (Job.status == JobStatus.running)
        )

    def done_before(self) -> int:
        """The progress recorded so far: where a resumed job picks up (0 on a first run)."""
        with self.services.store.session() as session:
            return session.scalar(select(Job.done).where(Job.id == self.job_id)) or 0

    def progress(self, done: int, total: int | None = None, *, force: bool = False) -> None:
        """Persist progress (at most a few times a second); raises JobCancelled once the job was cancelled and
        LeaseLost once another runner took the job over."""
        now = time.monotonic()
        if not force and now - self._last_report < 0.25:
            return
        self._last_report = now
        values: dict[str, Any] = {"done": done}
        if total is not None:
            values["total"] = total
        with self.services.store.session() as session:
            cancelled = self._record(session, values)
        if cancelled:
            raise JobCancelled(f"job {self.job_id} was cancelled")

    @contextmanager
    def step(self, done: int | ColumnElement[int] | None = None) -> Iterator[Repo]:
        """One unit of the job's work in its own workspace transaction, committed together with the job's progress
        (``done``, when given: a count, or an expression such as ``Job.done + 1``) and a renewed lease, or rolled
        back with LeaseLost when this runner no longer holds the job: a step is never committed twice, whichever
        runner resumes the job."""
        with self.services.store.repo(self.workspace) as repo:
            yield repo
            cancelled = self._record(repo.session, {} if done is None else {"done": done})
        if cancelled:
            raise JobCancelled(f"job {self.job_id} was cancelled")

    def _record(self, session: Session, values: dict[str, Any]) -> bool:
        """Write ``values`` and a renewed lease under the fence; True when someone asked to cancel the job."""
        lease = _utcnow() + timedelta(seconds=self.lease_s)
        with session.no_autoflush:  # the step's pending rows are written only once the fence held
            changed = session.execute(
                update(Job)
                .where(self.held())
                .values(**values, lease_expires_at=lease)
                .execution_options(synchronize_session=False)
            ).rowcount
        if not changed:
            raise LeaseLost(f"job {self.job_id}: this runner no longer holds it (attempt {self.attempt})")
        return bool(session.scalar(select(Job.cancel_requested).where(Job.id == self.job_id)))


Handler = Callable[[JobContext], dict[str, Any]]
Mark = Callable[[Repo, int | None, str | None], None]
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


def runner_name() -> str:
    """``host:pid:random``: unique per runner, and names the process that holds a lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobRunner:
    """Claims and runs jobs from the table: ``threads`` worker threads in this process (default
    ``COPILOT_JOB_THREADS``), leases of ``COPILOT_JOB_LEASE_S``, an idle look every ``COPILOT_JOB_POLL_S``."""

    def __init__(
        self,
        services: Services,
        *,
        threads: int | None = None,
        poll_s: float | None = None,
        kinds: Mapping[str, JobKind] | None = None,
        limit: int | None = None,
    ) -> None:
        from copilot.tasks import registry

        registry.load()  # task modules declare their job kinds too
        settings = services.settings
        self.services = services
        self.kinds = kinds if kinds is not None else KINDS
        self.threads = settings.job_threads if threads is None else threads
        self.poll_s = settings.job_poll_s if poll_s is None else poll_s
        self.lease_s = settings.job_lease_s
        self.limit = limit  # claims this runner makes at most (a worker started with --max-jobs); None: no limit
        self.owner = runner_name()
        self.claims = self.finished = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._running: dict[int, int] = {}  # job id -> attempt
        self._done = threading.Condition()
        self._lock = threading.Lock()
        self._found_nothing = False  # the last claim found no job (and none ran since)

    @property
    def store(self):  # noqa: ANN201 - copilot.store.Store
        return self.services.store

    # -- submitting ------------------------------------------------------------------------------
    def submit(
        self, repo: Repo, kind: str, params: dict[str, Any] | None = None, *, dedupe_key: str | None = None
    ) -> Job:
        """Queue a job in the repo's workspace; it runs once the caller's transaction commits.

        With ``dedupe_key``, a job with that key already queued (not yet running) is returned instead of a new one;
        the database holds one queued job per key, so two API replicas submitting at once still make one job.
        """
        if kind not in self.kinds:
            raise InvalidInput(f"kind: unknown job kind '{kind}' (one of: {', '.join(sorted(self.kinds))})")
        if dedupe_key is None:
            job = repo.add(Job(kind=kind, params=params or {}, status=JobStatus.queued))
            repo.session.flush()
            return job
        for _ in range(5):  # a queued twin may start running between the insert and the look-up: look again
            if (job_id := _insert_unless_queued(repo, kind, params or {}, dedupe_key)) is not None:
                return repo.session.get(Job, job_id)
            queued = repo.session.scalar(
                repo.select(Job).where(Job.dedupe_key == dedupe_key, Job.status == JobStatus.queued).limit(1)
            )
            if queued is not None:
                return queued
        raise Conflict(f"job '{dedupe_key}' keeps changing state; try again")

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
        if job.dedupe_key is not None:
            twin = repo.session.scalar(
                repo.select(Job).where(Job.dedupe_key == job.dedupe_key, Job.status == JobStatus.queued).limit(1)
            )
            if twin is not None:
                raise Conflict(f"job {twin.id} does the same work and is already queued")
        try:
            with repo.session.begin_nested():
                changed = repo.session.execute(
                    update(Job)
                    .where(Job.id == job.id, Job.status == job.status)
                    .values(
                        status=JobStatus.queued,
                        error=None,
                        finished_at=None,
                        finished_by=None,
                        lease_owner=None,
                        lease_expires_at=None,
                        attempts=0,
                        cancel_requested=False,
                    )
                    .execution_options(synchronize_session=False)
                ).rowcount
        except IntegrityError:  # an equal job was queued at this very moment (one queued job per key)
            raise Conflict(f"a job doing the same work as job {job_id} was just queued") from None
        if not changed:
            raise Conflict(f"job {job_id} changed meanwhile; reload it")
        repo.session.refresh(job)
        return job

    def cancel(self, repo: Repo, job_id: int) -> Job:
        """Cancel a queued job at once, a running one at its next progress report (whichever runner holds it)."""
        job = get_job(repo, job_id)
        if job.status not in ACTIVE:
            raise Conflict(f"job {job_id} is {job.status.value}: nothing to cancel")
        stopped = repo.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.queued)
            .values(status=JobStatus.cancelled, finished_at=_utcnow(), error="cancelled before it started")
            .execution_options(synchronize_session=False)
        ).rowcount
        if not stopped:  # a runner claimed it meanwhile, or it was running already
            repo.session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == JobStatus.running)
                .values(cancel_requested=True)
                .execution_options(synchronize_session=False)
            )
        repo.session.refresh(job)
        return job

    # -- running ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                claimed = self.claim()
                if claimed is not None:
                    self.run_claimed(*claimed)
                    continue
            except Exception:  # a database hiccup must not kill the worker thread
                log.exception("job runner: claiming or recording a job failed")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def run_once(self) -> bool:
        """Claim and run one job in this thread (workers and tests); False when none was waiting."""
        claimed = self.claim()
        if claimed is None:
            return False
        self.run_claimed(*claimed)
        return True

    def claim(self) -> Claim | None:
        """Take the next job (queued, or running under an expired lease), fairly across workspaces."""
        with self._lock:
            if self.limit is not None and self.claims >= self.limit:
                return None
            self.claims += 1
        claimed = None
        try:
            claimed = self._claim()
        finally:
            with self._lock:
                if claimed is None:
                    self.claims -= 1
                self._found_nothing = claimed is None and not self._running
        return claimed

    def _claim(self) -> Claim | None:
        from copilot.store.models import Workspace

        now = _utcnow()
        with self.store.session() as session:
            claimable = _claimable(now)
            candidates = session.execute(
                select(Job.id, Job.workspace_id, Job.attempts)
                .where(claimable, Job.kind.in_(list(self.kinds)))
                .order_by(Job.id)
                .limit(50)
            ).all()
            if not candidates:
                return None
            busy = dict(
                session.execute(
                    select(Job.workspace_id, func.count())
                    .where(Job.status == JobStatus.running, Job.lease_expires_at >= now)
                    .group_by(Job.workspace_id)
                ).all()
            )
            for job_id, workspace_id, attempts in sorted(candidates, key=lambda c: (busy.get(c[1], 0), c[0])):
                if not _lock_row(session, job_id, claimable):
                    continue  # another runner is claiming it right now
                if attempts >= MAX_ATTEMPTS:
                    _give_up(session, job_id, attempts, claimable)
                    continue
                job = self._take(session, job_id, now)
                if job is not None:
                    slug = session.scalar(select(Workspace.slug).where(Workspace.id == workspace_id))
                    log.info("job %s (%s, %s): claimed, attempt %s", job.id, job.kind, slug, job.attempts)
                    return Claim(job.id, slug, job.kind, dict(job.params), job.attempts)
            return None

    def _take(self, session: Session, job_id: int, now: datetime) -> Job | None:
        taken = session.execute(
            update(Job)
            .where(Job.id == job_id, _claimable(now))
            .values(
                status=JobStatus.running,
                lease_owner=self.owner,
                lease_expires_at=now + timedelta(seconds=self.lease_s),
                attempts=Job.attempts + 1,
                started_at=func.coalesce(Job.started_at, now),
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        return session.get(Job, job_id, populate_existing=True) if taken else None

    def run_claimed(
        self, job_id: int, workspace: str, kind: str, params: dict[str, Any], attempt: int | None = None
    ) -> None:
        attempt = attempt if attempt is not None else self._attempt_of(job_id)
        context = JobContext(self.services, workspace, params, job_id, self.owner, attempt, self.lease_s)
        with self._done:
            self._running[job_id] = attempt
        heartbeat = threading.Thread(target=self._heartbeat, args=(context,), daemon=True)
        heartbeat.start()
        started = time.monotonic()
        try:
            result = self.kinds[kind].handler(context)
        except LeaseLost as error:
            log.warning("job %s (%s): %s; its new owner finishes it", job_id, kind, error)
        except JobCancelled as error:
            self._finish(context, JobStatus.cancelled, error=str(error))
        except Exception as error:  # a job must end failed with a message, whatever went wrong
            message = str(error) if isinstance(error, CopilotError) else f"{type(error).__name__}: {error}"
            log.warning("job %s (%s) failed: %s", job_id, kind, message)
            self._finish(context, JobStatus.failed, error=message[:2000])
        else:
            self._finish(context, JobStatus.succeeded, result=result)
            log.info("job %s (%s): succeeded in %.1f s", job_id, kind, time.monotonic() - started)
        finally:
            with self._done:
                self._running.pop(job_id, None)
                self.finished += 1
                self._done.notify_all()

    def _attempt_of(self, job_id: int) -> int:
        with self.store.session() as session:
            return session.scalar(select(Job.attempts).where(Job.id == job_id)) or 1

    def _heartbeat(self, context: JobContext) -> None:
        while True:
            with self._done:
                self._done.wait(self.lease_s / 3)
                if self._running.get(context.job_id) != context.attempt:
                    return
            try:
                with self.store.session() as session:
                    renewed = session.execute(
                        update(Job)
                        .where(context.held())
                        .values(lease_expires_at=_utcnow() + timedelta(seconds=self.lease_s))
                        .execution_options(synchronize_session=False)
                    ).rowcount
                if not renewed:
                    log.warning("job %s: lease lost (another runner claimed it); heartbeat stopped", context.job_id)
                    return
            except Exception:
                log.exception("job %s heartbeat failed", context.job_id)

    def _finish(
        self, context: JobContext, status: JobStatus, *, result: dict[str, Any] | None = None, error: str | None = None
    ) -> None:
        values: dict[str, Any] = {
            "status": status,
            "result": result,
            "error": error,
            "finished_at": _utcnow(),
            "finished_by": self.owner,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if status is JobStatus.succeeded:
            values["done"] = func.coalesce(Job.total, Job.done)
        with self.store.session() as session:
            recorded = session.execute(
                update(Job).where(context.held()).values(**values).execution_options(synchronize_session=False)
            ).rowcount
        if not recorded:
            log.warning("job %s: lease lost; not recording this run's end (%s)", context.job_id, status.value)

    def idle(self) -> bool:
        """No job runs in this runner, and the last look found none waiting."""
        with self._done:
            return not self._running and self._found_nothing

    def running(self) -> list[int]:
        with self._done:
            return list(self._running)

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
        """Stop claiming; give running jobs ``wait_s`` to finish, then hand the unfinished ones back (their leases
        end now, so another runner resumes them at once instead of after the lease)."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + wait_s
        for worker in self._workers:
            if worker is not threading.current_thread():
                worker.join(max(0.0, deadline - time.monotonic()))
        self.release()

    def release(self) -> list[int]:
        """End the leases of the jobs still running here (they resume elsewhere; this runner's later writes to
        them are fenced out). Returns their ids."""
        with self._done:
            held = dict(self._running)
        released = []
        for job_id, attempt in held.items():
            context = JobContext(self.services, "", {}, job_id, self.owner, attempt, self.lease_s)
            try:
                with self.store.session() as session:
                    if session.execute(
                        update(Job)
                        .where(context.held())
                        .values(lease_expires_at=_utcnow() - timedelta(seconds=1))
                        .execution_options(synchronize_session=False)
                    ).rowcount:
                        released.append(job_id)
            except Exception:  # the lease then simply runs out
                log.exception("job %s: could not hand it back", job_id)
        if released:
            log.warning("jobs %s handed back unfinished: another runner resumes them", released)
        return released


def _claimable(now: datetime) -> ColumnElement[bool]:
    return or_(Job.status == JobStatus.queued, (Job.status == JobStatus.running) & (Job.lease_expires_at < now))


def _lock_row(session: Session, job_id: int, claimable: ColumnElement[bool]) -> bool:
    """On PostgreSQL, lock the row unless another runner holds it (it is skipped, not waited for)."""
    if session.bind.dialect.name != "postgresql":
        return True  # SQLite serialises writers; the conditional update decides
    query = select(Job.id).where(Job.id == job_id, claimable).with_for_update(skip_locked=True)
    return session.scalar(query) is not None


def _give_up(session: Session, job_id: int, attempts: int, claimable: ColumnElement[bool]) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id, claimable)
        .values(
            status=JobStatus.failed,
            finished_at=_utcnow(),
            lease_owner=None,
            error=f"interrupted {attempts} times (its worker stopped each time); retry it to run it again",
        )
        .execution_options(synchronize_session=False)
    )


def _insert_unless_queued(repo: Repo, kind: str, params: dict[str, Any], dedupe_key: str) -> int | None:
    """Insert a queued job unless one with the key is queued already (then None), in one statement."""
    dialect = repo.session.bind.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # no ON CONFLICT: the unique index still refuses a twin (as an error)
        job = repo.add(Job(kind=kind, params=params, status=JobStatus.queued, dedupe_key=dedupe_key))
        repo.session.flush()
        return job.id
    now = _utcnow()
    statement = (
        insert(Job)
        .values(
            workspace_id=repo.workspace_id,
            kind=kind,
            params=params,
            status=JobStatus.queued,
            dedupe_key=dedupe_key,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["workspace_id", "dedupe_key"], index_where=text(QUEUED_WITH_KEY))
        .returning(Job.id)
    )
    return repo.session.execute(statement).scalar()


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
    outcome = run_fenced(
        job, job.params["task"], job.params.get("params", {}), progress=lambda done, total: job.progress(done, total)
    )
    return {
        "ai_result_id": outcome.ai_result_id,
        "status": outcome.status.value if outcome.status else None,
        "used_fallback": outcome.used_fallback,
        **summary_of(outcome.result),
    }


def run_fenced(
    job: JobContext,
    task: str,
    params: Mapping[str, Any],
    *,
    done: int | ColumnElement[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    mark: Mark | None = None,
) -> TaskOutcome[Any]:
    """``run_in_workspace`` as a step of the job: the task's result commits together with the job's progress
    (``done``) under the job's lease, so a job resumed by another runner never saves it twice. A task that fails
    counts as done too (a model failure leaves its ``failed`` result), then its error is raised. ``mark(repo,
    ai_result_id, error)`` adds what else commits with the step (a bulk job's item row)."""
    from copilot.tasks.runner import record_task_failure

    try:
        with job.step(done) as repo:
            outcome = job.services.run_task(repo, task, params, progress=progress)
            if mark is not None:
                mark(repo, outcome.ai_result_id, None)
            return outcome
    except (LeaseLost, JobCancelled):
        raise
    except CopilotError as error:
        with job.step(done) as repo:
            if isinstance(error, ModelError) and not isinstance(error, BudgetExceeded):
                record_task_failure(repo, task, params, str(error))
            if mark is not None:
                mark(repo, None, str(error))
        raise


def summary_of(result: Any) -> dict[str, Any]:
    """A few figures of a task result worth showing on its job (what ``job_summary()`` returns, when defined)."""
    summary = getattr(result, "job_summary", None)
    return summary() if callable(summary) else {}


@job_kind("task_batch", _task_permission)
def run_task_batch(job: JobContext) -> dict[str, Any]:
    """A registered task over many subjects (``copilot.batch``: items in parallel, each in its own step)."""
    from copilot.batch import run_batch

    return run_batch(job)
