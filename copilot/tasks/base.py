"""What every task shares: provenance, the typed outcome envelope, and saving it as an AiResult."""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import update

from copilot.guards import GuardVerdict, blocking_failures
from copilot.store import Repo
from copilot.store.models import AiResult, AiStatus

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement

    from copilot.gateway import Completion

T = TypeVar("T", bound=BaseModel)


class Provenance(BaseModel):
    """Where an AI output came from: enough to reproduce and audit it."""

    task: str
    prompt_name: str | None = None
    prompt_version: str | None = None
    model: str | None = None
    model_file: str | None = None  # local models: the GGUF file that answered, with its sha256
    input_ids: list[str] = Field(default_factory=list)  # "message:12", "call_turn:7", ...
    source_ids: list[str] = Field(default_factory=list)  # retrieved records cited as [S1], [S2], ...
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    cost_usd: float | None = None
    pii_masked: list[str] = Field(default_factory=list)  # kinds of personal data masked before leaving the process

    def with_completion(self, completion: Completion, *, add: bool = False) -> Provenance:
        """This provenance with the model, usage and masking of a completion (``add`` sums usage over several calls)."""
        base = self if add else Provenance(task=self.task)
        cost = (
            None
            if completion.cost_usd is None and (not add or self.cost_usd is None)
            else (base.cost_usd or 0) + (completion.cost_usd or 0)
        )
        return self.model_copy(
            update={
                "model": completion.model,
                "model_file": completion.model_file,
                "tokens_in": base.tokens_in + completion.tokens_in,
                "tokens_out": base.tokens_out + completion.tokens_out,
                "latency_ms": round(base.latency_ms + completion.latency_ms, 1),
                "cost_usd": cost,
                "pii_masked": sorted(set(base.pii_masked) | set(completion.pii_masked)),
            }
        )


class TaskOutcome(BaseModel, Generic[T]):
    """A task's typed result plus the guard verdicts a reviewer must see."""

    task: str
    result: T
    verdicts: list[GuardVerdict] = Field(default_factory=list)
    provenance: Provenance
    used_fallback: bool = False
    fallback_reason: str | None = None
    status: AiStatus | None = None  # None: the runner decides (pending when the task needs approval)
    subject_kind: str | None = Field(
        default=None, description="What this result is about, when not the task's usual kind."
    )
    subject_id: int | None = Field(default=None, description="The record this result is about.")
    ai_result_id: int | None = None
    version: int | None = None

    @property
    def blocked(self) -> bool:
        return bool(blocking_failures(self.verdicts))


def save_outcome(repo: Repo, outcome: TaskOutcome[T], *, subject_kind: str, subject_id: int | None) -> AiResult:
    """Persist an outcome as one AiResult row (in the caller's transaction) and note its id on the outcome."""
    provenance = outcome.provenance
    row = repo.add(
        AiResult(
            task=outcome.task,
            status=outcome.status or AiStatus.pending,
            subject_kind=subject_kind,
            subject_id=subject_id,
            content={
                "result": outcome.result.model_dump(mode="json"),
                "used_fallback": outcome.used_fallback,
                "fallback_reason": outcome.fallback_reason,
                "pii_masked": provenance.pii_masked,
            },
            prompt_name=provenance.prompt_name,
            prompt_version=provenance.prompt_version,
            model=provenance.model,
            model_file=provenance.model_file,
            input_ids=provenance.input_ids,
            source_ids=provenance.source_ids,
            tokens_in=provenance.tokens_in,
            tokens_out=provenance.tokens_out,
            latency_ms=provenance.latency_ms,
            cost_usd=provenance.cost_usd,
            guard_verdicts=[v.model_dump(mode="json") for v in outcome.verdicts],
        )
    )
    repo.session.flush()
    outcome.ai_result_id, outcome.version = row.id, row.version
    return row


def mark_stale(repo: Repo, *, subject_kind: str, subject_id: int, tasks: tuple[str, ...]) -> int:
    """Mark pending or completed outputs about a record as stale after it changed; returns how many."""
    conditions = (AiResult.subject_kind == subject_kind, AiResult.subject_id == subject_id, AiResult.task.in_(tasks))
    return mark_stale_where(repo, *conditions)


def mark_stale_where(repo: Repo, *conditions: ColumnElement[bool]) -> int:
    """Pending or completed outputs matching ``conditions`` become stale, in one conditional UPDATE: a result a
    reviewer decided meanwhile keeps its decision and is no version conflict. Returns how many."""
    statement = (
        update(AiResult)
        .where(
            AiResult.workspace_id == repo.workspace_id,
            AiResult.status.in_([AiStatus.pending, AiStatus.completed]),
            *conditions,
        )
        .values(status=AiStatus.stale, version=AiResult.version + 1)
        .execution_options(synchronize_session=False)
    )
    return repo.session.execute(statement).rowcount


def record_failure(repo: Repo, *, task: str, subject_kind: str, subject_id: int | None, error: str) -> AiResult:
    """A task that could not produce anything leaves a ``failed`` AiResult saying why (never a half-written one)."""
    row = repo.add(
        AiResult(
            task=task,
            status=AiStatus.failed,
            subject_kind=subject_kind,
            subject_id=subject_id,
            content={},
            error=error[:2000],
        )
    )
    repo.session.flush()
    return row
