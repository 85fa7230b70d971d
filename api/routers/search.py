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
    allowed = readable_kinds(caller)
    kinds = [k for k in (kind or allowed) if k in allowed]
    if not kinds:
        raise PermissionDenied(
            f"role '{caller.principal.role.value}' may not read {', '.join(kind or ['any searchable records'])}"
        )
    since = datetime.now(UTC) - timedelta(days=days) if days else None
    with caller.repo() as repo:
        return caller.services.searcher.search(
            repo, q, SearchFilters(account_id=account_id, kinds=kinds, since=since), limit=limit
        )
