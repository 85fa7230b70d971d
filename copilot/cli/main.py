"""Entry point: assembles the command groups and turns known errors into one-line messages."""

from __future__ import annotations

import typer

from copilot.cli import ask, demo, ingest, keys, marketing, models, records, sales, search, service, support, usage
from copilot.cli import evals as eval_cli
from copilot.cli.common import fail
from copilot.errors import CopilotError

app = typer.Typer(
    name="copilot",
    help="AI copilot over your CRM records: summaries, drafts, rewrites, briefs and NPS themes, with human review.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for module in (records, ingest, demo, search, support, ask, models, usage, service, keys, sales, eval_cli, marketing):
    module.register(app)


def main() -> None:
    try:
        app()
    except CopilotError as error:
        raise SystemExit(fail(str(error)).exit_code) from None
