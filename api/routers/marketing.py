"""Marketing: NPS theme jobs over any filter, their saved reports (themes with praise and complaint sides, driver
impact), assigning new responses to saved themes, the NPS over time and the values to filter on."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response
from fastapi import Query as QueryParam
from pydantic import BaseModel, ConfigDict, ValidationError

from api.deps import Caller, PageParams, allow
from api.errors import ERROR_RESPONSES
from api.routers.jobs import JobOut, submit_job
from api.schemas import IdPath
from copilot.auth import Permission
from copilot.store.models import NpsThemeRun
from copilot.tasks.nps_themes import (
    FilterOptions,
    NpsThemesParams,
    NpsTrend,
    ScoreBand,
    ThemeFilters,
    ThemeReport,
    filter_options,
    get_run,
    load_report,
    nps_trend,
)

router = APIRouter(prefix="/v1/nps", tags=["marketing"], responses=ERROR_RESPONSES)
Reader = Annotated[Caller, Depends(allow(Permission.read_nps))]
Runner = Annotated[Caller, Depends(allow(Permission.run_marketing))]


class ThemeRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    ai_result_id: int | None
    filters: dict
    seed: int
    k: int
    assigned: int


@router.post("/themes", response_model=JobOut, status_code=202)
def start_themes(request: NpsThemesParams, caller: Runner, response: Response) -> JobOut:
    """Find the themes of the comments matching the filters as a background job; poll ``/v1/jobs/{id}``."""
    return submit_job(caller, response, "task", {"task": "nps_themes", "params": request.model_dump(mode="json")})


@router.get("/themes", response_model=list[ThemeRunOut])
def runs(caller: Reader, page: PageParams) -> list[ThemeRunOut]:
    with caller.repo() as repo:
        rows = repo.all(repo.select(NpsThemeRun).order_by(NpsThemeRun.id.desc()).offset(page.offset).limit(page.limit))
        return [ThemeRunOut.model_validate(r) for r in rows]


@router.get("/themes/{run_id}", response_model=ThemeReport)
def report(run_id: IdPath, caller: Reader) -> ThemeReport:
    with caller.repo() as repo:
        return load_report(repo, run_id)


@router.post("/themes/{run_id}/assign", response_model=JobOut, status_code=202)
def assign(run_id: IdPath, caller: Runner, response: Response) -> JobOut:
    """Put responses that arrived since the run into its existing themes (nothing is refitted)."""
    with caller.repo() as repo:
        get_run(repo, run_id)
    return submit_job(caller, response, "nps_assign", {"run_id": run_id})


def trend_filters(
    since: datetime | None = None,
    until: datetime | None = None,
    campaign: Annotated[str | None, QueryParam(max_length=120)] = None,
    survey: Annotated[str | None, QueryParam(max_length=120)] = None,
    segment: Annotated[str | None, QueryParam(max_length=50)] = None,
    plan: Annotated[str | None, QueryParam(max_length=80)] = None,
    score_band: ScoreBand = ScoreBand.all,
) -> ThemeFilters:
    from copilot.errors import InvalidInput

    try:
        return ThemeFilters(
            since=since,
            until=until,
            campaign=campaign,
            survey=survey,
            segment=segment,
            plan=plan,
            score_band=score_band,
        )
    except ValidationError as error:
        raise InvalidInput(f"until: {error.errors()[0]['msg'].removeprefix('Value error, ')}") from None


@router.get("/trend", response_model=NpsTrend)
def trend(
    caller: Reader,
    filters: Annotated[ThemeFilters, Depends(trend_filters)],
    bucket: Literal["month", "week"] = "month",
) -> NpsTrend:
    """The NPS per month or week of the responses matching the filters (with or without a comment), oldest first."""
    with caller.repo() as repo:
        return nps_trend(repo, filters, bucket)


@router.get("/filters", response_model=FilterOptions)
def filter_values(caller: Reader) -> FilterOptions:
    """The segments, plans, surveys and campaigns the workspace's NPS responses carry."""
    with caller.repo() as repo:
        return filter_options(repo)


# -- advocacy and recovery: promoters thanked, detractors followed up (copilot/tasks/nps_advocacy.py) ----------------

from fastapi import Query  # noqa: E402 - appended section
from pydantic import Field  # noqa: E402

from api.schemas import RecordRef, resolve_ref  # noqa: E402
from copilot.errors import InvalidInput  # noqa: E402
from copilot.store.models import Account, NpsResponse  # noqa: E402
from copilot.tasks.base import TaskOutcome  # noqa: E402
from copilot.tasks.nps_advocacy import AdvocacyDraft  # noqa: E402
from copilot.tasks.nps_advocacy import Strategy as AdvocacyStrategy  # noqa: E402
from copilot.tasks.nps_respondents import (  # noqa: E402
    KIND_OF_BAND,
    TASK_OF_KIND,
    Band,
    RespondentFilters,
    RespondentPage,
    kind_for,
    list_respondents,
    not_yet_asked,
)


class AdvocacyDraftRequest(BaseModel):
    strategy: AdvocacyStrategy = "auto"
    again: bool = Field(default=False, description="Draft again for a respondent an approved draft already asked.")


class AdvocacyBatchRequest(BaseModel):
    band: Band
    limit: int = Field(default=20, ge=1, le=200, description="At most this many drafts, most recent responses first.")
    strategy: AdvocacyStrategy = "auto"


@router.get("/advocacy", response_model=RespondentPage)
def advocacy(
    caller: Reader,
    page: PageParams,
    band: Band = "promoters",
    asked: bool | None = None,
    commented: bool | None = None,
    account: Annotated[str | None, Query(max_length=128, description="An account id or external id.")] = None,
) -> RespondentPage:
    """Promoters (9-10) or detractors (0-6), most recent first: score, comment, theme, account, who sends their
    message, whether an approved draft already asked them, and their latest draft."""
    with caller.repo() as repo:
        account_id = resolve_ref(repo, Account, account).id if account else None
        filters = RespondentFilters(band=band, asked=asked, commented=commented, account_id=account_id)
        return list_respondents(repo, filters, offset=page.offset, limit=page.limit)


@router.post("/advocacy/{response_id}/draft", response_model=TaskOutcome[AdvocacyDraft])
def advocacy_draft(
    response_id: RecordRef, caller: Runner, request: AdvocacyDraftRequest | None = None
) -> TaskOutcome[AdvocacyDraft]:
    """Draft a promoter's thank-you (with a review or referral ask) or a detractor's follow-up for their account
    owner or support, quoting their comment; it waits in the review queue and is sent only once approved."""
    request = request or AdvocacyDraftRequest()
    with caller.repo() as repo:
        response = resolve_ref(repo, NpsResponse, response_id)
        task = TASK_OF_KIND[kind_for(response)]
    return caller.run_task(task, {"response_id": response.id, "strategy": request.strategy, "again": request.again})


@router.post("/advocacy/drafts", response_model=JobOut, status_code=202)
def advocacy_drafts(request: AdvocacyBatchRequest, caller: Runner, response: Response) -> JobOut:
    """Draft for a band's commented respondents who were not asked yet and have no draft waiting, as a background
    job; poll ``/v1/jobs/{id}``."""
    with caller.repo() as repo:
        ids = not_yet_asked(repo, request.band, request.limit)
    if not ids:
        raise InvalidInput(f"band: every commented {request.band[:-1]} was asked already or has a draft waiting")
    items = [{"response_id": i, "strategy": request.strategy} for i in ids]
    return submit_job(
        caller, response, "task_batch", {"task": TASK_OF_KIND[KIND_OF_BAND[request.band]], "items": items}
    )
