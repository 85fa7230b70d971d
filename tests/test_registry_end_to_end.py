"""A task declared here, through the registry alone, is served by the generic API route and reviewed by its role."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, Field

from copilot.auth import Permission
from copilot.profiles import Profile
from copilot.tasks import registry
from copilot.tasks.base import Provenance, TaskOutcome
from copilot.tasks.registry import TaskParams

TASK = "echo_upper"


class EchoParams(TaskParams):
    strategy: Literal["auto", "upper"] = "auto"
    text: str = Field(min_length=1)


class Echo(BaseModel):
    text: str


def echo_upper(context, params: EchoParams) -> TaskOutcome[Echo]:
    """Echo a text in capitals (declared in a test module only)."""
    return TaskOutcome[Echo](task=TASK, result=Echo(text=params.text.upper()), provenance=Provenance(task=TASK))


@pytest.fixture
def api(request):
    """The ``world`` app, created after the task is registered (the app builds its task routes when created)."""
    registry.task(
        TASK,
        subject="text",
        permission=Permission.run_sales,
        review=Permission.review_sales,
        defaults={Profile.small: "upper", Profile.capable: "upper"},
    )(echo_upper)
    try:
        client, _store, keys, _tickets, _app = request.getfixturevalue("world")
        yield client, lambda role: {"Authorization": f"Bearer {keys[('alpha', role)]}"}
    finally:
        registry.unregister(TASK)


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
