"""What happens after records are written: outputs about changed records go stale."""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING

from sqlalchemy import Engine, event, select

from copilot.errors import InvalidInput, NotFound
from copilot.ingest import IngestReport
from copilot.ingest.loader import AfterWrite
from copilot.pii import person_names
from copilot.store import Repo
from copilot.store.models import CRM_MODELS, AuthorKind, Contact, Deal, Message, Ticket
from copilot.tasks import registry
from copilot.tasks.base import mark_stale
from copilot.tasks.registry import CUSTOMER_MESSAGE

if TYPE_CHECKING:
    from copilot.services import Services


def mark_tickets_stale(repo: Repo, report: IngestReport) -> None:
    """A new customer message makes the ticket's summary and reply drafts stale."""
    tasks = registry.stale_on(CUSTOMER_MESSAGE)
    for ticket_id in tickets_with_new_customer_messages(repo, report):
        mark_stale(repo, subject_kind="ticket", subject_id=ticket_id, tasks=tasks)


def index_written(services: Services) -> AfterWrite:
    """Index what an ingest wrote, so search sees it as soon as the ingest commits."""

    def hook(repo: Repo, report: IngestReport) -> None:
        for kind, ids in report.written_ids.items():
            services.index.index_records(repo, kind, ids)

    return hook


def tickets_with_new_customer_messages(repo: Repo, report: IngestReport) -> list[int]:
    message_ids = report.written_ids.get("message", [])
    query = select(Message.ticket_id).where(Message.author_kind == AuthorKind.customer).distinct()
    tickets: set[int] = set()
    for start in range(0, len(message_ids), 5000):
        tickets.update(repo.session.scalars(query.where(Message.id.in_(message_ids[start : start + 5000]))))
    return sorted(tickets)


def precompute_written(services: Services) -> AfterWrite:
    """Queue a summary refresh and a reply draft for tickets a customer just wrote on (when the workspace wants it)."""

    def hook(repo: Repo, report: IngestReport) -> None:
        from copilot.tasks.precompute import queue_precompute

        queue_precompute(services, repo, tickets_with_new_customer_messages(repo, report))

    return hook


def triage_written(services: Services) -> AfterWrite:
    """Queue a triage for new tickets, and for tickets whose triage a new customer message made stale."""

    def hook(repo: Repo, report: IngestReport) -> None:
        from copilot.tasks.triage import queue_triage

        written = set(report.written_ids.get("ticket", [])) | set(tickets_with_new_customer_messages(repo, report))
        queue_triage(services, repo, sorted(written))

    return hook


def after_write_hooks(services: Services) -> list[AfterWrite]:
    """What runs in an ingest's transaction after its rows are written: names cache, stale marking, indexing,
    precompute, triage."""
    hooks: list[AfterWrite] = [
        forget_people_names,
        mark_tickets_stale,
        precompute_written(services),
        triage_written(services),
    ]
    if services.settings.index_on_ingest:
        hooks.append(index_written(services))
    return hooks


def delete_record(repo: Repo, services: Services, kind: str, record_id: int) -> None:
    """Delete one record of the workspace (its dependents cascade) and drop it from the search index."""
    model = CRM_MODELS.get(kind)
    if model is None:
        raise InvalidInput(f"kind: unknown kind '{kind}' (one of: {', '.join(CRM_MODELS)})")
    row = repo.get(model, record_id)
    if row is None:
        raise NotFound(f"no {kind} {record_id} in workspace '{repo.workspace.slug}'")
    message_ids = (
        list(repo.session.scalars(select(Message.id).where(Message.ticket_id == record_id))) if kind == "ticket" else []
    )
    repo.session.delete(row)
    repo.session.flush()
    if services.settings.index_on_ingest:
        history = services.index
        history.remove_records(repo, kind, [record_id])
        history.remove_records(repo, "message", message_ids)


_NAMES_TTL_S = 60.0
_PEOPLE_KINDS = ("contact", "message", "ticket", "deal")
# engine -> workspace id -> (cached at, names); keyed by engine so two databases never share names
_names_cache: weakref.WeakKeyDictionary[Engine, dict[int, tuple[float, tuple[str, ...]]]] = weakref.WeakKeyDictionary()


def people_names(repo: Repo) -> tuple[str, ...]:
    """Names of the people the workspace knows (contacts, agents, reps), for masking; cached for a minute, and
    dropped as soon as an ingest writes a record that can name someone."""
    per_workspace = _names_cache.setdefault(repo.session.get_bind(), {})
    cached = per_workspace.get(repo.workspace_id)
    if cached and time.monotonic() - cached[0] < _NAMES_TTL_S:
        return cached[1]
    ws = repo.workspace_id
    queries = [
        select(Contact.name).where(Contact.workspace_id == ws),
        select(Message.author).where(Message.workspace_id == ws, Message.author_kind != AuthorKind.customer).distinct(),
        select(Ticket.assignee).where(Ticket.workspace_id == ws).distinct(),
        select(Deal.owner).where(Deal.workspace_id == ws).distinct(),
    ]
    names = person_names(name for query in queries for name in repo.session.scalars(query))
    per_workspace[ws] = (time.monotonic(), names)
    return names


def forget_people_names(repo: Repo, report: IngestReport) -> None:
    """A write that can bring a new name makes the cached names of its workspace stale once it commits (dropped
    earlier, a concurrent request could cache the names from before the commit for another minute)."""
    if not any(report.written_ids.get(kind) for kind in _PEOPLE_KINDS):
        return
    engine, workspace_id = repo.session.get_bind(), repo.workspace_id

    def forget(_session: object) -> None:
        _names_cache.get(engine, {}).pop(workspace_id, None)

    event.listen(repo.session, "after_commit", forget, once=True)
