"""The one way tasks call models: litellm with retries, fallbacks, a response cache and typed results."""

from __future__ import annotations

import asyncio
import copy as _copy
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Generic, TypeVar

import litellm
from pydantic import BaseModel, Field, ValidationError

from copilot.errors import CopilotError
from copilot.gateway.cache import ResponseCache
from copilot.gateway.fake import FakeProvider
from copilot.gateway.local import LocalProvider, load_model
from copilot.pii import Redaction
from copilot.settings import LOCAL_MODEL_PREFIX, Settings

T = TypeVar("T", bound=BaseModel)
Messages = list[dict[str, str]]

RETRYABLE = (
    litellm.RateLimitError,
    litellm.Timeout,
    litellm.APIConnectionError,
    litellm.InternalServerError,
    litellm.ServiceUnavailableError,
    litellm.BadGatewayError,
)


class ModelError(CopilotError):
    """Every model we may use failed; ``retryable`` says whether trying later may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Completion(BaseModel):
    text: str
    model: str
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    cost_usd: float | None = None
    cached: bool = False
    attempts: int = 1
    pii_masked: list[str] = Field(default_factory=list, description="Kinds of personal data masked before the call.")


class StructuredResult(BaseModel, Generic[T]):
    """A validated instance, or the reason there is none (the task decides what to do then)."""

    value: T | None = None
    error: str | None = None
    completion: Completion | None = None

    @property
    def ok(self) -> bool:
        return self.value is not None


class StreamingCompletion:
    """Iterate for text chunks; afterwards ``completion`` holds the full text, tokens and latency."""

    def __init__(self, response: Any, model: str, started: float) -> None:
        self._response, self._model, self._started = response, model, started
        self.completion: Completion | None = None

    def __iter__(self) -> Iterator[str]:
        parts: list[str] = []
        usage = None
        try:
            for chunk in self._response:
                usage = getattr(chunk, "usage", None) or usage
                text = chunk.choices[0].delta.content if chunk.choices else None
                if text:
                    parts.append(text)
                    yield text
        except RETRYABLE as error:
            raise ModelError(f"the model stream broke off: {type(error).__name__}", retryable=True) from None
        text = "".join(parts)
        self.completion = Completion(
            text=text,
            model=self._model,
            tokens_in=getattr(usage, "prompt_tokens", 0) or 0,
            tokens_out=getattr(usage, "completion_tokens", 0) or len(parts),
            latency_ms=round((time.perf_counter() - self._started) * 1000, 1),
        )


def register_providers(settings: Settings) -> None:
    """Make ``local/...`` and ``fake/...`` models known to litellm (idempotent)."""
    providers = {entry["provider"]: entry for entry in litellm.custom_provider_map}
    providers["local"] = {
        "provider": "local",
        "custom_handler": LocalProvider(
            settings.local_model_path, settings.local_model_sha256, settings.local_context_tokens
        ),
    }
    providers["fake"] = {"provider": "fake", "custom_handler": FakeProvider()}
    litellm.custom_provider_map = list(providers.values())
    litellm.suppress_debug_info = True
    from litellm.utils import custom_llm_setup

    custom_llm_setup()


class Gateway:
    """Completion, streaming and structured output over litellm for one configuration."""

    def __init__(self, settings: Settings, *, sleep: Any = time.sleep) -> None:
        self.settings = settings
        self.models = [settings.model, *settings.fallback_models]
        self.cache = ResponseCache(settings.cache_dir) if settings.cache_dir else None
        self._sleep = sleep
        self.on_token: Callable[[str], None] | None = None
        self.known_names: tuple[str, ...] = ()
        register_providers(settings)

    def knowing(self, names: tuple[str, ...]) -> Gateway:
        """A copy that also masks these people's names (the workspace's contacts and staff) when masking is on."""
        copy = _copy.copy(self)
        copy.known_names = names
        return copy

    def listening(self, on_token: Callable[[str], None]) -> Gateway:
        """A copy of this gateway that streams every completion, passing each text chunk to ``on_token``.

        The completion it returns is the one the plain call would return, so a streamed task stores
        the same result as a non-streamed one.
        """
        copy = _copy.copy(self)
        copy.on_token = on_token
        return copy

    @property
    def model(self) -> str:
        return self.settings.model

    def check_ready(self) -> None:
        """Fail fast (one-line ModelFileError) when the configured local model file is missing or corrupt."""
        if self.settings.model.startswith(LOCAL_MODEL_PREFIX):
            load_model(
                self.settings.local_model_path, self.settings.local_model_sha256, self.settings.local_context_tokens
            )

    # -- plain completion -------------------------------------------------------------------
    def complete(self, messages: Messages, **params: Any) -> Completion:
        key = self._cache_key(messages, params)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            completion = Completion.model_validate(hit).model_copy(update={"cached": True})
            if self.on_token is not None:
                self.on_token(completion.text)
            return completion
        redaction = Redaction(names=self.known_names) if self.settings.should_redact_pii else None
        outgoing = [
            {**m, "content": redaction.mask(m["content"])} if redaction and isinstance(m.get("content"), str) else m
            for m in messages
        ]
        if self.on_token is not None:
            completion = self._streamed(outgoing, params, redaction)
        else:
            completion = self._with_retries(lambda model: self._call(model, outgoing, params))
        if redaction is not None:
            completion = completion.model_copy(
                update={"text": redaction.restore(completion.text), "pii_masked": redaction.kinds}
            )
        if self.cache is not None:
            self.cache.set(key, completion.model_dump())
        return completion

    def _streamed(self, messages: Messages, params: dict[str, Any], redaction: Redaction | None) -> Completion:
        stream = self.stream(messages, **params)
        pending = ""
        for chunk in stream:
            if redaction is None:
                self.on_token(chunk)
                continue
            pending += chunk
            cut = pending.rfind("[")  # a placeholder may be split across chunks: hold back an unclosed one
            ready, pending = (pending, "") if cut == -1 or "]" in pending[cut:] else (pending[:cut], pending[cut:])
            if ready:
                self.on_token(redaction.restore(ready))
        if pending:
            self.on_token(redaction.restore(pending))
        return stream.completion

    async def acomplete(self, messages: Messages, **params: Any) -> Completion:
        return await asyncio.to_thread(self.complete, messages, **params)

    def _call(self, model: str, messages: Messages, params: dict[str, Any]) -> Completion:
        started = time.perf_counter()
        response = litellm.completion(
            model=model, messages=messages, timeout=self.settings.request_timeout_s, num_retries=0, **params
        )
        latency = (time.perf_counter() - started) * 1000
        usage = getattr(response, "usage", None)
        return Completion(
            text=response.choices[0].message.content or "",
            model=model,
            tokens_in=getattr(usage, "prompt_tokens", 0) or 0,
            tokens_out=getattr(usage, "completion_tokens", 0) or 0,
            latency_ms=round(latency, 1),
            cost_usd=_cost(response),
        )

    def _with_retries(self, call: Any) -> Any:
        """Try each model in order; retry retryable errors with exponential backoff, bounded."""
        errors: list[str] = []
        retryable = True
        attempts = 0
        for model in self.models:
            for attempt in range(self.settings.max_retries + 1):
                attempts += 1
                try:
                    result = call(model)
                    if isinstance(result, Completion):
                        result.attempts = attempts
                    return result
                except RETRYABLE as error:
                    errors.append(f"{model}: {type(error).__name__}")
                    if attempt < self.settings.max_retries:
                        self._sleep(min(0.5 * 2**attempt, 8.0))
                except (litellm.AuthenticationError, litellm.NotFoundError, litellm.BadRequestError) as error:
                    errors.append(f"{model}: {type(error).__name__}: {_first_line(error)}")
                    retryable = False
                    break
        raise ModelError(f"model call failed after {attempts} attempts ({'; '.join(errors[-3:])})", retryable=retryable)

    # -- streaming --------------------------------------------------------------------------
    def stream(self, messages: Messages, **params: Any) -> StreamingCompletion:
        """Text chunks as the model produces them; ``.completion`` has the totals once exhausted.

        Retries and fallbacks apply until the stream opens; a failure mid-stream is raised as ModelError.
        """
        started = time.perf_counter()
        opened: dict[str, Any] = {}

        def open_stream(model: str) -> Any:
            opened["model"] = model
            return litellm.completion(
                model=model,
                messages=messages,
                stream=True,
                timeout=self.settings.request_timeout_s,
                num_retries=0,
                stream_options={"include_usage": True},
                **params,
            )

        response = self._with_retries(open_stream)
        return StreamingCompletion(response, opened["model"], started)

    async def astream(self, messages: Messages, **params: Any) -> AsyncIterator[str]:
        iterator = iter(await asyncio.to_thread(self.stream, messages, **params))
        sentinel = object()
        while (chunk := await asyncio.to_thread(next, iterator, sentinel)) is not sentinel:
            yield chunk  # type: ignore[misc]

    # -- structured output ------------------------------------------------------------------
    def structured(self, messages: Messages, schema: type[T], **params: Any) -> StructuredResult[T]:
        """Ask for JSON matching ``schema``: grammar-constrained on local models, JSON mode elsewhere, one repair retry."""
        json_schema = schema.model_json_schema()
        params = {"temperature": 0.0, **params, "response_format": self._response_format(schema, json_schema)}
        completion = self.complete(messages, **params)
        value, error = _parse(completion.text, schema)
        if value is None and not self._constrained():
            repair = [
                *messages,
                {"role": "assistant", "content": completion.text},
                {
                    "role": "user",
                    "content": f"That was not valid: {error}. Answer again with only a JSON object matching this schema:\n{json.dumps(json_schema)}",
                },
            ]
            completion = self.complete(repair, **params)
            value, error = _parse(completion.text, schema)
        return StructuredResult[schema](value=value, error=error, completion=completion)  # type: ignore[valid-type]

    def _constrained(self) -> bool:
        return self.settings.model.startswith(("local/", "fake/"))

    def _response_format(self, schema: type[BaseModel], json_schema: dict[str, Any]) -> dict[str, Any]:
        if self._constrained():
            return {"type": "json_object", "schema": json_schema}
        return {"type": "json_schema", "json_schema": {"name": schema.__name__, "schema": json_schema}}

    def _cache_key(self, messages: Messages, params: dict[str, Any]) -> str:
        return ResponseCache.key(self.models, messages, params)


def _parse(text: str, schema: type[T]) -> tuple[T | None, str | None]:
    try:
        return schema.model_validate_json(_strip_fences(text)), None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        return None, f"{where}: {first['msg']}" if text.strip() else "empty response"


def _strip_fences(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[-1].rsplit("```", 1)[0]
    return text


def _cost(response: Any) -> float | None:
    try:
        return round(float(litellm.completion_cost(completion_response=response)), 6)
    except Exception:  # litellm raises for models without a known price
        return None


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
