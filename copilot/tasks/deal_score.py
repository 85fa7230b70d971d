"""Win probability for one open deal from the workspace's past outcomes, explained by its top signals.

A Bayesian logistic model (``copilot.insights.scoring``), no generative call; refused with the reason when the deal is
closed or the workspace has too few closed deals to learn from.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from copilot.auth import Permission
from copilot.insights.scoring import DealScore, Refusal, score_deals
from copilot.profiles import Profile
from copilot.store.models import Deal, DealStage
from copilot.tasks.base import Provenance, TaskOutcome
from copilot.tasks.context import TaskContext
from copilot.tasks.registry import DEAL_UPDATED, RecordRef, TaskParams, task

TASK = "deal_score"
CLOSED = (DealStage.closed_won, DealStage.closed_lost)


class DealScoreParams(TaskParams):
    deal_id: RecordRef
    strategy: Literal["auto", "bayes"] = "auto"
    as_of: datetime | None = Field(default=None, description="Score the deal as of this time (default: now).")


class DealScoreResult(BaseModel):
    deal_id: int
    trained_on: int = 0
    base_rate: float | None = None
    score: DealScore | None = None
    refusal: Refusal | None = None


@task(
    TASK,
    subject="deal",
    subject_field="deal_id",
    permission=Permission.run_sales,
    review=Permission.review_sales,
    needs_approval=False,
    defaults={Profile.small: "bayes", Profile.capable: "bayes"},
    stale_on=(DEAL_UPDATED,),
    carriers=("call_turn",),
)
def deal_score(context: TaskContext, params: DealScoreParams) -> TaskOutcome[DealScoreResult]:
    """Win probability of an open deal from the workspace's closed deals, with its top signals."""
    deal = context.repo.resolve(Deal, params.deal_id)
    result = DealScoreResult(deal_id=deal.id)
    if deal.stage in CLOSED:
        result.refusal = Refusal(
            reason=f"deal {deal.external_id or deal.id} is {deal.stage.value}: only open deals are scored",
            outcomes=0,
            positives=0,
            negatives=0,
        )
    else:
        board = score_deals(context.repo, params.as_of, deal_ids=[deal.id])
        result.trained_on, result.base_rate, result.refusal = board.trained_on, board.base_rate, board.refusal
        result.score = board.deals[0] if board.deals else None
    provenance = Provenance(task=TASK, model="bayesian logistic", input_ids=[f"deal:{deal.id}"])
    return TaskOutcome[DealScoreResult](task=TASK, result=result, provenance=provenance, subject_id=deal.id)
