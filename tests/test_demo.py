"""Demo workspace: counts, determinism, the hard cases later features rely on, isolation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from copilot.cli.main import app
from copilot.demo.generator import DemoCounts, seed_demo, workspace_has_records
from copilot.errors import InvalidInput
from copilot.settings import Settings
from copilot.store import Store
from copilot.store.models import Account, Deal, DealStage, Message, NpsResponse, Priority, Ticket, TicketStatus

ANCHOR = date(2026, 11, 22)


class Seeded(NamedTuple):
    store: Store
    counts: DemoCounts
    data_dir: Path


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Seeded:
    data_dir = tmp_path_factory.mktemp("demo")
    store = Store.from_settings(Settings(data_dir=data_dir))
    return Seeded(store, seed_demo(store, "demo", seed=7, anchor=ANCHOR), data_dir)


def test_counts_meet_the_minimums(seeded):
    _, counts, _ = seeded
    assert counts.accounts >= 40 and counts.contacts >= 150 and counts.deals >= 60 and counts.tickets >= 400
    assert counts.calls >= 30 and counts.nps_responses >= 1500 and counts.kb_articles >= 40
    assert counts.messages >= 2 * counts.tickets


def test_threads_are_multi_message_and_varied(seeded):
    store, _, _ = seeded
    with store.repo("demo") as repo:
        sizes = (
            repo.session.execute(
                select(func.count())
                .select_from(Message)
                .where(Message.workspace_id == repo.workspace_id)
                .group_by(Message.ticket_id)
            )
            .scalars()
            .all()
        )
        assert min(sizes) >= 2 and max(sizes) <= 8
        bodies = repo.session.scalars(repo.select(Message).with_only_columns(Message.body)).all()
        assert len(set(bodies)) > 0.6 * len(bodies)
        kinds = set(repo.session.scalars(repo.select(Message).with_only_columns(Message.author_kind)))
        assert {k.value for k in kinds} == {"customer", "agent", "internal_note"}
        languages = " ".join(bodies)
        assert "Hola" in languages or "Guten Tag" in languages or "Bonjour" in languages


def test_same_seed_is_identical_and_other_seed_differs(tmp_path):
    store = Store.from_settings(Settings(data_dir=tmp_path))
    first = seed_demo(store, "one", seed=7, anchor=ANCHOR)
    again = seed_demo(store, "two", seed=7, anchor=ANCHOR)
    other = seed_demo(store, "three", seed=8, anchor=ANCHOR)
    assert first.content_hash == again.content_hash
    assert other.content_hash != first.content_hash
    assert first.tickets == other.tickets  # a second workspace does not touch the first
    with store.repo("one") as repo:
        assert len(repo.all(repo.select(Ticket))) == first.tickets
    reset = seed_demo(store, "one", 7, reset=True, anchor=ANCHOR)
    assert reset.content_hash == first.content_hash and reset.tickets == first.tickets
    with store.repo("two") as repo:
        assert len(repo.all(repo.select(Ticket))) == again.tickets


def test_hard_cases_exist(seeded):
    store, _, _ = seeded
    with store.repo("demo") as repo:
        acme = repo.by_external_id(Account, "ACME")
        assert acme.name == "Acme Corporation"
        acme_tickets = repo.all(repo.select(Ticket).where(Ticket.account_id == acme.id))
        assert any("double charge" in t.subject.lower() for t in acme_tickets)
        assert any(
            t.priority in (Priority.high, Priority.urgent) and t.status is TicketStatus.open for t in acme_tickets
        )
        injected = repo.all(repo.select(Message).where(Message.body.contains("Ignore your previous instructions")))
        assert injected and injected[0].ticket.account_id == acme.id
        stalled = [
            d
            for d in repo.all(repo.select(Deal).where(Deal.account_id == acme.id))
            if d.stage is DealStage.negotiation and d.next_step is None
        ]
        assert stalled
        last_change = datetime.fromisoformat(stalled[0].stage_history[-1]["at"])
        assert datetime.combine(ANCHOR, datetime.min.time(), tzinfo=UTC) - last_change > timedelta(days=60)
        detractors = repo.all(repo.select(NpsResponse).where(NpsResponse.account_id == acme.id, NpsResponse.score <= 6))
        assert detractors


def test_some_threads_end_with_the_customer(seeded):
    store, _, _ = seeded
    with store.repo("demo") as repo:
        open_tickets = repo.all(repo.select(Ticket).where(Ticket.status == TicketStatus.open).limit(50))
        assert any(t.messages[-1].author_kind.value == "customer" for t in open_tickets)


def test_if_missing_sees_existing_records(seeded):
    store, _, _ = seeded
    assert workspace_has_records(store, "demo")
    assert not workspace_has_records(store, "nothing-here")


def ticket_count(store: Store, workspace: str) -> int:
    with store.repo(workspace) as repo:
        return repo.session.scalar(repo.select(Ticket).with_only_columns(func.count()))


def test_if_missing_is_a_no_op_on_a_seeded_workspace(seeded, monkeypatch):
    store, counts, data_dir = seeded
    monkeypatch.setenv("COPILOT_DATA_DIR", str(data_dir))
    result = CliRunner().invoke(app, ["demo", "--if-missing", "--no-index"])
    assert result.exit_code == 0, result.output
    assert "already has records" in result.output
    assert ticket_count(store, "demo") == counts.tickets


def test_seeding_a_seeded_workspace_without_reset_is_refused(seeded, monkeypatch):
    store, counts, data_dir = seeded
    with pytest.raises(InvalidInput, match="already has records"):
        seed_demo(store, "demo", 7, anchor=ANCHOR)
    monkeypatch.setenv("COPILOT_DATA_DIR", str(data_dir))
    result = CliRunner().invoke(app, ["demo", "--no-index"])
    assert isinstance(result.exception, InvalidInput)
    assert ticket_count(store, "demo") == counts.tickets
