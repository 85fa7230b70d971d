"""All configuration in one object, read from ``COPILOT_*`` environment variables.

Create it once at the edge (CLI command, API app factory, test fixture) and pass it in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from copilot.profiles import Profile

LOCAL_MODEL_PREFIX = "local/"
DEFAULT_MODEL = "local/smollm2-135m-instruct"


def custom_model_name(path: Path) -> str:
    """``local/<file stem>`` for a file set by COPILOT_LOCAL_MODEL_PATH, so provenance never names another model."""
    stem = path.stem if path.suffix == ".gguf" else path.name
    return LOCAL_MODEL_PREFIX + (re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-") or "custom")


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "copilot"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COPILOT_", env_file=None, extra="ignore")

    data_dir: Path = Field(
        default_factory=_default_data_dir, description="Where the SQLite file, chroma index and caches live."
    )
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite file in data_dir.")
    database_pool_size: int = Field(
        default=10, ge=1, le=500, description="Connections a process keeps open to a database server."
    )
    database_max_overflow: int = Field(
        default=30, ge=0, le=500, description="Extra connections under load (API threads hold one or two each)."
    )
    workspace: str = Field(
        default="demo", description="Workspace slug used by CLI commands when --workspace is not given."
    )

    model: str = Field(
        default=DEFAULT_MODEL, description="litellm model name, e.g. openai/gpt-4o-mini or ollama/llama3."
    )
    fallback_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Models tried in order when the main one fails."
    )
    local_model_path: Path | None = Field(
        default=None, description="A GGUF file (or folder holding one) for local/ models."
    )
    local_model_sha256: str | None = Field(default=None, description="Expected sha256 of a custom local model file.")
    local_context_tokens: int = 4096
    local_threads: int | None = Field(default=None, description="CPU threads of the local model server; default: all.")
    local_server_timeout_s: float = Field(default=180.0, description="How long a local model server may take to start.")
    model_profile: Profile | None = Field(
        default=None, description="What COPILOT_MODEL can do (small|capable); default: from the built-in model table."
    )
    task_models: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description="Per-task models: reply_draft=openai/gpt-4o-mini,ticket_summary=local/..."
    )
    task_profiles: Annotated[dict[str, Profile], NoDecode] = Field(
        default_factory=dict, description="Per-task profile overrides: reply_draft=capable,..."
    )
    task_strategies: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description="Per-task strategy for 'auto': reply_draft=model,tone_rewrite=model,..."
    )
    model_concurrency: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=dict,
        description="Model calls a bulk job keeps in flight per provider: openai=16,local=1 (default local 1, else 4).",
    )
    request_timeout_s: float = 120.0
    max_retries: int = 2
    cache_dir: Path | None = Field(default=None, description="On-disk response cache; off when unset.")

    index_on_ingest: bool = Field(default=True, description="Index ingested records for search right away.")
    embedding_backend: Literal["auto", "onnx", "onnx-fp32", "torch", "torch-bf16"] = Field(
        default="auto",
        description="Sentence embeddings: torch-bf16 (CPUs with native bf16), onnx-fp32 (exported locally), onnx "
        "(int8), torch, or auto (the first of torch-bf16 and onnx-fp32 that agrees with torch here, else torch).",
    )
    embedding_cache_dir: Path | None = Field(
        default=None,
        description="Where the ONNX exports and the bf16 check are cached; default: data_dir/models/embeddings.",
    )
    ray_address: str | None = Field(
        default=None, description="Ray cluster (ray://head:10001, 127.0.0.1:6379): bulk embedding, task and eval runs."
    )
    ray_workers: int = Field(default=2, ge=1, le=1024, description="Embedding actors on the Ray cluster (1 CPU each).")
    ray_min_batch: int = Field(
        default=2048, ge=1, description="Embedding calls with fewer texts stay in the process (queries, one ticket)."
    )
    chroma_path: Path | None = Field(default=None, description="Embedded chromadb folder; default: data_dir/chroma.")
    chroma_url: str | None = Field(
        default=None, description="chromadb server URL; when set, used instead of chroma_path."
    )

    job_threads: int = Field(
        default=1, ge=0, le=64, description="Job runner threads in this process; 0: only queue jobs (workers run them)."
    )
    job_lease_s: float = Field(
        default=60.0, ge=2.0, le=3600.0, description="A job whose runner missed heartbeats this long is claimed again."
    )
    job_poll_s: float = Field(default=1.0, gt=0.0, le=60.0, description="How often an idle runner looks for jobs.")

    api_keys_file: Path | None = Field(
        default=None, description="CSV of API keys (workspace,role,name,key) imported at start-up."
    )
    session_idle_s: int = Field(default=8 * 3600, ge=60, description="A web session ends after this long idle.")
    session_max_s: int = Field(default=24 * 3600, ge=60, description="A web session ends this long after login.")
    cookie_secure: Literal["auto", "true", "false"] = Field(
        default="auto", description="Secure session cookie: auto = when the request came over https."
    )
    redact_pii: bool | None = Field(
        default=None, description="Mask PII before text leaves the process; default on for non-local models."
    )

    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Internal host names webhooks may reach despite the SSRF rules."
    )

    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Proxies trusted for X-Forwarded-Proto/For (the scheme decides Secure cookies).",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    keep_alive_s: int = Field(
        default=75,
        ge=1,
        description="Idle keep-alive connections stay open this long; keep it above a proxy's idle timeout.",
    )
    max_request_bytes: int = 5_000_000

    @field_validator("fallback_models", "webhook_allowed_hosts", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("task_models", "task_profiles", "task_strategies", "model_concurrency", mode="before")
    @classmethod
    def _split_pairs(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        pairs = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            task, sep, target = item.partition("=")
            if not sep or not task.strip() or not target.strip():
                raise ValueError(f"expected task=value pairs separated by commas, got '{item}'")
            pairs[task.strip()] = target.strip()
        return pairs

    @field_validator("model_concurrency")
    @classmethod
    def _positive_caps(cls, value: dict[str, int]) -> dict[str, int]:
        if bad := [provider for provider, cap in value.items() if cap < 1]:
            raise ValueError(f"a provider's cap is at least 1 call in flight: {', '.join(bad)}")
        return value

    @model_validator(mode="after")
    def _known_task_strategies(self) -> Settings:
        if self.task_strategies:
            from copilot.errors import CopilotError
            from copilot.tasks import registry

            known = registry.tasks()
            for task, strategy in self.task_strategies.items():
                if task not in known:
                    raise ValueError(
                        f"COPILOT_TASK_STRATEGIES: unknown task '{task}' (one of: {', '.join(sorted(known))})"
                    )
                try:
                    known[task].resolve_strategy("auto", Profile.small, strategy)
                except CopilotError as error:
                    raise ValueError(str(error)) from None
        return self

    @model_validator(mode="after")
    def _name_custom_local_model(self) -> Settings:
        """A GGUF set by COPILOT_LOCAL_MODEL_PATH is the default model, named after its file (never SmolLM2's name)."""
        if self.local_model_path is not None and "model" not in self.model_fields_set:
            self.model = custom_model_name(self.local_model_path)
        return self

    @classmethod
    def from_env(cls) -> Settings:
        """The settings from the COPILOT_* environment; a bad value raises InvalidInput naming the variable."""
        from pydantic import ValidationError

        from copilot.errors import InvalidInput

        try:
            return cls()
        except ValidationError as error:
            raise InvalidInput("; ".join(_env_problem(problem) for problem in error.errors())) from None

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'copilot.db'}"

    @property
    def resolved_chroma_path(self) -> Path:
        return self.chroma_path or self.data_dir / "chroma"

    @property
    def resolved_embedding_cache_dir(self) -> Path:
        return self.embedding_cache_dir or self.data_dir / "models" / "embeddings"

    @property
    def model_is_local(self) -> bool:
        return self.model.startswith(LOCAL_MODEL_PREFIX) or self.model.startswith("fake/")

    @property
    def should_redact_pii(self) -> bool:
        return self.redact_pii if self.redact_pii is not None else not self.model_is_local

    def ensure_dirs(self) -> None:
        """The data dir, private to its owner: it holds the database, keys and caches."""
        if not self.data_dir.exists():
            self.data_dir.mkdir(parents=True, mode=0o700)


def _env_problem(problem: Mapping[str, Any]) -> str:
    message = str(problem["msg"]).removeprefix("Value error, ")
    if not problem["loc"]:
        return message
    field, *key = (str(part) for part in problem["loc"])
    where = f"COPILOT_{field.upper()}" + (f" ({'.'.join(key)})" if key else "")
    return f"{where}: {message}"
