"""Sales reps: deals, call summaries (reviewed before they touch the deal) and deal briefs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy import func, select

from api.deps import Caller, PageParams, allow
from api.errors import ERROR_RESPONSES
from api.schemas import RECORD_MODELS, AiResultOut, PageOf, RecordRef, resolve_ref
from copilot.auth import Permission
from copilot.errors import NotFound
from copilot.store.models import AiResult, Call, Deal, DealStage
from copilot.tasks.base import TaskOutcome
from copilot.tasks.call_summary import CallSummary
from copilot.tasks.call_summary import Strategy as CallStrategy
from copilot.tasks.deal_brief import DealBrief
from copilot.tasks.deal_brief import Strategy as BriefStrategy

router = APIRouter(prefix="/v1", tags=["sales"], responses=ERROR_RESPONSES)
Reader = Annotated[Caller, Depends(allow(Permission.read_sales))]
Runner = Annotated[Caller, Depends(allow(Permission.run_sales))]
DealOut = RECORD_MODELS["deal"]


class CallSummaryRequest(BaseModel):
    strategy: CallStrategy = "auto"


class BriefRequest(BaseModel):
    strategy: BriefStrategy = "auto"


@router.get("/deals", response_model=PageOf[DealOut])
def list_deals(caller: Reader, page: PageParams, stage: DealStage | None = None):
    with caller.repo() as repo:
        query = repo.select(Deal)
        if stage:
            query = query.where(Deal.stage == stage)
        total = repo.session.scalar(select(func.count()).select_from(query.subquery()))
        rows = repo.all(query.order_by(Deal.close_date, Deal.id).offset(page.offset).limit(page.limit))
        return PageOf[DealOut](
            items=[DealOut.model_validate(r) for r in rows], total=total, offset=page.offset, limit=page.limit
        )


@router.post("/calls/{call_id}/summary", response_model=TaskOutcome[CallSummary])
def summarize(
    call_id: RecordRef, caller: Runner, request: CallSummaryRequest | None = None
) -> TaskOutcome[CallSummary]:
    """Summarise a call transcript (windowed for long calls); it waits for review before it is written to the deal."""
    with caller.repo() as repo:
        call = resolve_ref(repo, Call, call_id)
    return caller.run_task("call_summary", {"call_id": call.id, "strategy": (request or CallSummaryRequest()).strategy})


@router.post("/deals/{deal_id}/brief", response_model=TaskOutcome[DealBrief])
def brief(deal_id: RecordRef, caller: Runner, request: BriefRequest | None = None) -> TaskOutcome[DealBrief]:
    """Brief a rep on a deal: facts from the records, risks with evidence, what changed, a suggested next step."""
    with caller.repo() as repo:
        deal = resolve_ref(repo, Deal, deal_id)
    return caller.run_task("deal_brief", {"deal_id": deal.id, "strategy": (request or BriefRequest()).strategy})


@router.get("/deals/{deal_id}/brief", response_model=AiResultOut)
def latest_brief(deal_id: RecordRef, caller: Reader) -> AiResultOut:
    """The latest stored brief of a deal (``stale`` once the deal changed since)."""
    with caller.repo() as repo:
        deal = resolve_ref(repo, Deal, deal_id)
        row = repo.session.scalar(
            repo.select(AiResult)
            .where(AiResult.task == "deal_brief", AiResult.subject_kind == "deal", AiResult.subject_id == deal.id)
            .order_by(AiResult.id.desc())
            .limit(1)
        )
        if row is None:
            raise NotFound(f"deal {deal_id} has no brief yet: POST /v1/deals/{deal_id}/brief")
        return AiResultOut.model_validate(row)
