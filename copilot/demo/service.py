"""Making the demo workspace usable in the browser at once: a login key and drafts waiting for review."""

from __future__ import annotations

from pathlib import Path

from copilot.auth import authenticate, create_key
from copilot.errors import Unauthenticated
from copilot.services import Services
from copilot.settings import Settings
from copilot.store import Store
from copilot.store.models import AiResult, AiStatus, Role, Ticket, TicketStatus
from copilot.tasks.thread import load_thread


def demo_key_path(settings: Settings, workspace: str) -> Path:
    return settings.data_dir / f"{workspace}-demo-key.txt"


def ensure_demo_key(store: Store, settings: Settings, workspace: str) -> str:
    """The demo workspace's admin key, kept in data_dir so `make run` can print it every time."""
    path = demo_key_path(settings, workspace)
    if path.exists():
        key = path.read_text().strip()
        try:
            with store.session() as session:
                authenticate(session, key)
            return key
        except Unauthenticated:
            pass  # revoked or from another database: make a new one
    with store.repo(workspace) as repo:
        key, _ = create_key(repo, Role.admin, "demo admin")
    settings.ensure_dirs()
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def queue_demo_drafts(services: Services, workspace: str, limit: int = 6) -> int:
    """Draft replies to open tickets where the customer wrote last, so the review queue has work in it."""
    drafted = 0
    with services.store.repo(workspace) as repo:
        has_drafts = (
            repo.session.scalar(
                repo.select(AiResult)
                .where(AiResult.task == "reply_draft", AiResult.status == AiStatus.pending)  # not the review history
                .limit(1)
            )
            is not None
        )
        tickets = repo.all(
            repo.select(Ticket)
            .where(Ticket.status.in_([TicketStatus.open, TicketStatus.pending]))
            .order_by(Ticket.opened_at.desc())
        )
        waiting = [t.id for t in tickets if load_thread(repo, t).customer_wrote_last][:limit]
    if has_drafts:
        return 0
    for ticket_id in waiting:
        services.run_in_workspace(workspace, "reply_draft", {"ticket_id": ticket_id})
        drafted += 1
    return drafted
