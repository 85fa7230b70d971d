"""Exceptions a user can act on. The CLI prints them as one line; the API maps them to 4xx/5xx."""


class CopilotError(Exception):
    """Base class: the message says what went wrong and, where possible, how to fix it."""


class NotFound(CopilotError):
    """A record id that does not exist in the caller's workspace."""


class InvalidInput(CopilotError):
    """Input that failed validation; the message names the field."""


class Conflict(CopilotError):
    """The record changed since the caller read it (e.g. two reviewers deciding on one draft)."""


class Unauthenticated(CopilotError):
    """No credentials, or credentials that match no active API key."""


class PermissionDenied(CopilotError):
    """Valid credentials whose role may not do this."""


class Unavailable(CopilotError):
    """A service the deployment depends on cannot be reached (e.g. the Ray cluster); trying later may help."""


class RateLimited(CopilotError):
    """Too many attempts: the message says when to try again."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ModelError(CopilotError):
    """Every model we may use failed; ``retryable`` says whether trying later may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class BudgetExceeded(ModelError):
    """The workspace spent its daily model budget; tasks fall back to their non-LLM path."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)
