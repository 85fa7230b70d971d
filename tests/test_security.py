"""Findings of the adversarial test of a running instance: one test (or more) per finding."""

from __future__ import annotations

import base64
import logging
import re
import stat
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.limits import AuthFailures
from api.security import NoQueryStrings
from copilot.auth import Permission, revoke_key
from copilot.jobs import JobKind, JobRunner
from copilot.netguard import TargetPolicy
from copilot.services import Services
from copilot.store.models import (
    Account,
    AiResult,
    AiStatus,
    AuditEvent,
    AuthorKind,
    Job,
    JobStatus,
    KbArticle,
    Message,
    Ticket,
)
from tests.conftest import public_dns

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def auth(keys, workspace="alpha", role="agent"):
    return {"Authorization": f"Bearer {keys[(workspace, role)]}"}


def add_result(store, task, *, text="We will refund the duplicate charge today.", subject=("ticket", 1), **content):
    with store.repo("alpha") as repo:
        result = {"text": text, **content}
        row = repo.add(
            AiResult(
                task=task,
                status=AiStatus.pending,
                subject_kind=subject[0],
                subject_id=subject[1],
                content={"result": result},
                guard_verdicts=content.pop("verdicts", []),
            )
        )
        repo.session.flush()
        return row.id


def set_webhook(client, keys, url):
    return client.put("/v1/admin/webhook", headers=auth(keys, role="admin"), json={"url": url})


# -- 1. webhook SSRF -------------------------------------------------------------------------------
BLOCKED_URLS = [
    "http://127.0.0.1/hook",
    "http://localhost:8080/hook",
    "http://[::1]/hook",
    "http://0.0.0.0/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://10.0.0.1/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/hook",
    "http://2130706433/hook",
    "http://0x7f000001/hook",
    "https://user:pass@127.0.0.1/hook",
    "https://user:pass@hooks.example.com/hook",
    "ftp://hooks.example.com/hook",
]


@pytest.mark.parametrize("url", BLOCKED_URLS)
def test_webhook_targets_on_this_host_or_its_network_are_refused(world, url):
    client, _, keys, _, _ = world
    response = set_webhook(client, keys, url)
    assert response.status_code == 422, (url, response.text)
    assert client.get("/v1/admin/webhook", headers=auth(keys, role="admin")).json() is None


def test_a_name_that_resolves_to_loopback_is_refused_when_set_and_when_delivered(world):
    client, store, keys, tickets, app = world
    answers = {"rebind.example.com": ["93.184.215.14"]}
    app.state.services.targets = TargetPolicy.of([], lambda host, port: answers.get(host) or public_dns(host, port))
    assert set_webhook(client, keys, "https://rebind.example.com/hook").status_code == 200
    answers["rebind.example.com"] = ["127.0.0.1"]  # the DNS answer changes after the check (rebinding)
    assert set_webhook(client, keys, "https://rebind.example.com/other").status_code == 422
    sent = []
    app.state.services.webhook_client = httpx.Client(transport=httpx.MockTransport(lambda r: sent.append(r)))
    result = add_result(store, "reply_draft", text="Your refund was sent.", subject=("ticket", tickets["alpha"]))
    decided = client.post(
        f"/v1/review/{result}/decision", headers=auth(keys), json={"decision": "approve", "version": 1}
    )
    assert decided.status_code == 200
    delivery = client.post(f"/v1/review/{result}/deliver", headers=auth(keys)).json()
    assert sent == [] and delivery["status"] == "failed" and "127.0.0.1" in delivery["last_error"]


def test_allowed_internal_hosts_are_an_explicit_admin_choice():
    policy = TargetPolicy.of(["hooks.internal"], lambda host, port: ["10.1.2.3"])
    policy.check_url("https://hooks.internal/copilot")  # allowed by configuration
    with pytest.raises(Exception, match="private"):
        policy.check_url("https://other.internal/copilot")


def test_the_targets_error_page_never_reaches_the_caller(world):
    client, store, keys, tickets, app = world
    assert set_webhook(client, keys, "https://hooks.example.com/hook").status_code == 200
    secret_page = httpx.Response(404, text="INTERNAL-ONLY-SECRET: db_password=hunter2")
    app.state.services.webhook_client = httpx.Client(transport=httpx.MockTransport(lambda r: secret_page))
    result = add_result(store, "reply_draft", text="Your refund was sent.", subject=("ticket", tickets["alpha"]))
    client.post(f"/v1/review/{result}/decision", headers=auth(keys), json={"decision": "approve", "version": 1})
    delivery = client.post(f"/v1/review/{result}/deliver", headers=auth(keys))
    assert delivery.json()["last_error"] == "HTTP 404 Not Found"
    audit = client.get("/v1/audit", headers=auth(keys, role="admin")).text
    assert "hunter2" not in delivery.text and "hunter2" not in audit


# -- 2. reading other roles' results through indirect routes ------------------------------------------
def test_an_agent_cannot_read_a_call_summary_through_a_rewrite(world):
    client, store, keys, _, _ = world
    summary = add_result(
        store, "call_summary", text="Transcript quote: our budget is 40k; owner Dana by Friday.", subject=("call", 1)
    )
    for path in ("/v1/rewrite", "/v1/tasks/tone_rewrite"):
        response = client.post(path, headers=auth(keys), json={"draft_id": summary, "tone": "formal"})
        assert response.status_code == 422 and "40k" not in response.text, response.text
    assert client.get(f"/v1/review/{summary}", headers=auth(keys)).status_code == 403


TASK_RESULTS = {
    "reply_draft": "support",
    "tone_rewrite": "support",
    "ticket_summary": "support",
    "call_summary": "sales",
    "deal_brief": "sales",
    "nps_themes": "marketing",
}
ROLE_AREAS = {
    "agent": {"support"},
    "rep": {"sales"},
    "marketing": {"marketing"},
    "admin": {"support", "sales", "marketing"},
}


@pytest.mark.parametrize("role", list(ROLE_AREAS))
def test_every_route_that_reads_a_result_checks_the_role_for_its_task(world, role):
    client, store, keys, _, _ = world
    ids = {task: add_result(store, task, text=f"SECRET-{task}", subject=("text", None)) for task in TASK_RESULTS}
    headers = auth(keys, role=role)
    for task, result_id in ids.items():
        allowed = TASK_RESULTS[task] in ROLE_AREAS[role]
        reads = [
            client.get(f"/v1/review/{result_id}", headers=headers),
            client.post(f"/v1/review/{result_id}/decision", headers=headers, json={"decision": "reject", "version": 9}),
            client.post(f"/v1/review/{result_id}/deliver", headers=headers),
            client.post("/v1/review/batch-approve", headers=headers, json={"items": [{"id": result_id, "version": 1}]}),
            client.get(f"/v1/review/export?task={task}", headers=headers),
            client.get(f"/v1/review/queue?task={task}", headers=headers),
            client.post("/v1/rewrite", headers=headers, json={"draft_id": result_id, "tone": "formal"}),
        ]
        for response in reads:
            if not allowed:
                assert f"SECRET-{task}" not in response.text, (role, task, response.request.url, response.text)
        if allowed:
            assert f"SECRET-{task}" in reads[0].text
        else:
            assert reads[0].status_code in (403, 404)


# -- 3. the commitment gate and blocking guards hold on edits -----------------------------------------
def test_an_edit_that_commits_needs_the_same_confirmation_as_an_approval(world):
    client, store, keys, tickets, _ = world
    text = "We will refund the duplicate charge today."
    result = add_result(
        store, "reply_draft", text=text, needs_explicit_approval=["refund"], subject=("ticket", tickets["alpha"])
    )
    same = client.post(
        f"/v1/review/{result}/decision", headers=auth(keys), json={"decision": "edit", "version": 1, "text": text}
    )
    assert same.status_code == 422 and same.json()["error"]["field"] == "confirm_commitments"
    added = add_result(
        store, "reply_draft", text="Thanks, we are looking into it.", subject=("ticket", tickets["alpha"])
    )
    more = client.post(
        f"/v1/review/{added}/decision",
        headers=auth(keys),
        json={"decision": "edit", "version": 1, "text": "We will credit you a free month."},
    )
    assert more.status_code == 422 and "credit" in more.json()["error"]["message"]
    confirmed = client.post(
        f"/v1/review/{result}/decision",
        headers=auth(keys),
        json={"decision": "edit", "version": 1, "text": text, "confirm_commitments": True},
    )
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "edited"


def test_a_blocked_draft_is_not_edited_into_approval_without_an_admin_override(world):
    client, store, keys, tickets, _ = world
    failed = [{"name": "grounded_facts", "passed": False, "severity": "block", "details": ["order id not in sources"]}]
    result = add_result(
        store,
        "reply_draft",
        text="Your order ORD-999 ships today.",
        verdicts=failed,
        subject=("ticket", tickets["alpha"]),
        sources=[],
    )
    same = client.post(
        f"/v1/review/{result}/decision",
        headers=auth(keys),
        json={"decision": "edit", "version": 1, "text": "Your order ORD-999 ships today."},
    )
    assert same.status_code == 422 and "grounded_facts" in same.json()["error"]["message"]
    agent_override = client.post(
        f"/v1/review/{result}/decision",
        headers=auth(keys),
        json={"decision": "edit", "version": 1, "text": "Your order ORD-999 ships today.", "override_guards": True},
    )
    assert agent_override.status_code == 403
    fixed = client.post(
        f"/v1/review/{result}/decision",
        headers=auth(keys),
        json={"decision": "edit", "version": 1, "text": "We are checking your order now."},
    )
    assert fixed.status_code == 200  # the edited text passes the draft's guards again


def test_an_admin_override_is_audited(world):
    client, store, keys, tickets, _ = world
    failed = [{"name": "grounded_facts", "passed": False, "severity": "block", "details": ["x"]}]
    result = add_result(store, "call_summary", text="x", verdicts=failed, subject=("text", None))
    response = client.post(
        f"/v1/review/{result}/decision",
        headers=auth(keys, role="admin"),
        json={"decision": "edit", "version": 1, "text": "Fine.", "override_guards": True},
    )
    assert response.status_code == 200
    with store.repo("alpha") as repo:
        event = repo.session.query(AuditEvent).filter_by(ai_result_id=result).one()
        assert event.after["overrode_guards"] == ["grounded_facts"]


# -- 4. accountless tickets draw on shared sources only ------------------------------------------------
def test_a_ticket_with_no_account_never_gets_another_customers_history(services, store):
    from copilot.store import get_or_create_workspace

    with store.session() as session:
        get_or_create_workspace(session, "alpha")
    with store.repo("alpha") as repo:
        other = repo.add(Account(name="Other Co"))
        repo.session.flush()
        private = repo.add(Ticket(account_id=other.id, subject="Refund for card 4111 1111 1111 1111"))
        repo.session.flush()
        repo.add(
            Message(
                ticket_id=private.id,
                author_kind=AuthorKind.agent,
                author="Ana",
                body="Agent: MARKER-PRIVATE your refund to card 4111 1111 1111 1111 is done.",
            )
        )
        repo.add(KbArticle(title="Refunds", body="## Refunds\nRefunds reach your card within 5 days."))
        orphan = repo.add(Ticket(subject="Where is my refund?"))
        repo.session.flush()
        repo.add(Message(ticket_id=orphan.id, author_kind=AuthorKind.customer, author="Bo", body="Where is my refund?"))
        repo.session.flush()
        services.index.rebuild(repo, resume=False)
        outcome = services.run_task(repo, "reply_draft", {"ticket_id": orphan.id, "strategy": "retrieval"})
    kinds = {s.record_kind for s in outcome.result.sources}
    assert kinds <= {"kb_article"} and "MARKER-PRIVATE" not in outcome.result.text
    assert all("MARKER-PRIVATE" not in s.text for s in outcome.result.sources)


# -- 5. sessions ---------------------------------------------------------------------------------------
def login(client: TestClient, key: str) -> None:
    token = CSRF.search(client.get("/login").text).group(1)
    response = client.post("/login", data={"api_key": key, "csrf": token}, follow_redirects=False)
    assert response.status_code == 303, response.text


def test_the_session_cookie_holds_no_key_and_dies_at_logout(world):
    client, _, keys, _, _ = world
    login(client, keys[("alpha", "agent")])
    cookie = client.cookies.get("copilot_session")
    padded = cookie + "=" * (-len(cookie) % 4)
    decoded = base64.urlsafe_b64decode(padded.encode()).decode("latin-1", "replace")
    assert "cpk_" not in cookie and "cpk_" not in decoded and keys[("alpha", "agent")][4:12] not in decoded
    assert client.get("/review").status_code == 200
    token = CSRF.search(client.get("/review").text).group(1)
    client.post("/logout", data={"csrf": token})
    client.cookies.set("copilot_session", cookie)  # replay the pre-logout cookie
    assert client.get("/review", follow_redirects=False).status_code == 303
    assert client.get("/v1/tickets").status_code == 401


def test_revoking_a_key_ends_its_sessions_and_idle_sessions_expire(world):
    client, store, keys, _, app = world
    login(client, keys[("alpha", "agent")])
    assert client.get("/v1/tickets").status_code == 200
    with store.repo("alpha") as repo:
        key_id = next(
            k.id
            for k in repo.all(repo.select(__import__("copilot.store.models", fromlist=["ApiKey"]).ApiKey))
            if k.name == "alpha-agent"
        )
        revoke_key(repo, key_id)
    assert client.get("/v1/tickets").status_code == 401
    app.state.services.settings.session_idle_s = 60
    other = TestClient(app)
    login(other, keys[("alpha", "rep")])
    with store.session() as session:
        from copilot.store.models import WebSession

        for row in session.query(WebSession):
            row.last_seen_at = datetime.now(UTC) - timedelta(minutes=5)
    assert other.get("/v1/deals").status_code == 401


def test_the_cookie_is_secure_over_https(world):
    _, _, keys, _, app = world
    secure = TestClient(app, base_url="https://testserver")
    token = CSRF.search(secure.get("/login").text).group(1)
    response = secure.post("/login", data={"api_key": keys[("alpha", "agent")], "csrf": token}, follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


# -- 6. no secrets in logs -------------------------------------------------------------------------------
def test_serve_prints_where_the_demo_key_is_not_the_key(settings, monkeypatch, capsys):
    import uvicorn

    from copilot.cli import service
    from copilot.demo.service import demo_key_path

    settings.ensure_dirs()
    demo_key_path(settings, "demo").write_text("cpk_abcd1234_secretsecretsecretsecretsecret\n")
    monkeypatch.setenv("COPILOT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)
    service.serve(host=None, port=None)
    out = capsys.readouterr().out
    assert "secretsecret" not in out and "demo-demo-key.txt" in out.replace("\n", "")


def test_serve_keeps_idle_connections_longer_than_a_proxy_does(settings, monkeypatch):
    """A server that closes idle connections before the proxy or client in front of it does races their next request
    on that connection (ReadError); the keep-alive comes from COPILOT_KEEP_ALIVE_S."""
    import uvicorn

    from copilot.cli import service

    calls: list[dict] = []
    monkeypatch.setenv("COPILOT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    service.serve(host=None, port=None)
    monkeypatch.setenv("COPILOT_KEEP_ALIVE_S", "120")
    service.serve(host=None, port=None)
    assert [call["timeout_keep_alive"] for call in calls] == [75, 120]


def test_access_logs_drop_query_strings():
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "GET", "/v1/search?q=Dana+Reyes+dana@acme.com", "1.1", 200),
        None,
    )
    NoQueryStrings().filter(record)
    assert "Dana" not in record.getMessage() and "/v1/search" in record.getMessage()


def test_the_database_and_data_dir_are_private(store, settings):
    if settings.database_url:
        pytest.skip("the SQLite file's mode: this run uses a database server")
    assert stat.S_IMODE((settings.data_dir / "copilot.db").stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700


# -- 7. job leases: a second process does not interrupt a live one's job -------------------------------
def test_a_second_process_leaves_a_running_job_alone_and_retry_waits(world):
    client, store, keys, _, app = world
    started, release = threading.Event(), threading.Event()

    def slow(job):
        started.set()
        release.wait(20)
        return {"done": True}

    runner = app.state.services.jobs
    runner.kinds = {**runner.kinds, "reindex": JobKind("reindex", slow, Permission.manage)}
    job_id = client.post("/v1/admin/reindex", headers=auth(keys, role="admin")).json()["id"]
    assert started.wait(10)
    second = create_app(services=Services(app.state.services.settings, store))  # another process, same data
    with TestClient(second) as other:
        assert second.state.services.jobs.run_once() is False  # nothing to claim: the lease is live
        assert other.get(f"/v1/jobs/{job_id}", headers=auth(keys, role="admin")).json()["status"] == "running"
        assert other.post(f"/v1/jobs/{job_id}/retry", headers=auth(keys, role="admin")).status_code == 409
    release.set()
    runner.wait(job_id, 20)
    done = client.get(f"/v1/jobs/{job_id}", headers=auth(keys, role="admin")).json()
    assert done["status"] == "succeeded" and done["attempts"] == 1


def test_a_failed_job_is_retried_in_place_once(world):
    client, store, keys, _, app = world
    with store.repo("alpha") as repo:
        failed = repo.add(Job(kind="reindex", params={}, status=JobStatus.failed, error="boom"))
        repo.session.flush()
        job_id = failed.id
    app.state.services.jobs.shutdown()  # keep it queued for the check
    first = client.post(f"/v1/jobs/{job_id}/retry", headers=auth(keys, role="admin"))
    second = client.post(f"/v1/jobs/{job_id}/retry", headers=auth(keys, role="admin"))
    assert first.status_code == 202 and first.json()["id"] == job_id and second.status_code == 409
    with store.repo("alpha") as repo:
        assert len(repo.all(repo.select(Job))) == 1


def test_jobs_are_claimed_fairly_across_workspaces(services, store):
    from copilot.store import get_or_create_workspace

    for slug in ("big", "small"):
        with store.session() as session:
            get_or_create_workspace(session, slug)
    runner = JobRunner(services, kinds={"noop": JobKind("noop", lambda job: {}, Permission.manage)})
    with store.repo("big") as repo:
        for _ in range(5):
            runner.submit(repo, "noop")
    with store.repo("small") as repo:
        small = runner.submit(repo, "noop").id
    first = runner.claim()  # big's oldest job
    second = runner.claim()  # big already has one running: small goes next, not big's second
    assert first[1] == "big" and second[0] == small


# -- 8. CSRF on cookie-authenticated API calls, malformed forms, rate limits, headers --------------------
def test_a_cookie_authenticated_api_post_needs_the_csrf_header(world):
    client, _, keys, tickets, _ = world
    login(client, keys[("alpha", "agent")])
    bare = client.post(f"/v1/tickets/{tickets['alpha']}/summary", data={"strategy": "extractive"})
    assert bare.status_code == 403 and "CSRF" in bare.text
    token = CSRF.search(client.get("/review").text).group(1)
    ok = client.post(
        f"/v1/tickets/{tickets['alpha']}/summary", headers={"X-CSRF-Token": token}, json={"strategy": "extractive"}
    )
    assert ok.status_code == 200


@pytest.mark.parametrize("item", ["abc:1", "35", "35:1:2", ":", "1:-1"])
def test_malformed_batch_items_are_a_422(world, item):
    client, _, keys, _, _ = world
    login(client, keys[("alpha", "agent")])
    token = CSRF.search(client.get("/review").text).group(1)
    response = client.post("/review/batch", data={"csrf": token, "item": [item]}, headers={"Accept": "text/html"})
    assert response.status_code == 422 and "item" in response.text


def test_failed_keys_back_off_per_client(world):
    client, _, keys, _, app = world
    app.state.auth_failures = AuthFailures(clock=lambda: 1000.0)  # a stopped clock: the 2 s lock cannot run out
    for _ in range(5):
        assert client.get("/v1/tickets", headers={"Authorization": "Bearer cpk_deadbeef_wrong"}).status_code == 401
    limited = client.get("/v1/tickets", headers={"Authorization": "Bearer cpk_deadbeef_wrong"})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    token = CSRF.search(client.get("/login").text).group(1)
    form = client.post("/login", data={"api_key": keys[("alpha", "agent")], "csrf": token})
    assert form.status_code == 429  # the login form backs off too, even with a good key


def test_bulk_ids_are_capped_and_deduplicated(world):
    client, _, keys, tickets, _ = world
    too_many = client.post("/v1/tickets/summaries", headers=auth(keys), json={"ticket_ids": list(range(1, 2002))})
    assert too_many.status_code == 422
    job = client.post("/v1/tickets/summaries", headers=auth(keys), json={"ticket_ids": [tickets["alpha"]] * 50})
    assert job.status_code == 202 and len(job.json()["params"]["items"]) == 1


@pytest.mark.parametrize("path", ["/login", "/v1/health", "/docs", "/redoc", "/static/app.js"])
def test_security_headers_on_every_page(world, path):
    client = world[0]
    headers = client.get(path).headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"


def test_pages_have_no_inline_scripts(world):
    client, _, keys, _, _ = world
    login(client, keys[("alpha", "admin")])
    for path in ("/review", "/tickets", "/deals", "/nps", "/docs", "/redoc"):
        page = client.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), path
        assert not re.search(r"\son(click|change|submit|load)=", page), path


# -- 9. the info items -------------------------------------------------------------------------------------
def test_a_chunked_body_over_the_limit_is_a_413(world):
    client, _, keys, _, _ = world

    def chunks():
        for _ in range(6):
            yield b"x" * 1_000_000

    response = client.post("/v1/rewrite", headers={**auth(keys), "Content-Type": "application/json"}, content=chunks())
    assert response.status_code == 413


def test_streaming_a_missing_ticket_is_a_404_not_an_error_event(world):
    client, _, keys, _, _ = world
    response = client.post("/v1/tickets/999999/draft?stream=true", headers=auth(keys))
    assert response.status_code == 404 and response.headers["content-type"].startswith("application/json")


def test_audit_totals_count_only_what_the_role_may_see(world):
    client, store, keys, _, _ = world
    summary = add_result(store, "call_summary", text="x", subject=("text", None))
    client.post(
        f"/v1/review/{summary}/decision", headers=auth(keys, role="rep"), json={"decision": "reject", "version": 1}
    )
    page = client.get("/v1/audit", headers=auth(keys)).json()
    assert page["total"] == len(page["items"]) == 0
    assert client.get("/v1/audit", headers=auth(keys, role="rep")).json()["total"] == 1


def test_a_draft_of_a_deleted_ticket_cannot_be_approved(world):
    client, store, keys, tickets, _ = world
    result = add_result(store, "reply_draft", text="Thanks!", subject=("ticket", tickets["alpha"]))
    assert client.delete(f"/v1/records/ticket/{tickets['alpha']}", headers=auth(keys, role="admin")).status_code == 204
    response = client.post(
        f"/v1/review/{result}/decision", headers=auth(keys), json={"decision": "approve", "version": 1}
    )
    assert response.status_code == 409 and "stale" in response.text
