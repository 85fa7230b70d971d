"""Ingest JSONL and CSV files into the record store.

One file is one transaction: the first bad row aborts it with ``file:line: field: problem``
and nothing is written. Rows with an ``external_id`` are upserted on
(workspace, kind, external_id), so re-ingesting a file updates instead of duplicating.
"""

from __future__ import annotations

import csv
import gc
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from itertools import groupby, islice, repeat
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import JSON, Date, DateTime, Numeric, Table, delete, func, insert, select
from sqlalchemy import Enum as SAEnum
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from copilot.errors import InvalidInput
from copilot.ingest.schemas import KIND_ORDER, REFERENCE_FIELDS, ROW_SCHEMAS, CallRow, Row
from copilot.store import Repo, Store
from copilot.store.models import CRM_MODELS, CallTurn, UtcDateTime

BATCH_SIZE = 2000
CHUNK_SIZE = 2000
JSON_FIELDS = {"stage_history", "participants", "turns", "tags"}
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
SQLITE_BULK_CACHE_SIZE = -64 * 1024  # negative: KiB

T = TypeVar("T")


class IngestError(InvalidInput):
    """A row that failed validation; the message is ``file:line: field: problem``."""


class IngestReport(BaseModel):
    source: str
    dry_run: bool = False
    inserted: dict[str, int] = {}
    updated: dict[str, int] = {}
    written_ids: dict[str, list[int]] = {}

    @property
    def total(self) -> int:
        return sum(self.inserted.values()) + sum(self.updated.values())


@dataclass
class SourceRow:
    """One input row: parsed ``data``, or for single-kind JSONL the raw line (validated straight from JSON)."""

    line: int
    kind: str
    data: dict[str, Any] | None = None
    raw: str | None = None


@dataclass
class _Chunk:
    """Rows of one kind validated together: JSON texts (``raw``) or parsed dicts, with their line numbers."""

    kind: str
    raw: bool
    lines: list[int]
    items: list[Any]


@dataclass
class _KindBatch:
    lines: list[int] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)


@dataclass
class _Columns:
    """Column values of a batch of rows, each column in row order; ``constants`` hold one value for every row."""

    values: dict[str, list[Any]]
    constants: dict[str, Any]

    def __len__(self) -> int:
        return len(self.values["external_id"])

    def take(self, indexes: list[int]) -> _Columns:
        if len(indexes) == len(self):  # then the indexes are 0..n-1: every row, in order
            return self
        return _Columns(
            {name: [column[index] for index in indexes] for name, column in self.values.items()}, self.constants
        )

    def records(self) -> list[dict[str, Any]]:
        names = list(self.values)
        return [dict(zip(names, row, strict=True)) | self.constants for row in zip(*self.values.values(), strict=True)]


def kind_from_filename(path: Path) -> str | None:
    stem = path.name.split(".")[0].lower().replace("-", "_")
    for kind in CRM_MODELS:
        if stem in (kind, f"{kind}s", kind.replace("_", "")):
            return kind
    return None


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


def _read_chunks(path: Path, kind: str | None) -> Iterator[_Chunk]:
    if kind is not None and path.suffix.lower() in JSONL_SUFFIXES:
        return _read_jsonl_chunks(path, kind)
    return _chunks(read_rows(path, kind))


def _read_jsonl_chunks(path: Path, kind: str) -> Iterator[_Chunk]:
    """JSONL of one kind: each block of lines goes to pydantic as it is, unless a line in it names its own kind."""
    with path.open(encoding="utf-8") as handle:
        first = 1
        for block in _batched(handle, CHUNK_SIZE):
            numbered = enumerate(block, start=first)
            if '"kind"' in "".join(block):
                yield from _chunks(_jsonl_rows(path, numbered, kind))
            else:
                lines = [line_no for line_no, line in numbered if not line.isspace()]
                if lines:
                    yield _Chunk(kind, True, lines, [line for line in block if not line.isspace()])
            first += len(block)


def _chunks(rows: Iterable[SourceRow]) -> Iterator[_Chunk]:
    """Consecutive rows of one kind and form, up to CHUNK_SIZE at a time."""
    for (kind, raw), group in groupby(rows, key=lambda row: (row.kind, row.raw is not None)):
        for block in _batched(group, CHUNK_SIZE):
            yield _Chunk(kind, raw, [row.line for row in block], [row.raw if raw else row.data for row in block])


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while block := list(islice(iterator, size)):
        yield block


def _validate_chunk(path: Path, chunk: _Chunk) -> list[Row]:
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


def _not_json(path: Path, chunk: _Chunk) -> IngestError:
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


class Ingestor:
    """Writes validated rows of one workspace, resolving references and upserting by external id."""

    def __init__(self, repo: Repo, source: str) -> None:
        self.repo = repo
        self.session: Session = repo.session
        self.source = source
        self._id_maps: dict[str, dict[str, int]] = {}
        self.now = datetime.now(UTC)
        self.dialect = self.session.get_bind().dialect.name
        if self.dialect not in ("sqlite", "postgresql"):
            raise InvalidInput(f"ingest supports SQLite and PostgreSQL, not {self.dialect}")

    def ids_by_external_id(self, kind: str) -> dict[str, int]:
        if kind not in self._id_maps:
            model = CRM_MODELS[kind]
            query = select(model.external_id, model.id).where(
                model.workspace_id == self.repo.workspace_id, model.external_id.is_not(None)
            )
            self._id_maps[kind] = dict(self.session.execute(query).tuples().all())
        return self._id_maps[kind]

    @contextmanager
    def bulk_cache(self) -> Iterator[None]:
        """On SQLite, a page cache that holds the indexes a bulk write fills,
        instead of spilling them mid-transaction."""
        if self.dialect != "sqlite":
            yield
            return
        connection = self._dbapi_connection()
        previous = connection.execute("PRAGMA cache_size").fetchone()[0]
        connection.execute(f"PRAGMA cache_size={SQLITE_BULK_CACHE_SIZE}")
        try:
            yield
        finally:
            connection.execute(f"PRAGMA cache_size={int(previous)}")

    def _dbapi_connection(self) -> Any:
        return self.session.connection().connection.driver_connection

    def write(self, kind: str, batch: _KindBatch, report: IngestReport) -> None:
        table: Table = CRM_MODELS[kind].__table__  # type: ignore[assignment]
        existing = self.ids_by_external_id(kind)
        columns = self._columns(kind, batch)
        keys = columns.values["external_id"]
        fresh, changed, unkeyed = _plan(keys, existing)
        self._executemany(insert(table), table, columns.take(fresh))
        fresh_keys = [keys[index] for index in fresh]
        existing.update(zip(fresh_keys, self._ids_of_last_insert(table, fresh_keys), strict=True))
        self._executemany(self._upsert_statement(table, columns), table, columns.take(changed))
        unkeyed_ids = self._insert_returning_ids(table, columns.take(unkeyed))
        row_ids = _row_ids(keys, existing, dict(zip(unkeyed, unkeyed_ids, strict=True)))
        if kind == "call":
            self._replace_turns(batch.rows, row_ids)
        inserted = len(fresh) + len(unkeyed)
        report.inserted[kind] = report.inserted.get(kind, 0) + inserted
        report.updated[kind] = report.updated.get(kind, 0) + len(keys) - inserted
        report.written_ids.setdefault(kind, []).extend(dict.fromkeys(row_ids))

    def _columns(self, kind: str, batch: _KindBatch) -> _Columns:
        """Validated rows as columns: references resolved to ids, JSON made plain, defaults filled in."""
        names = [name for name in ROW_SCHEMAS[kind].model_fields if name != "turns"]
        fields = [vars(row) for row in batch.rows]  # plain dict lookups beat pydantic attribute access
        values = {name: list(map(itemgetter(name), fields)) for name in names}
        self._resolve_references(values, batch.lines)
        for name in JSON_FIELDS.intersection(values):
            values[name] = [_jsonable(value) for value in values[name]]
        defaults = {column: self.now for column in _DEFAULT_TO_NOW.get(kind, ())} | _DEFAULTS.get(kind, {})
        for name, default in defaults.items():
            values[name] = [default if value is None else value for value in values[name]]
        return _Columns(
            values, {"workspace_id": self.repo.workspace_id, "created_at": self.now, "updated_at": self.now}
        )

    def _resolve_references(self, values: dict[str, list[Any]], lines: list[int]) -> None:
        """Replace each reference column by the ids it names; fail on the first row naming an unknown record."""
        unknown: list[tuple[int, str, str]] = []
        for name in [name for name in REFERENCE_FIELDS if name in values]:
            external_ids = values.pop(name)
            record_ids = values[f"{name}_id"] = list(
                map(self.ids_by_external_id(REFERENCE_FIELDS[name]).get, external_ids)
            )
            index = _first_unresolved(external_ids, record_ids)
            if index is not None:
                unknown.append((index, name, external_ids[index]))
        if unknown:
            index, name, external_id = min(unknown)
            raise IngestError(
                f"{self.source}:{lines[index]}: {name}: "
                f"no {REFERENCE_FIELDS[name]} with external_id '{external_id}' in this workspace"
            )

    def _upsert_statement(self, table: Table, columns: _Columns) -> Any:
        statement = (sqlite if self.dialect == "sqlite" else postgresql).insert(table)
        names = [*columns.values, *columns.constants]
        return statement.on_conflict_do_update(
            index_elements=["workspace_id", "external_id"],
            set_={c: statement.excluded[c] for c in names if c not in ("workspace_id", "external_id", "created_at")},
        )

    def _executemany(self, statement: Any, table: Table, columns: _Columns) -> None:
        if not len(columns):
            return
        if self.dialect != "sqlite":
            records = columns.records()
            for start in range(0, len(records), BATCH_SIZE):
                self.session.execute(statement, records[start : start + BATCH_SIZE])
            return
        # SQLite bulk path: compile once, encode values as SQLAlchemy's own bind processing
        # would for these column types, and hand every row to one DB-API executemany.
        compiled = statement.compile(
            dialect=self.session.get_bind().dialect, column_keys=[*columns.values, *columns.constants]
        )
        params = [_sqlite_column(table.c[name].type, columns, name) for name in compiled.positiontup]
        cursor = self._dbapi_connection().cursor()
        try:
            cursor.executemany(compiled.string, zip(*params, strict=False))
        finally:
            cursor.close()

    def _ids_of_last_insert(self, table: Table, keys: list[str]) -> list[int]:
        """Ids of the rows with these external ids just inserted by one executemany, in order."""
        if not keys:
            return []
        if self.dialect == "sqlite":
            # Inside our write transaction SQLite gives new rows max(rowid)+1 in insertion order.
            last = self.session.execute(select(func.max(table.c.id))).scalar_one()
            return list(range(last - len(keys) + 1, last + 1))
        query = select(table.c.external_id, table.c.id).where(
            table.c.workspace_id == self.repo.workspace_id, table.c.external_id.in_(keys)
        )
        ids = dict(self.session.execute(query).tuples().all())
        return [ids[key] for key in keys]

    def _insert_returning_ids(self, table: Table, columns: _Columns) -> list[int]:
        if not len(columns):
            return []
        result = self.session.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True), columns.records()
        )
        return list(result.scalars())

    def _replace_turns(self, rows: list[Row], call_ids: list[int]) -> None:
        self.session.execute(delete(CallTurn).where(CallTurn.call_id.in_(call_ids)))
        now = datetime.now(UTC)
        turns = [
            {
                "workspace_id": self.repo.workspace_id,
                "call_id": call_id,
                "position": position,
                "speaker": turn.speaker,
                "start_s": turn.start_s,
                "text": turn.text,
                "created_at": now,
                "updated_at": now,
            }
            for row, call_id in zip(rows, call_ids, strict=True)
            if isinstance(row, CallRow)
            for position, turn in enumerate(row.turns)
        ]
        if turns:
            self.session.execute(insert(CallTurn.__table__), turns)


def _plan(keys: list[str | None], existing: dict[str, int]) -> tuple[list[int], list[int], list[int]]:
    """Indexes of the rows to insert, to update (the last row of a key wins) and to insert without a key."""
    last = dict(zip(keys, range(len(keys)), strict=True))
    unkeyed = [index for index, key in enumerate(keys) if key is None] if last.pop(None, None) is not None else []
    if existing.keys().isdisjoint(last):
        return list(last.values()), [], unkeyed
    fresh = [index for key, index in last.items() if key not in existing]
    return fresh, [index for key, index in last.items() if key in existing], unkeyed


def _row_ids(keys: list[str | None], existing: dict[str, int], unkeyed_ids: dict[int, int]) -> list[int]:
    if not unkeyed_ids:
        return list(map(existing.__getitem__, keys))
    return [unkeyed_ids[index] if key is None else existing[key] for index, key in enumerate(keys)]


def _first_unresolved(external_ids: list[str | None], record_ids: list[int | None]) -> int | None:
    if None not in record_ids:
        return None
    pairs = enumerate(zip(external_ids, record_ids, strict=True))
    return next(
        (index for index, (external_id, record_id) in pairs if record_id is None and external_id is not None), None
    )


def _sqlite_column(column_type: Any, columns: _Columns, name: str) -> Iterable[Any]:
    encode = _sqlite_encoder(column_type)
    if name in columns.constants:
        value = columns.constants[name]
        return repeat(value if encode is None else encode(value))
    values = columns.values[name]
    if encode is None:
        return values
    if None in values:
        return [None if value is None else encode(value) for value in values]
    return list(map(encode, values))


def _sqlite_encoder(column_type: Any) -> Callable[[Any], Any] | None:
    if isinstance(column_type, (DateTime, UtcDateTime)):
        return _sqlite_datetime
    if isinstance(column_type, Date):
        return date.isoformat
    if isinstance(column_type, Numeric):
        return float
    if isinstance(column_type, SAEnum):
        return None if _stored_as_is(column_type.enum_class) else attrgetter("name")
    if isinstance(column_type, JSON):
        return json.dumps
    return None


def _stored_as_is(enum_class: Any) -> bool:
    """SQLAlchemy stores enum members by name; the DB-API binds a str enum's value, the same text when they match."""
    return enum_class is None or (
        issubclass(enum_class, str) and all(member.name == member.value for member in enum_class)
    )


def _sqlite_datetime(value: datetime) -> str:
    """SQLAlchemy's SQLite DATETIME storage format; validated rows are already in UTC."""
    return value.isoformat(sep=" ", timespec="microseconds")[:26]


def _jsonable(value: list[Any]) -> list[Any]:
    return [item.model_dump(mode="json") if isinstance(item, BaseModel) else item for item in value]


# Optional columns that must still get a value, so that every row of a kind has the same shape.
_DEFAULTS: dict[str, dict[str, Any]] = {"deal": {"currency": "USD"}}
_DEFAULT_TO_NOW: dict[str, tuple[str, ...]] = {"ticket": ("opened_at",), "note": ("noted_at",)}


ProgressCallback = Callable[[int], None]


def ingest_rows(
    repo: Repo,
    rows: Iterable[SourceRow],
    *,
    source: str = "<rows>",
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
) -> IngestReport:
    """Validate and write rows in the repo's transaction; raises IngestError on the first bad row.

    The caller owns the transaction: on error (or for a dry run) roll it back and nothing is kept.
    """
    return _ingest_chunks(repo, _chunks(rows), Path(source), dry_run, progress)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Bulk loads allocate millions of short-lived objects; the cycle collector only slows them down."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _ingest_chunks(
    repo: Repo, chunks: Iterable[_Chunk], path: Path, dry_run: bool, progress: ProgressCallback | None
) -> IngestReport:
    # The collector comes back only once the batches are freed, so it never walks them.
    with _gc_paused():
        return _write(repo, _validated(path, chunks, progress), path, dry_run)


def _validated(path: Path, chunks: Iterable[_Chunk], progress: ProgressCallback | None) -> dict[str, _KindBatch]:
    batches: dict[str, _KindBatch] = defaultdict(_KindBatch)
    for chunk in chunks:
        batch = batches[chunk.kind]
        batch.rows.extend(_validate_chunk(path, chunk))
        batch.lines.extend(chunk.lines)
        if progress:
            progress(len(chunk.lines))
    return batches


def _write(repo: Repo, batches: dict[str, _KindBatch], path: Path, dry_run: bool) -> IngestReport:
    report = IngestReport(source=str(path), dry_run=dry_run)
    ingestor = Ingestor(repo, str(path))
    with ingestor.bulk_cache():
        for kind in KIND_ORDER:
            if kind in batches:
                ingestor.write(kind, batches[kind], report)
        repo.session.flush()
    return report


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


AfterWrite = Callable[[Repo, IngestReport], None]


def ingest_file(
    store: Store,
    workspace: str,
    path: Path,
    *,
    kind: str | None = None,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
    after_write: Iterable[AfterWrite] = (),
) -> IngestReport:
    """Ingest one file in one transaction; ``after_write`` hooks run inside it (e.g. marking drafts stale)."""
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    if kind is not None and kind not in CRM_MODELS:
        raise InvalidInput(f"--kind: unknown kind '{kind}' (one of: {', '.join(CRM_MODELS)})")
    with store.sessions() as session:
        try:
            repo = Repo.for_slug(session, workspace)
            chunks = _read_chunks(path, kind or kind_from_filename(path))
            report = _ingest_chunks(repo, chunks, path, dry_run, progress)
            for hook in () if dry_run else after_write:
                hook(repo, report)
            if dry_run:
                session.rollback()
            else:
                session.commit()
        except BaseException:
            session.rollback()
            raise
    return report
