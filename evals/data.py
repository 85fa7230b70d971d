"""Where the public dev data lives, and a clear skip when it is not there (a user's checkout won't have it)."""

from __future__ import annotations

import os
from pathlib import Path

from copilot.errors import CopilotError


class DataUnavailable(CopilotError):
    """A public dataset this eval needs is not present."""


def shared_data_dir() -> Path:
    configured = os.environ.get("COPILOT_SHARED_DATA")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "data"


def dataset(relative: str) -> Path:
    path = shared_data_dir() / relative
    if not path.is_file():
        raise DataUnavailable(
            f"skipped: public dev data {path} is not present (set COPILOT_SHARED_DATA to the folder that holds it)"
        )
    return path
