"""API keys and the role matrix: who may do what, in which workspace.

A key is ``cpk_<prefix>_<secret>``; only its sha256 is stored. Keys are long random tokens, so a
plain hash is enough (no password stretching needed) and lookups stay constant-time per request.
"""

from __future__ import annotations

import csv
import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from copilot.errors import InvalidInput, NotFound, PermissionDenied, Unauthenticated
from copilot.store import Repo, get_or_create_workspace
from copilot.store.models import ApiKey, Role, Workspace, utc

KEY_PREFIX = "cpk"
LAST_USED_RESOLUTION = timedelta(minutes=1)


class Permission(str, enum.Enum):
    read_tickets = "read_tickets"  # ticket threads, messages, customer contacts
    run_support = "run_support"  # summaries, drafts, rewrites, sentiment
    read_sales = "read_sales"  # deals, calls, notes
    run_sales = "run_sales"  # call summaries, deal briefs
    read_nps = "read_nps"
    run_marketing = "run_marketing"  # NPS theme jobs
    review_support = "review_support"
    review_sales = "review_sales"
    review_marketing = "review_marketing"  # NPS reports, promoter and detractor follow-ups
    write_records = "write_records"  # CRUD and bulk ingest
    manage = "manage"  # API keys, tones, webhooks, reindex
    read_scorecards = "read_scorecards"  # reply-QA scores per agent and topic: leads and admins


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.agent: frozenset({Permission.read_tickets, Permission.run_support, Permission.review_support}),
    Role.rep: frozenset({Permission.read_sales, Permission.run_sales, Permission.review_sales}),
    Role.marketing: frozenset({Permission.read_nps, Permission.run_marketing, Permission.review_marketing}),
    Role.lead: frozenset(
        {Permission.read_tickets, Permission.run_support, Permission.review_support, Permission.read_scorecards}
    ),
    Role.admin: frozenset(Permission),
}


@dataclass(frozen=True)
class Principal:
    """The caller of a request: one key, one workspace, one role."""

    key_id: int
    key_name: str
    workspace_id: int
    workspace_slug: str
    role: Role

    @property
    def actor(self) -> str:
        return f"key:{self.key_name}#{self.key_id}"

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise PermissionDenied(f"role '{self.role.value}' may not {permission.value.replace('_', ' ')}")

    def reviewable_tasks(self) -> list[str]:
        """The tasks whose results this caller may read and decide (from the task registry)."""
        from copilot.tasks import registry

        return registry.reviewed_by(self.can)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(repo: Repo, role: Role | str, name: str) -> tuple[str, ApiKey]:
    """A new key for the repo's workspace; the plaintext is returned once and never stored."""
    try:
        role = Role(role)
    except ValueError:
        raise InvalidInput(f"role: unknown role '{role}' (one of: {', '.join(r.value for r in Role)})") from None
    if not name.strip():
        raise InvalidInput("name: a key needs a name")
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    row = repo.add(ApiKey(name=name.strip(), role=role, prefix=prefix, key_hash=hash_key(key)))
    repo.session.flush()
    return key, row


def authenticate(session: Session, key: str | None) -> Principal:
    """The principal of an active key; Unauthenticated for a missing, malformed, unknown or revoked key."""
    if not key:
        raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
    parts = key.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        raise Unauthenticated("malformed API key")
    digest = hash_key(key.strip())
    for row in session.scalars(select(ApiKey).where(ApiKey.prefix == parts[1])):
        if hmac.compare_digest(row.key_hash, digest):
            if row.revoked_at is not None:
                raise Unauthenticated("this API key was revoked")
            now = datetime.now(UTC)
            last = row.last_used_at
            if last is None or now - utc(last) > LAST_USED_RESOLUTION:  # not a database write on every request
                row.last_used_at = now
            workspace = session.get(Workspace, row.workspace_id)
            return Principal(row.id, row.name, row.workspace_id, workspace.slug, row.role)
    raise Unauthenticated("unknown API key")


def principal_for_key(session: Session, key_id: int | None) -> Principal:
    """The principal of an active key, by id (web sessions keep the key's id, never the key)."""
    row = session.get(ApiKey, key_id) if key_id is not None else None
    if row is None or row.revoked_at is not None:
        raise Unauthenticated("your session ended (logged out, expired or its key was revoked); log in again")
    workspace = session.get(Workspace, row.workspace_id)
    return Principal(row.id, row.name, row.workspace_id, workspace.slug, row.role)


def list_keys(repo: Repo) -> list[ApiKey]:
    return repo.all(repo.select(ApiKey).order_by(ApiKey.id))


def revoke_key(repo: Repo, key_id: int) -> ApiKey:
    row = repo.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"no API key {key_id} in workspace '{repo.workspace.slug}'")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
    return row


def import_keys_file(store, path: Path) -> int:
    """Provision keys from a CSV (``workspace,role,name,key``), e.g. mounted from a secrets store;
    returns keys added."""
    if not path.is_file():
        raise InvalidInput(f"COPILOT_API_KEYS_FILE: {path}: no such file")
    added = 0
    with path.open(newline="", encoding="utf-8") as handle, store.session() as session:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                workspace, role, name, key = (row[c].strip() for c in ("workspace", "role", "name", "key"))
            except (KeyError, AttributeError):
                raise InvalidInput(f"{path}:{line}: expected columns workspace,role,name,key") from None
            parts = key.split("_", 2)
            if len(parts) != 3 or parts[0] != KEY_PREFIX or len(key) < 32:
                raise InvalidInput(
                    f"{path}:{line}: key: expected '{KEY_PREFIX}_<prefix>_<secret>' of at least 32 characters"
                )
            if session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key))) is not None:
                continue
            repo = Repo(session, get_or_create_workspace(session, workspace))
            repo.add(ApiKey(name=name, role=Role(role), prefix=parts[1], key_hash=hash_key(key)))
            added += 1
    return added
