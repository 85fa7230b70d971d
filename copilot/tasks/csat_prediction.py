"""CSAT prediction for one solved ticket: the probability of a good rating, with the signals behind it.

A calibrated model of the workspace's rated tickets (``copilot.insights.csat``), no generative call; refused (with the
reason) when the ticket is not solved or the workspace has too few CSAT answers to learn from.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from copilot.auth import Permission
from copilot.insights.csat import SOLVED, CsatPrediction, predict_csat
from copilot.insights.scoring import Refusal
from copilot.profiles import Profile
from copilot.store.models import Ticket
from copilot.tasks.base import Provenance, TaskOutcome
from copilot.tasks.context import TaskContext
from copilot.tasks.registry import CUSTOMER_MESSAGE, RecordRef, TaskParams, task

TASK = "csat_prediction"


class CsatParams(TaskParams):
    ticket_id: RecordRef
    strategy: Literal["auto", "calibrated"] = "auto"


class CsatResult(BaseModel):
    ticket_id: int
    csat_score: int | None = None  # the survey answer, when there is one
    rated_tickets: int = 0
    good_rate: float | None = None
    prediction: CsatPrediction | None = None
    refusal: Refusal | None = None


@task(
    TASK,
    subject="ticket",
    subject_field="ticket_id",
    permission=Permission.run_support,
    review=Permission.review_support,
    needs_approval=False,
    defaults={Profile.small: "calibrated", Profile.capable: "calibrated"},
    stale_on=(CUSTOMER_MESSAGE,),
    carriers=("message",),
)
def csat_prediction(context: TaskContext, params: CsatParams) -> TaskOutcome[CsatResult]:
    """Predict the probability of a good CSAT rating for a solved ticket from its conversation."""
    ticket = context.repo.resolve(Ticket, params.ticket_id)
    result = CsatResult(ticket_id=ticket.id, csat_score=ticket.csat_score)
    if ticket.status not in SOLVED:
        result.refusal = Refusal(
            reason=f"ticket {ticket.external_id or ticket.id} is {ticket.status.value}: CSAT is predicted for solved "
            "tickets",
            outcomes=0,
            positives=0,
            negatives=0,
        )
    else:
        board = predict_csat(context.repo, context.sentiment, ticket_ids=[ticket.id], unrated_only=False)
        result.rated_tickets, result.good_rate, result.refusal = board.rated, board.good_rate, board.refusal
        result.prediction = board.predictions[0] if board.predictions else None
    provenance = Provenance(task=TASK, model="csat model", input_ids=[f"ticket:{ticket.id}"])
    return TaskOutcome[CsatResult](task=TASK, result=result, provenance=provenance, subject_id=ticket.id)
