"""The knowledge loop: KB drafts from resolved tickets with no personal data or case facts left, through review into
a KB article that search finds and reply drafts cite; the gap report on the demo workspace."""

from __future__ import annotations

import re
from datetime import date

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from copilot.auth import create_key
from copilot.services import Services
from copilot.settings import Settings
from copilot.store import Store, get_or_create_workspace
from copilot.store.models import (
    Account,
    AiResult,
    AiStatus,
    AuthorKind,
    Contact,
    KbArticle,
    Message,
    Ticket,
    TicketStatus,
)
from tests.conftest import public_dns
from tests.test_nps_themes import letters_sentiment
from tests.test_triage import WordsEmbedder

CASES = [  # (customer, email, invoice, amount, question, answer)
    (
        "Maria Jensen",
        "maria.jensen@harborfoods.example",
        "INV-2026-0142",
        "$129.00",
        "Hi, our client portal shows invoice INV-2026-0142 as unpaid although the client paid $129.00 by bank "
        "transfer. How do we mark a bank transfer payment? Maria Jensen, maria.jensen@harborfoods.example",
        "Hi Maria, thanks for asking. To record a bank transfer, open the invoice and choose Record payment. "
        "Pick Bank transfer as the method and enter the date it arrived. I have marked INV-2026-0142 ($129.00) "
        "as paid for you.",
    ),
    (
        "Tom Becker",
        "tom@nimbuslabs.example",
        "INV-2025-0913",
        "$480.50",
        "Hello, how do I mark invoice INV-2025-0913 as paid? The client sent $480.50 by bank transfer yesterday. "
        "Call me on +44 20 7946 0958. Tom Becker",
        "Hi Tom, to record a bank transfer open the invoice and choose Record payment. Pick Bank transfer as the "
        "method and enter the date it arrived. INV-2025-0913 now shows $480.50 paid.",
    ),
    (
        "Aisha Rahman",
        "aisha.rahman@globex.example",
        "INV-2026-0077",
        "$59.99",
        "How can we record a bank transfer payment on invoice INV-2026-0077? It was $59.99. Thanks, Aisha Rahman",
        "Hi Aisha, open the invoice and choose Record payment. Pick Bank transfer as the method and enter the date "
        "it arrived. Sorry for the wait!",
    ),
    (
        "Jonas Weber",
        "jonas.weber@acme.example",
        "INV-2026-0311",
        "$1,250.00",
        "Client paid INV-2026-0311 ($1,250.00) by bank transfer, how do I mark the payment so the reminder stops?",
        "Hi Jonas, open the invoice and choose Record payment, pick Bank transfer as the method and enter the date "
        "it arrived. Reminders stop once it is paid.",
    ),
]
ACCOUNTS = ("Harbor Foods", "Nimbus Labs", "Globex", "Acme Corporation")


@pytest.fixture
def desk(settings, store, fake_model):
    services = Services(
        settings,
        store,
        fake=fake_model,
        embedder=WordsEmbedder(),
        sentiment=letters_sentiment(),
        sleep=lambda _s: None,
        resolver=public_dns,
    )
    with store.session() as session:
        get_or_create_workspace(session, "alpha")
    ids = []
    with store.repo("alpha") as repo:
        for (name, email, _invoice, _amount, question, answer), company in zip(CASES, ACCOUNTS, strict=True):
            account = repo.add(Account(name=company))
            repo.session.flush()
            contact = repo.add(Contact(account_id=account.id, name=name, email=email))
            repo.session.flush()
            ticket = repo.add(
                Ticket(
                    subject="Mark a bank transfer as paid",
                    account_id=account.id,
                    contact_id=contact.id,
                    status=TicketStatus.solved,
                    assignee="Priya Patel",
                )
            )
            repo.session.flush()
            repo.add(Message(ticket_id=ticket.id, author_kind=AuthorKind.customer, author=name, body=question))
            repo.add(Message(ticket_id=ticket.id, author_kind=AuthorKind.agent, author="Priya Patel", body=answer))
            ids.append(ticket.id)
        keys = {role: create_key(repo, role, f"alpha-{role}")[0] for role in ("agent", "admin")}
    services.jobs.shutdown()  # the test runs the queued jobs itself
    with TestClient(create_app(services=services)) as client:
        client.headers_for = lambda role: {"X-API-Key": keys[role]}  # type: ignore[attr-defined]
        yield client, services, ids
    services.close()


def draft(client, ticket_ids: list[int]) -> dict:
    response = client.post(
        "/v1/tasks/kb_article_draft", json={"ticket_ids": ticket_ids}, headers=client.headers_for("agent")
    )
    assert response.status_code == 200, response.text
    return response.json()


def contains(text: str, value: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(value)}(?!\w)", text, re.I) is not None


def run_jobs(services: Services) -> None:
    while services.jobs.run_once():
        pass


def test_a_draft_keeps_no_customer_name_email_order_id_or_amount_of_its_tickets(desk):
    client, _, ids = desk
    outcome = draft(client, ids)
    result = outcome["result"]
    text = result["text"]
    for name, email, invoice, amount, _q, _a in CASES:
        for secret in (name, *name.split(), email, invoice, amount):
            assert not contains(text, secret), secret
    for company in ACCOUNTS:
        assert not contains(text, company)
    assert "+44" not in text and not re.search(r"\d{5,}", text)
    assert "Record payment" in result["answer"] and any("Record payment" in step for step in result["steps"])
    assert result["source_ticket_ids"] == ids and result["answer_sources"]
    removed = result["removed"]
    assert removed["order_id"] >= 4 and removed["person"] >= 4 and removed["email"] >= 1 and removed["phone"] >= 1
    assert outcome["status"] == "pending"
    verdicts = {v["name"]: v for v in outcome["verdicts"]}
    assert verdicts["personal_data"]["passed"] and verdicts["case_facts"]["passed"]


def test_a_reviewer_edit_that_puts_a_case_fact_or_email_back_is_refused(desk):
    client, services, ids = desk
    outcome = draft(client, ids)
    headers = client.headers_for("agent")
    for leak in ("Mark it as paid, as we did for INV-2026-0142.", "Write to maria.jensen@harborfoods.example."):
        response = client.post(
            f"/v1/review/{outcome['ai_result_id']}/decision",
            json={"decision": "edit", "version": outcome["version"], "text": f"{outcome['result']['text']}\n{leak}"},
            headers=headers,
        )
        assert response.status_code in (409, 422), response.text
    with services.store.repo("alpha") as repo:
        assert repo.get(AiResult, outcome["ai_result_id"]).status is AiStatus.pending
        assert repo.all(repo.select(KbArticle)) == []


def test_an_approved_draft_becomes_a_kb_article_that_search_finds_and_a_reply_draft_cites(desk):
    client, services, ids = desk
    outcome = draft(client, ids)
    headers = client.headers_for("agent")
    response = client.post(
        f"/v1/review/{outcome['ai_result_id']}/decision",
        json={"decision": "approve", "version": outcome["version"]},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    run_jobs(services)  # indexes the new article
    with services.store.repo("alpha") as repo:
        [article] = repo.all(repo.select(KbArticle))
        assert article.title == outcome["result"]["title"] and "Record payment" in article.body
        assert article.external_id == f"kb-draft-{outcome['ai_result_id']}"
        customer = repo.add(Contact(name="Lena Fischer"))
        repo.session.flush()
        ticket = repo.add(Ticket(subject="Bank transfer payment", contact_id=customer.id))
        repo.session.flush()
        repo.add(
            Message(
                ticket_id=ticket.id,
                author_kind=AuthorKind.customer,
                body="How do I mark an invoice as paid when the client paid by bank transfer?",
            )
        )
        ticket_id = ticket.id
    hits = client.get("/v1/search", params={"q": "record a bank transfer payment"}, headers=headers).json()
    assert hits and hits[0]["record_kind"] == "kb_article" and hits[0]["record_id"] == article.id
    reply = client.post(f"/v1/tickets/{ticket_id}/draft", json={"strategy": "retrieval"}, headers=headers)
    assert reply.status_code == 200, reply.text
    sources = reply.json()["result"]["sources"]
    cited = {s["label"] for s in sources if s["record_kind"] == "kb_article" and s["record_id"] == article.id}
    assert cited and any(f"[{label}]" in reply.json()["result"]["text"] for label in cited)


# -- the demo workspace -----------------------------------------------------------------------------------------

ANCHOR = date(2026, 11, 22)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo workspace (seed 7) with the real embedding model; no search index (neither report needs one)."""
    from copilot.demo.generator import seed_demo

    folder = tmp_path_factory.mktemp("demo")
    settings = Settings(data_dir=folder, model="fake/echo", index_on_ingest=False)
    store = Store.from_settings(settings)
    seed_demo(store, "demo", 7, anchor=ANCHOR)
    services = Services(settings, store, sleep=lambda _s: None)
    yield services
    services.close()
    store.engine.dispose()


def test_on_the_demo_the_topic_without_a_kb_article_is_the_first_gap_and_covered_topics_are_not_listed(demo):
    from datetime import UTC, datetime, time

    from copilot.tasks.knowledge_gaps import knowledge_gaps

    with demo.store.repo("demo") as repo:
        report = knowledge_gaps(demo.embedder, repo, now=datetime.combine(ANCHOR, time(12), tzinfo=UTC))
    first = report.gaps[0]
    assert first.topic == "email_delivery" and first.articles == [] and first.unanswered == first.tickets >= 20
    assert "no KB article" in first.reasons[0]
    gaps = {g.topic for g in report.gaps}
    covered = {c.topic for c in report.covered}
    assert {"invoices", "api_webhooks", "mobile_app", "privacy_legal"} <= covered and not covered & gaps
    assert [g.tickets for g in report.gaps] == sorted((g.tickets for g in report.gaps), reverse=True)


def test_on_the_demo_the_job_drafts_the_top_recurring_questions_the_kb_does_not_answer(demo):
    from copilot.tasks.kb_draft import draft_recurring_questions

    summary = draft_recurring_questions(demo, "demo", {"limit": 2})
    assert summary["clusters"] >= 10 and len(summary["drafted"]) == 2
    with demo.store.repo("demo") as repo:
        rows = [repo.get(AiResult, d["ai_result_id"]) for d in summary["drafted"]]
        first = rows[0].content["result"]
        assert all(r.status is AiStatus.pending and r.task == "kb_article_draft" for r in rows)
        tickets = repo.all(repo.select(Ticket).where(Ticket.id.in_(first["source_ticket_ids"])))
        assert len(tickets) >= 5 and all(t.status in (TicketStatus.solved, TicketStatus.closed) for t in tickets)
        people = {t.contact.name for t in tickets if t.contact} | {t.contact.email for t in tickets if t.contact}
        accounts = {t.account.name for t in tickets if t.account}
    assert "email" in first["title"].lower() or "spam" in first["text"].lower()  # the invoice-email surge
    assert not [p for p in people | accounts if p and contains(first["text"], p)]
    assert not re.search(r"INV-\d{4}-\d{4}|\$\d", first["text"])
