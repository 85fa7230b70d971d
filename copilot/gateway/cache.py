"""On-disk response cache keyed by (models, messages, parameters): re-runs with no change make no model calls."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import diskcache


class ResponseCache:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._cache = diskcache.Cache(str(directory))

    @staticmethod
    def key(models: list[str], messages: list[dict[str, str]], params: dict[str, Any]) -> str:
        canonical = json.dumps({"models": models, "messages": messages, "params": params}, sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        return self._cache.get(key)

    def set(self, key: str, value: dict[str, Any]) -> None:
        self._cache.set(key, value)

    def __len__(self) -> int:
        return len(self._cache)
