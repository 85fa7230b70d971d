"""Read JSONL and CSV files into rows tagged with their line number and kind, in chunks of one kind.

A bad line raises ``IngestError`` with ``file:line: field: problem``; nothing here touches the database.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby, islice
from pathlib import Path
from typing import Any, TypeVar

from copilot.errors import InvalidInput
from copilot.store.models import CRM_MODELS

CHUNK_SIZE = 2000
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")

T = TypeVar("T")


class IngestError(InvalidInput):
    """A row that failed validation; the message is ``file:line: field: problem``."""


@dataclass
class SourceRow:
    """One input row: parsed ``data``, or for single-kind JSONL the raw line (validated straight from JSON)."""

    line: int
    kind: str
    data: dict[str, Any] | None = None
    raw: str | None = None


@dataclass
class Chunk:
    """Rows of one kind validated together: JSON texts (``raw``) or parsed dicts, with their line numbers."""

    kind: str
    raw: bool
    lines: list[int]
    items: list[Any]


def kind_from_filename(path: Path) -> str | None:
    stem = path.name.split(".")[0].lower().replace("-", "_")
    for kind in CRM_MODELS:
        if stem in (kind, f"{kind}s", kind.replace("_", "")):
            return kind
    return None


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def read_rows(path: Path, kind: str | None) -> Iterator[SourceRow]:
    """Parse a JSONL or CSV file into raw rows, each tagged with its line number and kind."""
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        yield from _read_jsonl(path, kind)
    elif suffix == ".csv":
        yield from _read_csv(path, kind)
    else:
        raise InvalidInput(f"{path}: unsupported file type '{suffix}' (use .jsonl or .csv)")


def _row_kind(path: Path, line: int, data: dict[str, Any], default: str | None) -> str:
    kind = data.pop("kind", None) or default
    if kind is None:
        raise IngestError(
            f"{path}:{line}: kind: missing (pass --kind, name the file after the kind, or add a 'kind' field)"
        )
    if kind not in CRM_MODELS:
        raise IngestError(f"{path}:{line}: kind: unknown kind '{kind}' (one of: {', '.join(CRM_MODELS)})")
    return kind


def _read_jsonl(path: Path, kind: str | None) -> Iterator[SourceRow]:
    with path.open(encoding="utf-8") as handle:
        yield from _jsonl_rows(path, enumerate(handle, start=1), kind)


def _jsonl_rows(path: Path, numbered_lines: Iterable[tuple[int, str]], kind: str | None) -> Iterator[SourceRow]:
    for line_no, line in numbered_lines:
        if line.isspace():
            continue
        if kind is not None and '"kind"' not in line:
            yield SourceRow(line_no, kind, raw=line)
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise IngestError(f"{path}:{line_no}: (row): not valid JSON: {error.msg}") from None
        if not isinstance(data, dict):
            raise IngestError(f"{path}:{line_no}: (row): expected a JSON object")
        yield SourceRow(line_no, _row_kind(path, line_no, data, kind), data)


def _read_csv(path: Path, kind: str | None) -> Iterator[SourceRow]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        for data in reader:
            line_no = reader.line_num
            if None in data:
                raise IngestError(f"{path}:{line_no}: (row): more cells than header columns")
            cleaned = {key.strip(): value for key, value in data.items() if value not in ("", None)}
            yield SourceRow(line_no, _row_kind(path, line_no, cleaned, kind), cleaned)


def read_chunks(path: Path, kind: str | None) -> Iterator[Chunk]:
    """The file's rows in chunks of one kind; single-kind JSONL skips parsing (pydantic reads the JSON)."""
    if kind is not None and path.suffix.lower() in JSONL_SUFFIXES:
        return _read_jsonl_chunks(path, kind)
    return chunk_rows(read_rows(path, kind))


def _read_jsonl_chunks(path: Path, kind: str) -> Iterator[Chunk]:
    """JSONL of one kind: each block of lines goes to pydantic as it is, unless a line in it names its own kind."""
    with path.open(encoding="utf-8") as handle:
        first = 1
        for block in _batched(handle, CHUNK_SIZE):
            numbered = enumerate(block, start=first)
            if '"kind"' in "".join(block):
                yield from chunk_rows(_jsonl_rows(path, numbered, kind))
            else:
                lines = [line_no for line_no, line in numbered if not line.isspace()]
                if lines:
                    yield Chunk(kind, True, lines, [line for line in block if not line.isspace()])
            first += len(block)


def chunk_rows(rows: Iterable[SourceRow]) -> Iterator[Chunk]:
    """Consecutive rows of one kind and form, up to CHUNK_SIZE at a time."""
    for (kind, raw), group in groupby(rows, key=lambda row: (row.kind, row.raw is not None)):
        for block in _batched(group, CHUNK_SIZE):
            yield Chunk(kind, raw, [row.line for row in block], [row.raw if raw else row.data for row in block])


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while block := list(islice(iterator, size)):
        yield block
