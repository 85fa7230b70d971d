"""The model gateway: every task calls models through :class:`Gateway`.

The gateway module imports litellm (seconds): it loads on first use of one of its names, so that importing
``copilot.gateway.catalog`` (``copilot models``, the CLI's help) stays quick.
"""

from typing import TYPE_CHECKING, Any

from copilot.gateway.catalog import ModelFileError

if TYPE_CHECKING:
    from copilot.gateway.gateway import Completion, Gateway, ModelError, StructuredResult

__all__ = ["Completion", "Gateway", "ModelError", "ModelFileError", "StructuredResult"]
LAZY = frozenset({"Completion", "Gateway", "ModelError", "StructuredResult"})


def __getattr__(name: str) -> Any:
    if name in LAZY:
        from copilot.gateway import gateway

        return getattr(gateway, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
