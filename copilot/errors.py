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
