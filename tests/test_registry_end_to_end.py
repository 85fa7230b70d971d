"""A task declared through the registry alone (tests.fakes.upper_task) is served by the generic API route and reviewed
by its role."""

from __future__ import annotations

import pytest

from copilot.auth import Permission
from tests.fakes import upper_task

TASK = "echo_upper"


@pytest.fixture
def api(request):
    """The ``world`` app, created after the task is registered (the app builds its task routes when created)."""
    with upper_task(TASK, Permission.run_sales, Permission.review_sales):
        client, _store, keys, _tickets, _app = request.getfixturevalue("world")
        yield client, lambda role: {"Authorization": f"Bearer {keys[('alpha', role)]}"}


def queued_ids(client, headers, **query) -> list[int]:
    answer = client.get("/v1/review/queue", headers=headers, params=query)
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()["items"]]


def test_a_registered_task_runs_through_the_generic_route_and_waits_for_its_reviewers(api):
    client, headers = api
    listed = client.get("/v1/tasks", headers=headers("rep")).json()
    assert next(t for t in listed if t["name"] == TASK)["strategies"] == ["upper"]

    ran = client.post(f"/v1/tasks/{TASK}", headers=headers("rep"), json={"text": "hello there"})
    assert ran.status_code == 200, ran.text
    outcome = ran.json()
    assert outcome["result"] == {"text": "HELLO THERE"} and outcome["status"] == "pending"

    result_id = outcome["ai_result_id"]
    for role in ("rep", "admin"):  # both hold review_sales
        assert result_id in queued_ids(client, headers(role)), role
        assert queued_ids(client, headers(role), task=TASK) == [result_id], role
    for role in ("agent", "marketing"):  # reviewers of other tasks, without review_sales
        assert result_id not in queued_ids(client, headers(role)), role
        assert queued_ids(client, headers(role), task=TASK) == [], role


def test_the_generic_route_checks_the_declared_permission_and_params(api):
    client, headers = api
    denied = client.post(f"/v1/tasks/{TASK}", headers=headers("agent"), json={"text": "hello"})
    assert denied.status_code == 403, denied.text
    unknown = client.post(f"/v1/tasks/{TASK}", headers=headers("rep"), json={"text": "hi", "strategy": "model"})
    assert unknown.status_code == 422, unknown.text
