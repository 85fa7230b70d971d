"""The model gateway: every task calls models through :class:`Gateway`."""

from copilot.gateway.gateway import Completion, Gateway, ModelError, StructuredResult
from copilot.gateway.local import ModelFileError

__all__ = ["Completion", "Gateway", "ModelError", "ModelFileError", "StructuredResult"]
