"""Insights: KPIs per stage, reply-QA scorecards, CSAT predictions, account health, deal and lead scores, forecast.

Who sees what: support KPIs and CSAT predictions need ``read_tickets`` (agents), sales KPIs, deal and lead scores,
the forecast and account health need ``read_sales`` (reps), the customer KPIs either of them or ``read_nps``; reply-QA
results and the per-agent and per-topic scorecards need ``read_scorecards`` (leads and admins).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from api.deps import Caller, allow, any_caller
from api.errors import ERROR_RESPONSES
from api.routers.jobs import JobOut, submit_job
from api.schemas import RecordRef, resolve_ref
from copilot.auth import Permission, Principal
from copilot.errors import PermissionDenied
from copilot.insights.bayes import Calibration
from copilot.insights.common import Filters, Period
from copilot.insights.csat import CsatBoard, CsatEvaluation, evaluate_csat, predict_csat
from copilot.insights.health import AccountHealth, going_sour, health_report
from copilot.insights.kpis import STAGES, KpiReport, Stage, compute_kpis
from copilot.insights.qa_review import Agreement, Scorecards, agreement, replied_tickets, scorecards
from copilot.insights.quality import Scorecard, scorecard_of
from copilot.insights.scoring import (
    Forecast,
    ScoreBoard,
    deal_calibration,
    forecast,
    lead_calibration,
    score_deals,
    score_leads,
)
from copilot.store.models import Account, Channel, Ticket
from copilot.tasks.base import TaskOutcome
from copilot.tasks.reply_qa import ReplyQaResult
from copilot.tasks.reply_qa import Strategy as QaStrategy

router = APIRouter(prefix="/v1/insights", tags=["insights"], responses=ERROR_RESPONSES)
Support = Annotated[Caller, Depends(allow(Permission.read_tickets))]
Sales = Annotated[Caller, Depends(allow(Permission.read_sales))]
Lead = Annotated[Caller, Depends(allow(Permission.read_scorecards))]
Anyone = Annotated[Caller, Depends(any_caller)]
STAGE_PERMISSIONS: dict[str, tuple[Permission, ...]] = {
    "support": (Permission.read_tickets,),
    "sales": (Permission.read_sales,),
    "customers": (Permission.read_sales, Permission.read_tickets, Permission.read_nps),
}


class PeriodQuery(BaseModel):
    since: date | datetime | None = None
    until: date | datetime | None = None
    days: float | None = Field(default=None, gt=0, le=3660)

    def period(self) -> Period:
        return Period.of(self.since, self.until, self.days)


def stages_for(principal: Principal, asked: list[Stage] | None) -> list[Stage]:
    """The stages the caller asked for (default: all) that its role may read; 403 when none is left."""
    wanted = asked or list(STAGES)
    allowed = [s for s in wanted if any(principal.can(p) for p in STAGE_PERMISSIONS[s])]
    if not allowed:
        raise PermissionDenied(f"role '{principal.role.value}' may not read the KPIs of {', '.join(wanted)}")
    return allowed


@router.get("/kpis", response_model=KpiReport)
def kpis(
    caller: Anyone,
    period: Annotated[PeriodQuery, Depends()],
    stage: Annotated[list[Stage] | None, Query(description="Only these stages (repeatable).")] = None,
    team: str | None = None,
    channel: Channel | None = None,
    segment: str | None = None,
    source: str | None = None,
) -> KpiReport:
    """KPIs per stage for the period (default: the last 90 days), with the previous period beside each."""
    stages = stages_for(caller.principal, stage)
    filters = Filters(team=team, channel=channel, segment=segment, source=source)
    with caller.repo() as repo:
        return compute_kpis(repo, period.period(), filters, stages)


# -- reply QA -------------------------------------------------------------------------------------
class QaRequest(BaseModel):
    strategy: QaStrategy = "auto"
    message_id: int | None = None


class QaBatchRequest(BaseModel):
    strategy: QaStrategy = "auto"
    limit: int = Field(default=2000, ge=1, le=2000, description="At most this many tickets (newest first).")


@router.post("/reply-qa/tickets/{ticket_ref}", response_model=TaskOutcome[ReplyQaResult])
def reply_qa(ticket_ref: RecordRef, caller: Lead, request: QaRequest | None = None) -> TaskOutcome[ReplyQaResult]:
    """Score a ticket's agent replies against the workspace scorecard (leads and admins)."""
    request = request or QaRequest()
    with caller.repo() as repo:
        ticket_id = resolve_ref(repo, Ticket, ticket_ref).id
    params = {"ticket_id": ticket_id, "strategy": request.strategy, "message_id": request.message_id}
    return caller.run_task("reply_qa", params)


@router.post("/reply-qa/run", response_model=JobOut, status_code=202)
def reply_qa_all(caller: Lead, response: Response, request: QaBatchRequest | None = None) -> JobOut:
    """Score every ticket with agent replies, as a background job; poll ``/v1/jobs/{id}``."""
    request = request or QaBatchRequest()
    with caller.repo() as repo:
        ids = replied_tickets(repo, request.limit)
    items = [{"ticket_id": i, "strategy": request.strategy} for i in ids]
    return submit_job(caller, response, "task_batch", {"task": "reply_qa", "items": items})


@router.get("/scorecards/{by}", response_model=Scorecards)
def get_scorecards(
    by: Literal["agent", "topic"], caller: Lead, period: Annotated[PeriodQuery, Depends()]
) -> Scorecards:
    """Reply-QA scorecards per agent or per topic from the stored QA results (leads and admins)."""
    chosen = period.period() if period.since or period.until or period.days else None
    with caller.repo() as repo:
        return scorecards(repo, by, chosen)


@router.get("/reply-qa/agreement", response_model=Agreement)
def qa_agreement(caller: Lead) -> Agreement:
    """How often auto-QA agrees with the reviewers' stored decisions on reply drafts (leads and admins)."""
    with caller.repo() as repo:
        return agreement(repo, caller.services.sentiment.for_workspace(repo))


@router.get("/scorecard", response_model=Scorecard)
def get_scorecard(caller: Lead) -> Scorecard:
    with caller.repo() as repo:
        return scorecard_of(repo)


@router.put("/scorecard", response_model=Scorecard)
def put_scorecard(scorecard: Scorecard, caller: Annotated[Caller, Depends(allow(Permission.manage))]) -> Scorecard:
    """Replace the workspace's QA scorecard (criteria, weights, required ones, threshold)."""
    from copilot.insights.common import save_workspace_config

    with caller.repo() as repo:
        save_workspace_config(repo, {"scorecard": scorecard.model_dump(), "qa_threshold": scorecard.threshold})
        return scorecard_of(repo)


# -- CSAT ---------------------------------------------------------------------------------------
@router.get("/csat/predictions", response_model=CsatBoard)
def csat_predictions(caller: Support, limit: Annotated[int, Query(ge=1, le=2000)] = 200) -> CsatBoard:
    """Predicted CSAT for solved tickets without a survey answer, lowest first (or the refusal)."""
    with caller.repo() as repo:
        board = predict_csat(repo, caller.services.sentiment.for_workspace(repo))
    board.predictions = board.predictions[:limit]
    return board


@router.get("/csat/evaluation", response_model=CsatEvaluation)
def csat_evaluation(caller: Support, seed: int = 0) -> CsatEvaluation:
    """AUC of the CSAT prediction on held-out rated tickets."""
    with caller.repo() as repo:
        return evaluate_csat(repo, caller.services.sentiment.for_workspace(repo), seed=seed)


# -- accounts -------------------------------------------------------------------------------------
@router.get("/accounts/health", response_model=list[AccountHealth])
def accounts_health(caller: Sales, sour_only: bool = True) -> list[AccountHealth]:
    """The "going sour" list (active accounts at medium or high risk, by band then ARR at risk), or every account."""
    with caller.repo() as repo:
        report = health_report(repo, caller.services.sentiment.for_workspace(repo))
    return going_sour(report) if sour_only else report


@router.get("/accounts/{account_ref}/health", response_model=AccountHealth)
def one_account(account_ref: RecordRef, caller: Sales) -> AccountHealth:
    with caller.repo() as repo:
        account = resolve_ref(repo, Account, account_ref)
        (health,) = health_report(repo, caller.services.sentiment.for_workspace(repo), account_ids=[account.id])
    return health


# -- deals and leads ------------------------------------------------------------------------------
@router.get("/deals/scores", response_model=ScoreBoard)
def deal_scores(caller: Sales) -> ScoreBoard:
    """Win probability of every open deal, lowest first, with top signals (or the refusal)."""
    with caller.repo() as repo:
        return score_deals(repo)


@router.get("/deals/calibration", response_model=Calibration)
def deals_calibration(caller: Sales) -> Calibration:
    """Cross-validated win probabilities of the closed deals: Brier score, reliability table, base rate."""
    with caller.repo() as repo:
        return deal_calibration(repo)


@router.get("/leads/scores", response_model=ScoreBoard)
def lead_scores(caller: Sales) -> ScoreBoard:
    with caller.repo() as repo:
        return score_leads(repo)


@router.get("/leads/calibration", response_model=Calibration)
def leads_calibration(caller: Sales) -> Calibration:
    """Cross-validated conversion probabilities of the decided leads: Brier score, reliability table, base rate."""
    with caller.repo() as repo:
        return lead_calibration(repo)


@router.get("/forecast", response_model=Forecast)
def get_forecast(caller: Sales, months: Annotated[int, Query(ge=1, le=12)] = 3) -> Forecast:
    """Expected value (amount x win probability) of the open deals per month of close date."""
    with caller.repo() as repo:
        return forecast(repo, months=months)
