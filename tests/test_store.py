"""Record store: migrations, workspace scoping, append-only audit log."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from copilot.store import Store, StoreError, WorkspaceNotFound
from copilot.store.db import SCHEMA_HEAD, alembic_config, make_engine, migrate, schema_revision
from copilot.store.models import Account, AiResult, AuditEvent, AuthorKind, Message, Ticket


def test_upgrade_from_empty_creates_every_table(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    migrate(engine)
    tables = set(inspect(engine).get_table_names())
    assert {
        "workspaces",
        "accounts",
        "contacts",
        "deals",
        "tickets",
        "messages",
        "calls",
        "call_turns",
        "nps_responses",
        "kb_articles",
        "notes",
        "ai_results",
        "audit_events",
        "alembic_version",
    } <= tables
    migrate(engine)  # idempotent
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_a_database_at_the_newest_migration_is_not_handed_to_alembic(tmp_path, monkeypatch):
    from alembic import command
    from alembic.script import ScriptDirectory

    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert ScriptDirectory.from_config(alembic_config(engine)).get_current_head() == SCHEMA_HEAD
    assert schema_revision(engine) is None
    migrate(engine)
    assert schema_revision(engine) == SCHEMA_HEAD
    command.downgrade(alembic_config(engine), "-1")
    calls = []
    upgrade = command.upgrade
    monkeypatch.setattr(command, "upgrade", lambda *args: calls.append(args) or upgrade(*args))
    migrate(engine)  # one behind: alembic upgrades it
    assert len(calls) == 1 and schema_revision(engine) == SCHEMA_HEAD
    migrate(engine)  # current: alembic is not run
    assert len(calls) == 1


def test_models_match_migrations(store: Store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from copilot.store.migrations.naming import include_name
    from copilot.store.models import Base

    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_name": include_name})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_query_in_one_workspace_never_returns_anothers_rows(store: Store, two_workspaces):
    alpha, beta = two_workspaces
    for slug in (alpha, beta):
        with store.repo(slug) as repo:
            account = repo.add(Account(name="Same Name", external_id="acc-1"))
            repo.session.flush()
            ticket = repo.add(Ticket(subject="Refund for double charge", account_id=account.id, external_id="t-1"))
            repo.session.flush()
            repo.add(Message(ticket_id=ticket.id, author_kind=AuthorKind.customer, body=f"hello from {slug}"))
    with store.repo(alpha) as repo:
        bodies = [m.body for m in repo.all(repo.select(Message))]
        assert bodies == ["hello from alpha"]
        beta_ticket_id = store.sessions().scalar(
            text("SELECT id FROM tickets WHERE workspace_id != :w").bindparams(w=repo.workspace_id)
        )
        assert repo.get(Ticket, beta_ticket_id) is None
        assert repo.by_external_id(Ticket, "t-1").workspace_id == repo.workspace_id


def test_unknown_workspace_is_a_clear_error(store: Store):
    with pytest.raises(WorkspaceNotFound, match="workspace 'nope' does not exist"):
        with store.repo("nope"):
            pass


def test_audit_log_is_append_only(store: Store, two_workspaces):
    with store.repo("alpha") as repo:
        result = repo.add(AiResult(task="reply_draft", subject_kind="ticket", subject_id=1))
        repo.session.flush()
        repo.session.add(
            AuditEvent(workspace_id=repo.workspace_id, actor="ana", action="approve", ai_result_id=result.id)
        )
    with store.sessions() as session:
        event = session.query(AuditEvent).one()
        event.actor = "mallory"
        with pytest.raises(StoreError, match="append-only"):
            session.flush()
        session.rollback()
        session.delete(session.query(AuditEvent).one())
        with pytest.raises(StoreError, match="append-only"):
            session.flush()
    with pytest.raises(Exception, match="append-only"):
        with store.engine.begin() as connection:
            connection.execute(text("UPDATE audit_events SET actor = 'mallory'"))


def test_ai_result_version_guards_concurrent_review(store: Store, two_workspaces):
    from sqlalchemy.orm.exc import StaleDataError

    with store.repo("alpha") as repo:
        result = repo.add(AiResult(task="reply_draft", subject_kind="ticket"))
        repo.session.flush()
        result_id = result.id
    first, second = store.sessions(), store.sessions()
    a, b = first.get(AiResult, result_id), second.get(AiResult, result_id)
    a.status = "approved"
    first.commit()
    b.status = "rejected"
    with pytest.raises(StaleDataError):
        second.commit()
    first.close(), second.close()
