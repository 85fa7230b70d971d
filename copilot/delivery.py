"""Delivering approved replies: a signed outbound webhook, retried with backoff, idempotent.

The receiver verifies ``X-Copilot-Signature: sha256=<hex>`` = HMAC-SHA256(secret, "<timestamp>.<body>")
with ``X-Copilot-Timestamp``, and de-duplicates on ``Idempotency-Key`` (the same for every retry).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from pydantic import BaseModel, Field, HttpUrl

from copilot.errors import Conflict, InvalidInput
from copilot.netguard import BlockedTarget, GuardedTransport, TargetPolicy
from copilot.review import draft_text, record_event, without_citations
from copilot.store import Repo, Store
from copilot.store.models import AiResult, AiStatus, Delivery, DeliveryStatus

RETRYABLE_STATUS = {408, 425, 429}


class WebhookConfig(BaseModel):
    url: HttpUrl
    secret: str = Field(min_length=16)


class DeliveryPolicy(BaseModel):
    max_attempts: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    timeout_s: float = 10.0


def delivered_tasks() -> tuple[str, ...]:
    """Tasks whose approved results reach the customer (declared in the task registry)."""
    from copilot.tasks import registry

    return registry.delivered()


def webhook_config(repo: Repo) -> WebhookConfig | None:
    raw = (repo.workspace.settings or {}).get("webhook")
    return WebhookConfig.model_validate(raw) if raw else None


def set_webhook(
    repo: Repo, url: str, secret: str | None = None, *, policy: TargetPolicy | None = None
) -> WebhookConfig:
    """Configure the workspace's outbound webhook (a public http(s) URL); a secret is generated when none is given."""
    try:
        config = WebhookConfig(url=url, secret=secret or secrets.token_urlsafe(32))
    except ValueError as error:
        raise InvalidInput(f"webhook: {error.errors()[0]['loc'][0]}: {error.errors()[0]['msg']}") from None
    (policy or TargetPolicy()).check_url(str(config.url))
    repo.workspace.settings = {**(repo.workspace.settings or {}), "webhook": config.model_dump(mode="json")}
    return config


def remove_webhook(repo: Repo) -> None:
    repo.workspace.settings = {k: v for k, v in (repo.workspace.settings or {}).items() if k != "webhook"}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def payload(repo: Repo, row: AiResult, key: str) -> dict:
    return {
        "event": f"{row.task}.approved",
        "workspace": repo.workspace.slug,
        "ai_result_id": row.id,
        "task": row.task,
        "subject_kind": row.subject_kind,
        "subject_id": row.subject_id,
        "text": without_citations(draft_text(row)),
        "status": row.status.value,
        "idempotency_key": key,
    }


def prepare_delivery(repo: Repo, result_id: int) -> Delivery | None:
    """The Delivery row for an approved customer-facing result (None when it is not delivered by webhook)."""
    row = repo.get(AiResult, result_id)
    config = webhook_config(repo)
    if row is None or row.task not in delivered_tasks() or config is None:
        return None
    if row.status not in (AiStatus.approved, AiStatus.edited, AiStatus.sent):
        raise Conflict(f"AI result {row.id} is {row.status.value}: only approved results are delivered")
    key = f"{repo.workspace.slug}:ai_result:{row.id}"
    delivery = repo.session.scalar(repo.select(Delivery).where(Delivery.idempotency_key == key))
    if delivery is None:
        delivery = repo.add(Delivery(ai_result_id=row.id, idempotency_key=key, target=str(config.url)))
        repo.session.flush()
    return delivery


def deliver(
    store: Store,
    workspace: str,
    result_id: int,
    *,
    policy: DeliveryPolicy | None = None,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
    targets: TargetPolicy | None = None,
) -> Delivery | None:
    """Send an approved result to the webhook, retrying transient failures; each attempt is committed."""
    policy = policy or DeliveryPolicy()
    with store.repo(workspace) as repo:
        delivery = prepare_delivery(repo, result_id)
        if delivery is None or delivery.status is DeliveryStatus.delivered:
            return delivery
        delivery.status = DeliveryStatus.pending  # a manual retry of a failed delivery starts over
        delivery_id = delivery.id
    targets = targets or TargetPolicy()
    owns_client = client is None
    client = client or httpx.Client(timeout=policy.timeout_s, transport=GuardedTransport(targets))
    try:
        for attempt in range(policy.max_attempts):
            finished = _attempt(store, workspace, delivery_id, client, targets)
            if finished:
                break
            if attempt < policy.max_attempts - 1:
                sleep(min(policy.backoff_s * 2**attempt, policy.max_backoff_s))
        else:
            _give_up(store, workspace, delivery_id)
    finally:
        if owns_client:
            client.close()
    with store.repo(workspace) as repo:
        return repo.get(Delivery, delivery_id)


def _attempt(store: Store, workspace: str, delivery_id: int, client: httpx.Client, targets: TargetPolicy) -> bool:
    """One POST; True when the delivery is finished (delivered, or refused for good)."""
    with store.repo(workspace) as repo:
        delivery = repo.get(Delivery, delivery_id)
        row = repo.get(AiResult, delivery.ai_result_id)
        config = webhook_config(repo)
        body = json.dumps(payload(repo, row, delivery.idempotency_key), ensure_ascii=False).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": delivery.idempotency_key,
            "X-Copilot-Timestamp": timestamp,
            "X-Copilot-Signature": sign(config.secret, timestamp, body),
        }
        delivery.attempts += 1
        try:
            targets.check_url(str(config.url))  # again now: the name may resolve elsewhere than when it was set
            response = client.post(str(config.url), content=body, headers=headers)
        except BlockedTarget as error:
            delivery.status, delivery.last_error = DeliveryStatus.failed, f"refused: {error}"[:500]
            record_event(repo, "webhook", "delivery.failed", row, after={"error": delivery.last_error})
            return True
        except httpx.HTTPError as error:
            delivery.last_error = f"{type(error).__name__}"[:500]  # never the target's words: they may be secrets
            return False
        if response.is_success:
            delivery.status, delivery.delivered_at, delivery.last_error = (
                DeliveryStatus.delivered,
                datetime.now(UTC),
                None,
            )
            before = row.status.value
            row.status = AiStatus.sent
            record_event(
                repo,
                "webhook",
                "delivery.sent",
                row,
                before={"status": before},
                after={"status": "sent", "target": delivery.target, "attempts": delivery.attempts},
            )
            return True
        # Status and reason only: the body of an error page is the target's business, not the reviewer's.
        delivery.last_error = f"HTTP {response.status_code} {response.reason_phrase}".strip()
        if response.status_code < 500 and response.status_code not in RETRYABLE_STATUS:
            delivery.status = DeliveryStatus.failed
            record_event(
                repo,
                "webhook",
                "delivery.failed",
                row,
                after={"error": delivery.last_error, "attempts": delivery.attempts},
            )
            return True
        return False


def _give_up(store: Store, workspace: str, delivery_id: int) -> None:
    with store.repo(workspace) as repo:
        delivery = repo.get(Delivery, delivery_id)
        delivery.status = DeliveryStatus.failed
        record_event(
            repo,
            "webhook",
            "delivery.failed",
            repo.get(AiResult, delivery.ai_result_id),
            after={"error": delivery.last_error, "attempts": delivery.attempts},
        )
