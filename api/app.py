"""Application factory."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from api.routers import health
from copilot import __version__
from copilot.settings import Settings
from copilot.store import Store


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(title="copilot", version=__version__, description="AI copilot over a CRM record store, with human review.")
    app.state.settings = settings
    app.state.store = store or Store.from_settings(settings)
    app.include_router(health.router)
    app.include_router(health.router, prefix="/v1")

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/docs")

    return app
