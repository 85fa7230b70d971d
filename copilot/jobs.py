"""Background jobs: long work (reindexing, bulk summaries, NPS themes) with persisted progress and results.

A job row is the source of truth: its status, progress and result survive a restart. Work runs on
one worker thread per process; a restart marks jobs that were queued or running as failed with a
note, and ``retry`` submits them again (reindexing resumes where it stopped).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update

from copilot.errors import CopilotError, InvalidInput, NotFound
from copilot.settings import Settings
from copilot.store import Repo, Store
from copilot.store.models import Job, JobStatus

INTERRUPTED = "interrupted by a service restart; retry it to run it again"


@dataclass
class JobContext:
    """What a job handler gets: where to work, its parameters, and a progress reporter."""

    store: Store
    settings: Settings
    workspace: str
    params: dict[str, Any]
    job_id: int
    _last_report: float = field(default=0.0, repr=False)

    def progress(self, done: int, total: int | None = None, *, force: bool = False) -> None:
        """Persist progress, at most a few times a second."""
        now = time.monotonic()
        if not force and now - self._last_report < 0.25:
            return
        self._last_report = now
        values: dict[str, Any] = {"done": done}
        if total is not None:
            values["total"] = total
        with self.store.session() as session:
            session.execute(update(Job).where(Job.id == self.job_id).values(**values))


Handler = Callable[[JobContext], dict[str, Any]]


def _reindex(job: JobContext) -> dict[str, Any]:
    from retrieval import open_index

    history = open_index(job.settings)
    with job.store.repo(job.workspace) as repo:
        total = history.count_records(repo)
        job.progress(0, total, force=True)
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            job.progress(done, total)

        written = history.rebuild(repo, resume=not job.params.get("rebuild", False), progress=advance)
    return {"records_reindexed": written, "records": total}


def _bulk_ticket_summaries(job: JobContext) -> dict[str, Any]:
    from copilot.gateway import Gateway
    from copilot.tasks.context import TaskContext
    from copilot.tasks.ticket_summary import summarize_ticket

    ids = [int(i) for i in job.params.get("ticket_ids", [])]
    job.progress(0, len(ids), force=True)
    gateway, summarised, failed = Gateway(job.settings), [], []
    for n, ticket_id in enumerate(ids, 1):
        try:
            with job.store.repo(job.workspace) as repo:
                outcome = summarize_ticket(TaskContext(job.settings, repo, gateway), ticket_id)
            summarised.append(outcome.ai_result_id)
        except CopilotError as error:
            failed.append({"ticket_id": ticket_id, "error": str(error)})
        job.progress(n, len(ids))
    return {"ai_result_ids": summarised, "failed": failed}


def _nps_themes(job: JobContext) -> dict[str, Any]:
    from copilot.gateway import Gateway
    from copilot.tasks.context import TaskContext
    from copilot.tasks.nps_themes import ThemeFilters, run_themes

    params = job.params
    with job.store.repo(job.workspace) as repo:
        outcome = run_themes(
            TaskContext(job.settings, repo, Gateway(job.settings)),
            ThemeFilters.model_validate(params.get("filters", {})),
            seed=int(params.get("seed", 0)),
            k=params.get("k"),
            progress=lambda done, total: job.progress(done, total),
        )
    report = outcome.result
    return {
        "run_id": report.run_id,
        "ai_result_id": outcome.ai_result_id,
        "themes": len(report.themes),
        "commented": report.commented,
    }


def _nps_assign(job: JobContext) -> dict[str, Any]:
    from copilot.gateway import Gateway
    from copilot.tasks.context import TaskContext
    from copilot.tasks.nps_themes import assign_new_responses

    with job.store.repo(job.workspace) as repo:
        assigned = assign_new_responses(
            TaskContext(job.settings, repo, Gateway(job.settings)),
            int(job.params["run_id"]),
            progress=lambda done, total: job.progress(done, total),
        )
    return {"run_id": int(job.params["run_id"]), "assigned": assigned}


def _sentiment_head(job: JobContext) -> dict[str, Any]:
    from copilot.tasks.sentiment import default_classifier
    from copilot.tasks.sentiment_train import LabelledText, train_workspace_head

    params = job.params
    examples = [LabelledText.model_validate(example) for example in params["examples"]]
    with job.store.repo(job.workspace) as repo:
        info = train_workspace_head(
            repo,
            default_classifier(),
            examples,
            source=params["source"],
            actor=params["actor"],
            dry_run=bool(params.get("dry_run")),
            force=bool(params.get("force")),
            progress=lambda done, total: job.progress(done, total),
        )
    return info.model_dump()


HANDLERS: dict[str, Handler] = {
    "reindex": _reindex,
    "bulk_ticket_summaries": _bulk_ticket_summaries,
    "nps_themes": _nps_themes,
    "nps_assign": _nps_assign,
    "sentiment_head": _sentiment_head,
}


class JobRunner:
    """Runs submitted jobs one at a time on a worker thread of this process."""

    def __init__(self, store: Store, settings: Settings, handlers: dict[str, Handler] | None = None) -> None:
        self.store, self.settings = store, settings
        self.handlers = handlers if handlers is not None else HANDLERS
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="copilot-job")
        self._futures: dict[int, Future[None]] = {}
        self._lock = threading.Lock()

    def recover(self) -> int:
        """Mark jobs a previous process left queued or running as failed (resumable by retry)."""
        with self.store.session() as session:
            result = session.execute(
                update(Job)
                .where(Job.status.in_([JobStatus.queued, JobStatus.running]))
                .values(status=JobStatus.failed, error=INTERRUPTED, finished_at=datetime.now(UTC))
            )
            return result.rowcount

    def submit(self, repo: Repo, kind: str, params: dict[str, Any] | None = None) -> Job:
        """Queue a job in the repo's workspace; it starts once the caller's transaction commits and ``start`` is called."""
        if kind not in self.handlers:
            raise InvalidInput(f"kind: unknown job kind '{kind}' (one of: {', '.join(sorted(self.handlers))})")
        job = repo.add(Job(kind=kind, params=params or {}, status=JobStatus.queued))
        repo.session.flush()
        return job

    def start(self, job_id: int, workspace: str) -> None:
        with self._lock:
            self._futures[job_id] = self._executor.submit(self._run, job_id, workspace)

    def retry(self, repo: Repo, job_id: int) -> Job:
        old = repo.get(Job, job_id)
        if old is None:
            raise NotFound(f"no job {job_id} in workspace '{repo.workspace.slug}'")
        if old.status is not JobStatus.failed:
            raise InvalidInput(f"job {job_id} is {old.status.value}: only failed jobs can be retried")
        return self.submit(repo, old.kind, dict(old.params))

    def wait(self, job_id: int, timeout: float | None = None) -> None:
        future = self._futures.get(job_id)
        if future is not None:
            future.result(timeout)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _run(self, job_id: int, workspace: str) -> None:
        with self.store.session() as session:
            job = session.get(Job, job_id)
            job.status, job.started_at = JobStatus.running, datetime.now(UTC)
            kind, params = job.kind, dict(job.params)
        context = JobContext(self.store, self.settings, workspace, params, job_id)
        try:
            result = self.handlers[kind](context)
        except Exception as error:  # a job must end failed with a message, whatever went wrong
            message = str(error) if isinstance(error, CopilotError) else f"{type(error).__name__}: {error}"
            self._finish(job_id, JobStatus.failed, error=message[:2000])
            return
        self._finish(job_id, JobStatus.succeeded, result=result)

    def _finish(
        self, job_id: int, status: JobStatus, *, result: dict[str, Any] | None = None, error: str | None = None
    ) -> None:
        with self.store.session() as session:
            job = session.get(Job, job_id)
            job.status, job.result, job.error, job.finished_at = status, result, error, datetime.now(UTC)
            if status is JobStatus.succeeded and job.total is not None:
                job.done = job.total


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
