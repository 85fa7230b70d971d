"""Insight pages: the KPI dashboard, accounts going sour, deal and lead scores, and reply quality (leads and admins).

Charts are SVG rendered on the server (``_insight_charts.html``); the pages need no script of their own.
``ticket_insights`` gives the ticket page its CSAT and account-health panel (``_insights_ticket.html``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select

from api.deps import Caller
from api.web.common import PageCaller, check_csrf, flash, render, take_flash
from copilot.auth import Permission
from copilot.errors import CopilotError, InvalidInput, PermissionDenied
from copilot.insights.common import Filters, Period
from copilot.insights.kpis import KpiReport, Section
from copilot.store import Repo
from copilot.store.models import Account, Channel, Deal, Ticket

router = APIRouter(include_in_schema=False)
KPI_READERS = (Permission.read_tickets, Permission.read_sales, Permission.read_nps)


def tabs(caller: Caller) -> list[tuple[str, str]]:
    can = caller.principal.can
    out = [("KPIs", "/insights")]
    if can(Permission.read_sales):
        out += [("Accounts going sour", "/insights/accounts"), ("Deal and lead scores", "/insights/deals")]
    if can(Permission.read_scorecards):
        out.append(("Reply quality", "/insights/quality"))
    return out


def _date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{value!r}: a date is YYYY-MM-DD") from None


def _distinct(repo: Repo, column: Any) -> list[str]:
    model = column.class_
    query = select(column).where(model.workspace_id == repo.workspace_id, column.is_not(None)).distinct()
    return sorted(v for v in repo.session.scalars(query) if v)


@router.get("/insights", response_class=HTMLResponse)
def kpi_page(
    request: Request,
    caller: PageCaller,
    since: str | None = None,
    until: str | None = None,
    days: Annotated[int, Query(ge=1, le=3660)] = 90,
    team: str | None = None,
    channel: str | None = None,
    segment: str | None = None,
    source: str | None = None,
) -> HTMLResponse:
    from api.routers.insights import stages_for
    from copilot.insights.kpis import compute_kpis

    if not any(map(caller.principal.can, KPI_READERS)):
        raise PermissionDenied(f"role '{caller.principal.role.value}' may not read the KPIs")
    stages = stages_for(caller.principal, None)
    filters = Filters.from_form(team=team, channel=channel, segment=segment, source=source)
    with caller.repo() as repo:
        report = compute_kpis(repo, Period.of(_date(since), _date(until), days), filters, stages)
        segments, sources = _distinct(repo, Account.segment), _distinct(repo, Deal.lead_source)
    form = {
        "since": since or "",
        "until": until or "",
        "days": str(days),
        "team": team or "",
        "channel": channel or "",
        "segment": segment or "",
        "source": source or "",
    }
    return render(
        request,
        "insights.html",
        caller,
        report=report,
        charts=kpi_charts(report),
        form=form,
        channels=[c.value for c in Channel],
        segments=segments,
        sources=sources,
        tabs=tabs(caller),
    )


def kpi_charts(report: KpiReport) -> dict[str, list[dict[str, Any]]]:
    """The charts of each section: (label, now, previous) rows for bars, (label, value) points for lines."""
    out: dict[str, list[dict[str, Any]]] = {}
    for section in report.sections:
        charts = [_unit_chart(section, "hours", "Hours, now and previous period"), _unit_chart(section, "%", "Rates")]
        charts = [c for c in charts if c["rows"]]
        for b in section.breakdowns:
            if b.rows:
                rows = [(r.group, r.value, r.previous) for r in b.rows]
                charts.append(
                    {"id": b.key.replace("_", "-"), "title": b.label, "kind": "bars", "unit": b.unit, "rows": rows}
                )
        for s in section.series:
            points = [(f"{p.since:%b %d}", p.value) for p in s.points]
            charts.append(
                {
                    "id": s.key.replace("_", "-"),
                    "title": f"{s.label} (previous period, then this one)",
                    "kind": "line",
                    "unit": s.unit,
                    "rows": points,
                }
            )
        out[section.stage] = charts
    return out


def _unit_chart(section: Section, unit: str, title: str) -> dict[str, Any]:
    rows = [(k.label, k.value, k.previous) for k in section.kpis if k.unit == unit and section.stage != "customers"]
    return {
        "id": f"{section.stage}-{'times' if unit == 'hours' else 'rates'}",
        "title": title,
        "kind": "bars",
        "unit": unit,
        "rows": rows,
    }


@router.get("/insights/accounts", response_class=HTMLResponse)
def accounts_page(request: Request, caller: PageCaller, all: str | None = None) -> HTMLResponse:
    from copilot.insights.health import going_sour, health_report

    caller.principal.require(Permission.read_sales)
    with caller.repo() as repo:
        report = health_report(repo, caller.services.sentiment.for_workspace(repo))
    sour = going_sour(report)
    return render(
        request,
        "insights_accounts.html",
        caller,
        sour=sour,
        shown=report if all else sour,
        every=bool(all),
        tabs=tabs(caller),
    )


@router.get("/insights/deals", response_class=HTMLResponse)
def deals_page(request: Request, caller: PageCaller) -> HTMLResponse:
    from copilot.insights.scoring import deal_calibration, forecast, score_deals, score_leads

    caller.principal.require(Permission.read_sales)
    calibration, calibration_error = None, None
    with caller.repo() as repo:
        deals, leads, outlook = score_deals(repo), score_leads(repo), forecast(repo)
        if not deals.refusal:
            try:
                calibration = deal_calibration(repo)
            except CopilotError as error:
                calibration_error = str(error)
    rows = [(f"{p.since:%Y-%m}", p.expected, p.pipeline) for p in outlook.periods]
    if outlook.overdue:
        rows.append(("overdue", outlook.overdue.expected, outlook.overdue.pipeline))
    return render(
        request,
        "insights_deals.html",
        caller,
        deals=deals,
        leads=leads,
        forecast_rows=rows,
        calibration=calibration,
        calibration_error=calibration_error,
        tabs=tabs(caller),
    )


@router.get("/insights/quality", response_class=HTMLResponse)
def quality_page(request: Request, caller: PageCaller, agreement: str | None = None) -> HTMLResponse:
    from copilot.insights.qa_review import agreement as qa_agreement
    from copilot.insights.qa_review import scorecards
    from copilot.insights.quality import scorecard_of

    caller.principal.require(Permission.read_scorecards)
    found, error = None, None
    with caller.repo() as repo:
        agents, topics, card = scorecards(repo, "agent"), scorecards(repo, "topic"), scorecard_of(repo)
        if agreement:
            found = qa_agreement(repo, caller.services.sentiment.for_workspace(repo))
            if not found.drafts:
                found, error = None, "No decided reply drafts in this workspace yet: nothing to compare with."
    chart_rows = {
        "agent-scorecards": [(line.group, 100 * line.pass_rate, None) for line in agents.lines],
        "topic-scorecards": [(line.group, 100 * line.pass_rate, None) for line in topics.lines],
    }
    return render(
        request,
        "insights_quality.html",
        caller,
        agents=agents,
        topics=topics,
        scorecard=card,
        chart_rows=chart_rows,
        agreement=found,
        agreement_error=error,
        tabs=tabs(caller),
        flash=take_flash(request),
    )


@router.post("/insights/quality/run")
def quality_run(request: Request, caller: PageCaller, csrf: Annotated[str, Form()]) -> RedirectResponse:
    """Score every ticket's replies in the background (a task_batch job)."""
    check_csrf(request, csrf)
    caller.principal.require(Permission.read_scorecards)
    from copilot.insights.qa_review import replied_tickets

    with caller.repo() as repo:
        ids = replied_tickets(repo, 2000)
        job = caller.services.jobs.submit(
            repo, "task_batch", {"task": "reply_qa", "items": [{"ticket_id": i} for i in ids]}, dedupe_key="web:qa"
        )
        job_id = job.id
    caller.services.jobs.start(job_id, caller.principal.workspace_slug)
    flash(request, "ok", f"Scoring the replies of {len(ids)} tickets (job {job_id}); reload in a moment.")
    return RedirectResponse("/insights/quality", status_code=303)


def ticket_insights(caller: Caller, repo: Repo, ticket: Ticket) -> dict[str, Any]:
    """What ``_insights_ticket.html`` shows for a ticket: its CSAT answer or prediction, and its account's health."""
    from copilot.insights.csat import SOLVED, predict_csat
    from copilot.insights.health import health_report

    classifier = caller.services.sentiment.for_workspace(repo)
    out: dict[str, Any] = {"csat_score": ticket.csat_score, "csat": None, "csat_note": None, "health": None}
    if ticket.csat_score is None and ticket.status in SOLVED:
        board = predict_csat(repo, classifier, ticket_ids=[ticket.id])
        out["csat"] = board.predictions[0] if board.predictions else None
        out["csat_note"] = board.refusal.reason if board.refusal else None
    elif ticket.csat_score is None:
        out["csat_note"] = "CSAT is predicted once the ticket is solved."
    if ticket.account_id and caller.principal.can(Permission.read_sales):
        out["health"] = health_report(repo, classifier, datetime.now().astimezone(), account_ids=[ticket.account_id])[0]
    return out
