"""Long-running work: submit (202 Accepted), poll status and progress, retry after a failure or restart."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, field_validator

from api.deps import Caller, PageParams, any_caller
from api.errors import ERROR_RESPONSES
from api.schemas import IdPath
from copilot.auth import Principal
from copilot.errors import NotFound
from copilot.jobs import get_job, job_permission, list_jobs
from copilot.store.models import Job, JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES)


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    status: JobStatus
    params: dict[str, Any]
    done: int
    attempts: int = 0
    cancel_requested: bool = False
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
    return principal.can(job_permission(job.kind, job.params))


def submit_job(caller: Caller, response: Response, kind: str, params: dict[str, Any]) -> JobOut:
    """Queue a job in the caller's workspace and answer 202 with where to poll it."""
    caller.principal.require(job_permission(kind, params))
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
    """Run a failed or cancelled job again, in place (409 while it is queued or running, or after it succeeded)."""
    with caller.repo() as repo:
        old = get_job(repo, job_id)
        if not visible(caller.principal, old):
            raise NotFound(f"no job {job_id} in this workspace")
        job = caller.services.jobs.retry(repo, job_id)
        out = JobOut.model_validate(job)
    caller.services.jobs.start(out.id, caller.principal.workspace_slug)
    response.headers["Location"] = f"/v1/jobs/{out.id}"
    return out


@router.post("/{job_id}/cancel", response_model=JobOut)
def cancel(job_id: IdPath, caller: Annotated[Caller, Depends(any_caller)]) -> JobOut:
    """Cancel a queued job at once, a running one at its next progress report."""
    with caller.repo() as repo:
        job = get_job(repo, job_id)
        if not visible(caller.principal, job):
            raise NotFound(f"no job {job_id} in this workspace")
        return JobOut.model_validate(caller.services.jobs.cancel(repo, job_id))
