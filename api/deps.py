"""FastAPI dependencies: settings and store, taken from the app state."""

from __future__ import annotations

from fastapi import Request

from copilot.settings import Settings
from copilot.store import Store


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> Store:
    return request.app.state.store
