"""FastAPI dependencies: the app's services, the authenticated caller and per-role access."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, TypeVar

import httpx
from fastapi import Depends, Header, Query, Request

from copilot.auth import Permission, Principal, authenticate
from copilot.delivery import DeliveryPolicy, deliver
from copilot.gateway import Gateway, ModelError
from copilot.jobs import JobRunner
from copilot.settings import Settings
from copilot.store import Repo, Store
from copilot.store.models import Delivery
from copilot.tasks.base import record_failure
from copilot.tasks.context import TaskContext

T = TypeVar("T")

SESSION_KEY = "api_key"


class Services:
    """Process-wide services, built lazily (the embedder and classifier take seconds to load)."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings, self.store = settings, store
        self.gateway = Gateway(settings)
        self.jobs = JobRunner(store, settings)
        self.webhook_client: httpx.Client | None = None  # tests swap in a client with a mock transport
        self.delivery_policy = DeliveryPolicy()
        self.sleep: Callable[[float], None] = time.sleep

    def deliver(self, workspace: str, result_id: int) -> Delivery | None:
        return deliver(
            self.store, workspace, result_id, policy=self.delivery_policy, client=self.webhook_client, sleep=self.sleep
        )

    @cached_property
    def embedder(self):
        from retrieval.embeddings import default_embedder

        return default_embedder()

    @cached_property
    def searcher(self):
        from retrieval.index import HistoryIndex
        from retrieval.search import Searcher

        return Searcher(HistoryIndex(self.settings, self.embedder))

    @cached_property
    def sentiment(self):
        from copilot.tasks.sentiment import SentimentClassifier

        return SentimentClassifier(self.embedder.encode)


def get_services(request: Request) -> Services:
    return request.app.state.services


def get_settings(request: Request) -> Settings:
    return request.app.state.services.settings


def get_store(request: Request) -> Store:
    return request.app.state.services.store


def request_key(request: Request, authorization: str | None, x_api_key: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    if x_api_key:
        return x_api_key.strip()
    return request.session.get(SESSION_KEY) if "session" in request.scope else None


def get_principal(
    request: Request,
    services: Annotated[Services, Depends(get_services)],
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_api_key: Annotated[str | None, Header(description="API key (or send `Authorization: Bearer <key>`).")] = None,
) -> Principal:
    with services.store.session() as session:
        return authenticate(session, request_key(request, authorization, x_api_key))


@dataclass
class Caller:
    """An authenticated request: who is calling, and the workspace they may touch."""

    principal: Principal
    services: Services

    @contextmanager
    def repo(self) -> Iterator[Repo]:
        """The caller's workspace in one transaction (commits on success)."""
        with self.services.store.repo(self.principal.workspace_slug) as repo:
            yield repo

    def context(self, repo: Repo, on_token: Callable[[str], None] | None = None) -> TaskContext:
        gateway = self.services.gateway.listening(on_token) if on_token else self.services.gateway
        return ServiceContext(self.services.settings, repo, gateway, services=self.services)

    def run(
        self,
        task: str,
        subject_kind: str,
        subject_id: int | None,
        work: Callable[[TaskContext], T],
        on_token: Callable[[str], None] | None = None,
    ) -> T:
        """Run a task in one transaction; if the model fails outright, record a ``failed`` result and re-raise."""
        try:
            with self.repo() as repo:
                return work(self.context(repo, on_token))
        except ModelError as error:
            with self.repo() as repo:
                record_failure(repo, task=task, subject_kind=subject_kind, subject_id=subject_id, error=str(error))
            raise


@dataclass
class ServiceContext(TaskContext):
    """A task context whose embedder and searcher are the process-wide ones, loaded on first use."""

    services: Services | None = None

    @cached_property
    def embedder(self):
        return self.services.embedder

    @cached_property
    def searcher(self):
        return self.services.searcher


def allow(permission: Permission) -> Callable[..., Caller]:
    """A dependency admitting callers whose role has ``permission`` (401 without a key, 403 without the right)."""

    def dependency(
        principal: Annotated[Principal, Depends(get_principal)], services: Annotated[Services, Depends(get_services)]
    ) -> Caller:
        principal.require(permission)
        return Caller(principal, services)

    return dependency


def any_caller(
    principal: Annotated[Principal, Depends(get_principal)], services: Annotated[Services, Depends(get_services)]
) -> Caller:
    return Caller(principal, services)


@dataclass
class Page:
    offset: int
    limit: int


def pagination(offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Page:
    return Page(offset, limit)


PageParams = Annotated[Page, Depends(pagination)]
