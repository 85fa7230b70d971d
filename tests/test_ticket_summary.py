"""Ticket summary: extractive path, model path with guards and fallback, provenance, staleness, CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from copilot.gateway import Gateway
from copilot.gateway.fake import SCRIPT
from copilot.store import get_or_create_workspace
from copilot.store.models import AiResult, AiStatus, AuthorKind, Message, Ticket
from copilot.tasks.context import TaskContext
from copilot.tasks.thread import Thread, ThreadMessage
from copilot.tasks.ticket_summary import extractive_summary, summarize_ticket

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


class FakeEmbedder:
    """Deterministic bag-of-letters vectors: enough for centroid ranking in unit tests."""

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = (
            np.array([[t.lower().count(c) for c in "abcdefghijklmnopqrstuvwxyz"] for t in texts], dtype=np.float32)
            + 1e-3
        )
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(autouse=True)
def _empty_script(fake_script):
    return fake_script


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


def context(store, settings, model: str):
    settings = settings.model_copy(update={"model": model})
    repo_cm = store.repo("alpha")
    repo = repo_cm.__enter__()
    return repo_cm, TaskContext(settings, repo, Gateway(settings, sleep=lambda _s: None), _embedder=FakeEmbedder())


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


def test_embedded_model_uses_the_extractive_path_and_stores_provenance(store, settings, ticket_id):
    manager, ctx = context(store, settings, "local/smollm2-135m-instruct")
    outcome = summarize_ticket(ctx, ticket_id)
    manager.__exit__(None, None, None)
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


def test_model_summary_that_passes_guards_is_used(store, settings, ticket_id):
    ids = message_ids(store, ticket_id)
    SCRIPT.push(
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
    manager, ctx = context(store, settings, "fake/scripted")
    outcome = summarize_ticket(ctx, ticket_id)
    manager.__exit__(None, None, None)
    assert not outcome.used_fallback and outcome.result.intent.startswith("Refund of a duplicate")
    assert all(v.passed for v in outcome.verdicts) and outcome.provenance.model == "fake/scripted"


def test_cited_id_not_in_thread_is_caught_and_falls_back(store, settings, ticket_id):
    SCRIPT.push(
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
    manager, ctx = context(store, settings, "fake/scripted")
    outcome = summarize_ticket(ctx, ticket_id)
    manager.__exit__(None, None, None)
    assert outcome.used_fallback and "guard" in outcome.fallback_reason
    failed = [v for v in outcome.verdicts if not v.passed]
    assert failed[0].name == "cited_ids" and "999999" in failed[0].details[0]
    assert 999999 not in outcome.result.cited_ids()


def test_invented_number_in_model_summary_is_caught(store, settings, ticket_id):
    ids = message_ids(store, ticket_id)
    SCRIPT.push(
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
    manager, ctx = context(store, settings, "fake/scripted")
    outcome = summarize_ticket(ctx, ticket_id)
    manager.__exit__(None, None, None)
    assert outcome.used_fallback
    grounded = next(v for v in outcome.verdicts if v.name == "grounded_facts")
    assert not grounded.passed and any("500" in d for d in grounded.details)


def test_invalid_json_from_the_model_falls_back_with_a_schema_verdict(store, settings, ticket_id):
    SCRIPT.push('{"intent": "cut off')
    manager, ctx = context(store, settings, "fake/scripted")
    outcome = summarize_ticket(ctx, ticket_id)
    manager.__exit__(None, None, None)
    assert outcome.used_fallback and outcome.verdicts[0].name == "schema" and not outcome.verdicts[0].passed


def test_summary_goes_stale_when_the_customer_writes_again(store, settings, ticket_id, tmp_path):
    from copilot.ingest import ingest_file
    from copilot.records import after_write_hooks

    manager, ctx = context(store, settings, "local/smollm2-135m-instruct")
    outcome = summarize_ticket(ctx, ticket_id)
    manager.__exit__(None, None, None)
    path = tmp_path / "messages.jsonl"
    path.write_text(
        json.dumps({"ticket": "T-1", "author_kind": "customer", "body": "Hello?", "sent_at": "2026-03-06T10:00:00Z"})
        + "\n"
    )
    ingest_file(store, "alpha", path, after_write=after_write_hooks(settings))
    with store.repo("alpha") as repo:
        assert repo.get(AiResult, outcome.ai_result_id).status is AiStatus.stale


def test_unknown_ticket_is_not_found(store, settings, ticket_id):
    from copilot.errors import NotFound

    manager, ctx = context(store, settings, "fake/echo")
    with pytest.raises(NotFound, match="no ticket 424242"):
        summarize_ticket(ctx, 424242)
    manager.__exit__(None, None, None)
