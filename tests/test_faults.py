"""Fault injection: a failing model, a failing database, a broken vector index. Each gives a clear error or the
non-LLM fallback, bounded retries, and never a half-written AI result or review decision."""

from __future__ import annotations

import json

import litellm
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from api.app import create_app
from copilot.services import Services
from copilot.store.models import AiResult, AiStatus, AuditEvent
from tests.test_api import auth, pending_rewrite

MAX_RETRIES = 1
FAULTS = {
    "rate_limited": lambda: litellm.RateLimitError("429 slow down", llm_provider="fake", model="scripted"),
    "server_error": lambda: litellm.InternalServerError("500 boom", llm_provider="fake", model="scripted"),
    "timeout": lambda: litellm.Timeout("timed out", llm_provider="fake", model="scripted"),
    "truncated_json": lambda: '{"text": "Dear Dana, we have',
    "invalid_json": lambda: "Sure! Here is your answer.",
    "empty": lambda: "",
}
CALLS = {  # task -> (path, body)
    "tone_rewrite": (
        "/v1/rewrite",
        {"text": "Your refund of $20 was sent on 3 May.\n\nBest,\nAnna", "tone": "formal", "strategy": "model"},
    ),
    "ticket_summary": ("/v1/tickets/{ticket}/summary", {"strategy": "model"}),
    "reply_draft": ("/v1/tickets/{ticket}/draft", {"strategy": "model"}),
}


def ai_results(store) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(AiResult))


@pytest.fixture
def scripted(world, fake_script):
    client, store, keys, tickets, app = world
    settings = app.state.services.settings.model_copy(update={"model": "fake/scripted", "max_retries": MAX_RETRIES})
    failing = create_app(services=Services(settings, store, fake=fake_script, sleep=lambda _seconds: None))
    with TestClient(failing) as scripted_client:
        yield scripted_client, store, keys, tickets, fake_script


@pytest.mark.parametrize("task", sorted(CALLS))
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_model_faults_give_the_fallback_with_bounded_retries_and_one_result(scripted, fault, task):
    client, store, keys, tickets, script = scripted
    retryable = fault in ("rate_limited", "server_error", "timeout")
    script.push(*(FAULTS[fault]() for _ in range(MAX_RETRIES + 1 if retryable else 1)))
    path, body = CALLS[task]
    before = ai_results(store)
    response = client.post(path.format(ticket=tickets["alpha"]), headers=auth(keys), json=body)
    assert response.status_code == 200, response.text
    outcome = response.json()
    assert outcome["used_fallback"] and outcome["fallback_reason"], outcome
    assert len(script.calls) == (
        MAX_RETRIES + 1 if retryable else 1
    )  # bounded: no retry storm, no repair loop on a grammar model
    assert ai_results(store) == before + 1
    with store.repo("alpha") as repo:
        row = repo.get(AiResult, outcome["ai_result_id"])
        assert row.content["used_fallback"] and row.status is not AiStatus.failed


def test_database_failing_mid_decision_leaves_the_draft_undecided(world, monkeypatch):
    client, store, keys, _, _ = world
    result, version = pending_rewrite(client, keys)

    def locked(*args, **kwargs):
        raise OperationalError("INSERT INTO audit_events", {}, Exception("database is locked"))

    monkeypatch.setattr("copilot.review.record_event", locked)  # after the status UPDATE, before the commit
    response = client.post(
        f"/v1/review/{result}/decision", headers=auth(keys), json={"decision": "approve", "version": version}
    )
    assert response.status_code == 503 and response.json()["error"]["type"] == "database_unavailable"
    with store.repo("alpha") as repo:
        row = repo.get(AiResult, result)
        assert (row.status, row.version, row.final_text) == (AiStatus.pending, version, None)
        assert repo.session.scalar(select(func.count()).select_from(AuditEvent)) == 0
    monkeypatch.undo()
    retry = client.post(
        f"/v1/review/{result}/decision", headers=auth(keys), json={"decision": "approve", "version": version}
    )
    assert retry.status_code == 200  # the reviewer simply tries again


def test_database_failing_while_saving_a_draft_leaves_no_row(world, monkeypatch):
    client, store, keys, tickets, _ = world
    from copilot.tasks import runner

    original = runner.save_outcome  # the task runner saves every task's outcome

    def save_then_fail(repo, outcome, **kwargs):
        original(repo, outcome, **kwargs)  # the row is flushed...
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))  # ...and the database goes away

    monkeypatch.setattr(runner, "save_outcome", save_then_fail)
    before = ai_results(store)
    response = client.post(f"/v1/tickets/{tickets['alpha']}/draft", headers=auth(keys), json={"strategy": "retrieval"})
    assert response.status_code == 503 and "try again" in response.json()["error"]["message"]
    assert ai_results(store) == before


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_broken_vector_index_degrades_drafts_to_full_text_search(world, damage):
    client, store, keys, tickets, app = world
    settings = app.state.services.settings
    with store.repo("alpha") as repo:
        app.state.services.index.rebuild(repo)
    chroma = settings.resolved_chroma_path
    if damage == "missing":
        import shutil

        shutil.rmtree(chroma)
        chroma.write_text("not a folder")  # chroma cannot even create it again
    else:
        (chroma / "chroma.sqlite3").write_bytes(b"garbage" * 1000)
    restarted = Services(settings, store, fake=app.state.services.gateway.fake, sleep=lambda _seconds: None)
    with TestClient(create_app(services=restarted)) as fresh:
        response = fresh.post(
            f"/v1/tickets/{tickets['alpha']}/draft", headers=auth(keys), json={"strategy": "retrieval"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "pending"
        with fresh.stream("POST", f"/v1/tickets/{tickets['alpha']}/summary", headers=auth(keys)) as summary:
            assert summary.status_code == 200 and json.loads(summary.read())["result"]["intent"]
