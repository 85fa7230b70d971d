"""Bulk ingest of CRM records from JSONL and CSV."""

from copilot.ingest.loader import AfterWrite, ingest_file, ingest_rows
from copilot.ingest.readers import IngestError, SourceRow, count_lines, kind_from_filename, read_rows
from copilot.ingest.writer import IngestReport

__all__ = [
    "AfterWrite",
    "IngestError",
    "IngestReport",
    "SourceRow",
    "count_lines",
    "ingest_file",
    "ingest_rows",
    "kind_from_filename",
    "read_rows",
]
