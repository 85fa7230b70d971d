"""Applying a triage: the ticket's topic, queue, assignee and priority change only through ``change_ticket``.

A person's change (an agent sets the topic on the ticket page or the API) and an applied triage (a person applies the
suggestion, possibly changed, or auto-apply does) go through the same function: the fields that changed are written,
an audit event records before and after, and a ``ticket.updated`` event goes to the workspace's webhook. No field
changes silently.

Auto-apply (a workspace setting, off by default) only applies a sure topic, never overwrites what a person set (a
topic or queue an agent chose, an assignee), and only ever raises the priority. Applying, changing and dismissing
suggestions are what the routing quality stats count (``triage_stats``).
"""

from __future__ import annotations

from collections import Counter, defaultdict

from pydantic import BaseModel, Field
from sqlalchemy.orm.exc import StaleDataError

from copilot import events
from copilot.errors import Conflict, InvalidInput, NotFound
from copilot.events import FieldChange
from copilot.review import record_event
from copilot.store import Repo
from copilot.store.models import AiResult, AiStatus, AuditEvent, Priority, Ticket, TicketRouting
from copilot.tasks.triage_labels import check_label, label_queues

TASK = "ticket_triage"
AUTO_ACTOR = "copilot:auto-triage"
PRIORITY_ORDER = {p: n for n, p in enumerate((Priority.low, Priority.normal, Priority.high, Priority.urgent))}
FIELDS = ("topic", "queue", "assignee", "priority")


class TicketChange(BaseModel):
    """Fields a person (or an applied triage) sets on a ticket; omitted fields stay as they are."""

    topic: str | None = Field(default=None, max_length=64, description="One of the workspace's labels.")
    queue: str | None = Field(default=None, min_length=1, max_length=80, description="A queue of the label set.")
    assignee: str | None = Field(default=None, min_length=1, max_length=120)
    priority: Priority | None = None


class ApplyRequest(TicketChange):
    version: int | None = Field(default=None, description="The triage result's version you saw (409 if it changed).")


class AppliedChange(BaseModel):
    ticket_id: int
    changes: dict[str, FieldChange]
    event_id: int | None = None


class AppliedTriage(AppliedChange):
    ai_result_id: int
    accepted: bool = Field(description="Applied exactly as suggested (no field changed by the person).")
    changed_fields: list[str] = Field(default_factory=list, description="Suggested fields the person changed.")


def current_values(repo: Repo, ticket: Ticket) -> dict[str, str | None]:
    routing = routing_row(repo, ticket.id)
    return {
        "topic": routing.topic if routing else None,
        "queue": routing.queue if routing else None,
        "assignee": ticket.assignee,
        "priority": ticket.priority.value,
    }


def routing_row(repo: Repo, ticket_id: int) -> TicketRouting | None:
    return repo.session.scalar(repo.select(TicketRouting).where(TicketRouting.ticket_id == ticket_id))


def check_change(repo: Repo, change: TicketChange) -> None:
    if change.topic is not None:
        check_label(repo, change.topic)
    if change.queue is not None and change.queue not in set(label_queues(repo).values()):
        queues = ", ".join(sorted(set(label_queues(repo).values())))
        raise InvalidInput(f"queue: '{change.queue}' is not a queue of this workspace's label set ({queues})")


def change_ticket(
    repo: Repo,
    ticket: Ticket,
    change: TicketChange,
    *,
    actor: str,
    source: str,
    ai_result: AiResult | None = None,
) -> AppliedChange:
    """Write the fields that differ, audited (``ticket.changed``) and announced (``ticket.updated``)."""
    check_change(repo, change)
    before = current_values(repo, ticket)
    wanted = {k: (v.value if isinstance(v, Priority) else v) for k, v in change.model_dump().items() if v is not None}
    changes = {k: FieldChange(before=before[k], after=v) for k, v in wanted.items() if before[k] != v}
    if not changes:
        return AppliedChange(ticket_id=ticket.id, changes={})
    if "assignee" in changes:
        ticket.assignee = changes["assignee"].after
    if "priority" in changes:
        ticket.priority = Priority(changes["priority"].after)
    if "topic" in changes or "queue" in changes:
        routing = routing_row(repo, ticket.id) or repo.add(
            TicketRouting(ticket_id=ticket.id, source=source, set_by=actor)
        )
        routing.topic = wanted.get("topic", routing.topic)
        routing.queue = wanted.get("queue", routing.queue)
        routing.source, routing.set_by = source, actor
        routing.ai_result_id = ai_result.id if ai_result else None
    repo.session.flush()
    dumped = {k: c.model_dump() for k, c in changes.items()}
    audit = AuditEvent(
        workspace_id=repo.workspace_id,
        actor=actor,
        action="ticket.changed",
        subject_kind="ticket",
        subject_id=ticket.id,
        task=TASK if ai_result else None,
        ai_result_id=ai_result.id if ai_result else None,
        before={k: c.before for k, c in changes.items()},
        after={k: c.after for k, c in changes.items()} | {"source": source},
    )
    repo.session.add(audit)
    event = events.emit(
        repo,
        "ticket.updated",
        "ticket",
        ticket.id,
        {
            "external_id": ticket.external_id,
            "changes": dumped,
            "source": source,
            "ai_result_id": ai_result.id if ai_result else None,
        },
        actor=actor,
    )
    return AppliedChange(ticket_id=ticket.id, changes=changes, event_id=event.id)


def triage_row(repo: Repo, result_id: int) -> AiResult:
    row = repo.get(AiResult, result_id)
    if row is None or row.task != TASK:
        raise NotFound(f"no triage result {result_id} in workspace '{repo.workspace.slug}'")
    return row


def suggested(row: AiResult) -> dict[str, str | None]:
    result = row.content.get("result", {})
    topic = result.get("topic") or {}
    routing = result.get("routing") or {}
    return {
        "topic": topic.get("label"),
        "queue": routing.get("queue"),
        "assignee": routing.get("assignee"),
        "priority": (result.get("urgency") or {}).get("priority"),
    }


def _check_open(row: AiResult, version: int | None) -> None:
    if version is not None and version != row.version:
        raise Conflict(f"triage result {row.id} is at version {row.version}, you saw version {version}; reload it")
    if row.status is AiStatus.stale:
        raise Conflict(f"triage result {row.id} is stale: the customer wrote again; triage the ticket again")
    if row.status is not AiStatus.completed:
        raise Conflict(f"triage result {row.id} was already {row.status.value}")


def _close(repo: Repo, row: AiResult, status: AiStatus) -> None:
    row.status = status
    try:
        repo.session.flush()  # UPDATE ... WHERE version = <seen>: of two people applying at once, one wins
    except StaleDataError:
        repo.session.rollback()
        raise Conflict(f"triage result {row.id} was applied by someone else meanwhile; reload it") from None


def apply_triage(repo: Repo, result_id: int, request: ApplyRequest, *, actor: str) -> AppliedTriage:
    """A person applies a triage suggestion to its ticket, changing any field they want first."""
    row = triage_row(repo, result_id)
    _check_open(row, request.version)
    ticket = repo.get(Ticket, row.subject_id) if row.subject_id else None
    if ticket is None:
        raise Conflict(f"triage result {row.id} is about a ticket that no longer exists")
    proposal = suggested(row)
    given = request.model_dump(exclude={"version"})
    final = {k: given[k] if given[k] is not None else proposal[k] for k in FIELDS}
    if final["topic"] is None:
        raise InvalidInput("topic: the suggestion has no topic; choose one of the workspace's labels")
    changed_fields = [k for k in FIELDS if given[k] is not None and _value(given[k]) != proposal[k]]
    change = TicketChange.model_validate({k: v for k, v in final.items() if v is not None})
    _close(repo, row, AiStatus.edited if changed_fields else AiStatus.approved)
    applied = change_ticket(repo, ticket, change, actor=actor, source="triage", ai_result=row)
    accepted = not changed_fields
    record_event(
        repo,
        actor,
        "triage.applied",
        row,
        before=proposal,
        after={
            "applied": {k: _value(v) for k, v in final.items()},
            "accepted": accepted,
            "changed_fields": changed_fields,
            "event_id": applied.event_id,
        },
    )
    return AppliedTriage(**applied.model_dump(), ai_result_id=row.id, accepted=accepted, changed_fields=changed_fields)


def auto_apply(repo: Repo, result_id: int | None) -> AppliedTriage | None:
    """Apply a sure triage without a person: never over what a person set, never lowering the priority."""
    row = repo.get(AiResult, result_id) if result_id else None
    if row is None or row.status is not AiStatus.completed:
        return None
    result = row.content.get("result", {})
    if (result.get("topic") or {}).get("unsure", True) or not suggested(row)["topic"]:
        return None
    ticket = repo.get(Ticket, row.subject_id) if row.subject_id else None
    if ticket is None:
        return None
    proposal, routing = suggested(row), routing_row(repo, ticket.id)
    fields: dict[str, str | None] = {}
    if routing is None or routing.source not in ("agent", "triage"):  # a person's topic and queue stay
        fields |= {"topic": proposal["topic"], "queue": proposal["queue"]}
    if ticket.assignee is None:
        fields["assignee"] = proposal["assignee"]
    if proposal["priority"] and PRIORITY_ORDER[Priority(proposal["priority"])] > PRIORITY_ORDER[ticket.priority]:
        fields["priority"] = proposal["priority"]
    _close(repo, row, AiStatus.approved)
    change = TicketChange.model_validate({k: v for k, v in fields.items() if v is not None})
    applied = change_ticket(repo, ticket, change, actor=AUTO_ACTOR, source="auto_triage", ai_result=row)
    record_event(
        repo,
        AUTO_ACTOR,
        "triage.auto_applied",
        row,
        before=proposal,
        after={
            "applied": {k: c.after for k, c in applied.changes.items()},
            "accepted": True,
            "event_id": applied.event_id,
        },
    )
    return AppliedTriage(**applied.model_dump(), ai_result_id=row.id, accepted=True)


def dismiss_triage(
    repo: Repo, result_id: int, *, actor: str, reason: str | None = None, version: int | None = None
) -> AiResult:
    row = triage_row(repo, result_id)
    _check_open(row, version)
    _close(repo, row, AiStatus.rejected)
    record_event(repo, actor, "triage.dismissed", row, before=suggested(row), after={"reason": reason})
    return row


def _value(value: object) -> object:
    return value.value if isinstance(value, Priority) else value


# -- the routing quality loop ------------------------------------------------------------------------------


class LabelStats(BaseModel):
    """How triage suggestions of one topic fared with the people who received them."""

    label: str
    suggested: int = 0
    applied: int = 0  # by a person
    accepted: int = 0  # applied by a person exactly as suggested
    changed: int = 0  # applied by a person with at least one field changed
    dismissed: int = 0
    auto_applied: int = 0
    changed_after_auto_apply: int = 0  # a person changed a field auto-apply had set
    acceptance_rate: float | None = None  # accepted / (applied + dismissed)
    changed_fields: dict[str, int] = Field(default_factory=dict)
    changed_to: dict[str, int] = Field(default_factory=dict, description="Topics people chose instead.")


def triage_stats(repo: Repo) -> list[LabelStats]:
    """Per suggested topic: how often suggestions were accepted, changed (which fields, to which topic) or
    dismissed, and how often people corrected what auto-apply set."""
    rows = repo.all(repo.select(AiResult).where(AiResult.task == TASK))
    label_of = {r.id: suggested(r)["topic"] or "(no topic)" for r in rows}
    stats: dict[str, LabelStats] = {}

    def of(result_id: int | None) -> LabelStats:
        label = label_of.get(result_id or 0, "(no topic)")
        return stats.setdefault(label, LabelStats(label=label))

    for row in rows:
        if row.status is not AiStatus.failed:
            of(row.id).suggested += 1
    fields: dict[str, Counter[str]] = defaultdict(Counter)
    chosen: dict[str, Counter[str]] = defaultdict(Counter)
    auto_tickets: dict[int, int] = {}
    for event in repo.session.scalars(_audit_query(repo)):
        entry = of(event.ai_result_id)
        after = event.after or {}
        if event.action == "triage.applied":
            entry.applied += 1
            if after.get("accepted"):
                entry.accepted += 1
            else:
                entry.changed += 1
                fields[entry.label].update(after.get("changed_fields") or [])
                if "topic" in (after.get("changed_fields") or []):
                    chosen[entry.label][str((after.get("applied") or {}).get("topic"))] += 1
        elif event.action == "triage.dismissed":
            entry.dismissed += 1
        elif event.action == "triage.auto_applied":
            entry.auto_applied += 1
            if event.subject_id is not None:
                auto_tickets[event.subject_id] = event.ai_result_id or 0
        elif event.action == "ticket.changed" and after.get("source") == "agent":
            if event.subject_id in auto_tickets:
                of(auto_tickets.pop(event.subject_id)).changed_after_auto_apply += 1
    for label, entry in stats.items():
        decided = entry.applied + entry.dismissed
        entry.acceptance_rate = round(entry.accepted / decided, 4) if decided else None
        entry.changed_fields, entry.changed_to = dict(fields[label]), dict(chosen[label])
    return sorted(stats.values(), key=lambda s: (-s.suggested, s.label))


def _audit_query(repo: Repo):  # noqa: ANN202 - a select
    from sqlalchemy import or_, select

    return (
        select(AuditEvent)
        .where(
            AuditEvent.workspace_id == repo.workspace_id,
            or_(
                AuditEvent.action.in_(("triage.applied", "triage.dismissed", "triage.auto_applied")),
                AuditEvent.action == "ticket.changed",
            ),
        )
        .order_by(AuditEvent.at, AuditEvent.id)
    )
