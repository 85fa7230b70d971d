"""File integrity checks for the model files the product ships in wheels."""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=16)
def sha256_file(path: Path) -> str:
    """Hex sha256 of a file (cached per process: model files are large and do not change under us)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_dir(package: str) -> Path | None:
    """Folder of an installed package, found without importing it (None when it is not installed)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))
