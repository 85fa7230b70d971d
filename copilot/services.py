"""One way to get what tasks run with: the API, CLI, jobs, evals and benches all build a ``Services``.

It owns the process-wide things that are slow to load or must be shared: the store, the model gateway (and the
local model servers behind it), the embedder, the search index, the sentiment classifier and the job runner. All
are public constructor arguments, so tests and evals hand in their own (a FakeModel, an embedder, a searcher).

    services = Services(settings)
    with services.store.repo("demo") as repo:
        outcome = services.run_task(repo, "ticket_summary", {"ticket_id": "T-1179"})
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from copilot.errors import BudgetExceeded, ModelError
from copilot.settings import Settings
from copilot.store import Repo, Store

if TYPE_CHECKING:
    import httpx

    from copilot.batch import BatchActors
    from copilot.delivery import DeliveryPolicy
    from copilot.gateway import Gateway
    from copilot.gateway.fake import FakeModel
    from copilot.gateway.gateway import Observer
    from copilot.gateway.server import ModelServers
    from copilot.jobs import JobRunner
    from copilot.netguard import Resolver, TargetPolicy
    from copilot.tasks.base import TaskOutcome
    from copilot.tasks.context import Progress, TaskContext
    from copilot.tasks.registry import Task, TaskParams
    from copilot.tasks.sentiment import SentimentClassifier
    from retrieval.embeddings import Embedder
    from retrieval.index import HistoryIndex
    from retrieval.search import Searcher


class Services:
    """Process-wide services, each built on first use."""

    def __init__(
        self,
        settings: Settings,
        store: Store | None = None,
        *,
        gateway: Gateway | None = None,
        fake: FakeModel | None = None,
        servers: ModelServers | None = None,
        observers: tuple[Observer, ...] = (),
        embedder: Embedder | None = None,
        searcher: Searcher | None = None,
        sentiment: SentimentClassifier | None = None,
        webhook_client: httpx.Client | None = None,
        resolver: Resolver | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._store, self._gateway, self._fake, self._servers = store, gateway, fake, servers
        self._observers = observers  # called after every completion of the gateway (counting, recording)
        self._embedder, self._searcher, self._sentiment = embedder, searcher, sentiment
        self.webhook_client = webhook_client
        self._resolver = resolver  # DNS for webhook targets (tests hand in their own)
        self.sleep = sleep
        self._lock = threading.RLock()

    # -- what is built on first use ------------------------------------------------------------
    @cached_property
    def store(self) -> Store:
        return self._store or Store.from_settings(self.settings)

    @cached_property
    def gateway(self) -> Gateway:
        if self._gateway is not None:
            gateway = self._gateway
        else:
            from copilot.gateway import Gateway

            gateway = Gateway(self.settings, servers=self._servers, fake=self._fake, sleep=self.sleep)
        for observer in self._observers:
            gateway = gateway.observed(observer)
        return gateway

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                from retrieval.embeddings import embedder_for

                self._embedder = embedder_for(self.settings)  # COPILOT_EMBEDDING_BACKEND
                if self.settings.ray_address:
                    self._embedder = self._on_ray(self._embedder)
            return self._embedder

    def _on_ray(self, local: Embedder) -> Embedder:
        from retrieval.ray_embedder import RayEmbedder

        settings = self.settings
        return RayEmbedder(
            local,
            settings.ray_address,
            workers=settings.ray_workers,
            min_batch=settings.ray_min_batch,
            cache_dir=settings.resolved_embedding_cache_dir,
        )

    @cached_property
    def batch_actors(self) -> BatchActors:
        """The Ray actors bulk jobs fan their items out to (COPILOT_RAY_ADDRESS), kept between jobs."""
        from copilot.batch import BatchActors

        return BatchActors(self.settings)

    @property
    def index(self) -> HistoryIndex:
        """The search index of customer history (chroma vectors + the lexical index in the database)."""
        with self._lock:
            if self._searcher is not None:
                return self._searcher.index
            if "_index" not in self.__dict__:
                from retrieval.index import HistoryIndex

                self._index = HistoryIndex(self.settings, self.embedder)
            return self._index

    @property
    def searcher(self) -> Searcher:
        with self._lock:
            if self._searcher is None:
                from retrieval.search import Searcher

                self._searcher = Searcher(self.index)
            return self._searcher

    @property
    def sentiment(self) -> SentimentClassifier:
        with self._lock:
            if self._sentiment is None:
                from copilot.tasks.sentiment import SentimentClassifier
                from retrieval.embeddings import embedder_for, reads_minilm

                # The shipped head was trained on MiniLM vectors: with another embedder it still reads MiniLM ones.
                encoder = self.embedder if reads_minilm(self.embedder) else embedder_for(self.settings)
                self._sentiment = SentimentClassifier(encoder.encode, embedding_model=encoder.name)
            return self._sentiment

    @cached_property
    def jobs(self) -> JobRunner:
        from copilot.jobs import JobRunner

        return JobRunner(self)

    @cached_property
    def delivery_policy(self) -> DeliveryPolicy:
        from copilot.delivery import DeliveryPolicy

        return DeliveryPolicy()

    # -- running tasks ---------------------------------------------------------------------------
    def context(
        self,
        repo: Repo | None,
        *,
        task: str | None = None,
        on_token: Callable[[str], None] | None = None,
        progress: Progress | None = None,
    ) -> TaskContext:
        """A task context on ``repo``: the task's own model (COPILOT_TASK_MODELS), masking of the workspace's
        people for remote models, the workspace's daily budget, and token streaming when asked."""
        from copilot.tasks.context import TaskContext

        gateway = self.gateway.for_task(task) if task else self.gateway
        if on_token is not None:
            gateway = gateway.listening(on_token)
        if repo is not None:
            if gateway.masks_pii:
                from copilot.records import people_names

                gateway = gateway.knowing(people_names(repo))
            gateway = metered(gateway, repo)
        return TaskContext(self, repo, gateway, task=task, progress=progress)

    def run_task(
        self,
        repo: Repo,
        name: str | Task,
        params: TaskParams | Mapping[str, Any],
        *,
        on_token: Callable[[str], None] | None = None,
        progress: Progress | None = None,
    ) -> TaskOutcome[Any]:
        """Run a registered task in the repo's transaction and save its result (see ``copilot.tasks.runner``)."""
        from copilot.tasks.runner import run_task

        return run_task(self, repo, name, params, on_token=on_token, progress=progress)

    def run_in_workspace(
        self,
        workspace: str,
        name: str,
        params: TaskParams | Mapping[str, Any],
        *,
        on_token: Callable[[str], None] | None = None,
        progress: Progress | None = None,
    ) -> TaskOutcome[Any]:
        """``run_task`` in its own transaction; a model failure leaves a ``failed`` result, then is raised."""
        from copilot.tasks.runner import record_task_failure

        try:
            with self.store.repo(workspace) as repo:
                return self.run_task(repo, name, params, on_token=on_token, progress=progress)
        except ModelError as error:
            if not isinstance(error, BudgetExceeded):
                with self.store.repo(workspace) as repo:
                    record_task_failure(repo, name, params, str(error))
            raise

    def index_reply_library(self, workspace: str) -> int:
        """Index the workspace's reply-library entries that have no search chunk yet, in a transaction of their own;
        returns the chunks written (0 when another process indexed them at the same moment)."""
        from sqlalchemy.exc import IntegrityError

        from copilot.tasks.reply_sources import unindexed_library_entries

        try:
            with self.store.repo(workspace) as repo:
                return self.index.index_records(repo, "reply", unindexed_library_entries(repo))
        except IntegrityError:
            return 0

    def deliver(self, workspace: str, result_id: int) -> Any:
        from copilot.delivery import deliver

        return deliver(self.store, workspace, result_id, policy=self.delivery_policy, client=self.webhook_client,
                       sleep=self.sleep, targets=self.targets)  # fmt: skip

    @cached_property
    def targets(self) -> TargetPolicy:
        """Where outbound webhooks may go: public addresses, plus the hosts an admin allowed."""
        from copilot.netguard import TargetPolicy

        return TargetPolicy.of(self.settings.webhook_allowed_hosts, self._resolver)

    def close(self) -> None:
        if "jobs" in self.__dict__:
            self.jobs.shutdown()
        if "gateway" in self.__dict__:
            self.gateway.local.servers.stop()
        stop = getattr(self._embedder, "stop_actors", None)  # a Ray embedder's actors hold cluster CPUs
        if callable(stop):
            stop()
        if "batch_actors" in self.__dict__:
            self.batch_actors.stop()


def metered(gateway: Gateway, repo: Repo) -> Gateway:
    """A gateway that refuses model calls (BudgetExceeded) once the workspace spent its daily budget."""
    from copilot.usage import budget_check

    check = budget_check(repo, datetime.now(UTC))
    if check is None:
        return gateway
    import copy

    metered_gateway = copy.copy(gateway)
    metered_gateway.before_call = check
    return metered_gateway
