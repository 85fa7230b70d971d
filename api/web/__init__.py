"""Server-rendered pages for agents, reps and marketing (jinja2 and a little plain JS; no build step)."""

from api.web import auth, evals, records, review, sales
from api.web.common import install

ROUTERS = (auth.router, review.router, records.router, sales.router, evals.router)

__all__ = ["ROUTERS", "install"]
