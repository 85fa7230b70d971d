"""A deterministic litellm provider for tests: ``fake/echo`` and ``fake/scripted``.

``fake/echo`` answers with the last user message (or, when a JSON schema is requested, the
smallest instance of it). ``fake/scripted`` answers from a queue tests fill with texts or
exceptions, to simulate rate limits, server errors, timeouts and broken JSON.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any

import litellm
from litellm import CustomLLM
from litellm.types.utils import GenericStreamingChunk, ModelResponse


class FakeScript:
    """Queued responses for ``fake/scripted``; every call is recorded."""

    def __init__(self) -> None:
        self.queue: deque[str | Exception] = deque()
        self.calls: list[dict[str, Any]] = []

    def push(self, *responses: str | Exception) -> None:
        self.queue.extend(responses)

    def reset(self) -> None:
        self.queue.clear()
        self.calls.clear()


SCRIPT = FakeScript()


def minimal_instance(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> Any:
    """The smallest value that satisfies a (pydantic-generated) JSON schema."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return minimal_instance(defs[schema["$ref"].split("/")[-1]], defs)
    if "anyOf" in schema:
        return minimal_instance(schema["anyOf"][0], defs)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {
            name: minimal_instance(sub, defs)
            for name, sub in schema.get("properties", {}).items()
            if name in schema.get("required", [])
        }
    if kind == "array":
        return [minimal_instance(schema["items"], defs) for _ in range(schema.get("minItems", 0))]
    if kind == "string":
        return "x" * schema.get("minLength", 1)
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    return None


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    return next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")


class FakeProvider(CustomLLM):
    def answer(self, model: str, messages: list[dict[str, Any]], optional_params: dict[str, Any]) -> str:
        name = model.split("/", 1)[-1]
        SCRIPT.calls.append({"model": model, "messages": messages, "params": optional_params})
        if name == "scripted":
            if not SCRIPT.queue:
                raise litellm.InternalServerError(
                    "fake/scripted has no queued response", llm_provider="fake", model=model
                )
            response = SCRIPT.queue.popleft()
            if isinstance(response, Exception):
                raise response
            return response
        response_format = optional_params.get("response_format")
        if isinstance(response_format, dict) and response_format.get("schema"):
            return json.dumps(minimal_instance(response_format["schema"]))
        return _last_user_text(messages)

    def completion(self, model: str, messages: list, *args: Any, optional_params: dict, **kwargs: Any) -> ModelResponse:  # type: ignore[override]
        text = self.answer(model, messages, optional_params)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        return ModelResponse(
            id=f"fake-{uuid.uuid4().hex}",
            model=model,
            created=int(time.time()),
            choices=[{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            usage=litellm.Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=len(text.split()),
                total_tokens=prompt_tokens + len(text.split()),
            ),
        )

    def streaming(
        self, model: str, messages: list, *args: Any, optional_params: dict, **kwargs: Any
    ) -> Iterator[GenericStreamingChunk]:  # type: ignore[override]
        text = self.answer(model, messages, optional_params)
        words = text.split(" ")
        for index, word in enumerate(words):
            last = index == len(words) - 1
            yield GenericStreamingChunk(
                text=word if last else word + " ",
                is_finished=last,
                finish_reason="stop" if last else "",
                index=0,
                tool_use=None,
                usage={"prompt_tokens": 1, "completion_tokens": len(words), "total_tokens": len(words) + 1}
                if last
                else None,
            )

    async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> ModelResponse:  # type: ignore[override]
        return self.completion(model, messages, *args, **kwargs)

    async def astreaming(
        self, model: str, messages: list, *args: Any, **kwargs: Any
    ) -> AsyncIterator[GenericStreamingChunk]:  # type: ignore[override]
        for chunk in self.streaming(model, messages, *args, **kwargs):
            yield chunk
