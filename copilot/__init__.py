"""copilot: narrow AI tasks over a CRM record store, with human review."""

__version__ = "0.1.0"
