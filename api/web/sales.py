"""Deal pages for reps (list, brief) and the NPS dashboard for marketing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from api.web.common import PageCaller, check_csrf, render
from copilot.auth import Permission
from copilot.errors import CopilotError, NotFound
from copilot.store.models import AiResult, Deal, Job, JobStatus, NpsThemeRun
from copilot.tasks.deal_brief import DealBrief
from copilot.tasks.nps_themes import ThemeReport, load_report

router = APIRouter(include_in_schema=False)
WEB_THEMES_JOB = "web:nps_themes"  # the dashboard's own theme job: one at a time


@router.get("/deals", response_class=HTMLResponse)
def deals_page(request: Request, caller: PageCaller) -> HTMLResponse:
    caller.principal.require(Permission.read_sales)
    with caller.repo() as repo:
        deals = repo.all(repo.select(Deal).order_by(Deal.close_date, Deal.id).limit(200))
    return render(request, "deals.html", caller, deals=deals)


@router.get("/deals/{deal_id}", response_class=HTMLResponse)
def deal_page(deal_id: int, request: Request, caller: PageCaller) -> HTMLResponse:
    caller.principal.require(Permission.read_sales)
    with caller.repo() as repo:
        deal = repo.get(Deal, deal_id)
        if deal is None:
            raise NotFound(f"no deal {deal_id} in this workspace")
        row = repo.session.scalar(
            repo.select(AiResult)
            .where(AiResult.task == "deal_brief", AiResult.subject_kind == "deal", AiResult.subject_id == deal.id)
            .order_by(AiResult.id.desc())
            .limit(1)
        )
        brief = DealBrief.model_validate(row.content["result"]) if row else None
    return render(
        request, "deal.html", caller, deal=deal, brief=brief, row=row, flash=request.session.pop("flash", None)
    )


@router.post("/deals/{deal_id}/brief")
def brief_action(deal_id: int, request: Request, caller: PageCaller, csrf: Annotated[str, Form()]) -> RedirectResponse:
    check_csrf(request, csrf)
    caller.principal.require(Permission.run_sales)
    try:
        caller.run_task("deal_brief", {"deal_id": deal_id})
        request.session["flash"] = {"kind": "ok", "text": "Brief refreshed."}
    except CopilotError as error:
        request.session["flash"] = {"kind": "error", "text": str(error)}
    return RedirectResponse(f"/deals/{deal_id}", status_code=303)


@router.get("/nps", response_class=HTMLResponse)
def nps_page(request: Request, caller: PageCaller, run: int | None = None) -> HTMLResponse:
    caller.principal.require(Permission.read_nps)
    with caller.repo() as repo:
        runs = repo.all(repo.select(NpsThemeRun).order_by(NpsThemeRun.id.desc()).limit(20))
        chosen = next((r for r in runs if r.id == run), runs[0] if runs else None)
        report: ThemeReport | None = load_report(repo, chosen.id) if chosen else None
        running = repo.session.scalar(
            repo.select(Job)
            .where(Job.dedupe_key == WEB_THEMES_JOB, Job.status.in_([JobStatus.queued, JobStatus.running]))
            .order_by(Job.id.desc())
            .limit(1)
        )
    return render(
        request,
        "nps.html",
        caller,
        runs=runs,
        chosen=chosen,
        report=report,
        running=running,
        can_run=caller.principal.can(Permission.run_marketing),
        flash=request.session.pop("flash", None),
    )


@router.post("/nps/run")
def nps_run(request: Request, caller: PageCaller, csrf: Annotated[str, Form()]) -> RedirectResponse:
    check_csrf(request, csrf)
    caller.principal.require(Permission.run_marketing)
    with caller.repo() as repo:
        job = caller.services.jobs.submit(repo, "task", {"task": "nps_themes", "params": {}}, dedupe_key=WEB_THEMES_JOB)
        job_id = job.id
    caller.services.jobs.start(job_id, caller.principal.workspace_slug)
    request.session["flash"] = {"kind": "ok", "text": f"Theme job {job_id} started; reload in a moment."}
    return RedirectResponse("/nps", status_code=303)
