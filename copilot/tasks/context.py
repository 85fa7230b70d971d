"""What a task runs with: the workspace's records, the model gateway for this task, and the shared models.

Build one with ``Services.context(repo, task=...)``; never by hand (the services own the embedder, the search
index and the classifiers, loaded once per process).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from copilot.profiles import Profile
from copilot.settings import Settings
from copilot.store import Repo

if TYPE_CHECKING:
    from copilot.gateway import Gateway
    from copilot.services import Services
    from copilot.tasks.sentiment import SentimentClassifier
    from retrieval.embeddings import Embedder
    from retrieval.search import Searcher

Progress = Callable[[int, int], None]


@dataclass
class TaskContext:
    services: Services
    repo: Repo | None
    gateway: Gateway
    task: str | None = None
    progress: Progress | None = None

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def embedder(self) -> Embedder:
        return self.services.embedder

    @property
    def searcher(self) -> Searcher:
        return self.services.searcher

    @property
    def sentiment(self) -> SentimentClassifier:
        """The sentiment classifier for this workspace (its own head when it trained one)."""
        classifier = self.services.sentiment
        return classifier.for_workspace(self.repo) if self.repo is not None else classifier

    @property
    def profile(self) -> Profile:
        """What the model this task calls can do (small or capable)."""
        return self.gateway.profile

    def strategy(self, task: str, asked: str) -> str:
        """The strategy ``task`` runs: ``asked``, or for "auto" the one COPILOT_TASK_STRATEGIES sets, else the
        task's default for the model's profile."""
        from copilot.tasks import registry

        return registry.get(task).resolve_strategy(asked, self.profile, self.settings.task_strategies.get(task))

    def report(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(done, total)
