"""The eval review page: the last `copilot eval run` against the approved baselines, case by case."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.web.common import PageCaller, render
from copilot.auth import Permission

router = APIRouter(include_in_schema=False)


@router.get("/evals", response_class=HTMLResponse)
def evals_page(request: Request, caller: PageCaller) -> HTMLResponse:
    from evals.baseline import review
    from evals.results import EvalReport
    from evals.runner import default_out_dir

    caller.principal.require(Permission.manage)
    path = default_out_dir(caller.services.settings) / "report.json"
    if not path.exists():
        return render(request, "evals.html", caller, report=None, diffs=[], path=path)
    report = EvalReport.load(path)
    return render(request, "evals.html", caller, report=report, diffs=review(report), path=path)
