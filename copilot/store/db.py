"""Engine, sessions, migrations and the workspace-scoped repository.

All record access goes through :class:`Repo`, which is bound to one workspace
and adds the workspace filter to every query it builds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, Select, create_engine, event, inspect, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from copilot.errors import CopilotError, NotFound
from copilot.settings import Settings
from copilot.store.models import AuditEvent, Workspace, WorkspaceScoped

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The newest migration (tests/test_store.py checks it is alembic's head): a database already there is not handed
# to alembic at all, which keeps commands that only read records quick (alembic loads every migration script).
SCHEMA_HEAD = "0013_job_items"
MIGRATION_LOCK = 0x636F70696C6F74  # "copilot": the PostgreSQL advisory lock migrations take

T = TypeVar("T", bound=WorkspaceScoped)


class StoreError(CopilotError):
    """A problem with the record store that a user can act on."""


class WorkspaceNotFound(StoreError, NotFound):
    def __init__(self, slug: str) -> None:
        super().__init__(
            f"workspace '{slug}' does not exist (create it with `copilot demo` or `copilot workspace create {slug}`)"
        )
        self.slug = slug


def private_file(path: Path) -> None:
    """Create ``path`` readable by its owner only (SQLite gives its WAL and journal files the same mode)."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    path.chmod(0o600)


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 30) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:  # an API process serves up to 40 requests at once (its thread pool), each holding a connection or two
        engine = create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (creates everything on an empty database).

    On PostgreSQL, processes starting together (API replicas, workers) take turns: one migrates, the rest wait."""
    if revision == "head" and schema_revision(engine) == SCHEMA_HEAD:
        return
    from alembic import command

    if engine.dialect.name != "postgresql":
        command.upgrade(alembic_config(engine), revision)
        return
    with engine.connect() as lock:
        lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        try:
            command.upgrade(alembic_config(engine), revision)
        finally:
            lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            lock.commit()


def schema_revision(engine: Engine) -> str | None:
    """The database's alembic revision (None for an empty database)."""
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:  # no alembic_version table yet
        return None


class Store:
    """The database of one deployment: an engine plus a session factory."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings, *, upgrade: bool = True) -> Store:
        if settings.database_url is None:
            settings.ensure_dirs()
            private_file(settings.data_dir / "copilot.db")
        store = cls(make_engine(settings.resolved_database_url, pool_size=settings.database_pool_size,
                                max_overflow=settings.database_max_overflow))  # fmt: skip
        if upgrade:
            migrate(store.engine)
        return store

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error."""
        session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def repo(self, workspace: str) -> Iterator[Repo]:
        with self.session() as session:
            yield Repo.for_slug(session, workspace)

    def has_tables(self) -> bool:
        return inspect(self.engine).has_table("workspaces")


class Repo:
    """A session bound to one workspace: every query it builds is scoped to it."""

    def __init__(self, session: Session, workspace: Workspace) -> None:
        self.session = session
        self.workspace = workspace

    @classmethod
    def for_slug(cls, session: Session, slug: str) -> Repo:
        workspace = session.scalar(select(Workspace).where(Workspace.slug == slug))
        if workspace is None:
            raise WorkspaceNotFound(slug)
        return cls(session, workspace)

    @property
    def workspace_id(self) -> int:
        return self.workspace.id

    def select(self, model: type[T]) -> Select[tuple[T]]:
        return select(model).where(model.workspace_id == self.workspace.id)

    def all(self, query: Select[tuple[T]]) -> list[T]:
        return list(self.session.scalars(query))

    def get(self, model: type[T], record_id: int) -> T | None:
        """The row with this id if it belongs to this workspace, else None."""
        row = self.session.get(model, record_id)
        return row if row is not None and row.workspace_id == self.workspace.id else None

    def by_external_id(self, model: type[T], external_id: str) -> T | None:
        query = self.select(model).where(model.external_id == external_id)  # type: ignore[attr-defined]
        return self.session.scalar(query)

    def resolve(self, model: type[T], reference: int | str) -> T:
        """The record an id or external id (``12``, ``"12"``, ``"T-1179"``) names; NotFound otherwise."""
        row = None
        if isinstance(reference, int) or (isinstance(reference, str) and reference.isdigit()):
            row = self.get(model, int(reference))
        if row is None and isinstance(reference, str) and hasattr(model, "external_id"):
            row = self.by_external_id(model, reference)
        if row is None:
            kind = model.__tablename__.removesuffix("s").replace("_", " ")
            raise NotFound(f"no {kind} '{reference}' in workspace '{self.workspace.slug}'")
        return row

    def add(self, row: T) -> T:
        row.workspace_id = self.workspace.id
        self.session.add(row)
        return row


def get_or_create_workspace(session: Session, slug: str, name: str | None = None) -> Workspace:
    workspace = session.scalar(select(Workspace).where(Workspace.slug == slug))
    if workspace is None:
        workspace = Workspace(slug=slug, name=name or slug)
        session.add(workspace)
        session.flush()
    return workspace


@event.listens_for(Session, "before_flush")
def _audit_log_is_append_only(session: Session, _context: Any, _instances: Any) -> None:
    for row in (*session.dirty, *session.deleted):
        if isinstance(row, AuditEvent) and (row in session.deleted or session.is_modified(row)):
            raise StoreError("audit events are append-only: they cannot be changed or deleted")
