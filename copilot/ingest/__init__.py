"""Bulk ingest of CRM records from JSONL and CSV."""

from copilot.ingest.loader import (
    IngestError,
    IngestReport,
    SourceRow,
    count_lines,
    ingest_file,
    ingest_rows,
    kind_from_filename,
    read_rows,
)

__all__ = [
    "IngestError",
    "IngestReport",
    "SourceRow",
    "count_lines",
    "ingest_file",
    "ingest_rows",
    "kind_from_filename",
    "read_rows",
]
