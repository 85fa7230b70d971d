"""Running a registered task: validate its params, pick its strategy, respect the budget, save its result."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from copilot.errors import BudgetExceeded
from copilot.guards import GuardVerdict, Severity
from copilot.store import Repo
from copilot.store.models import AiStatus
from copilot.tasks import registry
from copilot.tasks.base import TaskOutcome, record_failure, save_outcome
from copilot.tasks.registry import MODEL_STRATEGY, Task, TaskParams
from copilot.usage import budget_spent

if TYPE_CHECKING:
    from copilot.services import Services
    from copilot.tasks.context import Progress


def run_task(
    services: Services,
    repo: Repo,
    name: str | Task,
    params: TaskParams | Mapping[str, Any],
    *,
    on_token: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> TaskOutcome[Any]:
    """Run one task in the repo's transaction and save its result as an AiResult (pending when it needs approval).

    "auto" becomes the task's default for the model's profile. When the workspace's daily budget is spent, the
    model strategy gives way to the non-LLM one with a ``budget`` verdict, or, when the caller asked for the model
    explicitly, BudgetExceeded is raised (the API answers 429).
    """
    task = registry.get(name) if isinstance(name, str) else name
    parsed = task.parse(params)
    context = services.context(repo, task=task.name, on_token=on_token, progress=progress)
    strategy = context.strategy(task.name, parsed.strategy)
    budget_note = None
    if strategy == MODEL_STRATEGY and (spent := budget_spent(repo)) is not None:
        if parsed.strategy == MODEL_STRATEGY:
            raise BudgetExceeded(spent)
        strategy, budget_note = task.fallback_strategy, spent
    outcome = task.run(context, parsed.model_copy(update={"strategy": strategy}))
    if budget_note is not None:
        verdict = GuardVerdict(name="budget", passed=False, severity=Severity.flag, details=[budget_note])
        outcome.verdicts = [verdict, *outcome.verdicts]
        outcome.used_fallback, outcome.fallback_reason = True, outcome.fallback_reason or budget_note
    if outcome.status is None:
        outcome.status = AiStatus.pending if task.needs_approval else AiStatus.completed
    if outcome.ai_result_id is None:
        save_outcome(repo, outcome, subject_kind=outcome.subject_kind or task.subject, subject_id=outcome.subject_id)
    return outcome


def record_task_failure(repo: Repo, name: str | Task, params: TaskParams | Mapping[str, Any], error: str) -> None:
    """A ``failed`` AiResult for a task whose model failed outright (the caller then re-raises)."""
    task = registry.get(name) if isinstance(name, str) else name
    reference = task.subject_ref(task.parse(params)) if task.subject_field else None
    subject_id = int(reference) if isinstance(reference, int) or str(reference or "").isdigit() else None
    record_failure(repo, task=task.name, subject_kind=task.subject, subject_id=subject_id, error=error)
