"""What autogenerate compares: not the full-text index tables the migrations create by hand."""


def include_name(name: str | None, type_: str, _parent: object) -> bool:
    return not (type_ == "table" and name is not None and name.startswith("search_fts"))
