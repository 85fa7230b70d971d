"""FastAPI dependencies: the app's services, the authenticated caller and per-role access."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Query, Request

from api.sessions import csrf_matches, session_key_id
from copilot.auth import Permission, Principal, authenticate, principal_for_key
from copilot.errors import PermissionDenied, RateLimited, Unauthenticated
from copilot.services import Services
from copilot.settings import Settings
from copilot.store import Repo, Store
from copilot.tasks.base import TaskOutcome
from copilot.tasks.registry import TaskParams

T = TypeVar("T")
CSRF_SESSION_KEY = "csrf"  # where a browser session keeps its CSRF token

CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def get_services(request: Request) -> Services:
    return request.app.state.services


def get_settings(request: Request) -> Settings:
    return request.app.state.services.settings


def get_store(request: Request) -> Store:
    return request.app.state.services.store


def request_key(authorization: str | None, x_api_key: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return x_api_key.strip() if x_api_key else None


def client_address(request: Request) -> str:
    return f"client:{request.client.host if request.client else 'unknown'}"


def key_authenticated(request: Request, services: Services, key: str) -> Principal:
    """The key's principal, with backoff on repeated failures from this client or for this key prefix."""
    failures = request.app.state.auth_failures
    client, prefix = client_address(request), f"prefix:{key.split('_')[1] if key.count('_') >= 2 else '?'}"
    if wait := failures.retry_after(client, prefix):
        raise RateLimited(f"too many failed attempts with API keys; try again in {wait} s", retry_after_s=wait)
    try:
        with services.store.session() as session:
            principal = authenticate(session, key)
    except Unauthenticated:
        failures.failed(client, prefix)
        raise
    failures.succeeded(client)
    return principal


def session_authenticated(request: Request, services: Services) -> Principal:
    """The principal of a logged-in browser session; unsafe methods must also carry the session's CSRF token."""
    key_id = session_key_id(request)
    if key_id is None:
        raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
    if request.method in UNSAFE_METHODS:
        if not csrf_matches(request.session.get(CSRF_SESSION_KEY), request.headers.get(CSRF_HEADER)):
            raise PermissionDenied(f"{CSRF_HEADER}: a browser session must send its CSRF token with this request")
    with services.store.session() as session:
        return principal_for_key(session, key_id)


def get_principal(
    request: Request,
    services: Annotated[Services, Depends(get_services)],
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_api_key: Annotated[str | None, Header(description="API key (or send `Authorization: Bearer <key>`).")] = None,
) -> Principal:
    key = request_key(authorization, x_api_key)
    return key_authenticated(request, services, key) if key else session_authenticated(request, services)


@dataclass
class Caller:
    """An authenticated request: who is calling, and the workspace they may touch."""

    principal: Principal
    services: Services

    @contextmanager
    def repo(self) -> Iterator[Repo]:
        """The caller's workspace in one transaction (commits on success)."""
        with self.services.store.repo(self.principal.workspace_slug) as repo:
            yield repo

    def run_task(
        self, task: str, params: TaskParams | Mapping[str, Any], on_token: Callable[[str], None] | None = None
    ) -> TaskOutcome[Any]:
        """Run a registered task the caller may run, in one transaction (a model failure leaves a failed result)."""
        from copilot.tasks import registry

        self.principal.require(registry.get(task).permission)
        return self.services.run_in_workspace(self.principal.workspace_slug, task, params, on_token=on_token)


def allow(permission: Permission) -> Callable[..., Caller]:
    """A dependency admitting callers whose role has ``permission`` (401 without a key, 403 without the right)."""

    def dependency(
        principal: Annotated[Principal, Depends(get_principal)], services: Annotated[Services, Depends(get_services)]
    ) -> Caller:
        principal.require(permission)
        return Caller(principal, services)

    return dependency


def any_caller(
    principal: Annotated[Principal, Depends(get_principal)], services: Annotated[Services, Depends(get_services)]
) -> Caller:
    return Caller(principal, services)


@dataclass
class Page:
    offset: int
    limit: int


def pagination(offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Page:
    return Page(offset, limit)


PageParams = Annotated[Page, Depends(pagination)]
