"""Server-side browser sessions.

The ``copilot_session`` cookie holds a random id; the database keeps its sha256, the API key it logged in with
(by id, never the key), its CSRF token and its flash message. A session ends at logout, when its key is revoked,
after ``COPILOT_SESSION_IDLE_S`` without a request, and ``COPILOT_SESSION_MAX_S`` after login, whatever happens.
The cookie is HttpOnly and SameSite=Strict, and Secure when the request came over https (``COPILOT_COOKIE_SECURE``
auto; behind a TLS proxy, uvicorn's ``--forwarded-allow-ips`` makes the scheme https). Sessions live in the
database, so any API replica serves any session.

Pages read and write ``request.session`` as usual; ``login(request, key_id)`` and ``logout(request)`` start and end
one (a login always gets a fresh id: no session fixation).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any

import anyio
from sqlalchemy import delete, or_, select
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from copilot.settings import Settings
from copilot.store import Store
from copilot.store.models import ApiKey, WebSession

COOKIE = "copilot_session"
TOUCH_EVERY = timedelta(minutes=1)  # last_seen is written at most this often


@dataclass
class SessionState:
    """What the middleware knows about this request's session."""

    row_id: int | None = None
    key_id: int | None = None
    original: dict[str, Any] | None = None
    login_key_id: int | None = None
    logout: bool = False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_matches(expected: str | None, given: str | None) -> bool:
    """Constant-time check of a form's or header's CSRF token; a non-ASCII token is a mismatch, not an error."""
    return bool(expected) and secrets.compare_digest(expected.encode(), (given or "").encode())


def login(request: Request, key_id: int) -> None:
    """Bind the browser to this API key from the response on, under a new session id."""
    state: SessionState = request.scope["copilot.session"]
    state.login_key_id = key_id
    request.session.clear()


def logout(request: Request) -> None:
    state: SessionState = request.scope["copilot.session"]
    state.logout = True
    request.session.clear()


def session_key_id(request: Request) -> int | None:
    """The API key id the browser session is logged in with, or None."""
    state: SessionState | None = request.scope.get("copilot.session")
    return state.key_id if state else None


class ServerSessions:
    """ASGI middleware: loads the session before the app runs, saves it when the response starts."""

    def __init__(self, app: ASGIApp, store: Store, settings: Settings) -> None:
        self.app, self.store, self.settings = app, store, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _cookie(scope)
        state, data = await anyio.to_thread.run_sync(self._load, token)
        scope["session"], scope["copilot.session"] = data, state

        async def save_then_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie = await anyio.to_thread.run_sync(self._save, state, scope["session"], token)
                if cookie is not None:
                    MutableHeaders(scope=message).append("set-cookie", self._cookie_header(scope, cookie))
            await send(message)

        await self.app(scope, receive, save_then_send)

    # -- storage -----------------------------------------------------------------------------
    def _load(self, token: str | None) -> tuple[SessionState, dict[str, Any]]:
        if not token:
            return SessionState(original={}), {}
        now = datetime.now(UTC)
        with self.store.session() as session:
            row = session.scalar(select(WebSession).where(WebSession.token_hash == token_hash(token)))
            if row is None or not self._alive(session, row, now):
                return SessionState(original={}), {}
            if now - row.last_seen_at > TOUCH_EVERY:
                row.last_seen_at = now
            return SessionState(row.id, row.api_key_id, dict(row.data)), dict(row.data)

    def _alive(self, session: Any, row: WebSession, now: datetime) -> bool:
        if row.revoked_at is not None:
            return False
        if now - row.last_seen_at > timedelta(seconds=self.settings.session_idle_s):
            return False
        if now - row.created_at > timedelta(seconds=self.settings.session_max_s):
            return False
        if row.api_key_id is not None:
            key = session.get(ApiKey, row.api_key_id)
            if key is None or key.revoked_at is not None:
                return False
        return True

    def _save(self, state: SessionState, data: dict[str, Any], token: str | None) -> str | None:
        """Persist the session; returns the cookie value to set ("" to delete it), or None to leave it."""
        now = datetime.now(UTC)
        with self.store.session() as session:
            if state.logout or state.login_key_id is not None:
                if state.row_id is not None:
                    session.get(WebSession, state.row_id).revoked_at = now
                if state.logout:
                    return ""
                return self._create(session, state.login_key_id, data, now)
            if data == state.original:
                return None
            if state.row_id is None:
                return self._create(session, None, data, now)
            row = session.get(WebSession, state.row_id)
            row.data, row.last_seen_at = dict(data), now
            return None

    def _create(self, session: Any, key_id: int | None, data: dict[str, Any], now: datetime) -> str:
        token = secrets.token_urlsafe(32)
        session.add(WebSession(token_hash=token_hash(token), api_key_id=key_id, data=dict(data), created_at=now,
                               last_seen_at=now))  # fmt: skip
        idle = now - timedelta(seconds=self.settings.session_idle_s)
        session.execute(delete(WebSession).where(or_(WebSession.last_seen_at < idle, WebSession.revoked_at < idle)))
        return token

    def _cookie_header(self, scope: Scope, value: str) -> str:
        secure = self.settings.cookie_secure
        https = scope.get("scheme") == "https" if secure == "auto" else secure == "true"
        parts = [f"{COOKIE}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
        parts.append(f"Max-Age={self.settings.session_max_s}" if value else "Max-Age=0")
        if https:
            parts.append("Secure")
        return "; ".join(parts)


def _cookie(scope: Scope) -> str | None:
    raw = dict(scope.get("headers") or []).get(b"cookie")
    if not raw:
        return None
    jar = SimpleCookie()
    try:
        jar.load(raw.decode("latin-1"))
    except Exception:  # a malformed cookie header is no session, not an error
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel and morsel.value else None
