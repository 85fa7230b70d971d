"""Application factory: routers per audience under /v1, one error model, web pages at the root."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.sessions import SessionMiddleware

from api import errors, web
from api.deps import Services
from api.limits import RequestSizeLimit
from api.routers import admin, health, jobs, marketing, records, review, sales, search, support
from copilot import __version__
from copilot.auth import import_keys_file
from copilot.settings import Settings
from copilot.store import Store

API_ROUTERS = (
    support.router,
    sales.router,
    marketing.router,
    search.router,
    review.router,
    records.router,
    admin.router,
    jobs.router,
)


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    settings = settings or Settings()
    services = Services(settings, store or Store.from_settings(settings))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        services.jobs.recover()
        if settings.api_keys_file:
            import_keys_file(services.store, settings.api_keys_file)
        yield
        services.jobs.shutdown()

    app = FastAPI(
        title="copilot",
        version=__version__,
        lifespan=lifespan,
        description="AI copilot over a CRM record store: every output a customer or a record will see waits for human review.",
    )
    app.state.services = services
    errors.install(app)
    app.include_router(health.router)
    app.include_router(health.router, prefix="/v1")
    for router in API_ROUTERS:
        app.include_router(router)
    for router in web.ROUTERS:
        app.include_router(router)
    web.install(app)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.resolved_session_secret(),
        same_site="strict",
        https_only=False,
        max_age=8 * 3600,
        session_cookie="copilot_session",
    )
    app.add_middleware(RequestSizeLimit, max_bytes=settings.max_request_bytes)
    return app
