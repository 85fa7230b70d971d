"""Request size limit, enforced on the declared length and on the bytes actually received."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    pass


class RequestSizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        received = 0
        started = too_large = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if too_large:  # the app answered its own error about the cut-off body: the client gets the 413
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._reject(send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": {
                    "type": "too_large",
                    "message": f"request body is larger than {self.max_bytes} bytes",
                    "field": None,
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


class AuthFailures:
    """Backoff on failed authentication, per client address and per key prefix (in this process).

    After ``free`` failures within ``window_s``, each further attempt from that client (or for that key prefix) is
    refused for 2, 4, 8, ... seconds (at most ``max_lock_s``) after the last failure; a success clears the client's
    record. Several API replicas each keep their own counts (documented in the README).
    """

    def __init__(
        self,
        free: int = 5,
        window_s: float = 900.0,
        max_lock_s: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free, self.window_s, self.max_lock_s, self.clock = free, window_s, max_lock_s, clock
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, who: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(who, []) if now - t < self.window_s]
        if times:
            self._failures[who] = times
        else:
            self._failures.pop(who, None)
        return times

    def retry_after(self, *who: str, now: float | None = None) -> int:
        """Seconds until these callers may try again (0: now)."""
        now = self.clock() if now is None else now
        with self._lock:
            wait = 0.0
            for name in who:
                times = self._recent(name, now)
                if len(times) >= self.free:
                    lock = min(2.0 ** (len(times) - self.free + 1), self.max_lock_s)
                    wait = max(wait, times[-1] + lock - now)
            return int(wait + 0.999) if wait > 0 else 0

    def failed(self, *who: str, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        with self._lock:
            for name in who:
                self._failures.setdefault(name, []).append(now)
            if len(self._failures) > 100_000:  # a flood of distinct callers must not grow memory without bound
                self._failures = dict(list(self._failures.items())[-50_000:])

    def succeeded(self, who: str) -> None:
        with self._lock:
            self._failures.pop(who, None)
