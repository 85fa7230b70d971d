"""What every page shares: the session login, CSRF tokens, navigation and rendering."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from api.deps import CSRF_SESSION_KEY, Caller, Services, get_services
from api.errors import copilot_error
from api.sessions import session_key_id
from copilot.auth import Permission, Principal, principal_for_key
from copilot.errors import CopilotError, PermissionDenied, Unauthenticated

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
CSRF_KEY = CSRF_SESSION_KEY


class LoginRequired(Exception):
    """Raised by page dependencies; answered with a redirect to the login page."""


def install(app: FastAPI) -> None:
    """Static files, the login redirect, and HTML error pages for browser requests (the API keeps its JSON errors)."""
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(LoginRequired)
    def to_login(request: Request, _error: LoginRequired) -> RedirectResponse:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    @app.exception_handler(CopilotError)
    def copilot_error_page(request: Request, error: CopilotError) -> Response:
        if request.url.path.startswith(("/v1/", "/health")) or "text/html" not in request.headers.get("accept", ""):
            return copilot_error(request, error)
        return render(
            request, "error.html", None, status_code=copilot_error(request, error).status_code, message=str(error)
        )


def csrf_token(request: Request) -> str:
    if CSRF_KEY not in request.session:
        request.session[CSRF_KEY] = secrets.token_urlsafe(32)
    return request.session[CSRF_KEY]


def check_csrf(request: Request, token: str) -> None:
    expected = request.session.get(CSRF_KEY)
    if not expected or not secrets.compare_digest(expected, token or ""):
        raise PermissionDenied("the form expired or did not come from this site (CSRF check failed); reload the page")


def page_caller(request: Request, services: Annotated[Services, Depends(get_services)]) -> Caller:
    key_id = session_key_id(request)
    if key_id is None:
        raise LoginRequired
    try:
        with services.store.session() as session:
            principal = principal_for_key(session, key_id)
    except Unauthenticated:
        raise LoginRequired from None
    return Caller(principal, services)


PageCaller = Annotated[Caller, Depends(page_caller)]


def render(
    request: Request, name: str, caller: Caller | None = None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    principal: Principal | None = caller.principal if caller else None
    nav = []
    if principal:
        if principal.reviewable_tasks():
            nav.append(("Review queue", "/review"))
        if principal.can(Permission.read_tickets):
            nav.append(("Tickets", "/tickets"))
        if principal.can(Permission.read_sales):
            nav.append(("Deals", "/deals"))
        if principal.can(Permission.read_nps):
            nav.append(("NPS themes", "/nps"))
        if principal.can(Permission.manage):
            nav.append(("Evals", "/evals"))
    return templates.TemplateResponse(
        request,
        name,
        {"principal": principal, "nav": nav, "csrf": csrf_token(request), **context},
        status_code=status_code,
    )
