"""Ticket summary: extractive path, model path with guards and fallback, provenance, staleness, CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from copilot.services import Services
from copilot.store import get_or_create_workspace
from copilot.store.models import AiResult, AiStatus, AuthorKind, Message, Ticket
from copilot.tasks.thread import Thread, ThreadMessage
from copilot.tasks.ticket_summary import TicketSummaryParams, extractive_summary, summarize_ticket
from tests.fakes import FakeEmbedder

T0 = datetime(2026, 3, 4, 9, tzinfo=UTC)
THREAD = [
    (
        "customer",
        "Ana Lima",
        "Hi team,\n\nWe were charged twice for invoice INV-2026-0042 ($49.00) on March 3. "
        "Can you refund the duplicate?\n\nThanks,\nAna Lima",
    ),
    (
        "agent",
        "Liam Chen",
        "Hi Ana, sorry about that. I've asked billing to check both charges and I'll update you tomorrow."
        "\n\nBest regards,\nLiam Chen",
    ),
    ("internal_note", "Liam Chen", "Gateway retry on March 3, refund approved."),
    ("customer", "Ana Lima", "Any news on the refund? Our controller is asking."),
]


@pytest.fixture
def ticket_id(store):
    with store.session() as session:
        get_or_create_workspace(session, "alpha")
    with store.repo("alpha") as repo:
        ticket = repo.add(Ticket(subject="Charged twice", external_id="T-1"))
        repo.session.flush()
        for n, (kind, author, body) in enumerate(THREAD):
            repo.add(
                Message(
                    ticket_id=ticket.id,
                    author_kind=AuthorKind(kind),
                    author=author,
                    body=body,
                    sent_at=T0 + timedelta(hours=n),
                )
            )
        return ticket.id


@pytest.fixture
def summarize(store, settings, fake_model):
    """Run the ticket_summary task on a model (in its own transaction), as the API and CLI do."""

    def run(model: str, ticket_id):
        services = Services(
            settings.model_copy(update={"model": model}),
            store,
            fake=fake_model,
            embedder=FakeEmbedder(),
            sleep=lambda _s: None,
        )
        try:
            with store.repo("alpha") as repo:
                return services.run_task(repo, "ticket_summary", {"ticket_id": ticket_id})
        finally:
            services.close()

    return run


def message_ids(store, ticket_id):
    with store.repo("alpha") as repo:
        return [m.id for m in repo.get(Ticket, ticket_id).messages]


def test_extractive_summary_picks_intent_commitment_and_open_question():
    thread = Thread(
        subject="Charged twice",
        messages=[ThreadMessage(id=i, author_kind=k, author=a, text=t) for i, (k, a, t) in enumerate(THREAD, start=10)],
    )
    summary = extractive_summary(thread, FakeEmbedder().encode)
    assert "charged twice" in summary.intent.lower() and not summary.intent.startswith("Hi")
    assert any("I'll update you tomorrow" in b.text for b in summary.agent_commitments)
    assert summary.open_questions and summary.open_questions[0].message_ids == [13]
    assert set(summary.cited_ids()) <= {10, 11, 12, 13} and "Gateway retry" not in summary.as_text()
    assert "waiting on the agent" in summary.status


def test_embedded_model_uses_the_extractive_path_and_stores_provenance(store, summarize, ticket_id):
    outcome = summarize("local/smollm2-135m-instruct", ticket_id)
    assert not outcome.used_fallback and outcome.provenance.model == "extractive"
    with store.repo("alpha") as repo:
        row = repo.get(AiResult, outcome.ai_result_id)
        assert (
            row.task == "ticket_summary"
            and row.status is AiStatus.completed
            and row.prompt_version == outcome.provenance.prompt_version
        )
        assert row.input_ids == [f"message:{i}" for i in message_ids(store, ticket_id)]
        assert row.content["result"]["intent"] == outcome.result.intent
        assert {v["name"] for v in row.guard_verdicts} == {"cited_ids", "grounded_facts", "grounded_names"}


def test_model_summary_that_passes_guards_is_used(store, summarize, fake_script, ticket_id):
    ids = message_ids(store, ticket_id)
    fake_script.push(
        json.dumps(
            {
                "intent": "Refund of a duplicate $49.00 charge for INV-2026-0042",
                "what_happened": [{"text": "Customer was charged twice on March 3", "message_ids": [ids[0]]}],
                "agent_commitments": [{"text": "Agent will update after billing checks", "message_ids": [ids[1]]}],
                "open_questions": [],
                "status": "open",
            }
        )
    )
    outcome = summarize("fake/scripted", ticket_id)
    assert not outcome.used_fallback and outcome.result.intent.startswith("Refund of a duplicate")
    assert all(v.passed for v in outcome.verdicts) and outcome.provenance.model == "fake/scripted"


def test_cited_id_not_in_thread_is_caught_and_falls_back(store, summarize, fake_script, ticket_id):
    fake_script.push(
        json.dumps(
            {
                "intent": "Refund",
                "what_happened": [{"text": "Charged twice", "message_ids": [999999]}],
                "agent_commitments": [],
                "open_questions": [],
                "status": "open",
            }
        )
    )
    outcome = summarize("fake/scripted", ticket_id)
    assert outcome.used_fallback and "guard" in outcome.fallback_reason
    failed = [v for v in outcome.verdicts if not v.passed]
    assert failed[0].name == "cited_ids" and "999999" in failed[0].details[0]
    assert 999999 not in outcome.result.cited_ids()


def test_invented_number_in_model_summary_is_caught(store, summarize, fake_script, ticket_id):
    ids = message_ids(store, ticket_id)
    fake_script.push(
        json.dumps(
            {
                "intent": "Customer wants a $500 refund for order #77777",
                "what_happened": [{"text": "x", "message_ids": [ids[0]]}],
                "agent_commitments": [],
                "open_questions": [],
                "status": "open",
            }
        )
    )
    outcome = summarize("fake/scripted", ticket_id)
    assert outcome.used_fallback
    grounded = next(v for v in outcome.verdicts if v.name == "grounded_facts")
    assert not grounded.passed and any("500" in d for d in grounded.details)


def test_invalid_json_from_the_model_falls_back_with_a_schema_verdict(store, summarize, fake_script, ticket_id):
    fake_script.push('{"intent": "cut off')
    outcome = summarize("fake/scripted", ticket_id)
    assert outcome.used_fallback and outcome.verdicts[0].name == "schema" and not outcome.verdicts[0].passed


def test_summary_goes_stale_when_the_customer_writes_again(store, services, summarize, ticket_id, tmp_path):
    from copilot.ingest import ingest_file
    from copilot.records import after_write_hooks

    outcome = summarize("local/smollm2-135m-instruct", ticket_id)
    path = tmp_path / "messages.jsonl"
    path.write_text(
        json.dumps({"ticket": "T-1", "author_kind": "customer", "body": "Hello?", "sent_at": "2026-03-06T10:00:00Z"})
        + "\n"
    )
    ingest_file(store, "alpha", path, after_write=after_write_hooks(services))
    with store.repo("alpha") as repo:
        assert repo.get(AiResult, outcome.ai_result_id).status is AiStatus.stale


def test_unknown_ticket_is_not_found(store, services, ticket_id):
    from copilot.errors import NotFound

    with store.repo("alpha") as repo:
        with pytest.raises(NotFound, match="no ticket '424242' in workspace 'alpha'"):
            summarize_ticket(services.context(repo, task="ticket_summary"), TicketSummaryParams(ticket_id=424242))
        with pytest.raises(NotFound, match="no ticket '424242' in workspace 'alpha'"):
            services.run_task(repo, "ticket_summary", {"ticket_id": 424242})
