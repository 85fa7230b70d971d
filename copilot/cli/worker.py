"""``copilot worker``: a process that claims jobs from the shared queue (the jobs table) and runs them."""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import TYPE_CHECKING

import typer

from copilot.cli.common import console, fail, load_settings

if TYPE_CHECKING:
    from copilot.jobs import JobRunner


def worker(
    threads: int = typer.Option(1, min=1, max=64, help="Jobs this process runs at once."),
    kinds: str | None = typer.Option(None, help="Only these job kinds, comma-separated (default: every kind)."),
    max_jobs: int | None = typer.Option(None, min=1, help="Exit after this many jobs."),
    exit_when_idle: bool = typer.Option(False, help="Exit once no job is running or waiting."),
    grace: float = typer.Option(30.0, min=0.0, help="On SIGTERM/Ctrl-C, seconds running jobs get to finish."),
) -> None:
    """Run jobs from the queue every API replica writes to, until stopped (SIGTERM or Ctrl-C).

    Any number of workers, on any host, share one PostgreSQL queue (COPILOT_DATABASE_URL); each job runs once. A job
    still running when the worker stops is handed back and resumes on another worker; one whose worker was killed
    resumes after its lease (COPILOT_JOB_LEASE_S). API replicas whose workers run the jobs set COPILOT_JOB_THREADS=0.
    """
    from copilot.services import Services

    settings = load_settings().model_copy(update={"job_threads": threads})
    services = Services(settings)
    runner = services.jobs
    if kinds:
        runner.kinds = _only(runner.kinds, kinds)
    runner.limit = max_jobs
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    database = services.store.engine.url.render_as_string(hide_password=True)
    console.print(
        f"worker {runner.owner}: {threads} thread(s) on {database}, lease {settings.job_lease_s:g} s, "
        f"kinds: {', '.join(sorted(runner.kinds))}",
        highlight=False,
        soft_wrap=True,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        runner.start()
        _until_done(runner, stop, max_jobs=max_jobs, exit_when_idle=exit_when_idle)
    finally:
        runner.shutdown(grace)
        services.close()
    console.print(f"worker {runner.owner}: stopped after {runner.finished} job(s)", highlight=False)


def _only(known: dict, names: str) -> dict:
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise fail(f"--kinds: unknown job kind(s) {', '.join(unknown)} (one of: {', '.join(sorted(known))})")
    return {name: known[name] for name in wanted}


def _until_done(runner: JobRunner, stop: threading.Event, *, max_jobs: int | None, exit_when_idle: bool) -> None:
    while not stop.wait(0.2):
        if max_jobs is not None and runner.finished >= max_jobs:
            return
        if exit_when_idle and runner.idle():
            time.sleep(runner.poll_s)  # one more look: a job may have been queued just now
            if runner.idle():
                return


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
