"""CRM records: list, read, bulk upsert (validated like `copilot ingest`, indexed for search) and delete."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Response
from sqlalchemy import func, select

from api.deps import Caller, PageParams, any_caller
from api.errors import ERROR_RESPONSES
from api.schemas import RECORD_MODELS, PageOf, RecordRef, resolve_ref
from copilot.auth import Permission, Principal
from copilot.errors import InvalidInput, NotFound
from copilot.ingest import IngestError, IngestReport, SourceRow, ingest_rows
from copilot.records import after_write_hooks, delete_record
from copilot.store.models import CRM_MODELS

router = APIRouter(prefix="/v1/records", tags=["records"], responses=ERROR_RESPONSES)
Kind = Annotated[str, Path(description=f"One of: {', '.join(CRM_MODELS)}")]
READ_PERMISSION = {
    "ticket": Permission.read_tickets,
    "message": Permission.read_tickets,
    "contact": Permission.read_tickets,
    "kb_article": Permission.read_tickets,
    "deal": Permission.read_sales,
    "call": Permission.read_sales,
    "note": Permission.read_sales,
    "nps_response": Permission.read_nps,
}
INGEST_ERROR = re.compile(r"^items:(\d+): (.*)$", re.S)


def check_kind(kind: str) -> type:
    if kind not in CRM_MODELS:
        raise NotFound(f"no record kind '{kind}' (one of: {', '.join(CRM_MODELS)})")
    return CRM_MODELS[kind]


def may_read(principal: Principal, kind: str) -> bool:
    if kind == "account":  # every audience works with accounts
        return True
    return principal.can(READ_PERMISSION[kind])


def reader(kind: Kind, caller: Annotated[Caller, Depends(any_caller)]) -> Caller:
    check_kind(kind)
    if not may_read(caller.principal, kind):
        caller.principal.require(READ_PERMISSION[kind])
    return caller


def writer(kind: Kind, caller: Annotated[Caller, Depends(any_caller)]) -> Caller:
    check_kind(kind)
    caller.principal.require(Permission.write_records)
    return caller


@router.get("/{kind}", response_model=PageOf[Any])
def list_records(
    kind: Kind, caller: Annotated[Caller, Depends(reader)], page: PageParams, external_id: str | None = None
):
    model, out = CRM_MODELS[kind], RECORD_MODELS[kind]
    with caller.repo() as repo:
        query = repo.select(model)
        if external_id is not None:
            query = query.where(model.external_id == external_id)
        total = repo.session.scalar(select(func.count()).select_from(query.subquery()))
        rows = repo.all(query.order_by(model.id).offset(page.offset).limit(page.limit))
        return PageOf[out](
            items=[out.model_validate(r) for r in rows], total=total, offset=page.offset, limit=page.limit
        )


@router.get("/{kind}/{record_id}", response_model=Any)
def get_record(kind: Kind, record_id: RecordRef, caller: Annotated[Caller, Depends(reader)]):
    with caller.repo() as repo:
        return RECORD_MODELS[kind].model_validate(resolve_ref(repo, CRM_MODELS[kind], record_id))


@router.post("/{kind}", response_model=IngestReport)
def upsert_records(
    kind: Kind,
    caller: Annotated[Caller, Depends(writer)],
    items: Annotated[
        list[dict[str, Any]],
        Body(
            min_length=1, max_length=10_000, description="Rows as in `copilot ingest` files; references by external id."
        ),
    ],
    dry_run: bool = False,
) -> IngestReport:
    """Create or update records by external id in one transaction: one bad row and nothing is written."""
    rows = [SourceRow(line=n, kind=kind, data=item) for n, item in enumerate(items)]
    try:
        with caller.repo() as repo:
            report = ingest_rows(repo, rows, source="items", dry_run=dry_run)
            for hook in () if dry_run else after_write_hooks(caller.services):
                hook(repo, report)
            if dry_run:
                repo.session.rollback()
        caller.services.jobs.start()  # precompute jobs the hooks queued run once this transaction committed
        return report
    except IngestError as error:
        match = INGEST_ERROR.match(str(error))
        raise InvalidInput(f"items[{match.group(1)}].{match.group(2)}" if match else str(error)) from None


@router.delete("/{kind}/{record_id}", status_code=204)
def delete(kind: Kind, record_id: RecordRef, caller: Annotated[Caller, Depends(writer)]) -> Response:
    """Delete a record (its messages or turns go with it) and drop it from search."""
    with caller.repo() as repo:
        delete_record(repo, caller.services, kind, resolve_ref(repo, CRM_MODELS[kind], record_id).id)
    return Response(status_code=204)
