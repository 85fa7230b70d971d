"""The vector index's HNSW settings reach chroma, for new collections and for ones built before a settings change."""

from __future__ import annotations

from types import SimpleNamespace

from retrieval.embeddings import MODEL_NAME
from retrieval.index import HNSW_CONFIG, HistoryIndex, apply_search_ef, chroma_client, collection_name

NAMED_ONLY = SimpleNamespace(name=MODEL_NAME)  # the index reads only the embedder's name when it opens a collection

# What HistoryIndex created before the HNSW settings moved to collection configuration (legacy metadata keys).
LEGACY_METADATA = {"hnsw:space": "cosine", "hnsw:search_ef": 100, "hnsw:construction_ef": 128, "hnsw:M": 16}


def test_new_collection_gets_the_configured_hnsw_settings(settings):
    hnsw = HistoryIndex(settings, NAMED_ONLY, chroma_client(settings)).collection(1).configuration["hnsw"]
    assert {key: hnsw[key] for key in HNSW_CONFIG} == HNSW_CONFIG
    reopened = chroma_client(settings).get_collection(collection_name(1), embedding_function=None)
    assert reopened.configuration["hnsw"]["ef_search"] == HNSW_CONFIG["ef_search"]


def test_existing_collection_gets_the_configured_search_ef(settings):
    assert HNSW_CONFIG["ef_search"] != LEGACY_METADATA["hnsw:search_ef"]
    client = chroma_client(settings)
    old = client.get_or_create_collection(collection_name(7), embedding_function=None, metadata=LEGACY_METADATA)
    old.add(ids=["message:1:0"], embeddings=[[1.0] + [0.0] * 383], metadatas=[{"account_id": 1}])
    assert old.configuration["hnsw"]["ef_search"] == 100

    collection = HistoryIndex(settings, NAMED_ONLY, client).collection(7)
    assert collection.configuration["hnsw"]["ef_search"] == HNSW_CONFIG["ef_search"]

    reopened = chroma_client(settings).get_collection(collection_name(7), embedding_function=None)
    hnsw = reopened.configuration["hnsw"]
    assert hnsw["ef_search"] == HNSW_CONFIG["ef_search"]
    assert (hnsw["space"], hnsw["ef_construction"], hnsw["max_neighbors"]) == (
        "cosine",
        128,
        16,
    )  # fixed at creation, kept
    assert reopened.metadata == LEGACY_METADATA  # left alone: chroma searches with the configuration
    assert reopened.count() == 1 and reopened.get(ids=["message:1:0"])["metadatas"] == [{"account_id": 1}]
    assert apply_search_ef(reopened) is False  # up to date: nothing to do


def test_search_ef_failure_is_not_fatal(settings, caplog):
    class Refusing:
        name = "ws-1-history"
        metadata = None
        configuration = {"hnsw": {"ef_search": 10}}

        def modify(self, **kwargs):
            raise RuntimeError("not supported")

    assert apply_search_ef(Refusing()) is False
    assert "could not set ef_search" in caplog.text
