"""All configuration in one object, read from ``COPILOT_*`` environment variables.

Create it once at the edge (CLI command, API app factory, test fixture) and pass it in.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LOCAL_MODEL_PREFIX = "local/"
DEFAULT_MODEL = "local/smollm2-135m-instruct"


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "copilot"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COPILOT_", env_file=None, extra="ignore")

    data_dir: Path = Field(
        default_factory=_default_data_dir, description="Where the SQLite file, chroma index and caches live."
    )
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite file in data_dir.")
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
    request_timeout_s: float = 120.0
    max_retries: int = 2
    cache_dir: Path | None = Field(default=None, description="On-disk response cache; off when unset.")

    index_on_ingest: bool = Field(default=True, description="Index ingested records for search right away.")
    chroma_path: Path | None = Field(default=None, description="Embedded chromadb folder; default: data_dir/chroma.")
    chroma_url: str | None = Field(
        default=None, description="chromadb server URL; when set, used instead of chroma_path."
    )

    api_keys_file: Path | None = Field(
        default=None, description="CSV of API keys (workspace,role,name,key) imported at start-up."
    )
    session_secret: str | None = Field(
        default=None, description="Signs web session cookies; default: a random secret kept in data_dir."
    )
    redact_pii: bool | None = Field(
        default=None, description="Mask PII before text leaves the process; default on for non-local models."
    )

    host: str = "127.0.0.1"
    port: int = 8000
    max_request_bytes: int = 5_000_000

    @field_validator("fallback_models", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'copilot.db'}"

    @property
    def resolved_chroma_path(self) -> Path:
        return self.chroma_path or self.data_dir / "chroma"

    @property
    def model_is_local(self) -> bool:
        return self.model.startswith(LOCAL_MODEL_PREFIX) or self.model.startswith("fake/")

    @property
    def should_redact_pii(self) -> bool:
        return self.redact_pii if self.redact_pii is not None else not self.model_is_local

    def resolved_session_secret(self) -> str:
        """The configured secret, else one generated once and kept in data_dir (so logins survive a restart)."""
        if self.session_secret:
            return self.session_secret
        self.ensure_dirs()
        path = self.data_dir / ".session_secret"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()

    def ensure_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
