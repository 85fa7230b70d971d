"""Server-rendered pages for agents, reps and marketing (jinja2 and a little plain JS; no build step)."""

from api.web import advocacy, auth, calls, evals, insights, nps, records, review, sales, search, triage
from api.web.common import install

ROUTERS = (
    auth.router,
    review.router,
    records.router,
    sales.router,
    nps.router,
    calls.router,
    evals.router,
    search.router,
    insights.router,
    triage.router,
    advocacy.router,
)

__all__ = ["ROUTERS", "install"]
