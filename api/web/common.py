"""What every page shares: the session login, CSRF tokens, navigation, rendering and friendly error pages."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.deps import CSRF_SESSION_KEY, Caller, Services, get_services
from api.errors import (
    CHANGED_MEANWHILE,
    changed_meanwhile,
    copilot_error,
    http_error,
    unexpected_error,
    validation_error,
)
from api.sessions import csrf_matches, session_key_id
from copilot.auth import Permission, Principal, principal_for_key
from copilot.errors import CopilotError, PermissionDenied, Unauthenticated
from copilot.store.models import utc

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
CSRF_KEY = CSRF_SESSION_KEY
NOT_PAGES = ("/v1/", "/health", "/static/", "/docs-assets/", "/openapi.json")

ERROR_TITLES = {
    400: "That request did not work",
    403: "You do not have access to this",
    404: "Nothing here",
    405: "That page does not take this kind of request",
    409: "This changed meanwhile",
    413: "That is too much at once",
    422: "Something in the address or form is not right",
    429: "Too many attempts",
    500: "Something went wrong on our side",
    502: "The model answered with an error",
    503: "Temporarily unavailable",
}


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in the largest whole unit: '40 min', '3 h', '2 d'."""
    if moment is None:
        return "-"
    seconds = ((now or datetime.now(UTC)) - utc(moment)).total_seconds()
    return duration(abs(seconds))


def duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{max(int(seconds // 60), 1)} min"
    if seconds < 86400 * 2:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"


def until(moment: datetime, now: datetime | None = None) -> str:
    """'in 3 h' or '2 d ago' for a due time."""
    seconds = (utc(moment) - (now or datetime.now(UTC))).total_seconds()
    return f"in {duration(seconds)}" if seconds >= 0 else f"{duration(-seconds)} ago"


def stamp(seconds: float | None) -> str:
    """A unix time as 'YYYY-MM-DD HH:MM' UTC (search hits carry unix seconds)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M") if seconds else "-"


templates.env.filters.update(ago=ago, until=until, stamp=stamp)


class LoginRequired(Exception):
    """Raised by page dependencies; answered with a redirect to the login page."""


def wants_html(request: Request) -> bool:
    """A browser asking for a page: the API (``/v1``) and non-HTML clients keep their JSON errors."""
    return not request.url.path.startswith(NOT_PAGES) and "text/html" in request.headers.get("accept", "")


def install(app: FastAPI) -> None:
    """Static files, the login redirect, and HTML error pages for browser requests (the API keeps its JSON errors)."""
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(LoginRequired)
    def to_login(request: Request, _error: LoginRequired) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)

    @app.exception_handler(CopilotError)
    def copilot_error_page(request: Request, error: CopilotError) -> Response:
        response = copilot_error(request, error)
        return error_page(request, response.status_code, str(error)) if wants_html(request) else response

    @app.exception_handler(StarletteHTTPException)
    def http_error_page(request: Request, error: StarletteHTTPException) -> Response:
        if not wants_html(request):
            return http_error(request, error)
        message = "There is no page at this address." if error.status_code == 404 else str(error.detail)
        return error_page(request, error.status_code, message)

    @app.exception_handler(RequestValidationError)
    def validation_error_page(request: Request, error: RequestValidationError) -> Response:
        response = validation_error(request, error)
        if not wants_html(request):
            return response
        first = error.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body"))
        return error_page(request, 422, f"{where or 'request'}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StaleDataError)
    def changed_meanwhile_page(request: Request, error: StaleDataError) -> Response:
        response = changed_meanwhile(request, error)
        return error_page(request, 409, CHANGED_MEANWHILE.capitalize() + ".") if wants_html(request) else response

    @app.exception_handler(Exception)
    def unexpected_error_page(request: Request, error: Exception) -> Response:
        response = unexpected_error(request, error)
        if not wants_html(request):
            return response
        return error_page(request, 500, "An unexpected error occurred; it has been logged.", signed_in=False)


def error_page(request: Request, status: int, message: str, *, signed_in: bool = True) -> HTMLResponse:
    """The friendly page for an error: what happened, in words, with the way back and the search box."""
    caller = None
    if signed_in:
        try:
            caller = page_caller(request, request.app.state.services)
        except (LoginRequired, CopilotError):
            caller = None
    title = ERROR_TITLES.get(status, "That did not work")
    return render(request, "error.html", caller, status_code=status, status=status, title=title, message=message)


def csrf_token(request: Request) -> str:
    if "session" not in request.scope:  # an error page outside the session middleware (a crash)
        return ""
    if CSRF_KEY not in request.session:
        request.session[CSRF_KEY] = secrets.token_urlsafe(32)
    return request.session[CSRF_KEY]


def check_csrf(request: Request, token: str) -> None:
    if not csrf_matches(request.session.get(CSRF_KEY), token):
        raise PermissionDenied("the form expired or did not come from this site (CSRF check failed); reload the page")


def page_caller(request: Request, services: Annotated[Services, Depends(get_services)]) -> Caller:
    key_id = session_key_id(request) if "session" in request.scope else None
    if key_id is None:
        raise LoginRequired
    try:
        with services.store.session() as session:
            principal = principal_for_key(session, key_id)
    except Unauthenticated:
        raise LoginRequired from None
    return Caller(principal, services)


PageCaller = Annotated[Caller, Depends(page_caller)]


def flash(request: Request, kind: str, text: str) -> None:
    """A one-line message for the next page this browser shows."""
    request.session["flash"] = {"kind": kind, "text": text}


def take_flash(request: Request) -> dict | None:
    return request.session.pop("flash", None)


def query_string(values: dict[str, Any]) -> str:
    """``?a=1&b=2`` of the values that are set (empty strings and None left out), or ''."""
    kept = {k: v for k, v in values.items() if v not in (None, "")}
    return f"?{urlencode(kept, doseq=True)}" if kept else ""


def navigation(principal: Principal | None) -> list[tuple[str, str]]:
    nav = []
    if principal:
        if principal.reviewable_tasks():
            nav.append(("Review queue", "/review"))
        if principal.can(Permission.read_tickets):
            nav.append(("Tickets", "/tickets"))
            nav.append(("Knowledge", "/knowledge"))
        if principal.can(Permission.read_sales):
            nav.append(("Deals", "/deals"))
        if principal.can(Permission.read_nps):
            nav.append(("NPS themes", "/nps"))
            nav.append(("Advocacy", "/advocacy"))
        if any(map(principal.can, (Permission.read_tickets, Permission.read_sales, Permission.read_nps))):
            nav.append(("Insights", "/insights"))
        if principal.can(Permission.manage):
            nav.append(("Evals", "/evals"))
    return nav


def render(
    request: Request, name: str, caller: Caller | None = None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    principal: Principal | None = caller.principal if caller else None
    return templates.TemplateResponse(
        request,
        name,
        {
            "principal": principal,
            "nav": navigation(principal),
            "csrf": csrf_token(request),
            "search_q": request.query_params.get("q", "") if request.url.path == "/search" else "",
            **context,
        },
        status_code=status_code,
    )
