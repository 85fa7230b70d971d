"""Test doubles shared by the test modules: handed to the code under test as objects, never module state."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from copilot.auth import Permission
from copilot.gateway.fake import FakeModel
from copilot.profiles import Profile
from copilot.tasks import registry
from copilot.tasks.base import Provenance, TaskOutcome
from copilot.tasks.registry import TaskParams

__all__ = ["FakeEmbedder", "FakeModel", "UpperParams", "upper_task"]


class FakeEmbedder:
    """Deterministic bag-of-letters vectors: enough for centroid ranking and clustering in unit tests."""

    name = "fake-letters"
    dimensions = 26

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        self.calls += 1
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        counts = [[t.lower().count(c) for c in "abcdefghijklmnopqrstuvwxyz"] for t in texts]
        vectors = np.array(counts, dtype=np.float32) + 1e-3
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


class UpperParams(TaskParams):
    strategy: Literal["auto", "upper"] = "auto"
    text: str = Field(min_length=1)


class Upper(BaseModel):
    text: str


@contextmanager
def upper_task(name: str, permission: Permission, review: Permission) -> Iterator[None]:
    """A task that writes its text in capitals, declared through the registry alone (and removed afterwards)."""

    def run(context, params: UpperParams) -> TaskOutcome[Upper]:
        """Write a text in capitals (a task declared in the tests only)."""
        return TaskOutcome[Upper](task=name, result=Upper(text=params.text.upper()), provenance=Provenance(task=name))

    defaults = {Profile.small: "upper", Profile.capable: "upper"}
    registry.task(name, subject="text", permission=permission, review=review, defaults=defaults)(run)
    try:
        yield
    finally:
        registry.unregister(name)
