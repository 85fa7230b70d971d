"""Precompute on arrival: when a customer writes, refresh the ticket's summary and draft a reply in the background,
so an agent who opens the ticket finds both ready even when the model takes 15 s.

On by default when the reply-draft model is ``capable`` (the small model's paths are fast anyway); a workspace
turns it on or off with its ``precompute`` setting. One queued job per ticket at a time: more messages on the same
ticket while it waits do not queue more. Results produced from a thread that got a newer customer message while
the job ran are marked stale at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from copilot.auth import Permission
from copilot.jobs import JobContext, job_kind, run_fenced
from copilot.store import Repo
from copilot.store.models import AiResult, AuthorKind, Job, Message
from copilot.tasks.base import mark_stale_where
from copilot.tasks.registry import CUSTOMER_MESSAGE, stale_on

if TYPE_CHECKING:
    from copilot.services import Services

SETTING = "precompute"
PRECOMPUTED = ("ticket_summary", "reply_draft")


def precompute_enabled(services: Services, repo: Repo) -> bool:
    configured = (repo.workspace.settings or {}).get(SETTING)
    if configured is not None:
        return bool(configured)
    from copilot.profiles import Profile

    return services.gateway.for_task("reply_draft").profile is Profile.capable


def set_precompute(repo: Repo, enabled: bool | None) -> None:
    settings = {k: v for k, v in (repo.workspace.settings or {}).items() if k != SETTING}
    if enabled is not None:
        settings[SETTING] = enabled
    repo.workspace.settings = settings


def queue_precompute(services: Services, repo: Repo, ticket_ids: list[int]) -> list[Job]:
    """Queue a precompute job per ticket (deduplicated while one waits); none when the workspace has it off."""
    if not ticket_ids or not precompute_enabled(services, repo):
        return []
    return [
        services.jobs.submit(
            repo, "precompute_ticket", {"ticket_id": ticket_id}, dedupe_key=f"precompute:ticket:{ticket_id}"
        )
        for ticket_id in ticket_ids
    ]


def latest_customer_message(repo: Repo, ticket_id: int) -> int | None:
    query = select(func.max(Message.id)).where(
        Message.workspace_id == repo.workspace_id,
        Message.ticket_id == ticket_id,
        Message.author_kind == AuthorKind.customer,
    )
    return repo.session.scalar(query)


def _newest_input(row: AiResult) -> int:
    ids = [int(ref.split(":", 1)[1]) for ref in row.input_ids or [] if str(ref).startswith("message:")]
    return max(ids, default=0)


@job_kind("precompute_ticket", Permission.run_support)
def precompute_ticket(job: JobContext) -> dict[str, Any]:
    """The ticket's summary and a reply draft, made from the thread as it is now."""
    ticket_id = int(job.params["ticket_id"])
    results: dict[str, Any] = {}
    already = job.done_before()  # a job resumed on another worker does not save a result twice
    for n, task in enumerate(PRECOMPUTED, 1):
        if n > already:
            results[task] = run_fenced(job, task, {"ticket_id": ticket_id}, done=n).ai_result_id
    with job.services.store.repo(job.workspace) as repo:
        staling = [rid for name, rid in results.items() if name in stale_on(CUSTOMER_MESSAGE)]
        _mark_overtaken_stale(repo, ticket_id, staling)
    return {"ticket_id": ticket_id, "ai_result_ids": results}


def _mark_overtaken_stale(repo: Repo, ticket_id: int, result_ids: list[int | None]) -> None:
    """Results made from a thread the customer wrote to again while the job ran become stale."""
    latest = latest_customer_message(repo, ticket_id) or 0
    rows = [repo.get(AiResult, rid) for rid in result_ids if rid]
    overtaken = [row.id for row in rows if row is not None and _newest_input(row) < latest]
    if overtaken:
        mark_stale_where(repo, AiResult.id.in_(overtaken))
