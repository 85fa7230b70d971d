"""Account health and churn risk for one account: the score, its reasons with evidence, and how it moved.

Deterministic points per signal (``copilot.insights.health``), read through the sentiment classifier; no generative
call.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from copilot.auth import Permission
from copilot.insights.health import AccountHealth, health_report
from copilot.profiles import Profile
from copilot.store.models import Account
from copilot.tasks.base import Provenance, TaskOutcome
from copilot.tasks.context import TaskContext
from copilot.tasks.registry import CUSTOMER_MESSAGE, DEAL_UPDATED, RecordRef, TaskParams, task

TASK = "account_health"


class HealthParams(TaskParams):
    account_id: RecordRef
    strategy: Literal["auto", "rules"] = "auto"
    as_of: datetime | None = Field(default=None, description="Score the account as of this time (default: now).")


@task(
    TASK,
    subject="account",
    subject_field="account_id",
    permission=Permission.run_sales,
    review=Permission.review_sales,
    needs_approval=False,
    defaults={Profile.small: "rules", Profile.capable: "rules"},
    stale_on=(CUSTOMER_MESSAGE, DEAL_UPDATED),
    carriers=("message", "nps_comment"),
)
def account_health(context: TaskContext, params: HealthParams) -> TaskOutcome[AccountHealth]:
    """Score an account's health and churn risk, with the reasons and their evidence records."""
    account = context.repo.resolve(Account, params.account_id)
    (health,) = health_report(context.repo, context.sentiment, params.as_of, account_ids=[account.id])
    evidence = [i for r in health.reasons for i in r.evidence_ids]
    provenance = Provenance(task=TASK, model="health rules", input_ids=[f"account:{account.id}", *evidence])
    return TaskOutcome[AccountHealth](task=TASK, result=health, provenance=provenance, subject_id=account.id)
