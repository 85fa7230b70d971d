"""``python -m evals.injection.run``: the same command line as ``python -m evals.injection`` (kept for old scripts)."""

from __future__ import annotations

import sys

from evals.injection.__main__ import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
