"""The dialect-specific half of bulk writes, for SQLite and PostgreSQL.

SQLite compiles each statement once and hands every row to one DB-API ``executemany`` (values encoded as
SQLAlchemy's bind processing would), with a page cache big enough for the indexes it fills. PostgreSQL goes
through SQLAlchemy's ``executemany`` in batches.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from itertools import repeat
from operator import attrgetter
from typing import Any

from sqlalchemy import JSON, Date, DateTime, Numeric, Table, func, select
from sqlalchemy import Enum as SAEnum
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from copilot.store.models import UtcDateTime

BATCH_SIZE = 2000
SQLITE_BULK_CACHE_SIZE = -64 * 1024  # negative: KiB
DIALECTS = ("sqlite", "postgresql")


@dataclass
class Columns:
    """Column values of a batch of rows, each column in row order; ``constants`` hold one value for every row."""

    values: dict[str, list[Any]]
    constants: dict[str, Any]

    def __len__(self) -> int:
        return len(self.values["external_id"])

    def take(self, indexes: list[int]) -> Columns:
        if len(indexes) == len(self):  # then the indexes are 0..n-1: every row, in order
            return self
        return Columns(
            {name: [column[index] for index in indexes] for name, column in self.values.items()}, self.constants
        )

    def records(self) -> list[dict[str, Any]]:
        names = list(self.values)
        return [dict(zip(names, row, strict=True)) | self.constants for row in zip(*self.values.values(), strict=True)]


def upsert_statement(dialect: str, table: Table, columns: Columns) -> Any:
    """An insert that updates the row with the same (workspace_id, external_id) instead, keeping its created_at."""
    statement = (sqlite if dialect == "sqlite" else postgresql).insert(table)
    names = [*columns.values, *columns.constants]
    return statement.on_conflict_do_update(
        index_elements=["workspace_id", "external_id"],
        set_={c: statement.excluded[c] for c in names if c not in ("workspace_id", "external_id", "created_at")},
    )


@contextmanager
def bulk_cache(session: Session, dialect: str) -> Iterator[None]:
    """On SQLite, a page cache that holds the indexes a bulk write fills,
    instead of spilling them mid-transaction."""
    if dialect != "sqlite":
        yield
        return
    connection = _dbapi_connection(session)
    previous = connection.execute("PRAGMA cache_size").fetchone()[0]
    connection.execute(f"PRAGMA cache_size={SQLITE_BULK_CACHE_SIZE}")
    try:
        yield
    finally:
        connection.execute(f"PRAGMA cache_size={int(previous)}")


def executemany(session: Session, dialect: str, statement: Any, table: Table, columns: Columns) -> None:
    if not len(columns):
        return
    if dialect != "sqlite":
        records = columns.records()
        for start in range(0, len(records), BATCH_SIZE):
            session.execute(statement, records[start : start + BATCH_SIZE])
        return
    # SQLite bulk path: compile once, encode values as SQLAlchemy's own bind processing
    # would for these column types, and hand every row to one DB-API executemany.
    compiled = statement.compile(dialect=session.get_bind().dialect, column_keys=[*columns.values, *columns.constants])
    params = [_sqlite_column(table.c[name].type, columns, name) for name in compiled.positiontup]
    cursor = _dbapi_connection(session).cursor()
    try:
        cursor.executemany(compiled.string, zip(*params, strict=False))
    finally:
        cursor.close()


def ids_of_last_insert(session: Session, dialect: str, table: Table, workspace_id: int, keys: list[str]) -> list[int]:
    """Ids of the rows with these external ids just inserted by one executemany, in order."""
    if not keys:
        return []
    if dialect == "sqlite":
        # Inside our write transaction SQLite gives new rows max(rowid)+1 in insertion order.
        last = session.execute(select(func.max(table.c.id))).scalar_one()
        return list(range(last - len(keys) + 1, last + 1))
    query = select(table.c.external_id, table.c.id).where(
        table.c.workspace_id == workspace_id, table.c.external_id.in_(keys)
    )
    ids = dict(session.execute(query).tuples().all())
    return [ids[key] for key in keys]


def _dbapi_connection(session: Session) -> Any:
    return session.connection().connection.driver_connection


def _sqlite_column(column_type: Any, columns: Columns, name: str) -> Iterable[Any]:
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
