"""The model gateway: every task calls models through :class:`Gateway`."""

from copilot.gateway.catalog import ModelFileError
from copilot.gateway.gateway import Completion, Gateway, ModelError, StructuredResult

__all__ = ["Completion", "Gateway", "ModelError", "ModelFileError", "StructuredResult"]
