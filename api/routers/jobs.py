"""Long-running work: submit (202 Accepted), poll status and progress, retry after a failure or restart."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, field_validator

from api.deps import Caller, PageParams, any_caller
from api.errors import ERROR_RESPONSES
from api.schemas import IdPath
from copilot.auth import Permission, Principal
from copilot.errors import NotFound
from copilot.jobs import get_job, list_jobs
from copilot.store.models import Job, JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES)

JOB_PERMISSION = {
    "reindex": Permission.manage,
    "bulk_ticket_summaries": Permission.run_support,
    "nps_themes": Permission.run_marketing,
    "nps_assign": Permission.run_marketing,
    "sentiment_head": Permission.manage,
}


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    status: JobStatus
    params: dict[str, Any]
    done: int
    total: int | None
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @field_validator("params")
    @classmethod
    def count_examples(cls, params: dict[str, Any]) -> dict[str, Any]:
        """A training job's labelled examples are reported as their count, not echoed back."""
        if isinstance(params.get("examples"), list):
            return {**params, "examples": len(params["examples"])}
        return params


def visible(principal: Principal, job: Job) -> bool:
    return principal.can(JOB_PERMISSION.get(job.kind, Permission.manage))


def submit_job(caller: Caller, response: Response, kind: str, params: dict[str, Any]) -> JobOut:
    """Queue a job in the caller's workspace and answer 202 with where to poll it."""
    with caller.repo() as repo:
        job = caller.services.jobs.submit(repo, kind, params)
        out = JobOut.model_validate(job)
    caller.services.jobs.start(out.id, caller.principal.workspace_slug)
    response.status_code = 202
    response.headers["Location"] = f"/v1/jobs/{out.id}"
    return out


@router.get("", response_model=list[JobOut])
def jobs(caller: Annotated[Caller, Depends(any_caller)], page: PageParams, kind: str | None = None) -> list[JobOut]:
    with caller.repo() as repo:
        return [
            JobOut.model_validate(j)
            for j in list_jobs(repo, kind=kind, offset=page.offset, limit=page.limit)
            if visible(caller.principal, j)
        ]


@router.get("/{job_id}", response_model=JobOut)
def job_status(job_id: IdPath, caller: Annotated[Caller, Depends(any_caller)]) -> JobOut:
    with caller.repo() as repo:
        job = get_job(repo, job_id)
        if not visible(caller.principal, job):
            raise NotFound(f"no job {job_id} in this workspace")
        return JobOut.model_validate(job)


@router.post("/{job_id}/retry", response_model=JobOut, status_code=202)
def retry(job_id: IdPath, caller: Annotated[Caller, Depends(any_caller)], response: Response) -> JobOut:
    """Submit a failed (or interrupted) job again with the same parameters."""
    with caller.repo() as repo:
        old = get_job(repo, job_id)
        if not visible(caller.principal, old):
            raise NotFound(f"no job {job_id} in this workspace")
        job = caller.services.jobs.retry(repo, job_id)
        out = JobOut.model_validate(job)
    caller.services.jobs.start(out.id, caller.principal.workspace_slug)
    response.headers["Location"] = f"/v1/jobs/{out.id}"
    return out
