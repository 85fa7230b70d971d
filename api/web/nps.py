"""The marketing NPS dashboard: the NPS over time and its drivers, themes with their praise and complaint sides,
filtered by period, segment, plan and survey; and starting a theme run for those filters."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ValidationError

from api.web.common import PageCaller, check_csrf, flash, query_string, render, take_flash
from copilot.auth import Permission
from copilot.errors import InvalidInput
from copilot.store import Repo
from copilot.store.models import Job, JobStatus, NpsThemeRun
from copilot.tasks.nps_themes import Driver, NpsTrend, ThemeFilters, ThemeReport, filter_options, load_report, nps_trend

router = APIRouter(include_in_schema=False)
WEB_THEMES_JOB = "web:nps_themes"  # the dashboard's own theme job: one at a time
PERIODS = {
    "90d": ("last 90 days", 90),
    "180d": ("last 6 months", 180),
    "365d": ("last 12 months", 365),
    "all": ("all time", 0),
}
DEFAULT_PERIOD = "365d"
WEEKLY_UP_TO_DAYS = 120  # shorter periods draw the NPS by week, longer ones by month
FILTER_FIELDS = ("segment", "plan", "survey")


class DashboardFilters(BaseModel):
    """What the page's filter form says: a named period (or since/until days) and the response filters."""

    period: str = DEFAULT_PERIOD
    since: date | None = None
    until: date | None = None
    segment: str | None = None
    plan: str | None = None
    survey: str | None = None

    def theme_filters(self, today: date) -> ThemeFilters:
        """The filters a theme run and the NPS line use; a named period starts at midnight UTC, N days ago."""
        since, until = self.since, self.until
        if since is None and until is None and self.period in PERIODS and PERIODS[self.period][1]:
            since = today - timedelta(days=PERIODS[self.period][1])
        at = lambda day: datetime(day.year, day.month, day.day, tzinfo=UTC) if day else None  # noqa: E731
        values = {name: getattr(self, name) or None for name in FILTER_FIELDS}
        return ThemeFilters(since=at(since), until=at(until), **values)

    def query(self) -> dict[str, str | None]:
        return {
            "period": self.period,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            **{name: getattr(self, name) for name in FILTER_FIELDS},
        }


class LineChart(BaseModel):
    """The NPS over time laid out for the SVG: a polyline, dots with their titles, and labelled axes."""

    width: int = 1000
    height: int = 220
    left: int = 48
    right: int = 16
    top: int = 14
    bottom: int = 30
    line: str = ""
    dots: list[tuple[float, float, str]] = []
    x_ticks: list[tuple[float, str]] = []
    y_ticks: list[tuple[float, str]] = []
    zero: float = 0.0


def line_chart(trend: NpsTrend) -> LineChart:
    """NPS (-100..+100, scaled to the data with zero always shown) per bucket, oldest on the left."""
    chart = LineChart()
    points = trend.points
    if not points:
        return chart
    low = min(-10.0, min(p.nps for p in points) - 5)
    high = max(10.0, max(p.nps for p in points) + 5)
    width, height = chart.width - chart.left - chart.right, chart.height - chart.top - chart.bottom

    def x_of(i: int) -> float:
        return round(chart.left + (i / (len(points) - 1) if len(points) > 1 else 0.5) * width, 1)

    def y_of(value: float) -> float:
        return round(chart.top + (high - value) / (high - low) * height, 1)

    coords = [(x_of(i), y_of(p.nps)) for i, p in enumerate(points)]
    chart.line = " ".join(f"{x},{y}" for x, y in coords)
    fmt = "%Y-%m-%d" if trend.bucket == "week" else "%Y-%m"
    chart.dots = [
        (x, y, f"{p.start.strftime(fmt)}: NPS {p.nps:+.0f} from {p.responses} responses")
        for (x, y), p in zip(coords, points, strict=True)
    ]
    step = max(1, len(points) // 6)
    ticks = list(range(0, len(points), step))
    if ticks[-1] != len(points) - 1:  # the latest bucket is always labelled; a tick too close to it gives way
        if len(points) - 1 - ticks[-1] < max(1, step // 2) and len(ticks) > 1:
            ticks.pop()
        ticks.append(len(points) - 1)
    chart.x_ticks = [(x_of(i), points[i].start.strftime(fmt)) for i in ticks]
    chart.y_ticks = [(y_of(v), f"{v:+.0f}") for v in (high, 0.0, low)]
    chart.zero = y_of(0.0)
    return chart


class DriverLayout(BaseModel):
    """Where the drivers chart puts its labels (right-aligned), its zero line, and how far a bar may reach."""

    width: int = 900
    labels: int = 290  # a 40-character name fits to the left of here
    centre: int = 580
    half: int = 250  # the biggest bar: leaves room for its value on either side


DRIVERS = DriverLayout()


class DriverBar(BaseModel):
    label: str
    impact: float
    x: float
    width: float
    y: float


def driver_bars(drivers: list[Driver], layout: DriverLayout = DRIVERS, row: int = 24) -> list[DriverBar]:
    """A diverging bar per driver (negative to the left of the centre line), most negative first."""
    centre, half = layout.centre, layout.half
    biggest = max((abs(d.impact) for d in drivers), default=0.0) or 1.0
    bars = []
    for i, d in enumerate(drivers):
        width = round(half * abs(d.impact) / biggest, 1)
        x = centre - width if d.impact < 0 else centre
        bars.append(DriverBar(label=d.label, impact=d.impact, x=round(x, 1), width=width, y=8 + i * row))
    return bars


def _matching_run(runs: list[NpsThemeRun], filters: ThemeFilters) -> NpsThemeRun | None:
    wanted = filters.model_dump(mode="json")
    return next((r for r in runs if r.filters == wanted), None)


def _running_job(repo: Repo) -> Job | None:
    return repo.session.scalar(
        repo.select(Job)
        .where(Job.dedupe_key == WEB_THEMES_JOB, Job.status.in_([JobStatus.queued, JobStatus.running]))
        .order_by(Job.id.desc())
        .limit(1)
    )


def _dashboard_filters(values: dict[str, str | None]) -> DashboardFilters:
    try:
        chosen = DashboardFilters.model_validate({k: v for k, v in values.items() if v not in (None, "")})
    except ValidationError as error:
        first = error.errors()[0]
        raise InvalidInput(f"{first['loc'][0] if first['loc'] else 'filters'}: {first['msg']}") from None
    if chosen.period not in PERIODS:
        raise InvalidInput(f"period: one of {', '.join(PERIODS)}")
    return chosen


@router.get("/nps", response_class=HTMLResponse)
def nps_page(
    request: Request,
    caller: PageCaller,
    run: int | None = None,
    period: str | None = None,
    since: str | None = None,
    until: str | None = None,
    segment: str | None = None,
    plan: str | None = None,
    survey: str | None = None,
) -> HTMLResponse:
    caller.principal.require(Permission.read_nps)
    chosen = _dashboard_filters(
        {"period": period, "since": since, "until": until, "segment": segment, "plan": plan, "survey": survey}
    )
    filters = chosen.theme_filters(datetime.now(UTC).date())
    days = (filters.until or datetime.now(UTC)) - filters.since if filters.since else None
    bucket = "week" if days is not None and days.days <= WEEKLY_UP_TO_DAYS else "month"
    with caller.repo() as repo:
        runs = repo.all(repo.select(NpsThemeRun).order_by(NpsThemeRun.id.desc()).limit(50))
        asked = next((r for r in runs if r.id == run), None) if run else None
        picked = asked or _matching_run(runs, filters) or (runs[0] if runs else None)
        report: ThemeReport | None = load_report(repo, picked.id) if picked else None
        trend = nps_trend(repo, filters, bucket)
        options = filter_options(repo)
        running = _running_job(repo)
    return render(
        request,
        "nps.html",
        caller,
        runs=runs,
        chosen=picked,
        report=report,
        other_filters=report is not None and report.filters != filters,
        running=running,
        chosen_filters=chosen,
        filters=filters,
        query=chosen.query(),
        periods=PERIODS,
        options=options,
        trend=trend,
        line=line_chart(trend),
        drivers=driver_bars(report.drivers) if report else [],
        driver_layout=DRIVERS,
        can_run=caller.principal.can(Permission.run_marketing),
        flash=take_flash(request),
    )


@router.post("/nps/run")
def nps_run(
    request: Request,
    caller: PageCaller,
    csrf: Annotated[str, Form()],
    period: Annotated[str, Form()] = DEFAULT_PERIOD,
    since: Annotated[str, Form()] = "",
    until: Annotated[str, Form()] = "",
    segment: Annotated[str, Form()] = "",
    plan: Annotated[str, Form()] = "",
    survey: Annotated[str, Form()] = "",
) -> RedirectResponse:
    check_csrf(request, csrf)
    caller.principal.require(Permission.run_marketing)
    chosen = _dashboard_filters(
        {"period": period, "since": since, "until": until, "segment": segment, "plan": plan, "survey": survey}
    )
    filters = chosen.theme_filters(datetime.now(UTC).date())
    params = {"filters": filters.model_dump(mode="json")}
    with caller.repo() as repo:
        job = caller.services.jobs.submit(
            repo, "task", {"task": "nps_themes", "params": params}, dedupe_key=WEB_THEMES_JOB
        )
        job_id = job.id
    caller.services.jobs.start(job_id, caller.principal.workspace_slug)
    flash(request, "ok", f"Theme job {job_id} started for {filters.describe()}; reload in a moment.")
    return RedirectResponse("/nps" + query_string(chosen.query()), status_code=303)
