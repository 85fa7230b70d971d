"""Retrieval: indexing, hybrid search, filters, incremental updates, deletes, isolation, langchain interop."""

from __future__ import annotations

import inspect
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select
from typer.testing import CliRunner

from copilot.cli.main import app
from copilot.ingest import ingest_file
from copilot.records import after_write_hooks
from copilot.services import Services
from copilot.store import Store, get_or_create_workspace
from copilot.store.models import Account, AuthorKind, KbArticle, Message, NpsResponse, SearchChunk, Ticket
from retrieval.embeddings import EmbeddingModelError, default_embedder, model_dir, verify_weights
from retrieval.index import HistoryIndex, VectorIndexError, chroma_client
from retrieval.langchain import HistoryRetriever
from retrieval.search import Searcher, SearchFilters, fuse
from tests.conftest import use_settings_in_cli

NOW = datetime.now(UTC)
INGEST_DATA = Path(__file__).parent / "data" / "ingest"
SECRET = "Our CFO Maria approved the 40% discount for the Q3 renewal of the Zanzibar plan."


@pytest.fixture(scope="module")
def embedder():
    return default_embedder()


@pytest.fixture
def world(store: Store, settings, embedder):
    """Two workspaces and two accounts per workspace, with the same private wording everywhere."""
    ids = {}
    with store.session() as session:
        for slug in ("alpha", "beta"):
            get_or_create_workspace(session, slug)
    for slug in ("alpha", "beta"):
        with store.repo(slug) as repo:
            for name in ("Acme", "Globex"):
                account = repo.add(Account(name=name, external_id=name.upper()))
                repo.session.flush()
                ticket = repo.add(
                    Ticket(subject=f"Double charge on invoice for {name}", account_id=account.id, opened_at=NOW)
                )
                repo.session.flush()
                repo.add(
                    Message(
                        ticket_id=ticket.id,
                        author_kind=AuthorKind.customer,
                        sent_at=NOW - timedelta(days=2),
                        body=f"We were charged twice for the same invoice and need a refund. {SECRET} ({slug}/{name})",
                    )
                )
                repo.add(
                    Message(
                        ticket_id=ticket.id,
                        author_kind=AuthorKind.agent,
                        sent_at=NOW - timedelta(days=400),
                        body="The mobile app crash on Android is fixed in version 4.12.2.",
                    )
                )
                repo.add(
                    NpsResponse(account_id=account.id, score=3, comment="Support was slow to answer", submitted_at=NOW)
                )
                ids[(slug, name)] = account.id
            repo.add(
                KbArticle(
                    title="How to request a refund",
                    body="## Overview\nRefunds for duplicate charges go back to the card.\n\n## Steps\nOpen Billing.",
                )
            )
    index = HistoryIndex(settings, embedder)
    for slug in ("alpha", "beta"):
        with store.repo(slug) as repo:
            index.rebuild(repo)
    return index, ids


def search(store, index, slug, query, **kwargs):
    with store.repo(slug) as repo:
        return Searcher(index).search(repo, query, **kwargs)


def test_hybrid_search_returns_cited_hits(store, world):
    index, ids = world
    hits = search(store, index, "alpha", "refund for double charge", limit=5)
    assert [h.label for h in hits] == [f"S{i}" for i in range(1, len(hits) + 1)]
    assert hits and {h.record_kind for h in hits} & {"message", "ticket", "kb_article"}
    assert hits == sorted(hits, key=lambda h: -h.score)


def test_searches_for_the_same_query_encode_it_once(store, world, monkeypatch):
    index, _ = world
    searcher = Searcher(index)
    encoded: list[list[str]] = []
    real = index.embedder.encode
    monkeypatch.setattr(index.embedder, "encode", lambda texts, *a, **k: encoded.append(list(texts)) or real(texts))
    with store.repo("alpha") as repo:
        first = searcher.search(repo, "refund for double charge", limit=5)
        again = searcher.search(repo, "refund for double charge", limit=5)
        kb = searcher.search(repo, "refund for double charge", SearchFilters(kinds=["kb_article"]), limit=2)
        other = searcher.search(repo, "android crash", limit=3)
    assert encoded == [["refund for double charge"], ["android crash"]]
    assert first == again and kb and other
    assert not searcher.query_vector("android crash").flags.writeable  # shared, so nobody may change it


def test_account_filter_never_returns_another_accounts_private_history(store, world):
    index, ids = world
    for mode in ("hybrid", "vector", "lexical"):
        hits = search(
            store, index, "alpha", SECRET, filters=SearchFilters(account_id=ids[("alpha", "Acme")]), limit=20, mode=mode
        )
        private = [h for h in hits if h.record_kind != "kb_article"]
        assert private, mode
        assert all(h.account_id == ids[("alpha", "Acme")] for h in private), mode
        assert all("alpha/Acme" in h.snippet for h in private if "Zanzibar" in h.snippet), mode


def test_workspaces_never_mix(store, world):
    index, ids = world
    beta_accounts = {ids[("beta", "Acme")], ids[("beta", "Globex")]}
    hits = search(store, index, "alpha", SECRET, limit=50)
    assert hits and not any(h.account_id in beta_accounts for h in hits)
    assert not any("beta/" in h.snippet for h in hits)


def test_search_cannot_be_called_without_a_workspace(world):
    index, _ = world
    parameters = list(inspect.signature(Searcher.search).parameters)
    assert parameters[:3] == ["self", "repo", "query"]
    with pytest.raises(TypeError):
        Searcher(index).search(query="refund")  # type: ignore[call-arg]


def test_kb_is_shared_within_the_workspace_and_can_be_excluded(store, world):
    index, ids = world
    hits = search(
        store, index, "alpha", "request a refund", filters=SearchFilters(account_id=ids[("alpha", "Globex")]), limit=10
    )
    assert any(h.record_kind == "kb_article" for h in hits)
    hits = search(store, index, "alpha", "request a refund", filters=SearchFilters(include_shared=False), limit=10)
    assert not any(h.record_kind == "kb_article" for h in hits)


def test_kind_and_time_filters(store, world):
    index, _ = world
    hits = search(store, index, "alpha", "support slow", filters=SearchFilters(kinds=["nps_response"]), limit=10)
    assert hits and {h.record_kind for h in hits} == {"nps_response"}
    recent = search(
        store,
        index,
        "alpha",
        "mobile app crash android",
        filters=SearchFilters(since=NOW - timedelta(days=30)),
        limit=20,
    )
    assert not any("4.12.2" in h.snippet for h in recent)


def test_new_records_are_indexed_and_deleted_ones_disappear(store, world):
    index, ids = world
    with store.repo("alpha") as repo:
        ticket = repo.session.scalar(repo.select(Ticket).where(Ticket.account_id == ids[("alpha", "Acme")]))
        message = repo.add(
            Message(
                ticket_id=ticket.id,
                author_kind=AuthorKind.customer,
                sent_at=NOW,
                body="The quokka export integration keeps failing.",
            )
        )
        repo.session.flush()
        index.index_records(repo, "message", [message.id])
        message_id = message.id
    assert any(h.record_id == message_id for h in search(store, index, "alpha", "quokka export integration"))
    with store.repo("alpha") as repo:
        index.remove_records(repo, "message", [message_id])
    assert not any(h.record_id == message_id for h in search(store, index, "alpha", "quokka export integration"))


def test_rebuild_resumes_without_duplicating(store, world):
    index, _ = world
    with store.repo("alpha") as repo:
        assert index.rebuild(repo) == 0  # everything already indexed
        assert index.rebuild(repo, resume=False) > 0
    hits = search(store, index, "alpha", SECRET, limit=50)
    assert len({h.chunk_id for h in hits}) == len(hits)


def test_resumed_rebuild_reindexes_records_changed_behind_its_back(store, world):
    index, _ = world
    with store.repo("alpha") as repo:
        message = repo.session.scalar(repo.select(Message).where(Message.body.contains("4.12.2")))
        message.body = "The wombat sync is fixed in version 9.9."
        message_id = message.id
    with store.repo("alpha") as repo:
        assert index.rebuild(repo) == 1
    assert any(
        h.record_id == message_id and "wombat" in h.text
        for h in search(store, index, "alpha", "wombat sync fixed", limit=3)
    )
    old_text = search(store, index, "alpha", "android crash 4.12.2", limit=20, mode="lexical")
    assert old_text and not any(h.record_id == message_id for h in old_text)


def test_recency_boost_prefers_recent_records(store, world):
    index, _ = world
    plain = search(store, index, "alpha", "fixed in version", limit=10)
    boosted = search(store, index, "alpha", "fixed in version", limit=10, recency_half_life_days=7)
    assert plain and boosted
    assert boosted[0].timestamp >= plain[0].timestamp


def test_reciprocal_rank_fusion():
    fused = fuse([[("a", 0.9), ("b", 0.5)], [("b", 3.0), ("c", 1.0)]])
    assert list(fused) == ["b", "a", "c"]


def test_langchain_retriever_returns_documents(store, world):
    index, ids = world
    retriever = HistoryRetriever(searcher=Searcher(index), store=store, workspace="alpha", k=3)
    documents = retriever.invoke("refund for a double charge")
    assert 0 < len(documents) <= 3
    assert {"label", "record_kind", "record_id", "score"} <= set(documents[0].metadata)


def test_corrupt_embedding_weights_are_refused(tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(model_dir(), copy)
    (copy / "model.safetensors").write_bytes(b"not the weights")
    with pytest.raises(EmbeddingModelError, match="corrupt"):
        verify_weights(copy)
    (copy / "model.safetensors").unlink()
    with pytest.raises(EmbeddingModelError, match="missing"):
        verify_weights(copy)


def test_records_deleted_behind_the_index_disappear_and_rebuild_prunes_them(store, world):
    index, ids = world
    with store.repo("alpha") as repo:
        ticket_id = repo.session.scalar(select(Ticket.id).where(Ticket.account_id == ids[("alpha", "Acme")]))
        repo.session.execute(delete(Ticket).where(Ticket.id == ticket_id))  # the database cascades to its messages
    hits = search(store, index, "alpha", SECRET, limit=50)
    assert hits and not any("alpha/Acme" in h.text for h in hits)
    with store.repo("alpha") as repo:
        assert index.prune_deleted(repo) == 3  # the ticket and its two messages
        left = repo.session.scalars(select(SearchChunk.chunk_id).where(SearchChunk.text.contains("alpha/Acme")))
        assert list(left) == []


def _ingest(store, settings, workspace, *paths, embedder):
    services = Services(settings.model_copy(update={"index_on_ingest": True}), store, embedder=embedder)
    try:
        for path in paths:
            ingest_file(store, workspace, path, after_write=after_write_hooks(services))
    finally:
        services.close()


def test_ingested_records_are_searchable_and_follow_a_ticket_moved_to_another_account(
    store, settings, two_workspaces, tmp_path, embedder
):
    _ingest(
        store,
        settings,
        "alpha",
        *(INGEST_DATA / name for name in ("accounts.jsonl", "contacts.csv", "tickets.jsonl", "messages.jsonl")),
        embedder=embedder,
    )
    index = HistoryIndex(settings, embedder)
    with store.repo("alpha") as repo:
        acme, globex = (repo.by_external_id(Account, key).id for key in ("ACME", "GLOBEX"))
    hits = search(store, index, "alpha", "charged twice for invoice", filters=SearchFilters(account_id=acme))
    assert any("INV-2026-0042" in h.text for h in hits)

    moved = tmp_path / "tickets.jsonl"
    moved.write_text(
        json.dumps({"external_id": "T-1", "account": "GLOBEX", "subject": "Charged twice in March"}) + "\n"
    )
    _ingest(store, settings, "alpha", moved, embedder=embedder)
    hits = search(store, index, "alpha", "charged twice for invoice", filters=SearchFilters(account_id=acme), limit=20)
    assert not any(h.record_kind in ("ticket", "message") for h in hits)
    hits = search(store, index, "alpha", "charged twice for invoice", filters=SearchFilters(account_id=globex))
    assert any("INV-2026-0042" in h.text and h.account_id == globex for h in hits)


def test_cli_index_and_search_print_cited_hits(store, settings, world, monkeypatch):
    use_settings_in_cli(monkeypatch, settings)
    runner = CliRunner()
    indexed = runner.invoke(app, ["index", "-w", "alpha"])
    assert indexed.exit_code == 0, indexed.output
    assert "indexed 0 records" in indexed.output
    result = runner.invoke(
        app, ["search", "refund for double charge", "-w", "alpha", "--account", "ACME", "--limit", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "[S1]" in result.output and "[S3]" in result.output
    missing = runner.invoke(app, ["search", "refund", "-w", "alpha", "--account", "NOPE"])
    assert missing.exit_code != 0 and "no account 'NOPE'" in str(missing.exception)


def test_unreachable_chroma_server_is_a_one_line_error(settings):
    with pytest.raises(VectorIndexError, match="cannot open the vector index at http://127.0.0.1:9"):
        chroma_client(settings.model_copy(update={"chroma_url": "http://127.0.0.1:9"}))
