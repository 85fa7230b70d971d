"""Reading JSONL files one object per line, with errors that name ``file:line``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def json_objects(path: Path, error: type[Exception]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; ``error`` is raised for a line that is not a JSON object."""
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as problem:
                raise error(f"{path}:{line_number}: not valid JSON: {problem.msg}") from None
            if not isinstance(row, dict):
                raise error(f"{path}:{line_number}: each line must be a JSON object")
            yield line_number, row
