"""The one way tasks call models: litellm with retries, fallbacks, a response cache and typed results."""

from __future__ import annotations

import asyncio
import copy as _copy
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Generic, TypeVar

import litellm
from pydantic import BaseModel, Field, ValidationError

from copilot.errors import ModelError
from copilot.gateway.cache import ResponseCache
from copilot.gateway.fake import FakeModel, FakeProvider
from copilot.gateway.local import LocalModels, grammar_schema, is_local, process_servers, server_options
from copilot.gateway.server import ModelServerError, ModelServers
from copilot.pii import Redaction
from copilot.profiles import Profile, profile_from_table
from copilot.settings import Settings

T = TypeVar("T", bound=BaseModel)
Messages = list[dict[str, str]]
Observer = Callable[[Messages, "Completion"], None]

RETRYABLE = (
    litellm.RateLimitError,
    litellm.Timeout,
    litellm.APIConnectionError,
    litellm.InternalServerError,
    litellm.ServiceUnavailableError,
    litellm.BadGatewayError,
)


class Completion(BaseModel):
    text: str
    model: str
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    cost_usd: float | None = None
    model_file: str | None = Field(default=None, description="For local models: the GGUF file name and sha256.")
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

    def __init__(self, response: Any, model: str, started: float, model_file: str | None = None) -> None:
        self._response, self._model, self._started, self._model_file = response, model, started, model_file
        self.completion: Completion | None = None

    def __iter__(self) -> Iterator[str]:
        parts: list[str] = []
        usage = None
        finished = False
        try:
            for chunk in self._response:
                usage = getattr(chunk, "usage", None) or usage
                text = chunk.choices[0].delta.content if chunk.choices else None
                if text:
                    parts.append(text)
                    yield text
            finished = True
        except RETRYABLE as error:
            raise ModelError(f"the model stream broke off: {type(error).__name__}", retryable=True) from None
        finally:
            if not finished:  # a caller that stops early must not leave the connection (and the model) busy
                self.close()
        text = "".join(parts)
        self.completion = Completion(
            text=text,
            model=self._model,
            tokens_in=getattr(usage, "prompt_tokens", 0) or 0,
            tokens_out=getattr(usage, "completion_tokens", 0) or len(parts),
            latency_ms=round((time.perf_counter() - self._started) * 1000, 1),
            model_file=self._model_file,
        )

    def close(self) -> None:
        close = getattr(self._response, "close", None)
        if callable(close):
            close()


_PROVIDERS_LOCK = threading.Lock()


def register_providers() -> None:
    """Make ``fake/...`` models known to litellm, once per process (litellm keeps providers in a global)."""
    with _PROVIDERS_LOCK:
        if any(entry["provider"] == "fake" for entry in litellm.custom_provider_map):
            return
        litellm.custom_provider_map = [
            *litellm.custom_provider_map,
            {"provider": "fake", "custom_handler": FakeProvider()},
        ]
        litellm.suppress_debug_info = True
        from litellm.utils import custom_llm_setup

        custom_llm_setup()


class Gateway:
    """Completion, streaming and structured output over litellm for one configuration."""

    def __init__(
        self,
        settings: Settings,
        *,
        servers: ModelServers | None = None,
        fake: FakeModel | None = None,
        sleep: Any = time.sleep,
    ) -> None:
        self.settings = settings
        self.fake = fake or FakeModel()  # answers fake/... models (tests hand in their own instance)
        self.observers: list[Observer] = []  # called with (messages, completion) after every completion
        self.before_call: Callable[[], None] | None = None  # e.g. the workspace budget check; raises to refuse
        self.models = [settings.model, *settings.fallback_models]
        self.task: str | None = None
        self.cache = ResponseCache(settings.cache_dir) if settings.cache_dir else None
        self._sleep = sleep
        self.on_token: Callable[[str], None] | None = None
        self.known_names: tuple[str, ...] = ()
        self.local = LocalModels(
            settings, servers or process_servers(settings.data_dir / "run", server_options(settings))
        )
        register_providers()

    def for_task(self, task: str) -> Gateway:
        """A copy for one task: its own model when COPILOT_TASK_MODELS names one, and its profile override."""
        copy = _copy.copy(self)
        copy.task = task
        if task in self.settings.task_models:
            copy.models = [self.settings.task_models[task], *self.settings.fallback_models]
        return copy

    def profile_of(self, model: str) -> Profile:
        """What ``model`` can do: the task's override, COPILOT_MODEL_PROFILE, the local catalog, the model table."""
        if self.task and self.task in self.settings.task_profiles:
            return self.settings.task_profiles[self.task]
        if model == self.settings.model and self.settings.model_profile is not None:
            return self.settings.model_profile
        if is_local(model) and (profile := self.local.profile(model)) is not None:
            return profile
        return profile_from_table(model) or Profile.capable

    @property
    def profile(self) -> Profile:
        return self.profile_of(self.model)

    def observed(self, observer: Observer) -> Gateway:
        """A copy that also calls ``observer(messages, completion)`` after every completion (counting, recording)."""
        copy = _copy.copy(self)
        copy.observers = [*self.observers, observer]
        return copy

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
        return self.models[0]

    def check_ready(self) -> None:
        """Fail fast with one line when a local model file is missing or corrupt, or its server cannot start."""
        for model in self.models:
            if is_local(model):
                self.local.route(model)

    def _target(self, model: str) -> tuple[str, dict[str, Any]]:
        """The litellm model name and extra arguments for ``model`` (local ones go to their server)."""
        if model.startswith("fake/"):
            return model, {"api_base": self.fake.api_base}
        if not is_local(model):
            return model, {}
        try:
            return self.local.route(model)
        except ModelServerError as error:
            raise litellm.ServiceUnavailableError(str(error), llm_provider="local", model=model) from None

    def _model_file(self, model: str) -> str | None:
        return self.local.file(model).label if is_local(model) else None

    # -- plain completion -------------------------------------------------------------------
    @property
    def masks_pii(self) -> bool:
        """Mask personal data when any model this gateway may call is remote (COPILOT_REDACT_PII overrides)."""
        if self.settings.redact_pii is not None:
            return self.settings.redact_pii
        return not all(is_local(model) or model.startswith("fake/") for model in self.models)

    def complete(self, messages: Messages, **params: Any) -> Completion:
        key = self._cache_key(messages, params)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            completion = Completion.model_validate(hit).model_copy(update={"cached": True})
            if self.on_token is not None:
                self.on_token(completion.text)
            self._notify(messages, completion)
            return completion
        if self.before_call is not None:
            self.before_call()
        redaction = Redaction(names=self.known_names) if self.masks_pii else None
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
        self._notify(messages, completion)
        return completion

    def _notify(self, messages: Messages, completion: Completion) -> None:
        for observer in self.observers:
            observer(messages, completion)

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
        target, extra = self._target(model)
        started = time.perf_counter()
        response = litellm.completion(
            model=target, messages=messages, timeout=self.settings.request_timeout_s, num_retries=0, **extra, **params
        )
        latency = (time.perf_counter() - started) * 1000
        usage = getattr(response, "usage", None)
        return Completion(
            text=response.choices[0].message.content or "",
            model=model,
            tokens_in=getattr(usage, "prompt_tokens", 0) or 0,
            tokens_out=getattr(usage, "completion_tokens", 0) or 0,
            latency_ms=round(latency, 1),
            cost_usd=None if is_local(model) else _cost(response),
            model_file=self._model_file(model),
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
            target, extra = self._target(model)
            return litellm.completion(
                model=target,
                messages=messages,
                stream=True,
                timeout=self.settings.request_timeout_s,
                num_retries=0,
                stream_options={"include_usage": True},
                **extra,
                **params,
            )

        response = self._with_retries(open_stream)
        return StreamingCompletion(response, opened["model"], started, self._model_file(opened["model"]))

    async def astream(self, messages: Messages, **params: Any) -> AsyncIterator[str]:
        iterator = iter(await asyncio.to_thread(self.stream, messages, **params))
        sentinel = object()
        while (chunk := await asyncio.to_thread(next, iterator, sentinel)) is not sentinel:
            yield chunk  # type: ignore[misc]

    # -- structured output ------------------------------------------------------------------
    def structured(self, messages: Messages, schema: type[T], **params: Any) -> StructuredResult[T]:
        """JSON matching ``schema``: grammar-constrained on local models, JSON mode elsewhere (one repair retry)."""
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
                    "content": f"That was not valid: {error}. Answer again with only a JSON object matching this "
                    f"schema:\n{json.dumps(json_schema)}",
                },
            ]
            completion = self.complete(repair, **params)
            value, error = _parse(completion.text, schema)
        return StructuredResult[schema](value=value, error=error, completion=completion)  # type: ignore[valid-type]

    def _constrained(self) -> bool:
        """Local (llama.cpp grammar) and fake models decode under the schema itself: no repair round needed."""
        return self.model.startswith(("local/", "fake/"))

    def _response_format(self, schema: type[BaseModel], json_schema: dict[str, Any]) -> dict[str, Any]:
        if self._constrained():
            return {"type": "json_object", "schema": grammar_schema(json_schema)}
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
