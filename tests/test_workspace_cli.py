"""The CLI answers at once: `copilot --help` (and every command module it loads) imports no model, index or store
library; those load inside the commands that need them, under a spinner."""

from __future__ import annotations

import os
import re
import subprocess
import sys

HEAVY = ("torch", "litellm", "chromadb", "sentence_transformers", "sklearn", "llama_cpp", "alembic", "numpy")


def test_help_imports_no_model_index_or_store_library():
    env = {k: v for k, v in os.environ.items() if not k.startswith("COPILOT_")}
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "copilot.cli.main", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    imported = {
        m.group(1).split(".")[0] for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)", run.stderr, re.M)
    }
    assert "typer" in imported and "copilot" in imported
    assert sorted(imported & set(HEAVY)) == []
    assert "summarize-ticket" in run.stdout and "draft-reply" in run.stdout
