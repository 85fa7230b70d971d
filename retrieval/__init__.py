"""Indexing and hybrid search over customer history, always scoped to one workspace."""

from __future__ import annotations

from copilot.settings import Settings


def open_index(settings: Settings, embedder=None):  # noqa: ANN001, ANN201 - kept light: no heavy imports here
    """The deployment's history index (the shared embedder unless one is given; heavy libraries load lazily)."""
    from retrieval.embeddings import default_embedder
    from retrieval.index import HistoryIndex

    return HistoryIndex(settings, embedder or default_embedder())
