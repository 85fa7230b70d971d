"""Deterministic fake models for tests, evals and benches, handed to the gateway as objects.

``FakeModel`` answers ``fake/<name>`` calls: from a queue of texts or exceptions when one was pushed (to simulate
rate limits, server errors, timeouts, broken JSON), else from ``function`` when one is given, else by echoing the
last user message (or the smallest instance of a requested JSON schema). Every call is recorded on the object.
Calls still go through litellm (a custom provider), so retries, fallbacks, streaming and usage are the real ones.

    fake = FakeModel()
    gateway = Gateway(settings, fake=fake)      # or Services(settings, fake=fake)
    fake.push("first answer", litellm.RateLimitError(...))
    ... fake.calls[-1]["messages"]
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import litellm
from litellm import CustomLLM
from litellm.types.utils import GenericStreamingChunk, ModelResponse

Answer = Callable[[list[dict[str, Any]], dict[str, Any]], str]
_LIVE: weakref.WeakValueDictionary[str, FakeModel] = weakref.WeakValueDictionary()
_NUMBERS = itertools.count(1)


class FakeModel:
    """A fake model instance: queued answers, an optional answering function, and a record of every call."""

    def __init__(self, function: Answer | None = None) -> None:
        self.function = function
        self.queue: deque[str | Exception] = deque()
        self.calls: list[dict[str, Any]] = []
        self.key = f"fake-{next(_NUMBERS)}"
        self._lock = threading.Lock()
        _LIVE[self.key] = self

    def __getstate__(self) -> dict[str, Any]:
        """A copy for another process (a Ray actor): the queue and the answering function; its calls are its own."""
        return {"function": self.function, "queue": deque(self.queue)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["function"])  # type: ignore[misc]
        self.queue.extend(state["queue"])

    @property
    def api_base(self) -> str:
        """How the gateway tells litellm's fake provider which instance answers."""
        return f"fake://{self.key}"

    def push(self, *responses: str | Exception) -> None:
        self.queue.extend(responses)

    def reset(self) -> None:
        self.queue.clear()
        self.calls.clear()

    def answer(self, model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        with self._lock:
            self.calls.append({"model": model, "messages": messages, "params": params})
            queued = self.queue.popleft() if self.queue else None
        if isinstance(queued, Exception):
            raise queued
        if queued is not None:
            return queued
        if model.split("/", 1)[-1] == "scripted" and self.function is None:
            raise litellm.InternalServerError("fake/scripted has no queued response", llm_provider="fake", model=model)
        if self.function is not None:
            return self.function(messages, params)
        return echo(messages, params)


def echo(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """The last user message, or the smallest instance of a requested JSON schema."""
    response_format = params.get("response_format")
    if isinstance(response_format, dict) and response_format.get("schema"):
        return json.dumps(minimal_instance(response_format["schema"]))
    return next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")


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
        required = schema.get("required", [])
        return {
            name: minimal_instance(sub, defs) for name, sub in schema.get("properties", {}).items() if name in required
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


def instance_for(api_base: str | None) -> FakeModel:
    key = (api_base or "").removeprefix("fake://")
    fake = _LIVE.get(key)
    if fake is None:
        raise litellm.APIConnectionError(f"no fake model '{key}' (hand a FakeModel to the gateway)", "fake", "fake")
    return fake


def _usage(messages: list[dict[str, Any]], text: str) -> litellm.Usage:
    prompt = sum(len(str(m.get("content", "")).split()) for m in messages)
    return litellm.Usage(
        prompt_tokens=prompt, completion_tokens=len(text.split()), total_tokens=prompt + len(text.split())
    )


class FakeProvider(CustomLLM):
    """litellm's provider ``fake``: routes each call to the FakeModel named by its ``api_base``."""

    def completion(
        self,
        model: str,
        messages: list,
        api_base: str | None = None,
        *args: Any,  # type: ignore[override]
        optional_params: dict,
        **kwargs: Any,
    ) -> ModelResponse:
        text = instance_for(api_base).answer(model, messages, optional_params)
        return ModelResponse(
            id=f"fake-{uuid.uuid4().hex}",
            model=model,
            created=int(time.time()),
            choices=[{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            usage=_usage(messages, text),
        )

    def streaming(
        self,
        model: str,
        messages: list,
        api_base: str | None = None,
        *args: Any,  # type: ignore[override]
        optional_params: dict,
        **kwargs: Any,
    ) -> Iterator[GenericStreamingChunk]:
        text = instance_for(api_base).answer(model, messages, optional_params)
        words = text.split(" ")
        for index, word in enumerate(words):
            last = index == len(words) - 1
            usage = {"prompt_tokens": 1, "completion_tokens": len(words), "total_tokens": len(words) + 1}
            yield GenericStreamingChunk(
                text=word if last else word + " ",
                is_finished=last,
                finish_reason="stop" if last else "",
                index=0,
                tool_use=None,
                usage=usage if last else None,
            )

    async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> ModelResponse:  # type: ignore[override]
        return self.completion(model, messages, *args, **kwargs)

    async def astreaming(
        self, model: str, messages: list, *args: Any, **kwargs: Any
    ) -> AsyncIterator[GenericStreamingChunk]:  # type: ignore[override]
        for chunk in self.streaming(model, messages, *args, **kwargs):
            yield chunk
