"""Liveness and readiness."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy import text

from api.deps import get_settings, get_store
from copilot import __version__
from copilot.settings import Settings
from copilot.store import Store

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    version: str
    database: str
    model: str


@router.get("/health", response_model=Health)
def health(store: Annotated[Store, Depends(get_store)], settings: Annotated[Settings, Depends(get_settings)]) -> Health:
    with store.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return Health(status="ok", version=__version__, database=store.engine.dialect.name, model=settings.model)
