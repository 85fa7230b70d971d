"""Search over the workspace's history, limited to the record kinds the caller's role may read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import Caller, any_caller
from api.errors import ERROR_RESPONSES
from api.schemas import IdQuery
from copilot.errors import PermissionDenied
from retrieval.search import SearchFilters, SearchHit

router = APIRouter(prefix="/v1", tags=["search"], responses=ERROR_RESPONSES)


def readable_kinds(caller: Caller) -> list[str]:
    from api.routers.records import READ_PERMISSION

    return [kind for kind, permission in READ_PERMISSION.items() if caller.principal.can(permission)]


def searchable_kinds(caller: Caller, asked: list[str] | None) -> list[str]:
    """The asked record kinds the caller's role may read (all it may read when none are asked); 403 when none."""
    allowed = readable_kinds(caller)
    kinds = [k for k in (asked or allowed) if k in allowed]
    if not kinds:
        raise PermissionDenied(
            f"role '{caller.principal.role.value}' may not read {', '.join(asked or ['any searchable records'])}"
        )
    return kinds


def run_search(
    caller: Caller, q: str, kinds: list[str], account_id: int | None, days: int | None, limit: int
) -> list[SearchHit]:
    """Hybrid search in the caller's workspace over ``kinds`` (already checked with :func:`searchable_kinds`)."""
    since = datetime.now(UTC) - timedelta(days=days) if days else None
    with caller.repo() as repo:
        return caller.services.searcher.search(
            repo, q, SearchFilters(account_id=account_id, kinds=kinds, since=since), limit=limit
        )


@router.get("/search", response_model=list[SearchHit])
def search(
    caller: Annotated[Caller, Depends(any_caller)],
    q: Annotated[str, Query(min_length=1, max_length=500)],
    account_id: IdQuery = None,
    kind: Annotated[list[str] | None, Query()] = None,
    days: Annotated[int | None, Query(ge=1, le=3650)] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 8,
) -> list[SearchHit]:
    """Hybrid (vector + full-text) search with citation labels S1, S2, ...; KB articles are shared across accounts."""
    return run_search(caller, q, searchable_kinds(caller, kind), account_id, days, limit)
