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
        names = {v["name"] for v in row.guard_verdicts}
        assert names == {"cited_ids", "grounded_facts", "grounded_names", "content", "no_signatures"}


ABSTRACT = (
    "The customer was charged twice for invoice INV-2026-0042 ($49.00) and wants the duplicate refunded. "
    "The agent asked billing to check both charges and will update the customer tomorrow."
)


def test_a_capable_model_writes_the_summary_in_its_own_words_with_evidence_ids(
    store, summarize, fake_script, ticket_id
):
    ids = message_ids(store, ticket_id)
    fake_script.push(ABSTRACT)
    outcome = summarize("fake/scripted", ticket_id)
    summary = outcome.result
    assert not outcome.used_fallback and all(v.passed for v in outcome.verdicts), outcome.verdicts
    assert summary.as_text() == ABSTRACT and summary.intent.startswith("The customer was charged twice")
    assert [b.text for b in summary.what_happened] == ABSTRACT.replace(". The", ".|The").split("|")
    assert summary.what_happened[0].message_ids[0] == ids[0] and summary.what_happened[1].message_ids == [ids[1]]
    assert any("I'll update you tomorrow" in b.text for b in summary.agent_commitments)  # promises stay extracted
    assert outcome.provenance.model == "fake/scripted"
    prompt = fake_script.calls[-1]["messages"]
    assert "Gateway retry" not in prompt[-1]["content"]  # internal notes are not sent as conversation
    assert "response_format" not in fake_script.calls[-1]["params"]  # plain text, no grammar


def test_invented_number_in_the_model_summary_falls_back_to_the_extractive_one(
    store, summarize, fake_script, ticket_id
):
    fake_script.push("The customer wants a $500 refund for order #77777. The agent will call them.")
    outcome = summarize("fake/scripted", ticket_id)
    assert outcome.used_fallback and "guard" in outcome.fallback_reason
    grounded = next(v for v in outcome.verdicts if v.name == "grounded_facts" and not v.passed)
    assert any("500" in d for d in grounded.details) and "$500" not in outcome.result.as_text()


def test_an_empty_model_answer_fails_the_content_guard(store, summarize, fake_script, ticket_id):
    fake_script.push("   ")
    outcome = summarize("fake/scripted", ticket_id)
    assert outcome.used_fallback and outcome.verdicts[0].name == "content" and not outcome.verdicts[0].passed
    assert outcome.result.what_happened  # the extractive summary stands in


def test_an_empty_summary_of_a_thread_with_a_reply_fails_the_content_guard():
    from copilot.tasks.ticket_summary import TicketSummary, check_content

    thread = Thread(
        messages=[
            ThreadMessage(id=1, author_kind="customer", text="Help?"),
            ThreadMessage(id=2, author_kind="agent", text="Sure, on it."),
        ]
    )
    verdict = check_content(TicketSummary(intent="technical issue"), thread)
    assert not verdict.passed and "what_happened" in verdict.details[0]


def test_no_signature_in_bullets_and_a_promise_keeps_the_ticket_on_the_agent():
    thread = Thread(
        status="open",
        messages=[
            ThreadMessage(
                id=1,
                author_kind="customer",
                author="Ana Sato",
                text=(
                    "Dear Ledgerly support,\n\nWe've been charged $650.00 twice again for INV-2026-0318. "
                    "Please refund the duplicate today.\n\nAna Sato"
                ),
            ),
            ThreadMessage(
                id=2,
                author_kind="agent",
                author="Kenji Sato",
                text=(
                    "Hi Ana, I'm sorry about the duplicate charge. One of the two transactions may be a pending "
                    "authorisation; I'm double-checking with billing to be sure."
                    "\n\nBest regards,\nKenji Sato\nLedgerly Support"
                ),
            ),
        ],
    )
    summary = extractive_summary(thread, FakeEmbedder().encode)
    assert all(
        not b.text.rstrip(".").endswith(("Ana Sato", "Kenji Sato", "Ledgerly Support"))
        for b in summary.what_happened + summary.agent_commitments
    )
    assert any("double-checking with billing" in b.text for b in summary.agent_commitments)
    assert "waiting on the agent" in summary.status and "billing" in summary.status


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
