"""The task registry: every task declares itself once, next to its code, and everything else reads it.

    @task("call_summary", subject="call", permission=Permission.run_sales, review=Permission.review_sales,
          defaults={Profile.small: "extractive", Profile.capable: "model"}, prompt="call_summary",
          on_approve=apply_to_deal, carriers=("call_turn",))
    def summarize(context: TaskContext, params: CallSummaryParams) -> TaskOutcome[CallSummary]: ...

What a declaration drives: who may run a task and review its results (the role matrix, the review queue), what its
strategies are (the ``strategy`` Literal of its params model, so API, CLI and task agree), what "auto" means for
each model profile, which record events make its results stale, what an approval writes back, whether approved
results are delivered to the customer, the generic API route ``POST /v1/tasks/<name>``, ``copilot task run``,
the eval runner's default adapter and the prompt-injection suite's default spec.

Tasks are found by importing every module of the ``copilot.tasks`` package, plus entry points in the group
``copilot.tasks`` (a plugin package declares ``[project.entry-points."copilot.tasks"] name = "module"``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.metadata
import pkgutil
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field

from copilot.auth import Permission
from copilot.errors import InvalidInput
from copilot.profiles import Profile

if TYPE_CHECKING:
    from copilot.store import Repo
    from copilot.tasks.base import TaskOutcome
    from copilot.tasks.context import TaskContext

MODEL_STRATEGY = "model"  # the strategy that calls the language model; every other one is a non-LLM path
CUSTOMER_MESSAGE = "customer_message"  # record event: a customer wrote on a ticket
DEAL_UPDATED = "deal_updated"  # record event: a deal's facts changed (e.g. an approved call summary wrote to it)

RecordRef = Annotated[
    Annotated[int, Field(ge=1, le=2**63 - 1)] | Annotated[str, Field(min_length=1, max_length=128)],
    Field(description="The record's id, or its external id (e.g. T-1179)."),
]


class TaskParams(BaseModel):
    """What every task request carries. Subclasses narrow ``strategy`` to a Literal of their strategies."""

    model_config = ConfigDict(extra="forbid")

    strategy: str = "auto"


@dataclass(frozen=True)
class Task:
    name: str
    run: Callable[[TaskContext, Any], TaskOutcome[Any]]
    params: type[TaskParams]
    subject: str  # subject kind of its results: "ticket", "call", "deal", "text", "nps_run", ...
    permission: Permission  # who may run it
    review: Permission  # who may read and decide its results
    defaults: Mapping[Profile, str]  # what "auto" means for each model profile
    summary: str = ""
    needs_approval: bool = True  # saved ``pending`` for a human; False: informational, saved ``completed``
    prompt: str | None = None  # its template in prompts/, when it calls a model
    stale_on: tuple[str, ...] = ()  # record events after which its pending/completed results are stale
    on_approve: Callable[[Repo, int], Any] | None = None  # writes an approved result back to the records
    delivers: bool = False  # approved results go to the customer (webhook delivery, export)
    carriers: tuple[str, ...] = ()  # record kinds whose text it reads (the prompt-injection suite plants there)
    subject_field: str | None = None  # the params field naming the subject record
    check_edit: Callable[[Repo, Any, str], list[Any]] | None = None  # its blocking guards on a reviewer's edit
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def strategies(self) -> tuple[str, ...]:
        """Its strategies besides "auto", from the params model's ``strategy`` Literal."""
        annotation = self.params.model_fields["strategy"].annotation
        names = get_args(annotation) if get_origin(annotation) is Literal else ()
        return tuple(name for name in names if name != "auto")

    @property
    def uses_model(self) -> bool:
        return MODEL_STRATEGY in self.strategies

    @property
    def fallback_strategy(self) -> str:
        """The non-LLM path: what runs when the model is unavailable or the budget is spent."""
        return next((s for s in self.strategies if s != MODEL_STRATEGY), MODEL_STRATEGY)

    def resolve_strategy(self, asked: str, profile: Profile, configured: str | None = None) -> str:
        """``asked``; for "auto", the strategy the settings choose for this task (``configured``), else the
        profile's default."""
        if asked != "auto":
            return self._known(asked, "strategy")
        if configured is not None:
            return self._known(configured, "COPILOT_TASK_STRATEGIES")
        return self.defaults.get(profile, self.fallback_strategy)

    def _known(self, strategy: str, where: str) -> str:
        if strategy not in self.strategies:
            raise InvalidInput(
                f"{where}: {self.name} has no strategy '{strategy}' (one of: auto, {', '.join(self.strategies)})"
            )
        return strategy

    def parse(self, params: TaskParams | Mapping[str, Any]) -> TaskParams:
        if isinstance(params, self.params):
            return params
        from pydantic import ValidationError

        try:
            return self.params.model_validate(dict(params))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "params"
            raise InvalidInput(f"{where}: {first['msg']}") from None

    @property
    def outcome_model(self) -> Any:
        """The run function's return type (``TaskOutcome[Result]``), for typed API responses."""
        import typing

        try:
            return typing.get_type_hints(self.run).get("return")
        except (NameError, TypeError):
            return None

    def subject_ref(self, params: TaskParams) -> Any:
        return getattr(params, self.subject_field) if self.subject_field else None


_TASKS: dict[str, Task] = {}
_LOADED = False
_LOAD_LOCK = threading.RLock()


def task(name: str, **declaration: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare the decorated ``run(context, params)`` function as the task ``name`` (see the module docstring)."""

    def register(run: Callable[..., Any]) -> Callable[..., Any]:
        params = declaration.pop("params", None) or run.__annotations__.get("params")
        if isinstance(params, str):
            params = run.__globals__[params]
        summary = declaration.pop("summary", None) or (run.__doc__ or "").strip().split("\n")[0]
        entry = Task(name=name, run=run, params=params, summary=summary, **declaration)
        if name in _TASKS and _TASKS[name].run is not run:
            raise ValueError(f"task '{name}' is declared twice ({_TASKS[name].run.__module__} and {run.__module__})")
        _TASKS[name] = entry
        return run

    return register


def unregister(name: str) -> None:
    """Drop a task (tests that declare their own)."""
    _TASKS.pop(name, None)


@contextlib.contextmanager
def overridden(name: str, **changes: Any) -> Iterator[Task]:
    """The task with some of its declaration replaced while the block runs (e.g. ``run=`` a failing function)."""
    original = get(name)
    _TASKS[name] = dataclasses.replace(original, **changes)
    try:
        yield _TASKS[name]
    finally:
        _TASKS[name] = original


def load() -> None:
    """Import every task module once (built-in ones, then plugins' entry points)."""
    global _LOADED
    with _LOAD_LOCK:
        if _LOADED:
            return
        import copilot.tasks as package

        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"copilot.tasks.{module.name}")
        for entry in importlib.metadata.entry_points(group="copilot.tasks"):
            entry.load()
        _LOADED = True


def tasks() -> dict[str, Task]:
    load()
    return dict(_TASKS)


def get(name: str) -> Task:
    registered = tasks()
    if name not in registered:
        raise InvalidInput(f"task: unknown task '{name}' (one of: {', '.join(sorted(registered))})")
    return registered[name]


def reviewed_by(permission_check: Callable[[Permission], bool]) -> list[str]:
    """The tasks whose results a caller with these permissions may read and decide."""
    return [name for name, entry in tasks().items() if permission_check(entry.review)]


def stale_on(event: str) -> tuple[str, ...]:
    """The tasks whose results a record event makes stale (e.g. "customer_message")."""
    return tuple(name for name, entry in tasks().items() if event in entry.stale_on)


def delivered() -> tuple[str, ...]:
    return tuple(name for name, entry in tasks().items() if entry.delivers)
