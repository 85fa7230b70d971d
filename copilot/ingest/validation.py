"""Validate chunks of rows into their pydantic schemas; the first bad row fails with ``file:line: field: problem``."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from copilot.ingest.readers import Chunk, IngestError
from copilot.ingest.schemas import ROW_SCHEMAS, Row

ProgressCallback = Callable[[int], None]


@dataclass
class KindBatch:
    """The validated rows of one kind in file order, with their line numbers."""

    lines: list[int] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)


def validate_chunks(path: Path, chunks: Iterable[Chunk], progress: ProgressCallback | None) -> dict[str, KindBatch]:
    batches: dict[str, KindBatch] = defaultdict(KindBatch)
    for chunk in chunks:
        batch = batches[chunk.kind]
        batch.rows.extend(validate_chunk(path, chunk))
        batch.lines.extend(chunk.lines)
        if progress:
            progress(len(chunk.lines))
    return batches


def validate_chunk(path: Path, chunk: Chunk) -> list[Row]:
    """Validate rows of one kind; raw JSON lines go through pydantic in one call per chunk."""
    schema = ROW_SCHEMAS[chunk.kind]
    try:
        if not chunk.raw:
            return [schema.model_validate(data) for data in chunk.items]
        rows = _list_adapter(schema).validate_json("[" + ",".join(chunk.items) + "]")
    except ValidationError as error:
        first = error.errors()[0]
        if first["type"] == "json_invalid":
            raise _not_json(path, chunk) from None
        index, *loc = first["loc"] if chunk.raw else (_failing_index(schema, chunk.items), *first["loc"])
        where = ".".join(str(part) for part in loc) or "(row)"
        raise IngestError(f"{path}:{chunk.lines[int(index)]}: {where}: {first['msg']}") from None
    if len(rows) != len(chunk.items):  # a line held more than one JSON value, e.g. `{...}, {...}`
        raise _not_json(path, chunk)
    return rows  # type: ignore[return-value]


def _not_json(path: Path, chunk: Chunk) -> IngestError:
    bad = next(line for line, text in zip(chunk.lines, chunk.items, strict=True) if not _is_json(text))
    return IngestError(f"{path}:{bad}: (row): not valid JSON")


@cache
def _list_adapter(schema: type[Row]) -> TypeAdapter[list[Row]]:
    return TypeAdapter(list[schema])  # type: ignore[valid-type]


def _failing_index(schema: type[Row], items: list[dict[str, Any]]) -> int:
    for index, data in enumerate(items):
        try:
            schema.model_validate(data)
        except ValidationError:
            return index
    raise AssertionError("a chunk that failed validation has no failing row")


def _is_json(text: str | None) -> bool:
    try:
        json.loads(text or "")
    except json.JSONDecodeError:
        return False
    return True
