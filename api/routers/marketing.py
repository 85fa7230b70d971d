"""Marketing: NPS theme jobs over any filter, their saved reports, and assigning new responses to saved themes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict

from api.deps import Caller, PageParams, allow
from api.errors import ERROR_RESPONSES
from api.routers.jobs import JobOut, submit_job
from api.schemas import IdPath
from copilot.auth import Permission
from copilot.store.models import NpsThemeRun
from copilot.tasks.nps_themes import NpsThemesParams, ThemeReport, get_run, load_report

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
