"""Who the promoters and detractors are, for advocacy and recovery: score, comment, theme, account, language, who
sends their message, whether an approved draft already asked them, and their latest draft.

The theme is the one the respondent's comment spends most sentences on in the latest NPS theme run that holds it
(copilot/tasks/nps_themes: its stored assignments and report labels). Who sends the message: the account's owner, else
the owner of the account's open (else latest) deal; a detractor with neither goes to support (the assignee of their
latest ticket, open ones first, else the support queue); a promoter with neither is thanked by the team.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import case, func, select

from copilot.errors import InvalidInput, NotFound
from copilot.language import detect_language
from copilot.store import Repo
from copilot.store.models import (
    Account,
    AiResult,
    AiStatus,
    Contact,
    Deal,
    DealStage,
    NpsAdvocacy,
    NpsResponse,
    NpsThemeAssignment,
    Ticket,
    TicketStatus,
)

Band = Literal["promoters", "detractors"]
Kind = Literal["thank_you", "follow_up"]
RouteName = Literal["account_owner", "support", "team"]
KIND_OF_BAND: dict[str, Kind] = {"promoters": "thank_you", "detractors": "follow_up"}
TASK_OF_KIND: dict[str, str] = {"thank_you": "nps_thank_you", "follow_up": "nps_follow_up"}
SCORES: dict[str, tuple[int, int]] = {"promoters": (9, 10), "detractors": (0, 6)}
LANGUAGES = ("en", "es", "de", "fr", "pt", "it", "nl")  # the languages drafts are written in
SUBJECT_KIND = "nps_response"
CLOSED = (DealStage.closed_won, DealStage.closed_lost)
OPEN_TICKETS = (TicketStatus.new, TicketStatus.open, TicketStatus.pending)


def band_of(score: int) -> Band | None:
    return next((band for band, (low, high) in SCORES.items() if low <= score <= high), None)  # type: ignore[misc]


def kind_for(response: NpsResponse) -> Kind:
    """What a response gets: a promoter a thank-you, a detractor a follow-up; a passive nothing (422)."""
    band = band_of(response.score)
    if band is None:
        raise InvalidInput(
            f"response_id: response {response.external_id or response.id} scored {response.score}: a passive (7-8) "
            "gets neither a thank-you (promoters, 9-10) nor a follow-up (detractors, 0-6)"
        )
    return KIND_OF_BAND[band]


class Route(BaseModel):
    owner: str | None = Field(description="Who sends the message (and reviews it first); None: the support queue.")
    route: RouteName
    reason: str


class DraftState(BaseModel):
    ai_result_id: int
    task: str
    status: AiStatus
    version: int
    created_at: datetime


class Respondent(BaseModel):
    response_id: int
    response_ref: str | None
    score: int
    kind: Kind
    comment: str | None
    submitted_at: datetime
    campaign: str | None
    theme: str | None = Field(description="The theme the comment spends most sentences on (latest theme run).")
    themes: list[str] = Field(default_factory=list, description="Every theme the comment touches.")
    account_id: int | None
    account: str | None
    contact_id: int | None
    contact: str | None
    language: str
    owner: str | None
    route: RouteName
    route_reason: str
    asked: bool = Field(description="An approved draft already thanked (or followed up with) this respondent.")
    asked_at: datetime | None
    draft: DraftState | None = Field(description="The latest draft for this respondent, in any status.")


class RespondentFilters(BaseModel):
    band: Band = "promoters"
    asked: bool | None = Field(default=None, description="True: already asked; False: not yet; None: both.")
    commented: bool | None = Field(default=None, description="True: only responses with a comment.")
    account_id: int | None = None


class RespondentPage(BaseModel):
    band: Band
    total: int
    offset: int
    limit: int
    items: list[Respondent]


def respondent_language(contact: Contact | None, comment: str | None) -> str:
    """The contact's language when it is one we write (as reply drafts do), else the comment's, else English."""
    spoken = (contact.language or "").split("-")[0].lower() if contact is not None else ""
    if spoken in LANGUAGES:
        return spoken
    detected = detect_language(comment or "")
    return detected.code if detected.code in LANGUAGES and detected.confidence >= 0.5 else "en"


# -- the list -----------------------------------------------------------------------------------------------------
def _query(repo: Repo, filters: RespondentFilters):  # noqa: ANN202 - a Select over NpsResponse
    low, high = SCORES[filters.band]
    query = (
        repo.select(NpsResponse)
        .outerjoin(NpsAdvocacy, NpsAdvocacy.response_id == NpsResponse.id)
        .where(NpsResponse.score >= low, NpsResponse.score <= high)
    )
    if filters.asked is not None:
        query = query.where(NpsAdvocacy.asked_at.is_not(None) if filters.asked else NpsAdvocacy.asked_at.is_(None))
    if filters.commented:
        query = query.where(NpsResponse.comment.is_not(None), func.length(func.trim(NpsResponse.comment)) > 0)
    if filters.account_id is not None:
        query = query.where(NpsResponse.account_id == filters.account_id)
    return query


def list_respondents(repo: Repo, filters: RespondentFilters, *, offset: int = 0, limit: int = 50) -> RespondentPage:
    """A band's respondents, most recent first, with their theme, account, sender, asked flag and latest draft."""
    query = _query(repo, filters)
    total = repo.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = repo.all(query.order_by(NpsResponse.submitted_at.desc(), NpsResponse.id.desc()).offset(offset).limit(limit))
    return RespondentPage(band=filters.band, total=total, offset=offset, limit=limit, items=describe(repo, rows))


def not_yet_asked(repo: Repo, band: Band, limit: int) -> list[int]:
    """Respondents of a band with a comment, not asked yet and with no pending draft: what a bulk draft covers."""
    pending = (
        select(AiResult.id)
        .where(
            AiResult.workspace_id == repo.workspace_id,
            AiResult.subject_kind == SUBJECT_KIND,
            AiResult.subject_id == NpsResponse.id,
            AiResult.status == AiStatus.pending,
        )
        .exists()
    )
    query = _query(repo, RespondentFilters(band=band, asked=False, commented=True)).where(~pending)
    newest = query.with_only_columns(NpsResponse.id).order_by(NpsResponse.submitted_at.desc(), NpsResponse.id.desc())
    return list(repo.session.scalars(newest.limit(limit)))


def respondent(repo: Repo, reference: int | str) -> Respondent:
    response = repo.resolve(NpsResponse, reference)
    kind_for(response)
    return describe(repo, [response])[0]


def describe(repo: Repo, responses: list[NpsResponse]) -> list[Respondent]:
    """The facts of each response, with a few queries for the whole list."""
    ids = [r.id for r in responses]
    accounts = _by_id(repo, Account, [r.account_id for r in responses])
    contacts = _by_id(repo, Contact, [r.contact_id for r in responses])
    routes = routes_for(repo, responses, accounts)
    themes = themes_of(repo, ids)
    states = {s.response_id: s for s in repo.all(repo.select(NpsAdvocacy).where(NpsAdvocacy.response_id.in_(ids)))}
    drafts = latest_drafts(repo, ids)
    out = []
    for response in responses:
        account, contact = accounts.get(response.account_id or 0), contacts.get(response.contact_id or 0)
        route, state, touched = routes[response.id], states.get(response.id), themes.get(response.id, [])
        out.append(
            Respondent(
                response_id=response.id,
                response_ref=response.external_id,
                score=response.score,
                kind=kind_for(response),
                comment=response.comment,
                submitted_at=response.submitted_at,
                campaign=response.campaign,
                theme=touched[0] if touched else None,
                themes=touched,
                account_id=account.id if account else None,
                account=account.name if account else None,
                contact_id=contact.id if contact else None,
                contact=contact.name if contact else None,
                language=respondent_language(contact, response.comment),
                owner=route.owner,
                route=route.route,
                route_reason=route.reason,
                asked=bool(state and state.asked_at),
                asked_at=state.asked_at if state else None,
                draft=drafts.get(response.id),
            )
        )
    return out


def _by_id(repo: Repo, model: type, ids: Iterable[int | None]) -> dict[int, object]:
    wanted = sorted({i for i in ids if i})
    return {row.id: row for row in repo.all(repo.select(model).where(model.id.in_(wanted)))} if wanted else {}


# -- who sends it -------------------------------------------------------------------------------------------------
def routes_for(
    repo: Repo, responses: list[NpsResponse], accounts: dict[int, Account] | None = None
) -> dict[int, Route]:
    accounts = accounts if accounts is not None else _by_id(repo, Account, [r.account_id for r in responses])
    deal_owners = _deal_owners(repo, [r.account_id for r in responses if r.account_id])
    assignees = _ticket_assignees(repo, [r.contact_id for r in responses if r.contact_id])
    routes = {}
    for response in responses:
        account = accounts.get(response.account_id or 0)
        detractor = band_of(response.score) == "detractors"
        routes[response.id] = _route(account, deal_owners, assignees.get(response.contact_id or 0), detractor)
    return routes


def _route(
    account: Account | None, deal_owners: dict[int, tuple[str, str]], ticket: tuple[str, str] | None, detractor: bool
) -> Route:
    if account is not None and account.owner:
        return Route(owner=account.owner, route="account_owner", reason=f"owner of account {account.name}")
    if account is not None and account.id in deal_owners:
        owner, deal = deal_owners[account.id]
        return Route(owner=owner, route="account_owner", reason=f"owner of {account.name}'s deal {deal}")
    if not detractor:
        return Route(owner=None, route="team", reason="the account has no owner: the team thanks them")
    if ticket is not None:
        return Route(owner=ticket[0], route="support", reason=f"no account owner: assignee of their ticket {ticket[1]}")
    return Route(owner=None, route="support", reason="no account owner and no ticket: the support queue")


def _deal_owners(repo: Repo, account_ids: list[int]) -> dict[int, tuple[str, str]]:
    """Per account, the owner of its open deal updated last (else of its latest deal), with the deal's reference."""
    if not account_ids:
        return {}
    closed_last = case((Deal.stage.in_(CLOSED), 1), else_=0)
    query = (
        repo.select(Deal)
        .where(Deal.account_id.in_(sorted(set(account_ids))), Deal.owner.is_not(None))
        .order_by(Deal.account_id, closed_last, Deal.updated_at.desc(), Deal.id.desc())
    )
    owners: dict[int, tuple[str, str]] = {}
    for deal in repo.all(query):
        owners.setdefault(deal.account_id, (deal.owner, deal.external_id or str(deal.id)))
    return owners


def _ticket_assignees(repo: Repo, contact_ids: list[int]) -> dict[int, tuple[str, str]]:
    """Per contact, the assignee of their latest ticket (open ones first), with the ticket's reference."""
    if not contact_ids:
        return {}
    open_first = case((Ticket.status.in_(OPEN_TICKETS), 0), else_=1)
    query = (
        repo.select(Ticket)
        .where(Ticket.contact_id.in_(sorted(set(contact_ids))), Ticket.assignee.is_not(None))
        .order_by(Ticket.contact_id, open_first, Ticket.opened_at.desc(), Ticket.id.desc())
    )
    assignees: dict[int, tuple[str, str]] = {}
    for ticket in repo.all(query):
        assignees.setdefault(ticket.contact_id, (ticket.assignee, ticket.external_id or str(ticket.id)))
    return assignees


# -- themes and drafts --------------------------------------------------------------------------------------------
def themes_of(repo: Repo, response_ids: list[int]) -> dict[int, list[str]]:
    """Per response, the labels of the themes it touches in the latest run that assigned it (most sentences first)."""
    if not response_ids:
        return {}
    rows = repo.session.execute(
        select(
            NpsThemeAssignment.response_id,
            NpsThemeAssignment.run_id,
            NpsThemeAssignment.theme,
            NpsThemeAssignment.sentences,
        ).where(
            NpsThemeAssignment.workspace_id == repo.workspace_id,
            NpsThemeAssignment.response_id.in_(response_ids),
            NpsThemeAssignment.theme >= 0,
        )
    ).all()
    latest: dict[int, int] = {}
    for response_id, run_id, _theme, _sentences in rows:
        latest[response_id] = max(run_id, latest.get(response_id, 0))
    labels = _theme_labels(repo, set(latest.values()))
    touched: dict[int, list[tuple[int, int, str]]] = {}
    for response_id, run_id, theme, sentences in rows:
        label = labels.get(run_id, {}).get(theme)
        if run_id == latest[response_id] and label:
            touched.setdefault(response_id, []).append((-sentences, theme, label))
    return {response_id: [label for *_, label in sorted(items)] for response_id, items in touched.items()}


def _theme_labels(repo: Repo, run_ids: set[int]) -> dict[int, dict[int, str]]:
    from copilot.tasks.nps_themes import load_report

    labels = {}
    for run_id in run_ids:
        try:
            labels[run_id] = {theme.id: theme.label for theme in load_report(repo, run_id).themes}
        except NotFound:  # a run whose report was deleted: its themes have no names to show
            labels[run_id] = {}
    return labels


def latest_drafts(repo: Repo, response_ids: list[int]) -> dict[int, DraftState]:
    if not response_ids:
        return {}
    query = (
        repo.select(AiResult)
        .where(
            AiResult.subject_kind == SUBJECT_KIND,
            AiResult.subject_id.in_(response_ids),
            AiResult.task.in_(list(TASK_OF_KIND.values())),
        )
        .order_by(AiResult.id.desc())
    )
    drafts: dict[int, DraftState] = {}
    for row in repo.all(query):
        drafts.setdefault(
            row.subject_id,
            DraftState(
                ai_result_id=row.id, task=row.task, status=row.status, version=row.version, created_at=row.created_at
            ),
        )
    return drafts
