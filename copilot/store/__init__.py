"""The CRM record store: typed models, migrations and workspace-scoped access."""

from copilot.store.db import Repo, Store, StoreError, WorkspaceNotFound, get_or_create_workspace, migrate

__all__ = ["Repo", "Store", "StoreError", "WorkspaceNotFound", "get_or_create_workspace", "migrate"]
