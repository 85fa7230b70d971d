"""Workspace administration: API keys, tones, the outbound webhook, reindexing, the sentiment head, model usage,
the daily model budget and precompute."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Caller, allow
from api.errors import ERROR_RESPONSES
from api.routers.jobs import JobOut, submit_job
from api.schemas import IdPath
from copilot.auth import Permission, create_key, list_keys, revoke_key
from copilot.delivery import remove_webhook, set_webhook, webhook_config
from copilot.review import record_event
from copilot.store.models import Role
from copilot.tasks.precompute import precompute_enabled, set_precompute
from copilot.tasks.sentiment import SHIPPED_HEAD
from copilot.tasks.sentiment_train import (
    HeadInfo,
    LabelledText,
    check_label_counts,
    reset_workspace_head,
    workspace_head,
)
from copilot.tasks.tones import reset_tones, set_custom_tone, workspace_tones
from copilot.usage import Budget, BudgetStatus, UsageRow, set_budget, usage
from copilot.usage import status as budget_status

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=ERROR_RESPONSES)
Admin = Annotated[Caller, Depends(allow(Permission.manage))]


class KeyRequest(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    role: Role


class KeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: Role
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewKey(KeyOut):
    key: str = Field(description="The key itself: shown this once, store it now.")


class ToneRequest(BaseModel):
    instruction: str = Field(min_length=3, max_length=500)


class WebhookRequest(BaseModel):
    url: str = Field(max_length=500)
    secret: str | None = Field(default=None, min_length=16, max_length=200, description="Generated when omitted.")


class WebhookOut(BaseModel):
    url: str
    secret: str | None = Field(default=None, description="Only returned when the webhook is set.")


class SentimentHeadRequest(BaseModel):
    examples: list[LabelledText] = Field(
        min_length=1, max_length=50_000, description="The workspace's labelled messages."
    )
    source: str = Field(
        default="API upload", max_length=200, description="Where the labels come from (kept with the head)."
    )
    dry_run: bool = Field(default=False, description="Cross-validate and report in the job result; save nothing.")
    force: bool = Field(default=False, description="Save even when the new head scores below the shipped one.")


class SentimentHeadOut(BaseModel):
    head: str = Field(description="The head this workspace classifies with.")
    workspace_head: HeadInfo | None = Field(
        description="The workspace's own head and its training figures, if it has one."
    )


class ReindexRequest(BaseModel):
    rebuild: bool = Field(default=False, description="Drop the index and build it again instead of catching up.")


@router.post("/keys", response_model=NewKey, status_code=201)
def create(request: KeyRequest, caller: Admin) -> NewKey:
    with caller.repo() as repo:
        key, row = create_key(repo, request.role, request.name)
        return NewKey(key=key, **KeyOut.model_validate(row).model_dump())


@router.get("/keys", response_model=list[KeyOut])
def keys(caller: Admin) -> list[KeyOut]:
    with caller.repo() as repo:
        return [KeyOut.model_validate(k) for k in list_keys(repo)]


@router.delete("/keys/{key_id}", response_model=KeyOut)
def revoke(key_id: IdPath, caller: Admin) -> KeyOut:
    with caller.repo() as repo:
        return KeyOut.model_validate(revoke_key(repo, key_id))


@router.get("/tones", response_model=dict[str, str])
def tones(caller: Admin) -> dict[str, str]:
    with caller.repo() as repo:
        return workspace_tones(repo)


@router.put("/tones/{name}", response_model=dict[str, str])
def put_tone(name: str, request: ToneRequest, caller: Admin) -> dict[str, str]:
    with caller.repo() as repo:
        set_custom_tone(repo, name, request.instruction)
        return workspace_tones(repo)


@router.delete("/tones", response_model=dict[str, str])
def reset(caller: Admin) -> dict[str, str]:
    with caller.repo() as repo:
        reset_tones(repo)
        return workspace_tones(repo)


@router.get("/webhook", response_model=WebhookOut | None)
def get_webhook(caller: Admin) -> WebhookOut | None:
    with caller.repo() as repo:
        config = webhook_config(repo)
        return WebhookOut(url=str(config.url)) if config else None


@router.put("/webhook", response_model=WebhookOut)
def put_webhook(request: WebhookRequest, caller: Admin) -> WebhookOut:
    """Where approved replies are POSTed, signed with HMAC-SHA256 over ``<timestamp>.<body>``."""
    with caller.repo() as repo:
        config = set_webhook(repo, request.url, request.secret, policy=caller.services.targets)
        return WebhookOut(url=str(config.url), secret=config.secret)


@router.delete("/webhook", status_code=204)
def delete_webhook(caller: Admin) -> Response:
    with caller.repo() as repo:
        remove_webhook(repo)
    return Response(status_code=204)


@router.post("/reindex", response_model=JobOut, status_code=202)
def reindex(caller: Admin, response: Response, request: ReindexRequest | None = None) -> JobOut:
    """Bring the search index up to date (or rebuild it) as a background job."""
    return submit_job(caller, response, "reindex", {"rebuild": (request or ReindexRequest()).rebuild})


@router.get("/sentiment-head", response_model=SentimentHeadOut)
def sentiment_head(caller: Admin) -> SentimentHeadOut:
    with caller.repo() as repo:
        info = workspace_head(repo)
    return SentimentHeadOut(head=info.name if info else SHIPPED_HEAD, workspace_head=info)


@router.post("/sentiment-head", response_model=JobOut, status_code=202)
def train_sentiment_head(request: SentimentHeadRequest, caller: Admin, response: Response) -> JobOut:
    """Train this workspace's own sentiment head as a background job (cross-validated first; see the job result)."""
    check_label_counts(request.examples, "examples")
    params = {
        "examples": [e.model_dump() for e in request.examples],
        "source": request.source,
        "actor": caller.principal.actor,
        "dry_run": request.dry_run,
        "force": request.force,
    }
    return submit_job(caller, response, "sentiment_head", params)


@router.delete("/sentiment-head", status_code=204)
def reset_sentiment_head(caller: Admin) -> Response:
    """Go back to the shipped sentiment head."""
    with caller.repo() as repo:
        reset_workspace_head(repo, caller.principal.actor)
    return Response(status_code=204)


@router.get("/usage", response_model=list[UsageRow])
def usage_report(caller: Admin, days: Annotated[int, Query(ge=1, le=366)] = 30) -> list[UsageRow]:
    """Model calls, tokens and cost per UTC day, task and model (cost where the provider has a price)."""
    with caller.repo() as repo:
        return usage(repo, days)


@router.get("/budget", response_model=BudgetStatus)
def get_budget(caller: Admin) -> BudgetStatus:
    """The workspace's daily model budget and what today has spent of it."""
    with caller.repo() as repo:
        return budget_status(repo)


@router.put("/budget", response_model=BudgetStatus)
def put_budget(request: Budget, caller: Admin) -> BudgetStatus:
    """Cap tokens and/or dollars per UTC day; once spent, tasks take their non-LLM path (both null: no cap)."""
    with caller.repo() as repo:
        set_budget(repo, request)
        record_event(repo, caller.principal.actor, "budget.set", after=request.model_dump())
        return budget_status(repo)


class PrecomputeRequest(BaseModel):
    enabled: bool | None = Field(description="true/false, or null for the default (on for capable models).")


class PrecomputeOut(BaseModel):
    enabled: bool
    configured: bool | None


@router.put("/precompute", response_model=PrecomputeOut)
def put_precompute(request: PrecomputeRequest, caller: Admin) -> PrecomputeOut:
    """Whether a new customer message queues a summary refresh and a reply draft in the background."""
    with caller.repo() as repo:
        set_precompute(repo, request.enabled)
        return PrecomputeOut(enabled=precompute_enabled(caller.services, repo), configured=request.enabled)
