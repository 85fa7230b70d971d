"""The searcher as a langchain-core retriever, for users who build their own chains."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from copilot.store import Store
from retrieval.search import Searcher, SearchFilters


class HistoryRetriever(BaseRetriever):
    """Hybrid search over one workspace (fixed at construction: it cannot search without one)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    searcher: Searcher
    store: Store
    workspace: str
    filters: SearchFilters = SearchFilters()
    k: int = 8

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        with self.store.repo(self.workspace) as repo:
            hits = self.searcher.search(repo, query, self.filters, limit=self.k)
        return [Document(page_content=hit.text, metadata=hit.model_dump(exclude={"snippet", "text"})) for hit in hits]
