"""The agent's workspace, fast: the queue's work order, filters and counts; approvals that supersede and strip source
markers; external ids in API and page paths; friendly error pages; the ticket page's customer context, composer and
audited status changes. (tests/test_web.py walks the same rules in a real browser.)"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from copilot.auth import create_key
from copilot.delivery import set_webhook
from copilot.services import Services
from copilot.settings import Settings
from copilot.store import Store, get_or_create_workspace
from copilot.store.models import (
    Account,
    AiResult,
    AiStatus,
    AuditEvent,
    AuthorKind,
    Call,
    CallTurn,
    Contact,
    Deal,
    DealStage,
    Message,
    NpsResponse,
    Priority,
    Ticket,
    TicketStatus,
)
from tests.conftest import public_dns

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
NOW = datetime.now(UTC)
DRAFT_TEXT = (
    "Hi Dana, I can see the duplicate charge on INV-7 [S1]. The second one drops off in 3-5 days [S2].\n\nBest,"
)


@dataclass
class Seeded:
    """Ids of what :func:`seed_workspace` made, by name."""

    keys: dict[str, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)


def _draft(repo, ticket_id: int, text: str, created: datetime, **result) -> AiResult:
    content = {
        "result": {"text": text, "channel": "email", "language": "en", "needs_explicit_approval": [], **result},
        "used_fallback": False,
        "fallback_reason": None,
    }
    row = repo.add(
        AiResult(
            task="reply_draft",
            subject_kind="ticket",
            subject_id=ticket_id,
            content=content,
            model="fake/echo",
            created_at=created,
            guard_verdicts=[],
        )
    )
    repo.session.flush()
    return row


def _rewrite(repo, draft: AiResult, tone: str, text: str, created: datetime, unchanged: bool = False) -> AiResult:
    original = draft.content["result"]["text"]
    content = {
        "result": {
            "tone": tone,
            "original": original,
            "text": text,
            "unchanged": unchanged,
            "lost": [],
            "needs_explicit_approval": [],
        }
    }
    row = repo.add(
        AiResult(
            task="tone_rewrite",
            subject_kind="ai_result",
            subject_id=draft.id,
            content=content,
            model="fake/echo",
            created_at=created,
            guard_verdicts=[],
        )
    )
    repo.session.flush()
    return row


def _ticket(repo, ref, subject, account, contact, priority, assignee, waited: timedelta, body: str) -> Ticket:
    ticket = repo.add(
        Ticket(
            external_id=ref,
            subject=subject,
            account_id=account.id if account else None,
            contact_id=contact.id if contact else None,
            priority=priority,
            assignee=assignee,
            opened_at=NOW - waited - timedelta(hours=1),
        )
    )
    repo.session.flush()
    repo.add(
        Message(
            ticket_id=ticket.id,
            author_kind=AuthorKind.customer,
            author=contact.name if contact else None,
            body=body,
            sent_at=NOW - waited,
        )
    )
    return ticket


def seed_workspace(store: Store, slug: str = "alpha") -> Seeded:
    """Two accounts with contacts, four tickets of every priority (one SLA breached), reply drafts (two on the same
    ticket, one with a rewrite), a call summary, deals and NPS answers, and a key per role."""
    seeded = Seeded()
    with store.session() as session:
        get_or_create_workspace(session, slug)
    with store.repo(slug) as repo:
        acme = repo.add(Account(external_id="A-1", name="Acme Corp", plan="enterprise", segment="mid-market"))
        globex = repo.add(Account(external_id="A-2", name="Globex", plan="starter"))
        repo.session.flush()
        dana = repo.add(Contact(external_id="C-1", account_id=acme.id, name="Dana Reyes", email="dana@acme.test"))
        omar = repo.add(Contact(external_id="C-2", account_id=acme.id, name="Omar Ortiz", title="Controller"))
        lee = repo.add(Contact(external_id="C-3", account_id=globex.id, name="Lee Park", email="lee@globex.test"))
        repo.session.flush()
        t1 = _ticket(
            repo,
            "T-1",
            "Charged twice for INV-7",
            acme,
            dana,
            Priority.high,
            "alex",
            timedelta(hours=2),
            "I was charged twice for INV-7. Please refund the duplicate, this is really frustrating.",
        )
        repo.add(
            Message(
                ticket_id=t1.id,
                author_kind=AuthorKind.internal_note,
                author="alex",
                body="Billing confirmed one charge is a pending authorisation.",
                sent_at=NOW - timedelta(hours=1),
            )
        )
        t2 = _ticket(
            repo,
            "T-2",
            "Dashboard down",
            globex,
            lee,
            Priority.urgent,
            None,
            timedelta(minutes=10),
            "The dashboard does not load at all since this morning.",
        )
        t3 = _ticket(
            repo,
            "T-3",
            "Export to CSV",
            acme,
            omar,
            Priority.normal,
            "alex",
            timedelta(hours=30),
            "How do I export last month's invoices to CSV?",
        )
        t4 = _ticket(
            repo,
            "T-4",
            "Feature idea",
            globex,
            lee,
            Priority.low,
            "sam",
            timedelta(hours=1),
            "It would be nice to have dark mode.",
        )
        t5 = repo.add(
            Ticket(
                external_id="T-5",
                subject="Old login issue",
                account_id=acme.id,
                contact_id=dana.id,
                status=TicketStatus.solved,
                opened_at=NOW - timedelta(days=40),
            )
        )
        repo.session.flush()
        sources = [
            {"label": "S1", "record_kind": "message", "record_id": 1, "text": "duplicate charge", "score": 1.0},
            {"label": "S2", "record_kind": "kb_article", "record_id": 1, "text": "3-5 days", "score": 0.9},
        ]
        older = _draft(repo, t1.id, "Hi Dana, looking into it [S1].", NOW - timedelta(minutes=50), sources=sources)
        draft = _draft(repo, t1.id, DRAFT_TEXT, NOW - timedelta(minutes=40), sources=sources)
        rewrite = _rewrite(
            repo,
            draft,
            "friendly",
            DRAFT_TEXT.replace("Hi Dana,", "Hi Dana, thanks for your patience!"),
            NOW - timedelta(minutes=30),
        )
        urgent = _draft(repo, t2.id, "Hi Lee, we are on it.", NOW - timedelta(minutes=5))
        breached = _draft(repo, t3.id, "Hi Omar, use Reports > Export.", NOW - timedelta(minutes=20))
        low = _draft(repo, t4.id, "Hi Lee, noted, thanks!", NOW - timedelta(minutes=3))
        deal = repo.add(
            Deal(
                external_id="D-1",
                account_id=acme.id,
                name="Acme expansion",
                stage=DealStage.negotiation,
                amount=50_000,
                owner="rita",
                close_date=date.today() + timedelta(days=20),
            )
        )
        won = repo.add(
            Deal(
                external_id="D-2",
                account_id=acme.id,
                name="Acme pilot",
                stage=DealStage.closed_won,
                amount=5_000,
                owner="rita",
                close_date=date.today() - timedelta(days=200),
            )
        )
        repo.add(
            Deal(
                external_id="D-3",
                account_id=globex.id,
                name="Globex seats",
                stage=DealStage.proposal,
                owner="max",
                close_date=date.today() + timedelta(days=5),
            )
        )
        repo.session.flush()
        call = repo.add(
            Call(
                external_id="CALL-1",
                deal_id=deal.id,
                account_id=acme.id,
                title="Acme pricing call",
                started_at=NOW - timedelta(days=1),
                participants=[{"name": "Rita", "role": "rep"}, {"name": "Omar Ortiz", "role": "customer"}],
            )
        )
        repo.session.flush()
        repo.add(CallTurn(call_id=call.id, position=0, speaker="Omar Ortiz", text="The price is too high for us."))
        repo.add(CallTurn(call_id=call.id, position=1, speaker="Rita", text="I will send a revised quote by Friday."))
        summary = {
            "summary": "Acme pushed back on price; Rita will send a revised quote.",
            "summary_turn_ids": [0, 1],
            "key_points": [{"text": "Price is the main concern", "turn_ids": [0]}],
            "objections": [{"text": "The price is too high", "turn_ids": [0]}],
            "decisions": [],
            "action_items": [{"what": "Send a revised quote", "owner": "Rita", "due": "Friday", "turn_ids": [1]}],
            "next_step": {"text": "Revised quote by Friday", "turn_ids": [1]},
            "call_title": call.title,
            "turn_count": 2,
            "duration_s": 60.0,
            "windows": 1,
        }
        call_row = repo.add(
            AiResult(
                task="call_summary",
                subject_kind="call",
                subject_id=call.id,
                content={"result": summary},
                created_at=NOW - timedelta(hours=3),
            )
        )
        for n, (score, comment) in enumerate([(3, "Billing errors again"), (9, "Support is great")]):
            repo.add(
                NpsResponse(
                    external_id=f"N-{n}",
                    account_id=acme.id,
                    contact_id=dana.id,
                    score=score,
                    comment=comment,
                    submitted_at=NOW - timedelta(days=10 + n),
                )
            )
        repo.session.flush()
        seeded.keys = {
            role: create_key(repo, role, f"{slug}-{role}")[0] for role in ("agent", "rep", "marketing", "admin")
        }
        seeded.ids = {
            "acme": acme.id,
            "globex": globex.id,
            "t1": t1.id,
            "t2": t2.id,
            "t3": t3.id,
            "t4": t4.id,
            "t5": t5.id,
            "older": older.id,
            "draft": draft.id,
            "rewrite": rewrite.id,
            "urgent": urgent.id,
            "breached": breached.id,
            "low": low.id,
            "deal": deal.id,
            "won": won.id,
            "call": call.id,
            "call_summary": call_row.id,
        }
    return seeded


@pytest.fixture
def workspace(tmp_path, fake_model):
    """A seeded workspace, its app (webhook calls go to a recorder) and a logged-out client."""
    settings = Settings(data_dir=tmp_path / "data", model="fake/echo", index_on_ingest=False)
    store = Store.from_settings(settings)
    seeded = seed_workspace(store)
    sent: list[httpx.Request] = []
    client = httpx.Client(transport=httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(200)))
    services = Services(
        settings, store, fake=fake_model, sleep=lambda _s: None, resolver=public_dns, webhook_client=client
    )
    with TestClient(create_app(services=services)) as test_client:
        yield test_client, store, seeded, sent


def auth(seeded: Seeded, role: str = "agent") -> dict[str, str]:
    return {"X-API-Key": seeded.keys[role]}


def login(client: TestClient, key: str) -> str:
    """Log the client in with ``key``; returns the session's CSRF token."""
    token = CSRF.search(client.get("/login").text).group(1)
    assert client.post("/login", data={"api_key": key, "csrf": token}, follow_redirects=False).status_code == 303
    return CSRF.search(client.get("/search").text).group(1)


def section(page: str, start: str, end: str) -> str:
    """The part of ``page`` from ``start`` up to the next ``end``."""
    begin = page.index(start)
    return page[begin : page.index(end, begin)]


HTML = {"Accept": "text/html"}


# -- the queue ---------------------------------------------------------------------------------------------------
def test_queue_is_in_work_order_priority_then_sla_risk_then_age(workspace):
    client, _, seeded, _ = workspace
    ids = seeded.ids
    page = client.get("/v1/review/queue", headers=auth(seeded, "admin")).json()
    order = [item["id"] for item in page["items"]]
    # urgent first; then high (same waiting customer: oldest draft first); normal: the customer waiting 30 h (SLA
    # breached) before the call summary made 3 h ago; low last
    assert order == [
        ids["urgent"],
        ids["older"],
        ids["draft"],
        ids["rewrite"],
        ids["breached"],
        ids["call_summary"],
        ids["low"],
    ]
    by_id = {item["id"]: item["context"] for item in page["items"]}
    card = by_id[ids["draft"]]
    assert (card["ticket_ref"], card["subject"], card["customer"], card["account"], card["priority"]) == (
        "T-1",
        "Charged twice for INV-7",
        "Dana Reyes",
        "Acme Corp",
        "high",
    )
    assert card["assignee"] == "alex" and card["tone"] is None and card["sla"]["state"] == "ok"
    assert by_id[ids["rewrite"]]["tone"] == "friendly" and by_id[ids["rewrite"]]["ticket_ref"] == "T-1"
    assert by_id[ids["breached"]]["sla"]["state"] == "breached" and by_id[ids["urgent"]]["sla"]["state"] == "ok"
    assert by_id[ids["call_summary"]]["customer"] == "Omar Ortiz" and by_id[ids["call_summary"]]["assignee"] == "rita"
    oldest = client.get("/v1/review/queue?order=oldest", headers=auth(seeded, "admin")).json()["items"]
    assert oldest[0]["id"] == ids["call_summary"]  # made 3 h ago: the oldest item


def test_queue_filters_and_counts_per_filter(workspace):
    client, _, seeded, _ = workspace
    ids, headers = seeded.ids, auth(seeded, "admin")

    def queue(query: str) -> list[int]:
        return [item["id"] for item in client.get(f"/v1/review/queue?{query}", headers=headers).json()["items"]]

    assert queue("priority=high") == [ids["older"], ids["draft"], ids["rewrite"]]
    assert queue("priority=urgent&priority=low") == [ids["urgent"], ids["low"]]
    assert queue("assignee=alex") == [ids["older"], ids["draft"], ids["rewrite"], ids["breached"]]
    assert queue("assignee=-") == [ids["urgent"]]
    assert queue(f"account_id={ids['globex']}") == [ids["urgent"], ids["low"]]
    assert queue("task=tone_rewrite") == [ids["rewrite"]]
    assert queue(f"task=reply_draft&account_id={ids['acme']}&assignee=alex") == [
        ids["older"],
        ids["draft"],
        ids["breached"],
    ]
    counts = client.get("/v1/review/queue/counts?priority=high", headers=headers).json()
    assert counts["total"] == 3
    assert counts["tasks"] == {"reply_draft": 2, "tone_rewrite": 1}
    # the priority facet ignores its own filter: what each priority would show
    assert counts["priorities"] == {"urgent": 1, "high": 3, "normal": 1, "low": 1}
    assert counts["assignees"] == {"alex": 3} and counts["accounts"] == {str(ids["acme"]): 3}
    agent = client.get("/v1/review/queue/counts", headers=auth(seeded, "agent")).json()
    assert "call_summary" not in agent["tasks"] and agent["total"] == 6  # the role's tasks only
    assert client.get("/v1/review/queue?priority=soon", headers=headers).status_code == 422


# -- approvals ----------------------------------------------------------------------------------------------------
def test_approving_a_reply_supersedes_the_tickets_other_pending_replies(workspace):
    client, store, seeded, _ = workspace
    ids = seeded.ids
    decision = {"decision": "approve", "version": 1}
    approved = client.post(f"/v1/review/{ids['draft']}/decision", headers=auth(seeded), json=decision)
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    others = (ids["older"], ids["rewrite"], ids["urgent"])
    statuses = {i: client.get(f"/v1/review/{i}", headers=auth(seeded)).json()["status"] for i in others}
    assert statuses == {ids["older"]: "superseded", ids["rewrite"]: "superseded", ids["urgent"]: "pending"}
    events = client.get(f"/v1/audit?ticket_id={ids['t1']}", headers=auth(seeded)).json()["items"]
    superseded = {e["ai_result_id"] for e in events if e["action"] == "review.superseded"}
    assert superseded == {ids["older"]} and any(e["after"].get("superseded") for e in events)
    assert ids["older"] not in [i["id"] for i in client.get("/v1/review/queue", headers=auth(seeded)).json()["items"]]
    late = client.post(f"/v1/review/{ids['older']}/decision", headers=auth(seeded), json={**decision, "version": 2})
    assert late.status_code == 409  # a superseded draft can no longer be approved


def test_approved_delivered_and_exported_text_has_no_source_markers(workspace):
    client, store, seeded, sent = workspace
    ids = seeded.ids
    approve = {"decision": "approve", "version": 1}
    assert client.post(f"/v1/review/{ids['draft']}/decision", headers=auth(seeded), json=approve).status_code == 200
    result = client.get(f"/v1/review/{ids['draft']}", headers=auth(seeded)).json()
    assert "[S1]" in result["content"]["result"]["text"]  # the stored draft keeps them for reviewers
    assert result["final_text"] == DRAFT_TEXT.replace(" [S1]", "").replace(" [S2]", "")
    lines = [json.loads(line) for line in client.get("/v1/review/export", headers=auth(seeded)).text.splitlines()]
    assert [line["ai_result_id"] for line in lines] == [ids["draft"]]
    assert not re.search(r"\[S\d+\]", lines[0]["text"]) and "duplicate charge on INV-7." in lines[0]["text"]
    with store.repo("alpha") as repo:  # with a webhook, the delivered text is stripped the same way
        set_webhook(repo, "https://hooks.example.test/copilot", "s" * 32, policy=client.app.state.services.targets)
    edited = {"decision": "edit", "version": 1, "text": "Hi Lee, we found the cause [S1] and fixed it [S2]."}
    assert client.post(f"/v1/review/{ids['urgent']}/decision", headers=auth(seeded), json=edited).status_code == 200
    assert [json.loads(r.content)["text"] for r in sent] == ["Hi Lee, we found the cause and fixed it."]
    assert client.get(f"/v1/review/{ids['urgent']}", headers=auth(seeded)).json()["status"] == "sent"


# -- external ids and errors ---------------------------------------------------------------------------------------
def test_api_paths_take_external_ids(workspace):
    client, _, seeded, _ = workspace
    ids, admin = seeded.ids, auth(seeded, "admin")
    assert client.get("/v1/tickets/T-1", headers=admin).json()["ticket"]["id"] == ids["t1"]
    assert client.get(f"/v1/tickets/{ids['t1']}", headers=admin).json()["ticket"]["external_id"] == "T-1"
    summary = client.post("/v1/tickets/T-1/summary", headers=admin, json={"strategy": "extractive"})
    assert summary.status_code == 200 and summary.json()["task"] == "ticket_summary"
    assert client.get("/v1/tickets/T-1/sentiment", headers=admin).json()["ticket_id"] == ids["t1"]
    assert client.get("/v1/accounts/A-1/sentiment", headers=admin).json()["subject"] == f"account {ids['acme']}"
    assert client.post("/v1/deals/D-1/brief", headers=admin, json={"strategy": "template"}).status_code == 200
    assert client.get("/v1/deals/D-1/brief", headers=admin).json()["subject_id"] == ids["deal"]
    assert client.get("/v1/records/deal/D-3", headers=admin).json()["name"] == "Globex seats"
    assert client.post("/v1/calls/CALL-1/summary", headers=admin, json={"strategy": "extractive"}).status_code == 200
    missing = client.get("/v1/tickets/T-404", headers={**admin, **HTML})
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"  # JSON stays for /v1
    assert client.get(f"/v1/tickets/{2**70}", headers=admin).status_code == 404
    assert client.get("/v1/tickets/bad%20ref", headers=admin).status_code == 422
    assert client.delete("/v1/records/ticket/T-5", headers=admin).status_code == 204


def test_pages_take_external_ids_and_errors_are_friendly_pages(workspace):
    client, _, seeded, _ = workspace
    login(client, seeded.keys["admin"])
    assert "Charged twice for INV-7" in client.get("/tickets/T-1").text
    assert "Charged twice for INV-7" in client.get(f"/tickets/{seeded.ids['t1']}").text
    assert "Acme expansion" in client.get("/deals/D-1").text
    missing = client.get("/tickets/T-404", headers=HTML)
    assert missing.status_code == 404 and "<h1>Nothing here</h1>" in missing.text and "/tickets/T-1179" in missing.text
    assert 'class="global-search"' in missing.text  # signed in: the navigation and search box stay
    unknown = client.get("/no/such/page", headers=HTML)
    assert unknown.status_code == 404 and "There is no page at this address" in unknown.text
    invalid = client.get("/review?page=first", headers=HTML)
    assert invalid.status_code == 422 and "page:" in invalid.text and "<!doctype html>" in invalid.text
    assert client.get("/v1/nothing", headers=HTML).json()["error"]["type"] == "not_found"
    login(client, seeded.keys["marketing"])
    forbidden = client.get("/tickets/T-1", headers=HTML)
    assert forbidden.status_code == 403 and "You do not have access to this" in forbidden.text


# -- the queue page ------------------------------------------------------------------------------------------------
def test_queue_page_cards_filters_and_decisions_keep_the_place(workspace):
    client, store, seeded, _ = workspace
    ids = seeded.ids
    token = login(client, seeded.keys["admin"])
    page = client.get("/review").text
    positions = [page.index(f'id="item-{ids[name]}"') for name in ("urgent", "older", "breached", "low")]
    assert positions == sorted(positions)  # the page is in work order
    assert "Dana Reyes" in page and "Acme Corp" in page and 'class="tone"' in page and ">friendly<" in page
    assert 'href="/tickets/T-1"' in page and "SLA breached" in page
    assert "Action items" in page and "Send a revised quote" in page and '"action_items"' not in page  # not JSON
    assert "Reply draft (5)" in page and "high (3)" in page  # counts per filter value
    filtered = client.get("/review?priority=high&assignee=alex").text
    assert f'id="item-{ids["draft"]}"' in filtered and f'id="item-{ids["urgent"]}"' not in filtered
    form = {
        "decision": "approve",
        "version": 1,
        "csrf": token,
        "return_to": "priority=normal&page=1",
        "next_id": ids["call_summary"],
    }
    answer = client.post(f"/review/{ids['breached']}/decide", data=form, follow_redirects=False)
    assert answer.headers["location"] == f"/review?priority=normal#item-{ids['call_summary']}"
    no_reason = {"decision": "reject", "version": 1, "csrf": token}
    refused = client.post(f"/review/{ids['low']}/decide", data=no_reason, headers={"Accept": "application/json"})
    assert refused.status_code == 409 and "reason" in refused.json()["message"]
    rejected = client.post(
        f"/review/{ids['low']}/decide",
        data={**no_reason, "reason": "not needed"},
        headers={"Accept": "application/json"},
    )
    assert rejected.json() == {"ok": True, "message": f"AI result {ids['low']} rejected.", "id": ids["low"]}
    with store.repo("alpha") as repo:
        event = repo.session.scalar(repo.select(AuditEvent).where(AuditEvent.ai_result_id == ids["low"]))
        assert event.action == "review.reject" and event.after["reason"] == "not needed"


def test_batch_approval_leaves_out_unchanged_rewrites(workspace):
    client, store, seeded, _ = workspace
    with store.repo("alpha") as repo:
        same = _rewrite(repo, repo.get(AiResult, seeded.ids["urgent"]), "formal", "Hi Lee, we are on it.", NOW, True)
        same_id = same.id
    token = login(client, seeded.keys["agent"])
    page = client.get("/review").text
    assert f'value="{same_id}:1"' not in page and "unchanged by the rewrite" in page
    answer = client.post("/review/batch", data={"csrf": token, "item": [f"{same_id}:1"]}).text
    assert "Approved 0 item(s)" in answer and "needs a decision of its own" in answer


# -- the ticket page -----------------------------------------------------------------------------------------------
def test_ticket_page_shows_the_customer_the_rewrite_diff_and_a_composer(workspace):
    client, _, seeded, _ = workspace
    login(client, seeded.keys["admin"])
    page = client.get("/tickets/T-1").text
    customer = section(page, 'id="customer"', "</section>")
    assert "Acme Corp" in customer and "Dana Reyes" in customer and "Omar Ortiz" in customer
    assert "T-3" in customer and "T-5" in customer  # open and recent tickets of the account
    assert "Acme expansion" in customer and customer.index("Acme expansion") < customer.index("Acme pilot")
    assert "Billing errors again" in customer and 'id="customer-trend"' in customer and "positive +1" in customer
    assert "Internal note · not sent to the customer" in page
    assert "thanks for your patience!</ins>" in section(page, f'id="rewrite-{seeded.ids["rewrite"]}"', "</p>")
    assert f"?use={seeded.ids['rewrite']}#composer" in page
    reply = section(page, '<textarea name="text"', "</textarea>")
    assert "duplicate charge on INV-7. The second" in reply and "[S1]" not in reply  # what the customer would read
    assert 'id="triage"' in page and 'id="ticket-insights"' in page  # the triage and insights panels' spots
    applied = client.get(f"/tickets/T-1?use={seeded.ids['rewrite']}").text
    assert "thanks for your patience!" in section(applied, 'id="composer"', "</section>")
    login(client, seeded.keys["agent"])
    agent_page = client.get("/tickets/T-1").text
    assert "Acme expansion" not in agent_page and "Deals are shown to roles that read sales records" in agent_page


def test_ticket_composer_sends_through_review_and_status_changes_are_audited(workspace):
    client, store, seeded, _ = workspace
    ids = seeded.ids
    token = login(client, seeded.keys["agent"])
    page = client.get("/tickets/T-1").text
    text = re.search(r'<textarea name="text"[^>]*>([^<]*)</textarea>', page).group(1)
    form = {
        "csrf": token,
        "result_id": ids["draft"],
        "version": 1,
        "text": text.replace("\n", "\r\n"),
        "then_status": "pending",
    }  # a browser sends line breaks as CRLF
    after = client.post("/tickets/T-1/reply", data=form).text
    assert f"Reply {ids['draft']} approved" in after and "Status pending" in after
    discard = {"csrf": token, "result_id": ids["rewrite"], "version": 2}
    assert "is already superseded" in client.post("/tickets/T-1/discard", data=discard).text
    client.post("/tickets/T-1/update", data={"csrf": token, "status": "solved", "assignee": "kim"})
    with store.repo("alpha") as repo:
        rows = {i: repo.get(AiResult, i).status for i in (ids["draft"], ids["older"], ids["rewrite"])}
        ticket = repo.get(Ticket, ids["t1"])
        events = repo.all(repo.select(AuditEvent).where(AuditEvent.action == "ticket.updated"))
    assert rows == {
        ids["draft"]: AiStatus.approved,
        ids["older"]: AiStatus.superseded,
        ids["rewrite"]: AiStatus.superseded,
    }
    assert (ticket.status, ticket.assignee, ticket.closed_at is not None) == (TicketStatus.solved, "kim", True)
    assert [(e.before, e.after) for e in events] == [
        ({"status": "open"}, {"status": "pending"}),
        ({"status": "pending", "assignee": "alex"}, {"status": "solved", "assignee": "kim"}),
    ]
    assert all(e.subject_kind == "ticket" and e.subject_id == ids["t1"] for e in events)
    assert "ticket.updated" in client.get("/tickets/T-1").text  # the activity list shows it
    other = {"csrf": token, "result_id": ids["urgent"], "version": 1, "text": "Hi"}
    assert client.post("/tickets/T-1/reply", data=other, headers=HTML).status_code == 404  # another ticket's draft


def test_ticket_and_deal_lists_filter_sort_and_show_ids(workspace):
    client, _, seeded, _ = workspace
    login(client, seeded.keys["admin"])
    urgent_first = client.get("/tickets?sort=priority").text
    assert urgent_first.index(">T-2<") < urgent_first.index(">T-1<") < urgent_first.index(">T-3<")
    acme = client.get(f"/tickets?account={seeded.ids['acme']}&status=active").text
    assert ">T-1<" in acme and ">T-3<" in acme and ">T-2<" not in acme and ">T-5<" not in acme
    assert (
        ">T-4<" in client.get("/tickets?assignee=sam").text and ">T-1<" not in client.get("/tickets?assignee=sam").text
    )
    assert ">T-2<" in client.get("/tickets?priority=urgent").text
    deals = client.get("/deals").text
    assert deals.index(">D-3<") < deals.index(">D-1<") < deals.index(">D-2<")  # open first, by close date
    assert ">D-2<" not in client.get("/deals?stage=open").text and ">D-3<" in client.get("/deals?owner=max").text
    assert client.get("/tickets?priority=soon", headers=HTML).status_code == 422


def test_search_page_follows_the_role_like_the_api(workspace, monkeypatch):
    client, _, seeded, _ = workspace
    seen = []

    def fake_search(repo, query, filters, limit=8):
        seen.append(sorted(filters.kinds))
        return []

    monkeypatch.setattr(client.app.state.services, "_searcher", type("S", (), {"search": staticmethod(fake_search)}))
    login(client, seeded.keys["agent"])
    page = client.get("/search?q=refund").text
    assert "Nothing found" in page and 'value="refund"' in page
    client.get("/search?q=refund&kind=nps_response&kind=message")
    login(client, seeded.keys["marketing"])
    client.get("/search?q=refund")
    assert client.get("/search?q=refund&kind=message", headers=HTML).status_code == 403
    assert seen == [["kb_article", "message", "ticket"], ["message"], ["nps_response"]]
