"""Logging in with an API key (kept in a signed session cookie) and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import SESSION_KEY, Services, get_services
from api.web.common import LoginRequired, check_csrf, page_caller, render
from copilot.auth import Permission, Principal, authenticate
from copilot.errors import Unauthenticated

router = APIRouter(include_in_schema=False)


def home_for(principal: Principal) -> str:
    if principal.reviewable_tasks():
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
    return render(request, "login.html", next=next if next.startswith("/") else "")


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
        with services.store.session() as session:
            principal = authenticate(session, api_key)
    except Unauthenticated as error:
        return render(request, "login.html", error=str(error), next=next, status_code=401)
    request.session.clear()
    request.session[SESSION_KEY] = api_key.strip()
    return RedirectResponse(
        next if next.startswith("/") and not next.startswith("//") else home_for(principal), status_code=303
    )


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form()]) -> RedirectResponse:
    check_csrf(request, csrf)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
