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
from functools import lru_cache
from operator import itemgetter
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import JSON, Date, DateTime, Numeric, Table, delete, func, insert, select
from sqlalchemy import Enum as SAEnum
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from copilot.errors import InvalidInput
from copilot.ingest.schemas import KIND_ORDER, REFERENCE_FIELDS, ROW_SCHEMAS, CallRow, Row
from copilot.store import Repo, Store
from copilot.store.models import CRM_MODELS, CallTurn

BATCH_SIZE = 2000
CHUNK_SIZE = 2000
JSON_FIELDS = {"stage_history", "participants", "turns", "tags"}


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
class _KindBatch:
    rows: list[tuple[int, Row]] = field(default_factory=list)


def kind_from_filename(path: Path) -> str | None:
    stem = path.name.split(".")[0].lower().replace("-", "_")
    for kind in CRM_MODELS:
        if stem in (kind, f"{kind}s", kind.replace("_", "")):
            return kind
    return None


def read_rows(path: Path, kind: str | None) -> Iterator[SourceRow]:
    """Parse a JSONL or CSV file into raw rows, each tagged with its line number and kind."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        yield from _read_jsonl(path, kind)
    elif suffix == ".csv":
        yield from _read_csv(path, kind)
    else:
        raise InvalidInput(f"{path}: unsupported file type '{suffix}' (use .jsonl or .csv)")


def _row_kind(path: Path, line: int, data: dict[str, Any], default: str | None) -> str:
    kind = data.pop("kind", None) or default
    if kind is None:
        raise IngestError(f"{path}:{line}: kind: missing (pass --kind, name the file after the kind, or add a 'kind' field)")
    if kind not in CRM_MODELS:
        raise IngestError(f"{path}:{line}: kind: unknown kind '{kind}' (one of: {', '.join(CRM_MODELS)})")
    return kind


def _read_jsonl(path: Path, kind: str | None) -> Iterator[SourceRow]:
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
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


def _validate_chunk(path: Path, chunk: list[SourceRow]) -> list[Row]:
    """Validate rows of one kind; raw JSON lines go through pydantic in one call per chunk."""
    schema = ROW_SCHEMAS[chunk[0].kind]
    try:
        if chunk[0].raw is not None:
            return _list_adapter(schema).validate_json("[" + ",".join(row.raw for row in chunk) + "]")  # type: ignore[misc]
        return [schema.model_validate(row.data) for row in chunk]
    except ValidationError as error:
        first = error.errors()[0]
        if first["type"] == "json_invalid":
            bad = next(row for row in chunk if not _is_json(row.raw))
            raise IngestError(f"{path}:{bad.line}: (row): not valid JSON") from None
        index, *loc = first["loc"] if chunk[0].raw is not None else (_failing_index(schema, chunk), *first["loc"])
        where = ".".join(str(part) for part in loc) or "(row)"
        raise IngestError(f"{path}:{chunk[int(index)].line}: {where}: {first['msg']}") from None


@lru_cache(maxsize=None)
def _list_adapter(schema: type[Row]) -> TypeAdapter[list[Row]]:
    return TypeAdapter(list[schema])  # type: ignore[valid-type]


def _failing_index(schema: type[Row], chunk: list[SourceRow]) -> int:
    for index, row in enumerate(chunk):
        try:
            schema.model_validate(row.data)
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
        self.now = datetime.now(timezone.utc)
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

    def write(self, kind: str, rows: list[tuple[int, Row]], report: IngestReport) -> None:
        table: Table = CRM_MODELS[kind].__table__  # type: ignore[assignment]
        existing = self.ids_by_external_id(kind)
        to_params = self._param_builder(kind)
        params = [to_params(line, row) for line, row in rows]
        latest = {p["external_id"]: p for p in params if p["external_id"] is not None}  # the last row of a key wins
        fresh = [p for key, p in latest.items() if key not in existing]
        changed = [p for key, p in latest.items() if key in existing]
        self._executemany(insert(table), table, fresh)
        existing.update(zip((p["external_id"] for p in fresh), self._ids_of_last_insert(table, fresh)))
        self._executemany(self._upsert_statement(table, params[0]), table, changed)
        unkeyed_ids = iter(self._insert_returning_ids(table, [p for p in params if p["external_id"] is None]))
        row_ids = [existing[p["external_id"]] if p["external_id"] is not None else next(unkeyed_ids) for p in params]
        if kind == "call":
            self._replace_turns(rows, row_ids)
        inserted = len(fresh) + sum(1 for p in params if p["external_id"] is None)
        report.inserted[kind] = report.inserted.get(kind, 0) + inserted
        report.updated[kind] = report.updated.get(kind, 0) + len(params) - inserted
        report.written_ids.setdefault(kind, []).extend(dict.fromkeys(row_ids))

    def _param_builder(self, kind: str) -> Callable[[int, Row], dict[str, Any]]:
        """A function turning a validated row into column values: references resolved, JSON made plain."""
        fields = ROW_SCHEMAS[kind].model_fields
        references = [(name, target, self.ids_by_external_id(target)) for name, target in REFERENCE_FIELDS.items() if name in fields]
        json_fields = [name for name in JSON_FIELDS if name in fields and name != "turns"]
        always = {"workspace_id": self.repo.workspace_id, "created_at": self.now, "updated_at": self.now}
        defaults = {column: self.now for column in _DEFAULT_TO_NOW.get(kind, ())} | _DEFAULTS.get(kind, {})

        def build(line: int, row: Row) -> dict[str, Any]:
            values = row.__dict__ | always
            values.pop("turns", None)
            for name, target, ids in references:
                external_id = values.pop(name)
                record_id = None if external_id is None else ids.get(external_id)
                if record_id is None and external_id is not None:
                    raise IngestError(f"{self.source}:{line}: {name}: no {target} with external_id '{external_id}' in this workspace")
                values[f"{name}_id"] = record_id
            for name in json_fields:
                values[name] = _jsonable(values[name])
            for name, value in defaults.items():
                if values[name] is None:
                    values[name] = value
            return values

        return build

    def _upsert_statement(self, table: Table, sample: dict[str, Any]) -> Any:
        statement = (sqlite if self.dialect == "sqlite" else postgresql).insert(table)
        return statement.on_conflict_do_update(
            index_elements=["workspace_id", "external_id"],
            set_={c: statement.excluded[c] for c in sample if c not in ("workspace_id", "external_id", "created_at")},
        )

    def _executemany(self, statement: Any, table: Table, params: list[dict[str, Any]]) -> None:
        if not params:
            return
        if self.dialect != "sqlite":
            for start in range(0, len(params), BATCH_SIZE):
                self.session.execute(statement, params[start:start + BATCH_SIZE])
            return
        # SQLite bulk path: compile once, encode values as SQLAlchemy's own bind processing
        # would for these column types, and hand every row to one DB-API executemany.
        compiled = statement.compile(dialect=self.session.get_bind().dialect, column_keys=list(params[0]))
        order = compiled.positiontup
        columns = list(zip(*map(itemgetter(*order), params)))
        now, now_encoded = self.now, _sqlite_datetime(self.now)
        for i, name in enumerate(order):
            encode = _sqlite_encoder(table.c[name].type)
            if encode is not None:
                columns[i] = [now_encoded if v is now else None if v is None else encode(v) for v in columns[i]]
        cursor = self.session.connection().connection.driver_connection.cursor()
        try:
            cursor.executemany(compiled.string, zip(*columns))
        finally:
            cursor.close()

    def _ids_of_last_insert(self, table: Table, inserted: list[dict[str, Any]]) -> list[int]:
        """Ids of rows just inserted by one executemany, in order."""
        if not inserted:
            return []
        if self.dialect == "sqlite":
            # Inside our write transaction SQLite gives new rows max(rowid)+1 in insertion order.
            last = self.session.execute(select(func.max(table.c.id))).scalar_one()
            return list(range(last - len(inserted) + 1, last + 1))
        keys = [p["external_id"] for p in inserted]
        query = select(table.c.external_id, table.c.id).where(
            table.c.workspace_id == self.repo.workspace_id, table.c.external_id.in_(keys)
        )
        ids = dict(self.session.execute(query).tuples().all())
        return [ids[key] for key in keys]

    def _insert_returning_ids(self, table: Table, params: list[dict[str, Any]]) -> list[int]:
        if not params:
            return []
        result = self.session.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), params)
        return list(result.scalars())

    def _replace_turns(self, rows: list[tuple[int, Row]], call_ids: list[int]) -> None:
        self.session.execute(delete(CallTurn).where(CallTurn.call_id.in_(call_ids)))
        now = datetime.now(timezone.utc)
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
            for (_, row), call_id in zip(rows, call_ids, strict=True)
            if isinstance(row, CallRow)
            for position, turn in enumerate(row.turns)
        ]
        if turns:
            self.session.execute(insert(CallTurn.__table__), turns)


def _sqlite_encoder(column_type: Any) -> Callable[[Any], Any] | None:
    if isinstance(column_type, DateTime):
        return _sqlite_datetime
    if isinstance(column_type, Date):
        return date.isoformat
    if isinstance(column_type, Numeric):
        return float
    if isinstance(column_type, SAEnum):
        return lambda member: member.value
    if isinstance(column_type, JSON):
        return json.dumps
    return None


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
    repo: Repo, rows: Iterable[SourceRow], *, source: str = "<rows>", dry_run: bool = False, progress: ProgressCallback | None = None
) -> IngestReport:
    """Validate and write rows in the repo's transaction; raises IngestError on the first bad row.

    The caller owns the transaction: on error (or for a dry run) roll it back and nothing is kept.
    """
    path = Path(source)
    with _gc_paused():
        return _ingest_rows(repo, rows, path, dry_run, progress)


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


def _ingest_rows(repo: Repo, rows: Iterable[SourceRow], path: Path, dry_run: bool, progress: ProgressCallback | None) -> IngestReport:
    source = str(path)
    batches: dict[str, _KindBatch] = defaultdict(_KindBatch)
    chunk: list[SourceRow] = []
    for row in rows:
        if chunk and (row.kind != chunk[0].kind or (row.raw is None) != (chunk[0].raw is None) or len(chunk) == CHUNK_SIZE):
            _add_validated(path, chunk, batches, progress)
            chunk = []
        chunk.append(row)
    if chunk:
        _add_validated(path, chunk, batches, progress)
    report = IngestReport(source=source, dry_run=dry_run)
    ingestor = Ingestor(repo, source)
    for kind in KIND_ORDER:
        if kind in batches:
            ingestor.write(kind, batches[kind].rows, report)
    repo.session.flush()
    return report


def _add_validated(path: Path, chunk: list[SourceRow], batches: dict[str, _KindBatch], progress: ProgressCallback | None) -> None:
    validated = _validate_chunk(path, chunk)
    batches[chunk[0].kind].rows.extend(zip((row.line for row in chunk), validated))
    if progress:
        progress(len(chunk))


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
            rows = read_rows(path, kind or kind_from_filename(path))
            report = ingest_rows(repo, rows, source=str(path), dry_run=dry_run, progress=progress)
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
