"""Reply-draft checks on Bitext customer-support requests: guard pass rate and citation validity.

Each request becomes a one-message ticket in a workspace whose KB is the demo help center and
whose history holds other requests with their reference replies (as past agent replies).
The default draft path runs on --cases requests; citation validity must be 100%.
Run: python -m evals.studies.reply_drafts [--cases 200]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

from copilot.demo import kb
from copilot.services import Services
from copilot.settings import Settings
from copilot.store import get_or_create_workspace
from copilot.store.models import Account, AuthorKind, Channel, KbArticle, Message, Ticket
from copilot.tasks.reply_draft import draft_for_thread
from copilot.tasks.thread import load_thread
from evals.data import DataUnavailable, dataset

HISTORY = 300


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=200)
    args = parser.parse_args()
    try:
        rows = [json.loads(line) for line in dataset("bitext_customer_support/dev.jsonl").open(encoding="utf-8")]
    except DataUnavailable as error:
        print(error)
        return 0
    history, cases = rows[:HISTORY], rows[HISTORY : HISTORY + args.cases]
    with tempfile.TemporaryDirectory() as tmp:
        services = Services(Settings(data_dir=Path(tmp)))
        store = services.store
        with store.session() as session:
            get_or_create_workspace(session, "bitext")
        with store.repo("bitext") as repo:
            account = repo.add(Account(name="Bitext customers"))
            for title, overview, steps, _tips, tags in kb.ARTICLES:
                repo.add(
                    KbArticle(title=title, body=f"## Overview\n{overview}\n\n## Steps\n" + "\n".join(steps), tags=tags)
                )
            repo.session.flush()
            for row in history:
                ticket = repo.add(Ticket(subject=row["intent"].replace("_", " "), account_id=account.id))
                repo.session.flush()
                repo.add(Message(ticket_id=ticket.id, author_kind=AuthorKind.customer, body=row["instruction"]))
                repo.add(Message(ticket_id=ticket.id, author_kind=AuthorKind.agent, body=row["response"]))
            repo.session.flush()
            services.index.rebuild(repo)
            context = services.context(repo)
            passed = cited = valid = 0
            for row in cases:
                ticket = repo.add(
                    Ticket(subject=row["intent"].replace("_", " "), account_id=account.id, channel=Channel.email)
                )
                repo.session.flush()
                repo.add(Message(ticket_id=ticket.id, author_kind=AuthorKind.customer, body=row["instruction"]))
                repo.session.flush()
                outcome = draft_for_thread(context, ticket, load_thread(repo, ticket))
                passed += not any(not v.passed and v.severity.value == "block" for v in outcome.verdicts)
                labels = re.findall(r"\[(S\d+)\]", outcome.result.text)
                cited += bool(labels)
                valid += all(label in {s.label for s in outcome.result.sources} for label in labels)
        services.close()
        store.engine.dispose()
    n = len(cases)
    report = {
        "cases": n,
        "guard_pass_rate": round(passed / n, 4),
        "citation_validity": round(valid / n, 4),
        "drafts_with_citations": round(cited / n, 4),
    }
    print(
        f"bitext reply drafts ({n}): guard pass rate {report['guard_pass_rate']:.2%}, "
        f"citation validity {report['citation_validity']:.2%},"
        f" drafts citing a source {report['drafts_with_citations']:.2%}"
    )
    print(json.dumps(report))
    return 0 if report["citation_validity"] == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
