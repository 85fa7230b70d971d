"""Bulk task runs (the ``task_batch`` job): a registered task over many items, e.g. summaries of a whole queue, reply
drafts for a backlog, tone rewrites of a macro library.

Items run in parallel, as many at once as the task's model provider takes (``COPILOT_MODEL_CONCURRENCY``,
``provider=calls``; 1 for the local model server, which answers one call at a time, 4 for any other provider).
Each item runs in its own job step: its result and its ``job_items`` row commit together under the job's lease, so
a job resumed by another runner (after a crash or a lost lease) runs exactly the items nobody finished, whatever
order they finished in, and never one twice.

With ``COPILOT_RAY_ADDRESS`` set, the items run on Ray actors instead of threads: one actor per call in flight, each
building its own ``Services`` from this process's settings, so the database and the model servers must be reachable
from the cluster's nodes under the same addresses. The results are the same either way (tests/test_ray.py).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import select

from copilot.errors import CopilotError
from copilot.jobs import JobCancelled, JobContext, LeaseLost, run_fenced
from copilot.store import Repo
from copilot.store.models import Job, JobItem

if TYPE_CHECKING:
    from copilot.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_CAP = 4  # model calls in flight per provider when COPILOT_MODEL_CONCURRENCY does not name it
DEFAULT_CAPS = {"local": 1}  # the local model server answers one call at a time; more would only queue there


@dataclass(frozen=True)
class ItemDone:
    item: int  # the position in the job's items
    ai_result_id: int | None
    error: str | None = None


def provider_of(model: str) -> str:
    """The provider a model name routes to: ``local``, ``fake``, ``openai``, ``ollama``, ..."""
    from copilot.gateway.local import is_local

    if is_local(model):
        return "local"
    if "/" in model:
        return model.split("/", 1)[0]
    import litellm

    try:
        return litellm.get_llm_provider(model)[1]
    except Exception:  # litellm raises its own BadRequestError for names it does not know
        return model


def concurrency_for(settings: Settings, model: str) -> int:
    """How many calls a bulk job keeps in flight to ``model``'s provider."""
    provider = provider_of(model)
    return settings.model_concurrency.get(provider, DEFAULT_CAPS.get(provider, DEFAULT_CAP))


def run_batch(job: JobContext) -> dict[str, Any]:
    """Run ``job.params['task']`` over ``job.params['items']``, the items not done by an earlier attempt only."""
    task, items = job.params["task"], job.params["items"]
    done_before = done_items(job)
    todo = [n for n in range(len(items)) if n not in done_before]
    job.progress(len(done_before), len(items), force=True)
    width = min(concurrency_for(job.services.settings, job.services.gateway.for_task(task).model), max(1, len(todo)))
    on_ray = bool(job.services.settings.ray_address) and bool(todo)
    fan_out = on_ray_actors if on_ray else on_threads
    for done in fan_out(job, task, items, todo, width):
        log.debug("job %s: item %s done (%s)", job.job_id, done.item, done.error or done.ai_result_id)
    finished = done_items(job)
    return {
        "ai_result_ids": [row.ai_result_id for _, row in sorted(finished.items()) if row.error is None],
        "failed": [{"params": items[n], "error": row.error} for n, row in sorted(finished.items()) if row.error],
        "skipped_as_done_before": len(done_before),
        "concurrency": width,
        "on_ray": on_ray,
    }


def done_items(job: JobContext) -> dict[int, ItemDone]:
    with job.services.store.session() as session:
        rows = session.execute(
            select(JobItem.item, JobItem.ai_result_id, JobItem.error).where(JobItem.job_id == job.job_id)
        ).all()
    return {row.item: ItemDone(row.item, row.ai_result_id, row.error) for row in rows}


def run_item(job: JobContext, task: str, params: dict[str, Any], item: int) -> ItemDone:
    """One item in its own step: its result, its ``job_items`` row and one more ``done`` commit together."""

    def mark(repo: Repo, ai_result_id: int | None, error: str | None) -> None:
        repo.session.add(JobItem(job_id=job.job_id, item=item, ai_result_id=ai_result_id, error=error))

    try:
        outcome = run_fenced(job, task, params, done=Job.done + 1, mark=mark)
    except (LeaseLost, JobCancelled):
        raise
    except CopilotError as error:  # recorded as the item's error; the other items go on
        return ItemDone(item, None, str(error))
    return ItemDone(item, outcome.ai_result_id)


def on_threads(
    job: JobContext, task: str, items: Sequence[dict[str, Any]], todo: list[int], width: int
) -> Iterator[ItemDone]:
    """The items on ``width`` threads of this process (in this thread when ``width`` is 1)."""
    if width == 1:
        for n in todo:
            yield run_item(job, task, items[n], n)
        return
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix=f"copilot-job-{job.job_id}") as pool:
        for future in in_flight(todo, width, lambda n: pool.submit(run_item, job, task, items[n], n)):
            yield future.result()  # a lost lease or a cancel ends the job once the calls in flight returned


def in_flight(todo: list[int], width: int, start: Callable[[int], Future[T]]) -> Iterator[Future[T]]:
    """Start the items of ``todo`` with ``start``, ``width`` at a time, and yield each one's future as it finishes;
    the next item starts once the caller has handled the finished one."""
    queue = iter(todo)
    pending = {start(n) for n in itertools.islice(queue, width)}
    while pending:
        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
        for future in finished:
            yield future
            if (n := next(queue, None)) is not None:
                pending.add(start(n))


class BatchActor:
    """A Ray actor running items of bulk jobs with its own ``Services`` (built once from the job's settings)."""

    def __init__(self, settings: Settings) -> None:
        from copilot.services import Services

        self.services = Services(settings)

    def run(self, claim: dict[str, Any], task: str, params: dict[str, Any], item: int) -> tuple[str, ItemDone | str]:
        job = JobContext(self.services, params={}, **claim)
        try:
            return "done", run_item(job, task, params, item)
        except LeaseLost as error:
            return "lease_lost", str(error)
        except JobCancelled as error:
            return "cancelled", str(error)


class BatchActors:
    """The Ray actors of this process's bulk jobs, kept between jobs (``Services.batch_actors``): each builds its
    services once, which takes seconds (the task registry, litellm, the classifiers), so a worker running many bulk
    jobs pays it once. Jobs running at once share them, one item in flight per actor."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._actors: list[Any] = []
        self._lock = threading.Lock()

    def take(self, width: int) -> list[Any]:
        import ray

        from retrieval.ray_embedder import connect

        with self._lock:
            if len(self._actors) < width:
                connect(self.settings.ray_address or "")
                actor_class = ray.remote(num_cpus=0)(BatchActor)  # they wait on the model; its server holds CPUs
                self._actors += [actor_class.remote(self.settings) for _ in range(width - len(self._actors))]
            return self._actors[:width]

    def stop(self) -> None:
        import ray

        with self._lock:
            for actor in self._actors:
                ray.kill(actor)
            self._actors = []


def on_ray_actors(
    job: JobContext, task: str, items: Sequence[dict[str, Any]], todo: list[int], width: int
) -> Iterator[ItemDone]:
    """The items on ``width`` Ray actors, one item in flight on each."""
    pool = job.services.batch_actors
    claim = {"workspace": job.workspace, "job_id": job.job_id, "owner": job.owner, "attempt": job.attempt,
             "lease_s": job.lease_s}  # fmt: skip
    idle = pool.take(width)
    actor_of: dict[Future[Any], Any] = {}

    def start(n: int) -> Future[Any]:
        actor = idle.pop()
        future = actor.run.remote(claim, task, items[n], n).future()
        actor_of[future] = actor
        return future

    try:
        for future in in_flight(todo, width, start):
            idle.append(actor_of.pop(future))  # free again before the next item starts
            yield _from_actor(*future.result())
    except (LeaseLost, JobCancelled):
        raise
    except Exception:  # an actor died, or the cluster went away: the next job starts new ones
        pool.stop()
        raise


def _from_actor(status: str, outcome: ItemDone | str) -> ItemDone:
    if isinstance(outcome, ItemDone):
        return outcome
    raise (LeaseLost if status == "lease_lost" else JobCancelled)(outcome)
