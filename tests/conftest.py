"""Shared fixtures: an isolated data dir, settings on the fake model, and a migrated store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from copilot.settings import Settings  # noqa: E402
from copilot.store import Store, get_or_create_workspace  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _clean_copilot_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("COPILOT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("COPILOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COPILOT_MODEL", "fake/echo")
    monkeypatch.setenv("COPILOT_INDEX_ON_INGEST", "false")  # tests that need the index build it themselves


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", model="fake/echo")


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    store = Store.from_settings(settings)
    yield store
    store.engine.dispose()


@pytest.fixture
def two_workspaces(store: Store) -> tuple[str, str]:
    with store.session() as session:
        get_or_create_workspace(session, "alpha", "Alpha Inc")
        get_or_create_workspace(session, "beta", "Beta GmbH")
    return "alpha", "beta"


@pytest.fixture
def fake_script():
    """The queue of responses for ``fake/scripted``, emptied before and after the test."""
    from copilot.gateway.fake import SCRIPT

    SCRIPT.reset()
    yield SCRIPT
    SCRIPT.reset()
