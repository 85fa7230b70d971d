"""What autogenerate compares: not the full-text search objects the migrations create by hand."""

HAND_MADE = {
    ("table", "search_fts"),
    ("index", "ix_search_chunks_fts"),
}  # SQLite FTS5 tables / PostgreSQL tsvector index


def include_name(name: str | None, type_: str, _parent: object) -> bool:
    return name is None or not any(type_ == kind and name.startswith(prefix) for kind, prefix in HAND_MADE)
