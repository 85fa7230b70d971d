"""The history index: vectors in chromadb (one collection per workspace) and text in the main database.

The ``search_chunks`` table is the lexical index (SQLite FTS5 / PostgreSQL full-text) and the
record of what is indexed; chroma holds the vectors under the same chunk ids.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select, text

from copilot.errors import CopilotError
from copilot.settings import Settings
from copilot.store import Repo
from copilot.store.models import Message, SearchChunk, Ticket
from retrieval.chunking import INDEXED_KINDS, MODELS, Chunk, load_chunks, record_ids
from retrieval.embeddings import MODEL_NAME, Embedder, vectors_agree

WORD = re.compile(r"\w+", re.UNICODE)
# The HNSW index of each collection, as chroma (>= 1.0) collection configuration. Support history repeats itself
# (the bench corpus has 17k distinct texts in 100k chunks, groups of up to 767 copies) and exact duplicates trap HNSW's
# greedy search: ef_search=100 gave recall@10 0.92-0.96 at 100k chunks, ef_search=800 0.973. A denser graph (M=32,
# ef_construction=256) reached 1.0 but slowed indexing below the bench target (ratio 0.82 vs 0.89). See README.
# ``space``, ``ef_construction`` and ``max_neighbors`` (M) are fixed when a collection is created; ``ef_search`` is
# brought up to date on existing collections by ``HistoryIndex.collection`` (chroma reads it when it loads the index).
HNSW_CONFIG = {"space": "cosine", "ef_search": 800, "ef_construction": 128, "max_neighbors": 16}
# Collection metadata naming the vectors a collection was built with (retrieval.embeddings names: the model and its
# backend). Collections from before it was recorded hold all-MiniLM-L6-v2 torch vectors, the only ones there were.
EMBEDDING_KEY = "embedding_model"
log = logging.getLogger("copilot.retrieval")


class VectorIndexError(CopilotError):
    """The vector index cannot be reached or read."""


class EmbedderMismatch(VectorIndexError):
    """The workspace's vectors were made by an embedder whose vectors do not agree with the active one's."""


def collection_name(workspace_id: int) -> str:
    return f"ws-{workspace_id}-history"


def chroma_client(settings: Settings) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    try:
        if settings.chroma_url:
            host, _, port = (
                settings.chroma_url.removeprefix("http://").removeprefix("https://").rstrip("/").partition(":")
            )
            return chromadb.HttpClient(
                host=host, port=int(port or 8000), ssl=settings.chroma_url.startswith("https"), settings=chroma_settings
            )
        settings.resolved_chroma_path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(settings.resolved_chroma_path), settings=chroma_settings)
    except Exception as error:  # chromadb raises many kinds; the user needs one message
        where = settings.chroma_url or settings.resolved_chroma_path
        raise VectorIndexError(f"cannot open the vector index at {where}: {error}") from None


class HistoryIndex:
    """Write and query side of the index for one deployment."""

    def __init__(self, settings: Settings, embedder: Embedder, client: Any | None = None) -> None:
        self.settings = settings
        self.embedder = embedder
        self._client = client
        self._collections: dict[int, Any] = {}

    @property
    def client(self) -> Any:
        """The chroma client, opened on first use (a broken index then fails the call that needs it, not start-up)."""
        if self._client is None:
            self._client = chroma_client(self.settings)
        return self._client

    def collection(self, workspace_id: int) -> Any:
        """The workspace's collection, created for this embedder's vectors; EmbedderMismatch when it holds vectors
        that do not agree with them (``copilot index`` rebuilds it)."""
        if workspace_id not in self._collections:
            collection = self.client.get_or_create_collection(
                collection_name(workspace_id),
                embedding_function=None,
                configuration={"hnsw": dict(HNSW_CONFIG)},
                metadata={EMBEDDING_KEY: self.embedder.name},  # kept as it is when the collection exists
            )
            self._check_embedder(workspace_id, collection)
            apply_search_ef(collection)
            self._collections[workspace_id] = collection
        return self._collections[workspace_id]

    def built_with(self, collection: Any) -> str:
        """The name of the vectors a collection holds."""
        return str((collection.metadata or {}).get(EMBEDDING_KEY, MODEL_NAME))

    def _check_embedder(self, workspace_id: int, collection: Any) -> None:
        built_with, active = self.built_with(collection), self.embedder.name
        if not vectors_agree(built_with, active):
            raise EmbedderMismatch(
                f"the search index of workspace {workspace_id} holds {built_with} vectors, but the embedder makes "
                f"{active} vectors (COPILOT_EMBEDDING_BACKEND); rebuild it with `copilot index`"
            )
        if built_with != active:
            log.info(
                "workspace %s: index built with %s vectors, used with %s (they agree: README, Embedding backends)",
                workspace_id,
                built_with,
                active,
            )

    # -- writing ----------------------------------------------------------------------------
    def index_records(self, repo: Repo, kind: str, ids: Sequence[int], batch: int = 1000) -> int:
        """(Re)index these records: old chunks go, new chunks come. Returns chunks written."""
        if kind not in INDEXED_KINDS or not ids:
            return 0
        written = 0
        for start in range(0, len(ids), batch):
            part = list(ids[start : start + batch])
            self.remove_records(repo, kind, part)
            chunks = load_chunks(repo, kind, part)
            self.write_chunks(repo, chunks)
            written += len(chunks)
        if kind == "ticket":  # messages are tagged with their ticket's account and contact: follow a move
            written += self.index_records(repo, "message", self._messages_with_stale_owner(repo, ids))
        return written

    def _messages_with_stale_owner(self, repo: Repo, ticket_ids: Sequence[int]) -> list[int]:
        query = (
            select(Message.id)
            .distinct()
            .join(Ticket, Ticket.id == Message.ticket_id)
            .join(SearchChunk, (SearchChunk.record_kind == "message") & (SearchChunk.record_id == Message.id))
            .where(
                Ticket.workspace_id == repo.workspace_id,
                Ticket.id.in_(list(ticket_ids)),
                SearchChunk.account_id.is_distinct_from(Ticket.account_id)
                | SearchChunk.contact_id.is_distinct_from(Ticket.contact_id),
            )
        )
        return list(repo.session.scalars(query))

    def write_chunks(self, repo: Repo, chunks: list[Chunk]) -> None:
        if not chunks:
            return
        vectors = self.embedder.encode([c.text for c in chunks])
        self.add_vectors(repo.workspace_id, chunks, vectors)
        repo.session.execute(insert(SearchChunk), [c.model_dump() for c in chunks])

    def add_vectors(self, workspace_id: int, chunks: list[Chunk], vectors: np.ndarray, batch: int = 4000) -> None:
        collection = self.collection(workspace_id)
        for start in range(0, len(chunks), batch):
            part = chunks[start : start + batch]
            collection.upsert(
                ids=[c.chunk_id for c in part],
                embeddings=vectors[start : start + batch],
                metadatas=[_metadata(c) for c in part],
            )

    def remove_records(self, repo: Repo, kind: str, ids: Sequence[int]) -> None:
        """Forget these records (their chunks disappear from results)."""
        condition = (
            (SearchChunk.workspace_id == repo.workspace_id)
            & (SearchChunk.record_kind == kind)
            & SearchChunk.record_id.in_(list(ids))
        )
        chunk_ids = list(repo.session.scalars(select(SearchChunk.chunk_id).where(condition)))
        if chunk_ids:
            self.collection(repo.workspace_id).delete(ids=chunk_ids)
            repo.session.execute(delete(SearchChunk).where(condition))

    def prune_deleted(self, repo: Repo) -> int:
        """Forget records deleted from the store behind the index's back (e.g. messages of a deleted ticket)."""
        pruned = 0
        for kind, model in MODELS.items():
            gone = ~select(model.id).where(model.id == SearchChunk.record_id).exists()
            ids = list(
                repo.session.scalars(
                    select(SearchChunk.record_id)
                    .distinct()
                    .where(SearchChunk.workspace_id == repo.workspace_id, SearchChunk.record_kind == kind, gone)
                )
            )
            self.remove_records(repo, kind, ids)
            pruned += len(ids)
        return pruned

    def rebuild(
        self,
        repo: Repo,
        *,
        batch: int | None = None,
        resume: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Bring the workspace's index up to date in batches; returns the records (re)indexed.

        With ``resume`` only new, changed and deleted records are touched, so an interrupted run
        continues where it stopped; without it the index is dropped and built again. Batches are 256 records, or
        ``COPILOT_RAY_MIN_BATCH`` when embedding runs on Ray (so that each batch's encode goes to the cluster).
        """
        batch = batch or (self.settings.ray_min_batch if self.settings.ray_address else 256)
        if resume and self._holds_other_vectors(repo.workspace_id):
            log.warning(
                "workspace %s: the index holds vectors that disagree with %s: rebuilding it from scratch",
                repo.workspace.slug,
                self.embedder.name,
            )
            resume = False
        if not resume:
            if self._has_collection(repo.workspace_id):
                self.client.delete_collection(collection_name(repo.workspace_id))
            self._collections.pop(repo.workspace_id, None)
            repo.session.execute(delete(SearchChunk).where(SearchChunk.workspace_id == repo.workspace_id))
            repo.session.commit()
        self.prune_deleted(repo)
        written = 0
        for kind in INDEXED_KINDS:
            after = 0
            while ids := record_ids(repo, kind, after, batch):
                after = ids[-1]
                chunks = load_chunks(repo, kind, ids)
                todo = self._out_of_date(repo, kind, ids, chunks)
                self.remove_records(repo, kind, todo)
                self.write_chunks(repo, [c for c in chunks if c.record_id in todo])
                repo.session.commit()  # a checkpoint: an interrupted rebuild resumes after this batch
                written += len(todo)
                if progress:
                    progress(len(ids))
        return written

    def _out_of_date(self, repo: Repo, kind: str, ids: list[int], chunks: list[Chunk]) -> set[int]:
        """Records whose chunks (text, owner, time) differ from what the index holds."""
        fresh: dict[int, set[tuple]] = defaultdict(set)
        for c in chunks:
            fresh[c.record_id].add((c.chunk_id, c.text, c.account_id, c.contact_id, c.shared, c.ts))
        stored: dict[int, set[tuple]] = defaultdict(set)
        query = select(SearchChunk).where(
            SearchChunk.workspace_id == repo.workspace_id,
            SearchChunk.record_kind == kind,
            SearchChunk.record_id.in_(ids),
        )
        for r in repo.session.scalars(query):
            stored[r.record_id].add((r.chunk_id, r.text, r.account_id, r.contact_id, r.shared, r.ts))
        return {i for i in ids if fresh[i] != stored[i]}

    def _holds_other_vectors(self, workspace_id: int) -> bool:
        try:
            self.collection(workspace_id)
        except EmbedderMismatch:
            return True
        return False

    def _has_collection(self, workspace_id: int) -> bool:
        return collection_name(workspace_id) in {getattr(c, "name", c) for c in self.client.list_collections()}

    def count_records(self, repo: Repo) -> int:
        """Records of the workspace that a rebuild would visit."""
        return sum(
            repo.session.scalar(select(func.count()).select_from(m).where(m.workspace_id == repo.workspace_id)) or 0
            for m in MODELS.values()
        )

    # -- reading ----------------------------------------------------------------------------
    def vector_candidates(
        self, workspace_id: int, vector: np.ndarray, where: dict[str, Any] | None, limit: int
    ) -> list[tuple[str, float]]:
        try:
            collection = self.collection(workspace_id)
            size = collection.count()
            if size == 0:
                return []
            result = collection.query(
                query_embeddings=[vector], n_results=min(limit, size), where=where, include=["distances"]
            )
        except EmbedderMismatch:
            raise
        except Exception as error:
            raise VectorIndexError(f"vector search failed: {error}") from None
        return list(zip(result["ids"][0], (1.0 - d for d in result["distances"][0]), strict=True))

    def lexical_candidates(
        self, repo: Repo, query: str, where_sql: str, params: dict[str, Any], limit: int
    ) -> list[tuple[str, float]]:
        words = [w for w in WORD.findall(query.lower()) if len(w) > 1][:32]
        if not words:
            return []
        params = {**params, "limit": limit, "workspace_id": repo.workspace_id}
        if repo.session.get_bind().dialect.name == "sqlite":
            params["match"] = " OR ".join(f'"{w}"' for w in words)
            sql = (
                "SELECT c.chunk_id, -bm25(search_fts) AS score "
                "FROM search_fts JOIN search_chunks c ON c.id = search_fts.rowid "
                f"WHERE search_fts MATCH :match AND c.workspace_id = :workspace_id {where_sql} "
                "ORDER BY bm25(search_fts) LIMIT :limit"
            )
        else:
            params["match"] = " | ".join(words)
            sql = (
                "SELECT c.chunk_id, ts_rank_cd(to_tsvector('english', c.text), to_tsquery('english', :match)) AS score "
                "FROM search_chunks c "
                "WHERE to_tsvector('english', c.text) @@ to_tsquery('english', :match) "
                f"AND c.workspace_id = :workspace_id {where_sql} "
                "ORDER BY score DESC LIMIT :limit"
            )
        return [(row[0], float(row[1])) for row in repo.session.execute(text(sql), params)]


def apply_search_ef(collection: Any, ef_search: int | None = None) -> bool:
    """Give an existing HNSW collection (e.g. one created with an older ``ef_search``) this search ef;
    True if it changed.

    get_or_create_collection ignores the configuration of a collection that exists, but chroma lets ``ef_search``
    be modified afterwards. Collections created with the legacy ``hnsw:*`` metadata keep those keys (chroma refuses
    metadata holding ``hnsw:space`` on modify); chroma uses the configuration, not them.
    """
    ef_search = HNSW_CONFIG["ef_search"] if ef_search is None else ef_search
    hnsw = (getattr(collection, "configuration", None) or {}).get("hnsw")
    if (
        not hnsw or hnsw.get("ef_search") == ef_search
    ):  # not an HNSW collection (e.g. SPANN on Chroma Cloud), or up to date
        return False
    try:
        collection.modify(configuration={"hnsw": {"ef_search": ef_search}})
    except Exception as error:  # an older server may refuse: search still works, with the old ef
        log.warning(
            "could not set ef_search=%s on %s (still %s): %s",
            ef_search,
            getattr(collection, "name", "?"),
            hnsw.get("ef_search"),
            error,
        )
        return False
    return True


def _metadata(chunk: Chunk) -> dict[str, Any]:
    return {
        "workspace_id": chunk.workspace_id,
        "record_kind": chunk.record_kind,
        "record_id": chunk.record_id,
        "account_id": chunk.account_id if chunk.account_id is not None else -1,
        "contact_id": chunk.contact_id if chunk.contact_id is not None else -1,
        "shared": chunk.shared,
        "ts": chunk.ts,
    }
