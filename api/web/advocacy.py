"""The advocacy page for marketing: promoters to thank and ask for a review or referral, detractors to follow up
with (for their account owner or support); each row shows the comment, theme, account, sender, whether they were
asked and their latest draft, which waits in the review queue until someone approves it."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from api.schemas import resolve_ref
from api.web.common import PageCaller, check_csrf, flash, query_string, render, take_flash
from copilot.auth import Permission
from copilot.errors import CopilotError, InvalidInput
from copilot.store import Repo
from copilot.store.models import Job, JobStatus, NpsResponse
from copilot.tasks.nps_respondents import (
    KIND_OF_BAND,
    TASK_OF_KIND,
    Band,
    RespondentFilters,
    kind_for,
    list_respondents,
    not_yet_asked,
)

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 30
BATCH = 20  # drafts per "draft for the next ..." click
ASKED = {"": None, "no": False, "yes": True}
WEB_BATCH_JOB = "web:nps_advocacy:{band}"  # one bulk draft job per band at a time


def _band(value: str) -> Band:
    if value not in KIND_OF_BAND:
        raise InvalidInput(f"band: one of {', '.join(KIND_OF_BAND)}")
    return value  # type: ignore[return-value]


@router.get("/advocacy", response_class=HTMLResponse)
def advocacy_page(
    request: Request,
    caller: PageCaller,
    band: str = "promoters",
    asked: Literal["", "no", "yes"] = "",
    commented: bool = False,
    page: int = 1,
) -> HTMLResponse:
    caller.principal.require(Permission.read_nps)
    page = max(page, 1)
    filters = RespondentFilters(band=_band(band), asked=ASKED[asked], commented=commented or None)
    with caller.repo() as repo:
        listed = list_respondents(repo, filters, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    view = {"band": band, "asked": asked, "commented": "true" if commented else ""}
    return render(
        request,
        "advocacy.html",
        caller,
        listed=listed,
        view=view,
        page=page,
        pages=max(1, -(-listed.total // PAGE_SIZE)),
        page_query=lambda n, **changes: query_string({**view, **changes, "page": n if n > 1 else None}),
        here=f"/advocacy{query_string({**view, 'page': page if page > 1 else None})}",
        can_draft=caller.principal.can(Permission.run_marketing),
        can_review=caller.principal.can(Permission.review_marketing),
        task_of_kind=TASK_OF_KIND,
        batch=BATCH,
        flash=take_flash(request),
    )


def _running(repo: Repo, key: str) -> int | None:
    """The bulk draft job of this key that is queued or running, if any (its drafts are not all written yet)."""
    active = repo.select(Job).where(Job.dedupe_key == key, Job.status.in_([JobStatus.queued, JobStatus.running]))
    job = repo.session.scalar(active.order_by(Job.id.desc()).limit(1))
    return job.id if job else None


def _back(target: str | None) -> str:
    return target if target and target.startswith("/advocacy") and "//" not in target else "/advocacy"


@router.post("/advocacy/{response_ref}/draft")
def draft_action(
    response_ref: str,
    request: Request,
    caller: PageCaller,
    csrf: Annotated[str, Form()],
    again: Annotated[bool, Form()] = False,
    back: Annotated[str | None, Form(max_length=300)] = None,
) -> RedirectResponse:
    check_csrf(request, csrf)
    caller.principal.require(Permission.run_marketing)
    with caller.repo() as repo:
        response = resolve_ref(repo, NpsResponse, response_ref)
    try:
        outcome = caller.run_task(TASK_OF_KIND[kind_for(response)], {"response_id": response.id, "again": again})
        note = f" ({outcome.fallback_reason})" if outcome.used_fallback else ""
        flash(request, "ok", f"Draft #{outcome.ai_result_id} is waiting in the review queue{note}.")
    except CopilotError as error:
        flash(request, "error", str(error))
    return RedirectResponse(_back(back), status_code=303)


@router.post("/advocacy/drafts")
def batch_action(
    request: Request,
    caller: PageCaller,
    csrf: Annotated[str, Form()],
    band: Annotated[str, Form()],
    back: Annotated[str | None, Form(max_length=300)] = None,
) -> RedirectResponse:
    check_csrf(request, csrf)
    caller.principal.require(Permission.run_marketing)
    chosen, key = _band(band), WEB_BATCH_JOB.format(band=band)
    with caller.repo() as repo:
        if running := _running(repo, key):
            flash(request, "ok", f"Job {running} is still drafting for {chosen}; reload in a moment.")
            return RedirectResponse(_back(back), status_code=303)
        ids = not_yet_asked(repo, chosen, BATCH)
        if not ids:
            flash(request, "ok", f"Every commented {chosen[:-1]} was asked already or has a draft waiting.")
            return RedirectResponse(_back(back), status_code=303)
        params = {"task": TASK_OF_KIND[KIND_OF_BAND[chosen]], "items": [{"response_id": i} for i in ids]}
        job = caller.services.jobs.submit(repo, "task_batch", params, dedupe_key=key)
        job_id = job.id
    caller.services.jobs.start(job_id, caller.principal.workspace_slug)
    flash(request, "ok", f"Drafting for {len(ids)} {chosen} in job {job_id}; reload in a moment.")
    return RedirectResponse(_back(back), status_code=303)
