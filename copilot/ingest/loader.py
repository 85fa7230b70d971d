"""Ingest JSONL and CSV files into the record store.

One file is one transaction: the first bad row aborts it with ``file:line: field: problem``
and nothing is written. Rows with an ``external_id`` are upserted on
(workspace, kind, external_id), so re-ingesting a file updates instead of duplicating.

The stages live next door: ``readers`` (files to rows), ``validation`` (rows to pydantic schemas),
``writer`` (references, upserts, the report) and ``dialects`` (SQLite and PostgreSQL bulk writes).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from copilot.errors import InvalidInput
from copilot.ingest.readers import Chunk, IngestError, SourceRow, chunk_rows, kind_from_filename, read_chunks
from copilot.ingest.validation import ProgressCallback, validate_chunks
from copilot.ingest.writer import IngestReport, write_batches
from copilot.store import Repo, Store
from copilot.store.models import CRM_MODELS

__all__ = ["AfterWrite", "IngestError", "IngestReport", "ProgressCallback", "SourceRow", "ingest_file", "ingest_rows"]

AfterWrite = Callable[[Repo, IngestReport], None]


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
    return _ingest_chunks(repo, chunk_rows(rows), Path(source), dry_run, progress)


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
            chunks = read_chunks(path, kind or kind_from_filename(path))
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


def _ingest_chunks(
    repo: Repo, chunks: Iterable[Chunk], path: Path, dry_run: bool, progress: ProgressCallback | None
) -> IngestReport:
    # The collector comes back only once the batches are freed, so it never walks them.
    with _gc_paused():
        return write_batches(repo, validate_chunks(path, chunks, progress), path, dry_run)


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
