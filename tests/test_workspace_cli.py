"""The CLI answers at once: `copilot --help` (and every command module it loads) imports no model, index or store
library; those load inside the commands that need them, under a spinner."""

from __future__ import annotations

import os
import re
import subprocess
import sys

HEAVY = ("torch", "litellm", "chromadb", "sentence_transformers", "sklearn", "llama_cpp", "alembic", "numpy")


def imported_packages(*args: str, env: dict[str, str] | None = None) -> tuple[set[str], str]:
    """The top-level packages ``copilot ARGS`` imports, and what it printed."""
    env = env or {k: v for k, v in os.environ.items() if not k.startswith("COPILOT_")}
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "copilot.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    pattern = r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)"
    return {m.group(1).split(".")[0] for m in re.finditer(pattern, run.stderr, re.M)}, run.stdout


def test_help_imports_no_model_index_or_store_library():
    imported, stdout = imported_packages("--help")
    assert "typer" in imported and "copilot" in imported
    assert sorted(imported & set(HEAVY)) == []
    assert "summarize-ticket" in stdout and "draft-reply" in stdout


def test_commands_that_need_no_model_import_no_model_library(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("COPILOT_")} | {"COPILOT_DATA_DIR": str(tmp_path)}
    imported, _ = imported_packages("workspace", "create", "demo", env=env)
    assert "alembic" in imported  # a new database is migrated; later commands find it current and skip alembic
    for args in (("models",), ("workspace", "list"), ("tones", "list"), ("keys", "list")):
        imported, _ = imported_packages(*args, env=env)
        assert "sqlalchemy" in imported or args == ("models",)
        assert sorted(imported & {"litellm", "torch", "chromadb", "llama_cpp", "alembic"}) == [], args
