"""Hybrid search over one workspace's history: vectors + full text, fused by reciprocal rank."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from datetime import datetime

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy import select

from copilot.store import Repo
from copilot.store.models import SearchChunk
from retrieval.chunking import MODELS, epoch
from retrieval.index import HistoryIndex, VectorIndexError

RRF_K = 60
QUERY_VECTORS = 256
log = logging.getLogger("copilot.retrieval")


class SearchFilters(BaseModel):
    """Optional narrowing; the workspace is not here because the Repo passed to search fixes it."""

    account_id: int | None = Field(default=None, description="Only this account's private history (plus shared KB).")
    contact_id: int | None = None
    kinds: list[str] | None = Field(default=None, description="Record kinds, e.g. ['message', 'kb_article'].")
    since: datetime | None = None
    until: datetime | None = None
    include_shared: bool = Field(default=True, description="Include workspace-wide knowledge (KB articles).")
    shared_only: bool = Field(
        default=False, description="Only workspace-wide knowledge: no customer's private history at all."
    )


class SearchHit(BaseModel):
    label: str = Field(description="Citation label, S1 for the best hit.")
    chunk_id: str
    record_kind: str
    record_id: int
    account_id: int | None
    snippet: str
    text: str = Field(description="The whole chunk, for prompts and citation previews.")
    score: float
    timestamp: float
    vector_rank: int | None = None
    lexical_rank: int | None = None


class Searcher:
    def __init__(self, index: HistoryIndex) -> None:
        self.index = index
        self._query_vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def query_vector(self, query: str) -> np.ndarray:
        """The query's vector, remembered for the last QUERY_VECTORS queries: a reply draft searches three kinds of
        source with the same question."""
        key = (self.index.embedder.name, query)
        with self._lock:
            if key in self._query_vectors:
                self._query_vectors.move_to_end(key)
                return self._query_vectors[key]
        vector = self.index.embedder.encode([query])[0]
        vector.setflags(write=False)  # shared by every search of the same query
        with self._lock:
            self._query_vectors[key] = vector
            while len(self._query_vectors) > QUERY_VECTORS:
                self._query_vectors.popitem(last=False)
        return vector

    def search(
        self,
        repo: Repo,
        query: str,
        filters: SearchFilters | None = None,
        *,
        limit: int = 8,
        mode: str = "hybrid",
        recency_half_life_days: float | None = None,
        candidates: int = 50,
    ) -> list[SearchHit]:
        """Best chunks for ``query`` in the repo's workspace, labelled S1, S2, ... in rank order."""
        filters = filters or SearchFilters()
        vector_ranked: list[tuple[str, float]] = []
        lexical_ranked: list[tuple[str, float]] = []
        if mode in ("hybrid", "vector"):
            vector = self.query_vector(query)
            try:
                vector_ranked = self.index.vector_candidates(
                    repo.workspace_id, vector, _chroma_where(filters), candidates
                )
            except VectorIndexError as error:
                if mode == "vector":
                    raise
                log.warning("vector index unavailable, searching full text only: %s", error)  # degraded, not down
        if mode in ("hybrid", "lexical"):
            where_sql, params = _sql_where(filters)
            lexical_ranked = self.index.lexical_candidates(repo, query, where_sql, params, candidates)
        fused = fuse([vector_ranked, lexical_ranked])
        rows = _load(repo, list(fused))
        scored = []
        for chunk_id, score in fused.items():
            row = rows.get(chunk_id)
            if row is None or not _allowed(
                row, filters
            ):  # deleted record, stale vector, or defence in depth against a filter bug
                continue
            if recency_half_life_days:
                age_days = max(time.time() - row.ts, 0) / 86400
                score *= 1 + math.exp(-age_days * math.log(2) / recency_half_life_days)
            scored.append((score, row))
        scored.sort(key=lambda item: -item[0])
        vector_rank = {cid: i + 1 for i, (cid, _) in enumerate(vector_ranked)}
        lexical_rank = {cid: i + 1 for i, (cid, _) in enumerate(lexical_ranked)}
        return [
            SearchHit(
                label=f"S{n}",
                chunk_id=row.chunk_id,
                record_kind=row.record_kind,
                record_id=row.record_id,
                account_id=row.account_id,
                snippet=_snippet(row.text),
                text=row.text,
                score=round(score, 6),
                timestamp=row.ts,
                vector_rank=vector_rank.get(row.chunk_id),
                lexical_rank=lexical_rank.get(row.chunk_id),
            )
            for n, (score, row) in enumerate(scored[:limit], start=1)
        ]


def fuse(rankings: list[list[tuple[str, float]]], k: int = RRF_K) -> dict[str, float]:
    """Reciprocal rank fusion: sum of 1/(k + rank) over the rankings a chunk appears in."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, (chunk_id, _score) in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (k + rank)
    return dict(sorted(scores.items(), key=lambda item: -item[1]))


def _chroma_where(filters: SearchFilters) -> dict | None:
    clauses: list[dict] = []
    if filters.shared_only:
        clauses.append({"shared": {"$eq": True}})
    elif filters.account_id is not None:
        own = {"account_id": {"$eq": filters.account_id}}
        clauses.append({"$or": [own, {"shared": {"$eq": True}}]} if filters.include_shared else own)
    elif not filters.include_shared:
        clauses.append({"shared": {"$eq": False}})
    if filters.contact_id is not None:
        clauses.append({"$or": [{"contact_id": {"$eq": filters.contact_id}}, {"shared": {"$eq": True}}]})
    if filters.kinds:
        clauses.append({"record_kind": {"$in": list(filters.kinds)}})
    if filters.since:
        clauses.append({"ts": {"$gte": epoch(filters.since)}})
    if filters.until:
        clauses.append({"ts": {"$lte": epoch(filters.until)}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _sql_where(filters: SearchFilters) -> tuple[str, dict]:
    parts, params = [], {}
    if filters.shared_only:
        parts.append("AND c.shared")
    elif filters.account_id is not None:
        parts.append("AND (c.account_id = :account_id" + (" OR c.shared)" if filters.include_shared else ")"))
        params["account_id"] = filters.account_id
    elif not filters.include_shared:
        parts.append("AND NOT c.shared")
    if filters.contact_id is not None:
        parts.append("AND (c.contact_id = :contact_id OR c.shared)")
        params["contact_id"] = filters.contact_id
    if filters.kinds:
        names = [f"kind{i}" for i in range(len(filters.kinds))]
        parts.append(f"AND c.record_kind IN ({', '.join(':' + n for n in names)})")
        params.update(dict(zip(names, filters.kinds, strict=True)))
    if filters.since:
        parts.append("AND c.ts >= :since")
        params["since"] = epoch(filters.since)
    if filters.until:
        parts.append("AND c.ts <= :until")
        params["until"] = epoch(filters.until)
    return " ".join(parts), params


def _allowed(row: SearchChunk, filters: SearchFilters) -> bool:
    if row.shared:
        return filters.include_shared and (not filters.kinds or row.record_kind in filters.kinds)
    if filters.shared_only:
        return False
    if filters.account_id is not None and row.account_id != filters.account_id:
        return False
    if filters.contact_id is not None and row.contact_id != filters.contact_id:
        return False
    return not filters.kinds or row.record_kind in filters.kinds


def _load(repo: Repo, chunk_ids: list[str]) -> dict[str, SearchChunk]:
    if not chunk_ids:
        return {}
    query = select(SearchChunk).where(
        SearchChunk.workspace_id == repo.workspace_id, SearchChunk.chunk_id.in_(chunk_ids)
    )
    rows = list(repo.session.scalars(query))
    live = _live_records(repo, rows)
    return {row.chunk_id: row for row in rows if (row.record_kind, row.record_id) in live}


def _live_records(repo: Repo, rows: list[SearchChunk]) -> set[tuple[str, int]]:
    """The (kind, id) pairs among these chunks whose record still exists (a deleted ticket takes its messages along)."""
    live = set()
    for kind in {row.record_kind for row in rows}:
        model = MODELS[kind]
        ids = {row.record_id for row in rows if row.record_kind == kind}
        live |= {(kind, record_id) for record_id in repo.session.scalars(select(model.id).where(model.id.in_(ids)))}
    return live


def _snippet(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"
