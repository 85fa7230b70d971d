"""Record-change events: what copilot changed on a record, sent to the workspace's webhook like reply deliveries.

A change a person makes through copilot (an agent sets a ticket's topic, queue, assignee or priority) and a change
an applied triage makes are the same event, ``ticket.updated``, with the fields that changed (before and after),
who changed them and why (``source``: agent, triage or auto_triage). Every event is kept (``GET /v1/events`` is the
feed for teams without a webhook); with a webhook configured it is POSTed as JSON signed exactly like an approved
reply (``X-Copilot-Signature: sha256=<hex>`` = HMAC-SHA256(secret, ``<timestamp>.<body>``), ``X-Copilot-Timestamp``,
``Idempotency-Key``), through the same SSRF-safe transport (``copilot.netguard``), retried with backoff.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel

from copilot.auth import Permission
from copilot.delivery import RETRYABLE_STATUS, sign, webhook_config
from copilot.jobs import JobContext, job_kind
from copilot.netguard import BlockedTarget, GuardedTransport
from copilot.store import Repo
from copilot.store.models import DeliveryStatus, Job, JobStatus, OutboundEvent

if TYPE_CHECKING:
    from copilot.services import Services

DELIVER_KIND = "deliver_event"


class FieldChange(BaseModel):
    before: Any = None
    after: Any = None


def emit(
    repo: Repo,
    event: str,
    subject_kind: str,
    subject_id: int,
    data: dict[str, Any],
    *,
    actor: str,
) -> OutboundEvent:
    """Record an event in the caller's transaction and, when the workspace has a webhook, queue its delivery."""
    config = webhook_config(repo)
    row = repo.add(
        OutboundEvent(
            event=event,
            subject_kind=subject_kind,
            subject_id=subject_id,
            payload={},
            idempotency_key="pending",
            target=str(config.url) if config else None,
        )
    )
    repo.session.flush()
    row.idempotency_key = f"{repo.workspace.slug}:event:{row.id}"
    row.payload = {
        "event": event,
        "event_id": row.id,
        "workspace": repo.workspace.slug,
        "subject_kind": subject_kind,
        "subject_id": subject_id,
        "actor": actor,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        **data,
        "idempotency_key": row.idempotency_key,
    }
    if config is not None:
        repo.add(
            Job(kind=DELIVER_KIND, params={"event_id": row.id}, status=JobStatus.queued, dedupe_key=f"event:{row.id}")
        )
    repo.session.flush()
    return row


def list_events(
    repo: Repo, *, subject_kind: str | None = None, subject_id: int | None = None, offset: int = 0, limit: int = 50
) -> list[OutboundEvent]:
    query = repo.select(OutboundEvent)
    if subject_kind:
        query = query.where(OutboundEvent.subject_kind == subject_kind)
    if subject_id is not None:
        query = query.where(OutboundEvent.subject_id == subject_id)
    return repo.all(query.order_by(OutboundEvent.id.desc()).offset(offset).limit(limit))


def deliver_event(services: Services, workspace: str, event_id: int) -> OutboundEvent | None:
    """POST one event to the webhook, retrying 5xx, 408, 425, 429 and network errors with exponential backoff."""
    policy = services.delivery_policy
    owns_client = services.webhook_client is None
    client = services.webhook_client or httpx.Client(
        timeout=policy.timeout_s, transport=GuardedTransport(services.targets)
    )
    try:
        for attempt in range(policy.max_attempts):
            if _attempt(services, workspace, event_id, client):
                break
            if attempt < policy.max_attempts - 1:
                services.sleep(min(policy.backoff_s * 2**attempt, policy.max_backoff_s))
        else:
            _finish(services, workspace, event_id, DeliveryStatus.failed)
    finally:
        if owns_client:
            client.close()
    with services.store.repo(workspace) as repo:
        return repo.get(OutboundEvent, event_id)


def _attempt(services: Services, workspace: str, event_id: int, client: httpx.Client) -> bool:
    """One POST; True when the event is finished (delivered, refused for good, or nothing to send)."""
    with services.store.repo(workspace) as repo:
        row = repo.get(OutboundEvent, event_id)
        config = webhook_config(repo)
        if row is None or row.status is DeliveryStatus.delivered:
            return True
        if config is None:
            row.status, row.last_error = DeliveryStatus.failed, "no webhook configured"
            return True
        body = json.dumps(row.payload, ensure_ascii=False).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": row.idempotency_key,
            "X-Copilot-Timestamp": timestamp,
            "X-Copilot-Signature": sign(config.secret, timestamp, body),
            "X-Copilot-Event": row.event,
        }
        row.attempts += 1
        try:
            services.targets.check_url(str(config.url))  # again now: the name may resolve elsewhere than when set
            response = client.post(str(config.url), content=body, headers=headers)
        except BlockedTarget as error:
            row.status, row.last_error = DeliveryStatus.failed, f"refused: {error}"[:500]
            return True
        except httpx.HTTPError as error:
            row.last_error = type(error).__name__  # never the target's words
            return False
        if response.is_success:
            row.status, row.delivered_at, row.last_error = DeliveryStatus.delivered, datetime.now(UTC), None
            return True
        row.last_error = f"HTTP {response.status_code} {response.reason_phrase}".strip()
        if response.status_code < 500 and response.status_code not in RETRYABLE_STATUS:
            row.status = DeliveryStatus.failed
            return True
        return False


def _finish(services: Services, workspace: str, event_id: int, status: DeliveryStatus) -> None:
    with services.store.repo(workspace) as repo:
        row = repo.get(OutboundEvent, event_id)
        if row is not None:
            row.status = status


@job_kind(DELIVER_KIND, Permission.manage)
def deliver_event_job(job: JobContext) -> dict[str, Any]:
    """Deliver one record-change event to the workspace's webhook."""
    row = deliver_event(job.services, job.workspace, int(job.params["event_id"]))
    return {
        "event_id": job.params["event_id"],
        "status": row.status.value if row else None,
        "attempts": row.attempts if row else 0,
    }
