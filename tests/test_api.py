"""The service end to end through its HTTP API: roles, isolation, review workflow, webhooks, jobs, errors, streaming."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from copilot.auth import Permission
from copilot.delivery import DeliveryPolicy
from copilot.errors import Conflict
from copilot.jobs import JobKind
from copilot.review import Decision, ReviewRequest, decide
from copilot.services import Services
from copilot.settings import Settings
from copilot.store import Store
from copilot.store.models import AiResult, AiStatus, AuditEvent, Delivery, Job, JobStatus, Message
from copilot.tasks import registry
from tests.conftest import use_settings_in_cli


def auth(keys, slug="alpha", role="agent"):
    return {"Authorization": f"Bearer {keys[(slug, role)]}"}


def pending_rewrite(client, keys, text="Your refund of $20 was sent today.\n\nBest,\nAnna", tone="friendly"):
    response = client.post("/v1/rewrite", headers=auth(keys), json={"text": text, "tone": tone, "strategy": "rules"})
    assert response.status_code == 200, response.text
    return response.json()["ai_result_id"], response.json()["version"]


# -- access control ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("role", "method", "path", "expected"),
    [
        ("agent", "get", "/v1/tickets", 200),
        ("marketing", "get", "/v1/tickets", 403),
        ("rep", "get", "/v1/tickets", 403),
        ("marketing", "get", "/v1/records/message", 403),
        ("agent", "get", "/v1/records/deal", 403),
        ("rep", "get", "/v1/records/deal", 200),
        ("marketing", "get", "/v1/records/nps_response", 200),
        ("agent", "get", "/v1/admin/keys", 403),
        ("admin", "get", "/v1/admin/keys", 200),
        ("marketing", "get", "/v1/review/queue", 200),  # its own NPS outputs only
        ("rep", "get", "/v1/review/queue", 200),
        ("agent", "post", "/v1/records/ticket", 403),
    ],
)
def test_role_matrix(world, role, method, path, expected):
    client, _, keys, _, _ = world
    kwargs = {"json": [{"external_id": "T-9", "subject": "x"}]} if method == "post" else {}
    assert getattr(client, method)(path, headers=auth(keys, role=role), **kwargs).status_code == expected


def test_missing_unknown_and_revoked_keys_are_401_wrong_role_is_403(world):
    client, _, keys, tickets, _ = world
    assert client.get("/v1/tickets").status_code == 401
    assert client.get("/v1/tickets", headers={"X-API-Key": "cpk_0000_nope"}).status_code == 401
    assert (
        client.get("/v1/tickets", headers={"Authorization": "Bearer garbage"}).json()["error"]["type"]
        == "unauthenticated"
    )
    key_id = next(
        k["id"]
        for k in client.get("/v1/admin/keys", headers=auth(keys, role="admin")).json()
        if k["name"] == "alpha-agent"
    )
    assert client.delete(f"/v1/admin/keys/{key_id}", headers=auth(keys, role="admin")).status_code == 200
    revoked = client.get("/v1/tickets", headers=auth(keys))
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]
    assert client.get(f"/v1/tickets/{tickets['alpha']}", headers=auth(keys, role="marketing")).status_code == 403


def test_a_key_of_one_workspace_gets_404_for_another_workspaces_ids(world):
    client, _, keys, tickets, _ = world
    beta_ticket = tickets["beta"]
    assert client.get(f"/v1/tickets/{beta_ticket}", headers=auth(keys, "beta")).status_code == 200
    for method, path in (
        ("get", f"/v1/tickets/{beta_ticket}"),
        ("post", f"/v1/tickets/{beta_ticket}/summary"),
        ("get", f"/v1/records/ticket/{beta_ticket}"),
        ("get", f"/v1/tickets/{beta_ticket}/sentiment"),
    ):
        response = getattr(client, method)(path, headers=auth(keys, "alpha"))
        assert response.status_code == 404, (path, response.text)
    beta_result, version = pending_rewrite(client, {("alpha", "agent"): keys[("beta", "agent")]})
    assert client.get(f"/v1/review/{beta_result}", headers=auth(keys, "alpha")).status_code == 404
    decision = client.post(
        f"/v1/review/{beta_result}/decision",
        headers=auth(keys, "alpha"),
        json={"decision": "approve", "version": version},
    )
    assert decision.status_code == 404
    assert client.get("/v1/records/ticket", headers=auth(keys, "alpha")).json()["total"] == 1


def test_keys_cli_prints_a_key_once_that_then_authenticates(world, monkeypatch):
    from typer.testing import CliRunner

    from copilot.cli.main import app

    client, store, _, _, fastapi_app = world
    use_settings_in_cli(monkeypatch, fastapi_app.state.services.settings)
    result = CliRunner().invoke(app, ["keys", "create", "--role", "agent", "--workspace", "alpha"])
    assert result.exit_code == 0, result.output
    key = next(word for word in result.output.split() if word.startswith("cpk_"))
    assert client.get("/v1/tickets", headers={"X-API-Key": key}).status_code == 200
    with store.session() as session:
        from copilot.store.models import ApiKey

        assert key not in {row.key_hash for row in session.scalars(select(ApiKey))}
    bad = CliRunner().invoke(app, ["keys", "create", "--role", "boss", "--workspace", "alpha"])
    assert bad.exit_code != 0 and "boss" in bad.output


# -- review workflow ---------------------------------------------------------------------------
def test_approve_edit_reject_with_audit_trail_and_stats(world):
    client, _, keys, _, _ = world
    first, v1 = pending_rewrite(client, keys)
    second, v2 = pending_rewrite(client, keys, "We shipped order ORD-77 on 3 May.\n\nBest,\nAnna", tone="neutral")
    third, v3 = pending_rewrite(client, keys, "Thanks for waiting, Dana.")
    assert client.get("/v1/review/queue", headers=auth(keys)).json()["total"] == 3
    approved = client.post(
        f"/v1/review/{first}/decision", headers=auth(keys), json={"decision": "approve", "version": v1}
    )
    assert (
        approved.status_code == 200 and approved.json()["status"] == "approved" and approved.json()["version"] == v1 + 1
    )
    edited = client.post(
        f"/v1/review/{second}/decision",
        headers=auth(keys),
        json={"decision": "edit", "version": v2, "text": "We shipped order ORD-77 on 3 May. Sorry!\n\nBest,\nAnna"},
    )
    assert edited.json()["status"] == "edited" and edited.json()["final_text"].endswith("Anna")
    rejected = client.post(
        f"/v1/review/{third}/decision", headers=auth(keys), json={"decision": "reject", "version": v3, "reason": "off"}
    )
    assert rejected.json()["status"] == "rejected"
    assert client.get("/v1/review/queue", headers=auth(keys)).json()["total"] == 0
    events = client.get("/v1/audit", headers=auth(keys), params={"task": "tone_rewrite"}).json()["items"]
    assert [e["action"] for e in events] == ["review.approve", "review.edit", "review.reject"]
    assert events[1]["edit_distance"] == len(" Sorry!") and events[0]["actor"].startswith("key:alpha-agent")
    stats = client.get("/v1/review/stats", headers=auth(keys)).json()
    row = next(s for s in stats if s["task"] == "tone_rewrite")
    assert (row["decided"], row["approved"], row["edited"], row["rejected"]) == (3, 1, 1, 1)
    assert row["acceptance_rate"] == pytest.approx(2 / 3, abs=1e-3) and row["mean_edit_distance"] == 7


def test_decisions_need_the_current_version_and_a_pending_status(world):
    client, _, keys, _, _ = world
    result, version = pending_rewrite(client, keys)
    stale = client.post(
        f"/v1/review/{result}/decision", headers=auth(keys), json={"decision": "approve", "version": version + 5}
    )
    assert stale.status_code == 409 and stale.json()["error"]["type"] == "conflict"
    ok = client.post(
        f"/v1/review/{result}/decision", headers=auth(keys), json={"decision": "approve", "version": version}
    )
    assert ok.status_code == 200
    again = client.post(
        f"/v1/review/{result}/decision",
        headers=auth(keys),
        json={"decision": "reject", "version": ok.json()["version"]},
    )
    assert again.status_code == 409 and "already approved" in again.json()["error"]["message"]
    empty_edit = client.post(
        f"/v1/review/{pending_rewrite(client, keys)[0]}/decision",
        headers=auth(keys),
        json={"decision": "edit", "version": 1, "text": "  "},
    )
    assert empty_edit.status_code == 422 and empty_edit.json()["error"]["field"] == "text"


def test_two_reviewers_approving_at_once_exactly_one_wins(world):
    client, store, keys, _, _ = world
    result, version = pending_rewrite(client, keys)
    # Interleaved at the database level: both read version 1, the first commits, the second's UPDATE finds no row.
    with store.sessions() as first, store.sessions() as second:
        from copilot.store import Repo

        repo_a, repo_b = Repo.for_slug(first, "alpha"), Repo.for_slug(second, "alpha")
        repo_a.get(AiResult, result), repo_b.get(AiResult, result)
        decide(
            repo_a, result, ReviewRequest(decision=Decision.approve, version=version), actor="a", tasks=["tone_rewrite"]
        )
        first.commit()
        with pytest.raises(Conflict):
            decide(
                repo_b,
                result,
                ReviewRequest(decision=Decision.reject, version=version),
                actor="b",
                tasks=["tone_rewrite"],
            )
    # And through the API from two threads.
    result, version = pending_rewrite(client, keys)
    barrier, statuses = threading.Barrier(2), []

    def approve() -> None:
        barrier.wait()
        statuses.append(
            client.post(
                f"/v1/review/{result}/decision", headers=auth(keys), json={"decision": "approve", "version": version}
            ).status_code
        )

    threads = [threading.Thread(target=approve) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(statuses) == [200, 409]
    with store.repo("alpha") as repo:
        actions = repo.session.scalars(select(AuditEvent.action).where(AuditEvent.ai_result_id == result)).all()
    assert actions == ["review.approve"]


def test_commitments_need_explicit_approval_and_are_refused_by_batch_approve(world):
    client, store, keys, tickets, _ = world
    risky, _ = pending_rewrite(client, keys)
    with store.repo("alpha") as repo:
        row = repo.get(AiResult, risky)
        row.content = {**row.content, "result": {**row.content["result"], "needs_explicit_approval": ["refund"]}}
        version = row.version + 1
    safe, safe_version = pending_rewrite(client, keys, "Thanks Dana!!! It works now.")  # the rules calm it down
    batch = client.post(
        "/v1/review/batch-approve",
        headers=auth(keys),
        json={"items": [{"id": risky, "version": version}, {"id": safe, "version": safe_version}]},
    )
    outcome = {item["id"]: item for item in batch.json()}
    assert outcome[safe]["approved"] and not outcome[risky]["approved"] and "refund" in outcome[risky]["error"]
    plain = client.post(
        f"/v1/review/{risky}/decision", headers=auth(keys), json={"decision": "approve", "version": version}
    )
    assert plain.status_code == 422 and plain.json()["error"]["field"] == "confirm_commitments"
    explicit = client.post(
        f"/v1/review/{risky}/decision",
        headers=auth(keys),
        json={"decision": "approve", "version": version, "confirm_commitments": True},
    )
    assert explicit.status_code == 200


def test_a_new_customer_message_makes_a_pending_draft_stale(world):
    client, _, keys, tickets, _ = world
    ticket = tickets["alpha"]
    draft = client.post(f"/v1/tickets/{ticket}/draft", headers=auth(keys), json={"strategy": "retrieval"})
    assert draft.status_code == 200 and draft.json()["status"] == "pending"
    write = client.post(
        "/v1/records/message",
        headers=auth(keys, role="admin"),
        json=[
            {
                "external_id": "M-2",
                "ticket": "T-1",
                "author_kind": "customer",
                "body": "Any news?",
                "sent_at": "2030-01-01T10:00:00Z",
            }
        ],
    )
    assert write.status_code == 200, write.text
    result = client.get(f"/v1/review/{draft.json()['ai_result_id']}", headers=auth(keys)).json()
    assert result["status"] == "stale"
    approve = client.post(
        f"/v1/review/{result['id']}/decision",
        headers=auth(keys),
        json={"decision": "approve", "version": result["version"]},
    )
    assert approve.status_code == 409 and "stale" in approve.json()["error"]["message"]


# -- delivery ------------------------------------------------------------------------------------
def test_approved_reply_is_posted_to_the_signed_webhook_with_retries(world):
    client, store, keys, _, app = world
    secret = "s3cret-s3cret-s3cret"
    assert (
        client.put(
            "/v1/admin/webhook",
            headers=auth(keys, role="admin"),
            json={"url": "https://hooks.example.test/copilot", "secret": secret},
        ).status_code
        == 200
    )
    calls, sleeps = [], []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503 if len(calls) < 3 else 200)

    services = app.state.services
    services.webhook_client = httpx.Client(transport=httpx.MockTransport(handler))
    services.sleep, services.delivery_policy = sleeps.append, DeliveryPolicy(max_attempts=4, backoff_s=0.5)
    result, version = pending_rewrite(client, keys)
    assert (
        client.post(
            f"/v1/review/{result}/decision", headers=auth(keys), json={"decision": "approve", "version": version}
        ).status_code
        == 200
    )
    assert len(calls) == 3 and sleeps == [0.5, 1.0]
    keys_seen = {c.headers["Idempotency-Key"] for c in calls}
    assert keys_seen == {f"alpha:ai_result:{result}"}
    last = calls[-1]
    expected = (
        "sha256="
        + hmac.new(
            secret.encode(), last.headers["X-Copilot-Timestamp"].encode() + b"." + last.content, hashlib.sha256
        ).hexdigest()
    )
    assert last.headers["X-Copilot-Signature"] == expected
    assert "Your refund of $20 was sent today." in json.loads(last.content)["text"]
    assert client.get(f"/v1/review/{result}", headers=auth(keys)).json()["status"] == "sent"
    with store.repo("alpha") as repo:
        delivery = repo.session.scalar(select(Delivery).where(Delivery.ai_result_id == result))
        assert (delivery.status.value, delivery.attempts) == ("delivered", 3)
    again = client.post(f"/v1/review/{result}/deliver", headers=auth(keys))
    assert again.json()["status"] == "delivered" and len(calls) == 3  # idempotent: nothing sent twice


def test_webhook_that_keeps_failing_gives_up_after_bounded_attempts(world):
    client, _, keys, _, app = world
    client.put("/v1/admin/webhook", headers=auth(keys, role="admin"), json={"url": "https://hooks.example.test/x"})
    calls = []
    services = app.state.services
    services.webhook_client = httpx.Client(
        transport=httpx.MockTransport(lambda r: calls.append(r) or httpx.Response(500))
    )
    services.sleep, services.delivery_policy = (lambda s: None), DeliveryPolicy(max_attempts=3)
    result, version = pending_rewrite(client, keys)
    client.post(f"/v1/review/{result}/decision", headers=auth(keys), json={"decision": "approve", "version": version})
    assert len(calls) == 3
    assert client.get(f"/v1/review/{result}", headers=auth(keys)).json()["status"] == "approved"
    actions = [e["action"] for e in client.get("/v1/audit", headers=auth(keys)).json()["items"]]
    assert actions[-1] == "delivery.failed"


# -- jobs --------------------------------------------------------------------------------------
def test_job_lifecycle_and_restart_recovery(world, tmp_path):
    client, store, keys, tickets, app = world
    runner = app.state.services.jobs
    started = threading.Event()
    release = threading.Event()

    def slow(job):
        job.progress(1, 2, force=True)
        started.set()
        release.wait(10)
        return {"answer": 42}

    runner.kinds = {**runner.kinds, "reindex": JobKind("reindex", slow, Permission.manage)}
    submitted = client.post("/v1/admin/reindex", headers=auth(keys, role="admin"))
    assert submitted.status_code == 202 and submitted.headers["Location"] == f"/v1/jobs/{submitted.json()['id']}"
    job_id = submitted.json()["id"]
    assert started.wait(10)
    running = client.get(f"/v1/jobs/{job_id}", headers=auth(keys, role="admin")).json()
    assert (running["status"], running["done"], running["total"]) == ("running", 1, 2)
    assert client.post(f"/v1/jobs/{job_id}/retry", headers=auth(keys, role="admin")).status_code == 409
    release.set()
    runner.wait(job_id, 10)
    done = client.get(f"/v1/jobs/{job_id}", headers=auth(keys, role="admin")).json()
    assert (done["status"], done["result"], done["done"]) == ("succeeded", {"answer": 42}, 2)
    assert client.get(f"/v1/jobs/{job_id}", headers=auth(keys)).status_code == 404  # an agent does not see admin jobs
    assert client.post(f"/v1/jobs/{job_id}/retry", headers=auth(keys, role="admin")).status_code == 409  # done once

    with store.repo("alpha") as repo:  # a job whose process died mid-run: its lease expired a minute ago
        params = {"task": "ticket_summary", "items": [{"ticket_id": tickets["alpha"]}]}
        orphan = repo.add(
            Job(
                kind="task_batch",
                params=params,
                status=JobStatus.running,
                lease_owner="dead:1:x",
                lease_expires_at=datetime.now(UTC) - timedelta(minutes=1),
                attempts=1,
            )
        )
        repo.session.flush()
        orphan_id = orphan.id
    restarted = create_app(services=Services(app.state.services.settings, store, fake=app.state.services.gateway.fake))
    with TestClient(restarted) as fresh:
        restarted.state.services.jobs.wait(orphan_id, 60)  # claimed again by the new process and finished
        result = fresh.get(f"/v1/jobs/{orphan_id}", headers=auth(keys)).json()
        assert result["status"] == "succeeded" and len(result["result"]["ai_result_ids"]) == 1
        assert result["attempts"] == 2
        assert fresh.get(f"/v1/jobs/{job_id}", headers=auth(keys, role="admin")).json()["result"] == {"answer": 42}


# -- errors --------------------------------------------------------------------------------------
def test_error_classes_share_one_error_model(world):
    client, store, keys, tickets, app = world
    not_found = client.get("/v1/tickets/999999", headers=auth(keys))
    assert not_found.status_code == 404 and set(not_found.json()["error"]) == {"type", "message", "field"}
    invalid = client.post(
        "/v1/rewrite", headers=auth(keys), json={"text": "hi", "tone": "sarcastic", "strategy": "rules"}
    )
    assert invalid.status_code == 422 and invalid.json()["error"]["field"] == "tone"
    schema = client.post("/v1/rewrite", headers=auth(keys), json={"text": "hi", "strategy": "telepathy"})
    assert schema.status_code == 422 and schema.json()["error"]["field"] == "strategy"
    too_big = client.post(
        "/v1/rewrite",
        headers={**auth(keys), "Content-Type": "application/json"},
        content=b'{"text": "' + b"a" * (app.state.services.settings.max_request_bytes + 10) + b'"}',
    )
    assert too_big.status_code == 413 and too_big.json()["error"]["type"] == "too_large"
    assert client.get("/v1/records/spaceship", headers=auth(keys)).status_code == 404
    bad_row = client.post(
        "/v1/records/ticket",
        headers=auth(keys, role="admin"),
        json=[{"external_id": "T-5", "subject": "ok"}, {"external_id": "T-6", "colour": "red"}],
    )
    assert bad_row.status_code == 422 and bad_row.json()["error"]["field"].startswith("items[1]")
    assert (
        client.get("/v1/records/ticket", headers=auth(keys), params={"external_id": "T-5"}).json()["total"] == 0
    )  # nothing half-written


def test_model_outage_gives_the_flagged_fallback_not_an_error(world, fake_script):
    import litellm

    client, store, keys, tickets, app = world
    settings = app.state.services.settings.model_copy(update={"model": "fake/scripted", "max_retries": 1})
    fake_script.push(*(litellm.RateLimitError("slow down", llm_provider="fake", model="scripted") for _ in range(2)))
    failing = create_app(settings, store)
    failing.state.services.gateway._sleep = lambda s: None
    with TestClient(failing) as c:
        response = c.post(
            "/v1/rewrite",
            headers=auth(keys),
            json={"text": "Hello Dana, thanks.", "tone": "formal", "strategy": "model"},
        )
    # the rewrite task falls back to its rules when the model is down: a result, flagged, not an error
    assert (
        response.status_code == 200
        and response.json()["used_fallback"]
        and "model unavailable" in response.json()["fallback_reason"]
    )


def test_model_error_escaping_a_task_is_a_clear_5xx_with_a_failed_result(world, monkeypatch):
    from copilot.gateway import ModelError

    client, store, keys, tickets, _ = world

    def broken(context, params):
        raise ModelError("model call failed after 3 attempts (fake/scripted: RateLimitError)", retryable=True)

    with registry.overridden("ticket_summary", run=broken):
        response = client.post(f"/v1/tickets/{tickets['alpha']}/summary", headers=auth(keys))
    assert response.status_code == 503 and "RateLimitError" in response.json()["error"]["message"]
    with store.repo("alpha") as repo:
        row = repo.session.scalar(repo.select(AiResult).where(AiResult.task == "ticket_summary"))
        assert row.status is AiStatus.failed and "RateLimitError" in row.error


# -- streaming -----------------------------------------------------------------------------------
def test_streamed_rewrite_stores_the_same_result_as_the_plain_call(world):
    client, store, keys, _, _ = world
    body = {"text": "Your refund of $20 was sent.", "tone": "formal", "strategy": "model"}
    plain = client.post("/v1/rewrite", headers=auth(keys), json=body).json()
    with client.stream("POST", "/v1/rewrite?stream=true", headers=auth(keys), json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    events = [(block.split("\n")[0][7:], json.loads(block.split("\n")[1][6:])) for block in text.strip().split("\n\n")]
    tokens = [data["text"] for kind, data in events if kind == "token"]
    assert len(tokens) >= 2 and events[-1][0] == "result"
    streamed = events[-1][1]
    assert streamed["result"] == plain["result"] and streamed["verdicts"] == plain["verdicts"]
    with store.repo("alpha") as repo:
        stored = repo.get(AiResult, streamed["ai_result_id"])
        assert stored.content["result"] == plain["result"]


def test_pagination_and_openapi(world):
    client, _, keys, _, _ = world
    for n in range(3):
        pending_rewrite(client, keys, f"Note {n}: thanks.")
    page = client.get("/v1/review/queue", headers=auth(keys), params={"offset": 1, "limit": 1}).json()
    assert (page["total"], len(page["items"]), page["offset"]) == (3, 1, 1)
    assert client.get("/v1/review/queue", headers=auth(keys), params={"limit": 0}).status_code == 422
    schema = client.get("/openapi.json").json()
    assert {
        "/v1/tickets/{ticket_id}/draft",
        "/v1/review/{result_id}/decision",
        "/v1/jobs/{job_id}",
        "/v1/admin/keys",
    } <= set(schema["paths"])
    assert client.get("/docs").status_code == 200


def test_demo_workspace_comes_with_a_login_key_and_drafts_to_review(tmp_path):
    from copilot.demo.generator import seed_demo
    from copilot.demo.service import demo_key_path, ensure_demo_key, queue_demo_drafts

    settings = Settings(data_dir=tmp_path / "data", model="fake/echo", index_on_ingest=False)
    store = Store.from_settings(settings)
    seed_demo(store, "demo", 7)
    services = Services(settings, store)
    assert queue_demo_drafts(services, "demo", limit=3) == 3
    assert queue_demo_drafts(services, "demo", limit=3) == 0  # a second `make run` adds nothing
    key = ensure_demo_key(store, settings, "demo")
    assert (
        ensure_demo_key(store, settings, "demo") == key and demo_key_path(settings, "demo").read_text().strip() == key
    )
    with TestClient(create_app(settings, store)) as client:
        queue = client.get("/v1/review/queue", headers={"X-API-Key": key}).json()
        assert queue["total"] == 3 and all(item["task"] == "reply_draft" for item in queue["items"])


def test_search_is_scoped_to_the_workspace_and_the_roles_record_kinds(world):
    from retrieval import open_index

    client, store, keys, tickets, app = world
    for slug in ("alpha", "beta"):
        with store.repo(slug) as repo:
            open_index(app.state.services.settings).rebuild(repo)
    hits = client.get("/v1/search", headers=auth(keys), params={"q": "charged twice for order"}).json()
    assert hits and hits[0]["label"] == "S1"
    assert {h["record_kind"] for h in hits} <= {"ticket", "message", "contact", "kb_article"}
    with store.repo("alpha") as repo:
        alpha_ids = {m.id for m in repo.all(repo.select(Message))} | {tickets["alpha"]}
    assert {h["record_id"] for h in hits} <= alpha_ids  # beta's identical ticket never shows up
    assert (
        client.get(
            "/v1/search", headers=auth(keys, role="marketing"), params={"q": "charged", "kind": "message"}
        ).status_code
        == 403
    )
    assert client.get("/v1/search", headers=auth(keys), params={"q": ""}).status_code == 422


def test_rep_summarises_a_call_and_approval_writes_the_next_step_to_the_deal(world):
    from copilot.store.models import Call, CallTurn, Deal, DealStage

    client, store, keys, _, _ = world
    with store.repo("alpha") as repo:
        deal = repo.add(Deal(name="Acme expansion", stage=DealStage.proposal, owner="Rita Rep"))
        repo.session.flush()
        call = repo.add(
            Call(
                title="Pricing call",
                deal_id=deal.id,
                participants=[{"name": "Rita Rep", "role": "rep"}, {"name": "Dana", "role": "customer"}],
            )
        )
        repo.session.flush()
        lines = [
            ("Rita Rep", "Thanks for joining, Dana. Today we go through the proposal."),
            ("Dana", "The price is too high for us this quarter, that is my main concern."),
            ("Rita Rep", "Understood. I will send a revised quote by Friday."),
            ("Dana", "Good. We agreed to bring our CFO to the next call."),
            ("Rita Rep", "Next step: a follow-up call with your CFO next week."),
        ]
        for position, (speaker, text) in enumerate(lines):
            repo.add(CallTurn(call_id=call.id, position=position, speaker=speaker, start_s=position * 30.0, text=text))
        deal_id, call_id = deal.id, call.id
    rep = auth(keys, role="rep")
    assert (
        client.post(f"/v1/calls/{call_id}/summary", headers=auth(keys)).status_code == 403
    )  # agents do not run sales tasks
    summary = client.post(f"/v1/calls/{call_id}/summary", headers=rep, json={"strategy": "extractive"})
    assert summary.status_code == 200, summary.text
    outcome = summary.json()
    assert outcome["status"] == "pending" and outcome["result"]["action_items"]
    queue = client.get("/v1/review/queue", headers=rep).json()
    assert [item["id"] for item in queue["items"]] == [outcome["ai_result_id"]]
    decided = client.post(
        f"/v1/review/{outcome['ai_result_id']}/decision",
        headers=rep,
        json={"decision": "approve", "version": outcome["version"]},
    )
    assert decided.status_code == 200, decided.text
    deal = client.get(f"/v1/records/deal/{deal_id}", headers=rep).json()
    assert deal["next_step"] and deal["next_step"] == outcome["result"]["next_step"]["text"]
    event = client.get("/v1/audit", headers=rep, params={"task": "call_summary"}).json()["items"][-1]
    assert event["after"]["applied"] == f"applied to deal {deal_id}"
    brief = client.post(f"/v1/deals/{deal_id}/brief", headers=rep)
    assert brief.status_code == 200 and brief.json()["result"]["facts"]["next_step"] == deal["next_step"]
    assert client.get(f"/v1/deals/{deal_id}/brief", headers=rep).json()["id"] == brief.json()["ai_result_id"]


def test_marketing_runs_a_theme_job_and_reads_the_report(world):
    from datetime import datetime, timedelta

    from copilot.store.models import NpsResponse

    client, store, keys, _, app = world
    comments = [
        "The app is slow to load every morning",
        "Support answered fast and kindly",
        "Pricing is too expensive for small teams",
        "Loading dashboards takes forever",
        "Great support team, very helpful",
        "Too expensive compared to others",
    ]
    with store.repo("alpha") as repo:
        now = datetime.now(UTC)
        for n in range(60):
            repo.add(
                NpsResponse(
                    external_id=f"N-{n}",
                    score=n % 11,
                    comment=comments[n % len(comments)] + f" ({n})",
                    submitted_at=now - timedelta(days=n % 20),
                )
            )
    marketing = auth(keys, role="marketing")
    assert client.get("/v1/tickets", headers=marketing).status_code == 403
    job = client.post("/v1/nps/themes", headers=marketing, json={"seed": 1, "filters": {}})
    assert job.status_code == 202, job.text
    app.state.services.jobs.wait(job.json()["id"], 300)
    done = client.get(f"/v1/jobs/{job.json()['id']}", headers=marketing).json()
    assert done["status"] == "succeeded", done
    report = client.get(f"/v1/nps/themes/{done['result']['run_id']}", headers=marketing).json()
    assert report["commented"] == 60 and report["themes"] and all(t["quotes"] for t in report["themes"])
    assert client.get("/v1/nps/themes", headers=marketing).json()[0]["id"] == done["result"]["run_id"]
    assert client.post("/v1/nps/themes", headers=auth(keys), json={}).status_code == 403
