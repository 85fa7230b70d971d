"""Application factory: routers per audience under /v1, one error model, web pages at the root."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import docs, errors, web
from api.limits import AuthFailures, RequestSizeLimit
from api.routers import admin, health, insights, jobs, marketing, records, review, sales, search, support, tasks, triage
from api.security import SecurityHeaders
from api.sessions import ServerSessions
from copilot import __version__
from copilot.auth import import_keys_file
from copilot.services import Services
from copilot.settings import Settings
from copilot.store import Store

log = logging.getLogger("copilot.api")

API_ROUTERS = (
    support.router,
    sales.router,
    marketing.router,
    search.router,
    review.router,
    records.router,
    admin.router,
    jobs.router,
    insights.router,
    triage.router,
)


def warm_local_models(services: Services) -> None:
    """Start the local model servers the configuration uses, so the first request does not wait for a load."""
    try:
        for task in (None, *services.settings.task_models):
            (services.gateway.for_task(task) if task else services.gateway).check_ready()
    except Exception as error:  # the service answers without its model: tasks take their fallback, with a verdict
        log.error("local model not ready: %s", error)


def create_app(
    settings: Settings | None = None, store: Store | None = None, services: Services | None = None
) -> FastAPI:
    settings = settings or (services.settings if services else Settings.from_env())
    services = services or Services(settings, store or Store.from_settings(settings))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.api_keys_file:
            import_keys_file(services.store, settings.api_keys_file)
        services.jobs.start()
        threading.Thread(target=warm_local_models, args=(services,), name="warm-models", daemon=True).start()
        yield
        services.close()

    app = FastAPI(
        title="copilot",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # served by api.docs with local assets
        redoc_url=None,
        description=(
            "AI copilot over a CRM record store: every output a customer or a record will see waits for human review."
        ),
    )
    app.state.services = services
    app.state.auth_failures = AuthFailures()
    errors.install(app)
    docs.install(app)
    app.include_router(health.router)
    app.include_router(health.router, prefix="/v1")
    for router in (*API_ROUTERS, tasks.build_router()):
        app.include_router(router)
    for router in web.ROUTERS:
        app.include_router(router)
    web.install(app)
    app.add_middleware(ServerSessions, store=services.store, settings=settings)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestSizeLimit, max_bytes=settings.max_request_bytes)
    return app
