"""``local/<name>`` models: which GGUF file a name means, its profile, and where its server answers.

Names from the catalog (``local/smollm2-135m-instruct``, ``local/qwen2.5-coder-0.5b``, ``local/qwen2.5-coder-1.5b``)
mean the files their wheels carry; any other ``local/`` name means the file COPILOT_LOCAL_MODEL_PATH points at.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from copilot.gateway.catalog import CATALOG, ModelFile, ModelFileError, catalog_file, custom_file
from copilot.gateway.server import ModelServers, ServerOptions
from copilot.profiles import Profile
from copilot.settings import LOCAL_MODEL_PREFIX, Settings

# llama.cpp unrolls a string's maxLength into nested optional rules; past a few hundred it
# rejects the grammar and then crashes the server. max_tokens and the task's own pydantic
# validation bound the length instead.
GRAMMAR_MAX_REPEAT = 256
LOCAL_API_KEY = "sk-local-no-key"


def is_local(model: str) -> bool:
    return model.startswith(LOCAL_MODEL_PREFIX)


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


class LocalModels:
    """Resolves ``local/`` names to verified files and serves them through supervised servers."""

    def __init__(self, settings: Settings, servers: ModelServers) -> None:
        self.settings, self.servers = settings, servers
        self._files: dict[str, ModelFile] = {}
        self._lock = threading.Lock()

    def file(self, model: str) -> ModelFile:
        """The verified file behind a ``local/`` model name; ModelFileError (one line, with the fix) otherwise."""
        with self._lock:
            if model not in self._files:
                self._files[model] = self._resolve(model)
            return self._files[model]

    def _resolve(self, model: str) -> ModelFile:
        name = model.removeprefix(LOCAL_MODEL_PREFIX)
        if name in CATALOG and self.settings.local_model_path is None:
            return catalog_file(CATALOG[name], self.models_dir)
        if self.settings.local_model_path is not None:
            return custom_file(self.settings.local_model_path, self.settings.local_model_sha256)
        if name in CATALOG:
            return catalog_file(CATALOG[name], self.models_dir)
        known = ", ".join(f"local/{n}" for n in CATALOG)
        raise ModelFileError(f"unknown local model '{model}' (known: {known}; or set COPILOT_LOCAL_MODEL_PATH)")

    @property
    def models_dir(self) -> Path:
        return self.settings.data_dir / "models"

    def profile(self, model: str) -> Profile | None:
        """The catalog's profile for the file behind the name (None for a file the catalog does not know)."""
        name = model.removeprefix(LOCAL_MODEL_PREFIX)
        if self.settings.local_model_path is None and name in CATALOG:
            return CATALOG[name].profile
        try:
            spec = self.file(model).spec
        except ModelFileError:
            return None
        return spec.profile if spec else None

    def route(self, model: str) -> tuple[str, dict[str, Any]]:
        """The litellm model name and arguments that reach this model's server (started on first use)."""
        file = self.file(model)
        alias = model.removeprefix(LOCAL_MODEL_PREFIX)
        base = self.servers.base_url(alias, file)
        return f"openai/{alias}", {"api_base": f"{base}/v1", "api_key": LOCAL_API_KEY}


def server_options(settings: Settings) -> ServerOptions:
    return ServerOptions(settings.local_context_tokens, settings.local_threads, settings.local_server_timeout_s)


@lru_cache(maxsize=8)
def process_servers(run_dir: Path, options: ServerOptions) -> ModelServers:
    """The model servers of this process for one data dir (a process resource, like a connection pool)."""
    import atexit

    servers = ModelServers(run_dir, options)
    atexit.register(servers.stop)
    return servers
