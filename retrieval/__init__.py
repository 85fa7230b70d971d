"""Indexing and hybrid search over customer history, always scoped to one workspace."""

from __future__ import annotations

from copilot.settings import Settings


def open_index(settings: Settings):
    """The deployment's history index with the shared embedder (imports the heavy libraries lazily)."""
    from retrieval.embeddings import default_embedder
    from retrieval.index import HistoryIndex

    return HistoryIndex(settings, default_embedder())
