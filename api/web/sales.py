"""Deal pages for reps (list with filters and sorting, open deals first; the brief). The NPS dashboard is in
api/web/nps.py."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import case, func, select

from api.schemas import resolve_ref
from api.web.calls import call_url, evidence_links
from api.web.common import PageCaller, check_csrf, flash, query_string, render, take_flash
from copilot.auth import Permission
from copilot.errors import CopilotError, InvalidInput
from copilot.store import Repo
from copilot.store.models import Account, AiResult, Call, Deal, DealStage
from copilot.tasks.deal_brief import DealBrief

router = APIRouter(include_in_schema=False)


OPEN = "open"  # the stage filter value for every stage but closed won / lost
CLOSED = (DealStage.closed_won, DealStage.closed_lost)
DEAL_SORTS = {
    "open_first": "open first, then close date",
    "close_date": "close date",
    "amount": "largest amount first",
    "updated": "recently updated",
}
PAGE_SIZE = 50


def deal_url(deal: Deal) -> str:
    return f"/deals/{quote(deal.external_id or str(deal.id), safe='')}"


def deal_query(repo: Repo, stage: str, owner: str, account_id: int | None, sort: str) -> Any:
    query = repo.select(Deal)
    if stage == OPEN:
        query = query.where(Deal.stage.not_in(CLOSED))
    elif stage:
        try:
            query = query.where(Deal.stage == DealStage(stage))
        except ValueError:
            raise InvalidInput(f"stage: one of {OPEN}, {', '.join(s.value for s in DealStage)}") from None
    if owner:
        query = query.where(Deal.owner == owner)
    if account_id is not None:
        query = query.where(Deal.account_id == account_id)
    closed_last = case((Deal.stage.in_(CLOSED), 1), else_=0)
    no_date_last = case((Deal.close_date.is_(None), 1), else_=0)
    orders = {
        "open_first": (closed_last, no_date_last, Deal.close_date, Deal.id),
        "close_date": (no_date_last, Deal.close_date, Deal.id),
        "amount": (case((Deal.amount.is_(None), 1), else_=0), Deal.amount.desc(), Deal.id),
        "updated": (Deal.updated_at.desc(), Deal.id.desc()),
    }
    if sort not in orders:
        raise InvalidInput(f"sort: one of {', '.join(orders)}")
    return query.order_by(*orders[sort])


@router.get("/deals", response_class=HTMLResponse)
def deals_page(
    request: Request,
    caller: PageCaller,
    stage: str = "",
    owner: str = "",
    account: str = "",
    sort: str = "open_first",
    page: int = 1,
) -> HTMLResponse:
    caller.principal.require(Permission.read_sales)
    page = max(page, 1)
    with caller.repo() as repo:
        account_row = resolve_ref(repo, Account, account) if account else None
        query = deal_query(repo, stage, owner, account_row.id if account_row else None, sort)
        total = repo.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        deals = repo.all(query.offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE))
        accounts = repo.all(repo.select(Account).order_by(Account.name).limit(500))
        owners = sorted(filter(None, repo.session.scalars(repo.select(Deal).with_only_columns(Deal.owner).distinct())))
    filters = {"stage": stage, "owner": owner, "account": account, "sort": sort}
    return render(
        request,
        "deals.html",
        caller,
        deals=deals,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        filters=filters,
        page_query=lambda n: query_string({**filters, "sort": sort if sort != "open_first" else "", "page": n}),
        stages=[s.value for s in DealStage],
        open_value=OPEN,
        owners=owners,
        accounts=accounts,
        account_names={a.id: a.name for a in accounts},
        sorts=DEAL_SORTS,
        deal_url=deal_url,
    )


@router.get("/deals/{deal_ref}", response_class=HTMLResponse)
def deal_page(deal_ref: str, request: Request, caller: PageCaller) -> HTMLResponse:
    caller.principal.require(Permission.read_sales)
    with caller.repo() as repo:
        deal = resolve_ref(repo, Deal, deal_ref)
        row = repo.session.scalar(
            repo.select(AiResult)
            .where(AiResult.task == "deal_brief", AiResult.subject_kind == "deal", AiResult.subject_id == deal.id)
            .order_by(AiResult.id.desc())
            .limit(1)
        )
        brief = DealBrief.model_validate(row.content["result"]) if row else None
        account = deal.account
        calls = repo.all(repo.select(Call).where(Call.deal_id == deal.id).order_by(Call.started_at.desc()).limit(20))
        tickets_ok = caller.principal.can(Permission.read_tickets)
        links = evidence_links(repo, brief.facts.record_ids() if brief else [], tickets_ok)
    return render(
        request,
        "deal.html",
        caller,
        deal=deal,
        url=deal_url(deal),
        account=account,
        brief=brief,
        row=row,
        calls=calls,
        call_url=call_url,
        links=links,
        flash=take_flash(request),
    )


@router.post("/deals/{deal_ref}/brief")
def brief_action(deal_ref: str, request: Request, caller: PageCaller, csrf: Annotated[str, Form()]) -> RedirectResponse:
    check_csrf(request, csrf)
    caller.principal.require(Permission.run_sales)
    with caller.repo() as repo:
        deal = resolve_ref(repo, Deal, deal_ref)
    try:
        caller.run_task("deal_brief", {"deal_id": deal.id})
        flash(request, "ok", "Brief refreshed.")
    except CopilotError as error:
        flash(request, "error", str(error))
    return RedirectResponse(deal_url(deal), status_code=303)
