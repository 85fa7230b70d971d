"""Every registered task through one generic caller: ``POST /v1/tasks/<name>`` with the task's own params model.

The routes are built from the task registry when the app is created, so a new task gets its documented route
(request body = its params model, response = its typed outcome) with no edit here.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from api.deps import Caller, any_caller
from api.errors import ERROR_RESPONSES
from api.streaming import stream_task
from copilot.tasks import registry
from copilot.tasks.registry import Task

STREAM_RESPONSE = {
    200: {"content": {"text/event-stream": {}}, "description": "With `stream=true`: `token` events, then one `result`."}
}


class TaskInfo(BaseModel):
    name: str
    summary: str
    subject: str
    strategies: list[str]
    defaults: dict[str, str]
    needs_approval: bool
    delivers: bool
    prompt: str | None


def _route(task: Task) -> Any:
    params_model = task.params

    def run(
        params: params_model,
        caller: Annotated[Caller, Depends(any_caller)],  # type: ignore[valid-type]
        stream: Annotated[bool, Query(description="Stream tokens as Server-Sent Events.")] = False,
    ) -> Any:
        def work(on_token=None):  # noqa: ANN001, ANN202
            return caller.run_task(task.name, params, on_token)

        caller.principal.require(task.permission)
        return stream_task(work) if stream else work()

    run.__annotations__["params"] = params_model  # a real class: the string form would not resolve here
    run.__name__ = f"run_{task.name}"
    run.__doc__ = task.summary
    return run


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1/tasks", tags=["tasks"], responses=ERROR_RESPONSES)

    @router.get("", response_model=list[TaskInfo])
    def list_tasks(caller: Annotated[Caller, Depends(any_caller)]) -> list[TaskInfo]:
        """The tasks this key may run, with their strategies and what "auto" means per model profile."""
        return [
            TaskInfo(
                name=t.name,
                summary=t.summary,
                subject=t.subject,
                strategies=list(t.strategies),
                defaults={p.value: s for p, s in t.defaults.items()},
                needs_approval=t.needs_approval,
                delivers=t.delivers,
                prompt=t.prompt,
            )
            for t in registry.tasks().values()
            if caller.principal.can(t.permission)
        ]

    for task in registry.tasks().values():
        router.add_api_route(
            f"/{task.name}",
            _route(task),
            methods=["POST"],
            summary=task.summary,
            response_model=task.outcome_model,
            responses=STREAM_RESPONSE,
        )
    return router
