"""Eval adapter of ticket triage: each case is a new ticket (subject, customer messages, the account's plan) written
into the run's temporary store and triaged as the product triages it, with the shipped label set and head.

The output label is the topic (``None`` when unsure counts as wrong); the stored result is the case output's data,
so a case's ``checks.expect`` can hold its urgency (``urgency.priority``), language (``language.code``), routing
(``routing.assignee``) or ``injection_suspected``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from copilot.errors import InvalidInput
from evals.adapters import EvalEnv, adapter, case_messages
from evals.metrics import CaseOutput
from evals.suite import Case

WORKSPACE = "evals-triage"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # cases never age: urgency's "recent tickets" is relative to this


def _write_ticket(repo: Any, case: Case) -> int:
    from copilot.store.models import Account, AuthorKind, Contact, Message, Ticket

    account = repo.add(Account(name=f"Account of case {case.id}", plan=case.inputs.get("plan")))
    repo.session.flush()
    contact = repo.add(Contact(account_id=account.id, name="Customer", language=case.inputs.get("language")))
    repo.session.flush()
    ticket = repo.add(
        Ticket(
            subject=str(case.inputs.get("subject") or "(no subject)"),
            account_id=account.id,
            contact_id=contact.id,
            opened_at=NOW - timedelta(hours=1),
        )
    )
    repo.session.flush()
    for n, message in enumerate(case_messages(case), start=1):
        repo.add(
            Message(
                ticket_id=ticket.id,
                author_kind=AuthorKind(message["author_kind"]),
                author=message["author"],
                body=message["text"],
                sent_at=NOW - timedelta(minutes=60 - n),
            )
        )
    repo.session.flush()
    return ticket.id


def _prepare(env: EvalEnv, cases: list[Case]) -> None:
    """Every case's ticket, written in case order (stable ids), and the embedder loaded before the clock starts."""
    from copilot.store import get_or_create_workspace

    with env.store.session() as session:
        get_or_create_workspace(session, WORKSPACE)
    tickets, errors = {}, {}
    for case in cases:
        try:
            with env.store.repo(WORKSPACE) as repo:
                tickets[case.id] = _write_ticket(repo, case)
        except (InvalidInput, ValueError) as error:
            errors[case.id] = str(error)
    env.state["triage_tickets"], env.state["triage_errors"] = tickets, errors
    with env.store.repo(WORKSPACE) as repo:
        env.index.collection(repo.workspace_id)  # opened once here, not by four cases at once
    env.embedder.encode(["warm up"])
    env.services.sentiment.classify(["warm up"])


@adapter(
    "ticket_triage",
    kind="label",
    prepare=_prepare,
    metrics=("accuracy", "macro_f1", "checks_pass_rate", "latency_ms"),
)
def ticket_triage(env: EvalEnv, case: Case) -> CaseOutput:
    """Inputs: subject, message or messages, plan (the account's), language (the contact's). Expected: the topic."""
    from copilot.store.models import Ticket
    from copilot.tasks.triage import triage_ticket

    if case.id in env.state["triage_errors"]:
        raise InvalidInput(f"case {case.id}: {env.state['triage_errors'][case.id]}")
    with env.store.repo(WORKSPACE) as repo:
        ticket = repo.get(Ticket, env.state["triage_tickets"][case.id])
        outcome = triage_ticket(env.context(repo), ticket, now=NOW)
        repo.session.rollback()
    topic = outcome.result.topic
    label = None if topic.unsure else topic.label
    output = CaseOutput(
        label=label,
        text=f"{topic.label} ({topic.confidence:.2f}{', unsure' if topic.unsure else ''})",
        data=outcome.result.model_dump(mode="json"),
        verdicts=[v.model_dump(mode="json") for v in outcome.verdicts],
        model=outcome.provenance.model,
    )
    return output
