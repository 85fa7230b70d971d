"""What a task runs with: settings, the workspace's records, the model gateway, search and embeddings."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from copilot.gateway import Gateway
from copilot.settings import Settings
from copilot.store import Repo

if TYPE_CHECKING:
    from retrieval.embeddings import Embedder
    from retrieval.search import Searcher


@dataclass
class TaskContext:
    settings: Settings
    repo: Repo | None
    gateway: Gateway
    _searcher: Searcher | None = field(default=None, repr=False)
    _embedder: Embedder | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.settings.should_redact_pii and self.repo is not None:
            from copilot.records import people_names

            self.gateway = self.gateway.knowing(people_names(self.repo))

    @cached_property
    def embedder(self) -> Embedder:
        if self._embedder is not None:
            return self._embedder
        from retrieval.embeddings import default_embedder

        return default_embedder()

    @cached_property
    def searcher(self) -> Searcher:
        if self._searcher is not None:
            return self._searcher
        from retrieval.index import HistoryIndex
        from retrieval.search import Searcher

        return Searcher(HistoryIndex(self.settings, self.embedder))

    @property
    def small_local_model(self) -> bool:
        """The embedded 135M model: good at short constrained output, poor at long free text."""
        return self.settings.model.startswith("local/")
