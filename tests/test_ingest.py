"""Ingest: good files, bad rows (clear message, nothing written), dry run, idempotent upserts, scoping, CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from copilot.cli.main import app
from copilot.ingest import IngestError, ingest_file
from copilot.store import Store
from copilot.store.models import (
    Account,
    AiResult,
    AiStatus,
    CallTurn,
    Contact,
    Deal,
    KbArticle,
    Message,
    Note,
    NpsResponse,
    Ticket,
)
from tests.conftest import use_settings_in_cli

DATA = Path(__file__).parent / "data" / "ingest"
ORDER = ["accounts.jsonl", "contacts.csv", "tickets.jsonl", "messages.jsonl", "mixed.jsonl"]


def ingest_all(store: Store, workspace: str = "alpha") -> None:
    for name in ORDER:
        ingest_file(store, workspace, DATA / name)


def count(store: Store, model, workspace_id: int | None = None) -> int:
    query = select(func.count()).select_from(model)
    if workspace_id is not None:
        query = query.where(model.workspace_id == workspace_id)
    with store.session() as session:
        return session.scalar(query)


def test_good_files_ingest_with_references_resolved(store, two_workspaces):
    ingest_all(store)
    with store.repo("alpha") as repo:
        ticket = repo.by_external_id(Ticket, "T-1")
        acme = repo.by_external_id(Account, "ACME")
        assert ticket.account_id == acme.id and ticket.priority.value == "high"
        assert [m.author_kind.value for m in ticket.messages] == ["customer", "agent"]
        assert ticket.messages[0].sent_at.hour == 9  # naive timestamps are UTC
        deal = repo.by_external_id(Deal, "D-1")
        assert str(deal.amount) == "12000.50" and deal.currency == "EUR" and len(deal.stage_history) == 2
        turns = repo.all(repo.select(CallTurn).order_by(CallTurn.position))
        assert [t.text for t in turns] == ["Thanks for joining.", "Price is our main concern."]
        assert repo.by_external_id(Contact, "C-2").email is None  # empty CSV cell is null
        assert repo.by_external_id(KbArticle, "KB-1").tags == ["billing"]
        assert count(store, NpsResponse) == 1 and count(store, Note) == 1


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            {
                "external_id": "X",
                "ticket": "T-1",
                "author_kind": "robot",
                "body": "hi",
                "sent_at": "2026-01-01T00:00:00Z",
            },
            ":2: author_kind: Input should be",
        ),
        (
            {"external_id": "X", "ticket": "T-1", "author_kind": "agent", "sent_at": "2026-01-01T00:00:00Z"},
            ":2: body: Field required",
        ),
        (
            {
                "external_id": "X",
                "ticket": "T-404",
                "author_kind": "agent",
                "body": "hi",
                "sent_at": "2026-01-01T00:00:00Z",
            },
            ":2: ticket: no ticket with external_id 'T-404'",
        ),
        (
            {"external_id": "X", "ticket": "T-1", "author_kind": "agent", "body": "hi", "sent_at": "last tuesday"},
            ":2: sent_at: Input should be a valid datetime",
        ),
        (
            {
                "external_id": "X",
                "ticket": "T-1",
                "author_kind": "agent",
                "body": "hi",
                "sent_at": "2026-01-01T00:00:00Z",
                "bodyy": "typo",
            },
            ":2: bodyy: Extra inputs are not permitted",
        ),
    ],
)
def test_bad_row_aborts_the_file_and_writes_nothing(store, two_workspaces, tmp_path, line, expected):
    ingest_all(store)
    good = {
        "external_id": "M-9",
        "ticket": "T-2",
        "author_kind": "customer",
        "body": "still broken",
        "sent_at": "2026-03-06T10:00:00Z",
    }
    path = tmp_path / "messages.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(line) + "\n")
    before = count(store, Message)
    with pytest.raises(IngestError) as error:
        ingest_file(store, "alpha", path)
    assert str(error.value).startswith(str(path)) and expected in str(error.value)
    assert count(store, Message) == before


def test_bad_nps_score_in_csv_names_line_and_field(store, two_workspaces, tmp_path):
    path = tmp_path / "nps_responses.csv"
    path.write_text("score,comment,submitted_at\n9,great,2026-01-01\n11,too high,2026-01-02\n")
    with pytest.raises(IngestError, match=r"nps_responses.csv:3: score: Input should be less than or equal to 10"):
        ingest_file(store, "alpha", path)
    assert count(store, NpsResponse) == 0


def test_dry_run_validates_and_writes_nothing(store, two_workspaces):
    report = ingest_file(store, "alpha", DATA / "accounts.jsonl", dry_run=True)
    assert report.inserted == {"account": 2} and report.dry_run
    assert count(store, Account) == 0
    with pytest.raises(IngestError, match="no account with external_id 'ACME'"):
        ingest_file(store, "alpha", DATA / "contacts.csv", dry_run=True)


def test_reingest_updates_instead_of_duplicating(store, two_workspaces, tmp_path):
    ingest_all(store)
    counts = {m: count(store, m) for m in (Account, Contact, Ticket, Message, CallTurn, Deal)}
    ingest_all(store)
    assert {m: count(store, m) for m in counts} == counts
    changed = tmp_path / "tickets.jsonl"
    changed.write_text((DATA / "tickets.jsonl").read_text().replace('"priority": "high"', '"priority": "urgent"'))
    report = ingest_file(store, "alpha", changed)
    assert report.updated == {"ticket": 2} and report.inserted == {"ticket": 0}
    with store.repo("alpha") as repo:
        assert repo.by_external_id(Ticket, "T-1").priority.value == "urgent"


def test_same_external_ids_in_two_workspaces_stay_separate(store, two_workspaces):
    ingest_all(store, "alpha")
    ingest_all(store, "beta")
    with store.repo("alpha") as alpha, store.repo("beta") as beta:
        assert count(store, Account, alpha.workspace_id) == 2 == count(store, Account, beta.workspace_id)
        assert alpha.by_external_id(Ticket, "T-1").id != beta.by_external_id(Ticket, "T-1").id


def test_new_customer_message_makes_ticket_drafts_stale(store, two_workspaces, tmp_path, services):
    ingest_all(store)
    with store.repo("alpha") as repo:
        ticket = repo.by_external_id(Ticket, "T-1")
        draft = repo.add(AiResult(task="reply_draft", subject_kind="ticket", subject_id=ticket.id))
        approved = repo.add(
            AiResult(task="reply_draft", subject_kind="ticket", subject_id=ticket.id, status=AiStatus.approved)
        )
    path = tmp_path / "messages.jsonl"
    path.write_text(
        json.dumps({"ticket": "T-1", "author_kind": "customer", "body": "Any news?", "sent_at": "2026-03-07T10:00:00Z"})
        + "\n"
    )
    from copilot.records import after_write_hooks

    ingest_file(store, "alpha", path, after_write=after_write_hooks(services))
    with store.repo("alpha") as repo:
        assert repo.get(AiResult, draft.id).status is AiStatus.stale
        assert repo.get(AiResult, approved.id).status is AiStatus.approved


def test_cli_ingest_reports_counts_and_one_line_errors(store, two_workspaces, settings, monkeypatch, tmp_path):
    use_settings_in_cli(monkeypatch, settings)
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", "-w", "alpha", *[str(DATA / n) for n in ORDER]])
    assert result.exit_code == 0, result.output
    assert "inserted" in result.output
    bad = tmp_path / "accounts.jsonl"
    bad.write_text('{"external_id": "Z"}\n')
    from copilot.cli.main import main

    monkeypatch.setattr("sys.argv", ["copilot", "ingest", "-w", "alpha", str(bad)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1


def test_cli_unknown_workspace_is_one_line_error(settings, monkeypatch, capsys):
    from copilot.cli.main import main

    monkeypatch.setattr("sys.argv", ["copilot", "ingest", "-w", "nope", str(DATA / "accounts.jsonl")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "workspace 'nope' does not exist" in err and "Traceback" not in err


def test_reingest_batch_mixing_existing_new_repeated_and_unkeyed_rows(store, two_workspaces, tmp_path):
    ingest_all(store)
    sent = "2026-03-08T10:00:00Z"
    rows = [
        {"external_id": "M-1", "ticket": "T-1", "author_kind": "customer", "body": "edited", "sent_at": sent},
        {"external_id": "M-new", "ticket": "T-2", "author_kind": "agent", "body": "first", "sent_at": sent},
        {"ticket": "T-2", "author_kind": "agent", "body": "no key", "sent_at": sent},
        {"external_id": "M-new", "ticket": "T-2", "author_kind": "agent", "body": "second wins", "sent_at": sent},
    ]
    path = tmp_path / "messages.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    before = count(store, Message)
    report = ingest_file(store, "alpha", path)
    assert report.inserted == {"message": 2} and report.updated == {"message": 2}
    assert count(store, Message) == before + 2
    with store.repo("alpha") as repo:
        assert repo.by_external_id(Message, "M-1").body == "edited"
        assert repo.by_external_id(Message, "M-new").body == "second wins"
        written = {
            m.id for m in repo.all(repo.select(Message).where(Message.body.in_(["edited", "second wins", "no key"])))
        }
        assert set(report.written_ids["message"]) == written


def test_ingested_timestamps_compare_like_orm_written_ones(store, two_workspaces):
    ingest_all(store)
    at = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
    with store.repo("alpha") as repo:
        message = repo.session.scalar(repo.select(Message).where(Message.sent_at == at))
        assert message is not None and message.external_id == "M-2"
        later = (
            select(func.count())
            .select_from(Message)
            .where(Message.workspace_id == repo.workspace_id, Message.sent_at >= at)
        )
        assert repo.session.scalar(later) == 2


def test_line_naming_its_own_kind_in_a_single_kind_file(store, two_workspaces, tmp_path):
    ingest_all(store)
    message = {
        "external_id": "M-7",
        "ticket": "T-1",
        "author_kind": "agent",
        "body": "see note",
        "sent_at": "2026-03-08T10:00:00Z",
    }
    note = {"kind": "note", "ticket": "T-1", "body": "customer called"}
    path = tmp_path / "messages.jsonl"
    path.write_text(json.dumps(message) + "\n\n" + json.dumps(note) + "\n")
    report = ingest_file(store, "alpha", path)
    assert report.inserted == {"message": 1, "note": 1}
    bad = tmp_path / "more_messages.jsonl"
    bad.write_text(json.dumps(message) + "\n" + json.dumps(message) + ", " + json.dumps(message) + "\n")
    with pytest.raises(IngestError, match=r"more_messages.jsonl:2: \(row\): not valid JSON"):
        ingest_file(store, "alpha", bad, kind="message")
