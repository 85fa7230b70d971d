"""Write validated rows of one workspace: resolve references, upsert by external id, and report what was written."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Table, delete, insert, select
from sqlalchemy.orm import Session

from copilot.errors import InvalidInput
from copilot.ingest import dialects
from copilot.ingest.dialects import Columns
from copilot.ingest.readers import IngestError
from copilot.ingest.schemas import KIND_ORDER, REFERENCE_FIELDS, ROW_SCHEMAS, CallRow, Row
from copilot.ingest.validation import KindBatch
from copilot.store import Repo
from copilot.store.models import CRM_MODELS, CallTurn

JSON_FIELDS = {"stage_history", "participants", "turns", "tags"}

# Optional columns that must still get a value, so that every row of a kind has the same shape.
_DEFAULTS: dict[str, dict[str, Any]] = {"deal": {"currency": "USD"}}
_DEFAULT_TO_NOW: dict[str, tuple[str, ...]] = {"ticket": ("opened_at",), "note": ("noted_at",)}


class IngestReport(BaseModel):
    source: str
    dry_run: bool = False
    inserted: dict[str, int] = {}
    updated: dict[str, int] = {}
    written_ids: dict[str, list[int]] = {}

    @property
    def total(self) -> int:
        return sum(self.inserted.values()) + sum(self.updated.values())


def write_batches(repo: Repo, batches: dict[str, KindBatch], path: Path, dry_run: bool) -> IngestReport:
    """Write every kind's batch in dependency order, in the repo's transaction (flushed, not committed)."""
    report = IngestReport(source=str(path), dry_run=dry_run)
    ingestor = Ingestor(repo, str(path))
    with ingestor.bulk_cache():
        for kind in KIND_ORDER:
            if kind in batches:
                ingestor.write(kind, batches[kind], report)
        repo.session.flush()
    return report


class Ingestor:
    """Writes validated rows of one workspace, resolving references and upserting by external id."""

    def __init__(self, repo: Repo, source: str) -> None:
        self.repo = repo
        self.session: Session = repo.session
        self.source = source
        self._id_maps: dict[str, dict[str, int]] = {}
        self.now = datetime.now(UTC)
        self.dialect = self.session.get_bind().dialect.name
        if self.dialect not in dialects.DIALECTS:
            raise InvalidInput(f"ingest supports SQLite and PostgreSQL, not {self.dialect}")

    def ids_by_external_id(self, kind: str) -> dict[str, int]:
        if kind not in self._id_maps:
            model = CRM_MODELS[kind]
            query = select(model.external_id, model.id).where(
                model.workspace_id == self.repo.workspace_id, model.external_id.is_not(None)
            )
            self._id_maps[kind] = dict(self.session.execute(query).tuples().all())
        return self._id_maps[kind]

    def bulk_cache(self) -> AbstractContextManager[None]:
        return dialects.bulk_cache(self.session, self.dialect)

    def write(self, kind: str, batch: KindBatch, report: IngestReport) -> None:
        table: Table = CRM_MODELS[kind].__table__  # type: ignore[assignment]
        existing = self.ids_by_external_id(kind)
        columns = self._columns(kind, batch)
        keys = columns.values["external_id"]
        fresh, changed, unkeyed = _plan(keys, existing)
        dialects.executemany(self.session, self.dialect, insert(table), table, columns.take(fresh))
        fresh_keys = [keys[index] for index in fresh]
        fresh_ids = dialects.ids_of_last_insert(self.session, self.dialect, table, self.repo.workspace_id, fresh_keys)
        existing.update(zip(fresh_keys, fresh_ids, strict=True))
        upsert = dialects.upsert_statement(self.dialect, table, columns)
        dialects.executemany(self.session, self.dialect, upsert, table, columns.take(changed))
        unkeyed_ids = self._insert_returning_ids(table, columns.take(unkeyed))
        row_ids = _row_ids(keys, existing, dict(zip(unkeyed, unkeyed_ids, strict=True)))
        if kind == "call":
            self._replace_turns(batch.rows, row_ids)
        inserted = len(fresh) + len(unkeyed)
        report.inserted[kind] = report.inserted.get(kind, 0) + inserted
        report.updated[kind] = report.updated.get(kind, 0) + len(keys) - inserted
        report.written_ids.setdefault(kind, []).extend(dict.fromkeys(row_ids))

    def _columns(self, kind: str, batch: KindBatch) -> Columns:
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
        return Columns(values, {"workspace_id": self.repo.workspace_id, "created_at": self.now, "updated_at": self.now})

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

    def _insert_returning_ids(self, table: Table, columns: Columns) -> list[int]:
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


def _jsonable(value: list[Any]) -> list[Any]:
    return [item.model_dump(mode="json") if isinstance(item, BaseModel) else item for item in value]
