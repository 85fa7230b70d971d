"""The command line: ``python -m evals.injection [--model fake|local] [--limit N] [--task T] [--attempt ID]``.

Prints a table per task and, as the last line, one JSON object; exit status 1 when any attempt fails, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import evals.injection as package
from copilot.errors import InvalidInput
from evals.injection.corpus import CORPUS
from evals.injection.suite import MODELS, render, run_suite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.injection", description=package.__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        choices=sorted(MODELS),
        default="fake",
        help="fake: fake/scripted obeys the attacker; local: the embedded model",
    )
    parser.add_argument("--limit", type=int, default=None, help="at most N attempts per task")
    parser.add_argument("--task", action="append", help="only this task (repeatable)")
    parser.add_argument("--attempt", action="append", help="only this attempt id (repeatable)")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    try:
        result = run_suite(
            args.model,
            limit=args.limit,
            tasks=args.task,
            attempt_ids=args.attempt,
            corpus=args.corpus,
            progress=None if args.quiet else lambda line: print(line, file=sys.stderr, flush=True),
        )
    except InvalidInput as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for line in render(result):
        print(line)
    print(json.dumps(result.summary()))
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
