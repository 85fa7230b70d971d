"""Shared fixtures: an isolated data dir, settings on the fake model, and a migrated store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from copilot.settings import Settings
from copilot.store import Store, get_or_create_workspace

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _embedding_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One ONNX export of the embedding model for every test (and module fixture) of a run, kept in pytest's cache
    between runs: exporting takes about 15 s, and each test's own data dir would make it again."""
    cache = getattr(request.config, "cache", None)  # None with -p no:cacheprovider
    folder = cache.mkdir("embedding-models") if cache is not None else tmp_path_factory.mktemp("embedding-models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COPILOT_EMBEDDING_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(autouse=True)
def _clean_copilot_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, _embedding_cache: Path) -> None:
    for key in list(os.environ):
        if key.startswith("COPILOT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("COPILOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COPILOT_EMBEDDING_CACHE_DIR", str(_embedding_cache))
    monkeypatch.setenv("COPILOT_MODEL", "fake/echo")
    monkeypatch.setenv("COPILOT_INDEX_ON_INGEST", "false")  # tests that need the index build it themselves


# Set by `make test-servers` (and .ci/run): run the store, retrieval and API tests against a PostgreSQL server and a
# chromadb server instead of SQLite and the embedded chroma folder.
SERVER_DATABASE_URL = os.environ.get("COPILOT_TEST_DATABASE_URL")
SERVER_CHROMA_URL = os.environ.get("COPILOT_TEST_CHROMA_URL")


def _fresh_server_database(request: pytest.FixtureRequest) -> str | None:
    """A new, empty database on the test server for one test (dropped afterwards); None without a server."""
    if not SERVER_DATABASE_URL:
        return None
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"copilot_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(SERVER_DATABASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                )
            )
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()

    request.addfinalizer(drop)
    return make_url(SERVER_DATABASE_URL).set(database=name).render_as_string(hide_password=False)


def _empty_chroma_server() -> str | None:
    if not SERVER_CHROMA_URL:
        return None
    from urllib.parse import urlparse

    import chromadb

    url = urlparse(SERVER_CHROMA_URL)
    client = chromadb.HttpClient(host=url.hostname, port=url.port or 8000)
    for collection in client.list_collections():
        client.delete_collection(getattr(collection, "name", collection))
    return SERVER_CHROMA_URL


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings on the fake model in a fresh data dir (and a fresh server database / chroma server when configured)."""
    return Settings(
        data_dir=tmp_path / "data",
        model="fake/echo",
        database_url=_fresh_server_database(request),
        chroma_url=_empty_chroma_server(),
    )


def use_settings_in_cli(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """Point CLI commands run in-process at the same database and index as the test's settings."""
    monkeypatch.setenv("COPILOT_DATA_DIR", str(settings.data_dir))
    for key, value in (("COPILOT_DATABASE_URL", settings.database_url), ("COPILOT_CHROMA_URL", settings.chroma_url)):
        if value:
            monkeypatch.setenv(key, value)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    store = Store.from_settings(settings)
    yield store
    store.engine.dispose()


@pytest.fixture
def two_workspaces(store: Store) -> tuple[str, str]:
    with store.session() as session:
        get_or_create_workspace(session, "alpha", "Alpha Inc")
        get_or_create_workspace(session, "beta", "Beta GmbH")
    return "alpha", "beta"


@pytest.fixture
def fake_model():
    """The fake model this test's services answer ``fake/...`` calls with: push responses, read ``.calls``."""
    from copilot.gateway.fake import FakeModel

    return FakeModel()


@pytest.fixture
def fake_script(fake_model):
    """The same fake model, under the name older tests use for its queue of responses."""
    return fake_model


@pytest.fixture
def services(settings: Settings, store: Store, fake_model):
    """The services tasks run with, on the test's store and fake model (no backoff sleeps)."""
    from copilot.services import Services

    services = Services(settings, store, fake=fake_model, sleep=lambda _seconds: None)
    yield services
    services.close()


def public_dns(host: str, port: int) -> list[str]:
    """Tests have no DNS: IP literals (integer and hex forms too) resolve as the system would, localhost to
    127.0.0.1, and every other name to one public address (MockTransport answers; nothing is contacted)."""
    import socket

    try:
        return [socket.getaddrinfo(host, port, flags=socket.AI_NUMERICHOST)[0][4][0]]
    except socket.gaierror:
        return ["127.0.0.1"] if host == "localhost" else ["93.184.215.14"]


@pytest.fixture
def world(settings: Settings, fake_model):
    """Two workspaces with a ticket each and keys for every role; the app on the fake model."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from copilot.auth import create_key
    from copilot.services import Services
    from copilot.store.models import AuthorKind, Message, Ticket

    settings = settings.model_copy(update={"index_on_ingest": False})
    store = Store.from_settings(settings)
    keys, tickets = {}, {}
    for slug in ("alpha", "beta"):
        with store.session() as session:
            get_or_create_workspace(session, slug)
        with store.repo(slug) as repo:
            ticket = repo.add(Ticket(external_id="T-1", subject="Charged twice for order ORD-77"))
            repo.session.flush()
            repo.add(
                Message(
                    ticket_id=ticket.id,
                    author_kind=AuthorKind.customer,
                    author="Dana",
                    body="I was charged twice for order ORD-77. Please refund.",
                )
            )
            tickets[slug] = ticket.id
            for role in ("agent", "rep", "marketing", "admin"):
                keys[(slug, role)] = create_key(repo, role, f"{slug}-{role}")[0]
    services = Services(settings, store, fake=fake_model, sleep=lambda _seconds: None, resolver=public_dns)
    app = create_app(services=services)
    with TestClient(app) as client:
        yield client, store, keys, tickets, app
