"""Entry point: assembles the command groups and turns known errors into one-line messages."""

from __future__ import annotations

import typer

from copilot.cli import advocacy as advocacy_cli
from copilot.cli import ask, demo, ingest, keys, marketing, models, records, sales, search, service, support, usage
from copilot.cli import evals as eval_cli
from copilot.cli import insights as insights_cli
from copilot.cli import tasks as tasks_cli
from copilot.cli import triage as triage_cli
from copilot.cli import worker as worker_cli
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
insights_cli.register(app)
tasks_cli.register(app)
triage_cli.register(app)
worker_cli.register(app)
advocacy_cli.register(app)


def main() -> None:
    try:
        app()
    except CopilotError as error:
        raise SystemExit(fail(str(error)).exit_code) from None


if __name__ == "__main__":  # `python -X importtime -m copilot.cli.main --help` measures what the CLI loads
    main()
