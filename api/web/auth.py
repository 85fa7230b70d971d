"""Logging in with an API key (the browser keeps a server-side session id, never the key) and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api import sessions
from api.deps import Services, get_services, key_authenticated
from api.web.common import LoginRequired, check_csrf, page_caller, render
from copilot.auth import Permission, Principal
from copilot.errors import RateLimited, Unauthenticated

router = APIRouter(include_in_schema=False)


def home_for(principal: Principal) -> str:
    if principal.can(Permission.read_tickets) or principal.can(Permission.read_sales):
        return "/review"
    return "/nps" if principal.can(Permission.read_nps) else "/docs"


@router.get("/", response_class=HTMLResponse)
def home(request: Request, services: Annotated[Services, Depends(get_services)]) -> Response:
    try:
        caller = page_caller(request, services)
    except LoginRequired:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(home_for(caller.principal), status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "") -> HTMLResponse:
    return render(request, "login.html", next=next if local_path(next) else "")


@router.post("/login")
def login(
    request: Request,
    services: Annotated[Services, Depends(get_services)],
    api_key: Annotated[str, Form()],
    csrf: Annotated[str, Form()],
    next: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf)
    try:
        principal = key_authenticated(request, services, api_key.strip())
    except RateLimited as error:
        return render(request, "login.html", error=str(error), next=next, status_code=429)
    except Unauthenticated as error:
        return render(request, "login.html", error=str(error), next=next, status_code=401)
    sessions.login(request, principal.key_id)
    return RedirectResponse(next if local_path(next) else home_for(principal), status_code=303)


def local_path(target: str) -> bool:
    """A redirect target on this site (never ``//host`` or ``/\\host``, which browsers send elsewhere)."""
    return target.startswith("/") and not target.startswith(("//", "/\\")) and "\\" not in target


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form()]) -> RedirectResponse:
    check_csrf(request, csrf)
    sessions.logout(request)
    return RedirectResponse("/login", status_code=303)
