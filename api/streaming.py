"""Server-Sent Events for tasks that can stream: token events while the model writes, then the stored result."""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable

from anyio import to_thread
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from api.errors import STATUS_BY_ERROR, ErrorBody, ErrorDetail
from copilot.errors import CopilotError

log = logging.getLogger("copilot.api")
TokenSink = Callable[[str], None]


def sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def stream_task(run: Callable[[TokenSink], BaseModel]) -> StreamingResponse:
    """Run ``run(on_token)`` on a worker thread and stream ``token`` events, then ``result`` (or ``error``)."""
    events: queue.Queue[str | None] = queue.Queue()

    def worker() -> None:
        try:
            result = run(lambda text: events.put(sse("token", {"text": text})))
            events.put(sse("result", result.model_dump(mode="json")))
        except CopilotError as error:
            kind = next((k for cls, _, k in STATUS_BY_ERROR if isinstance(error, cls)), "model_failed")
            events.put(sse("error", ErrorBody(error=ErrorDetail(type=kind, message=str(error))).model_dump()))
        except Exception as error:  # the stream has started: report in-band, never drop the connection silently
            log.exception("streamed task failed", exc_info=error)
            events.put(
                sse(
                    "error",
                    ErrorBody(
                        error=ErrorDetail(type="internal", message="an unexpected error occurred; it has been logged")
                    ).model_dump(),
                )
            )
        finally:
            events.put(None)

    async def body() -> AsyncIterator[str]:
        threading.Thread(target=worker, daemon=True, name="copilot-sse").start()
        while (item := await to_thread.run_sync(events.get)) is not None:
            yield item

    return StreamingResponse(
        body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
