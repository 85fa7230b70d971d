"""The workspace's own label set for triage, and its triage settings.

A label set is a fixed list the workspace manages (admin API and CLI): every label has a name (a slug), a description
and the queue (team) its tickets go to. Triage can only ever answer with a label of this list (see
``TopicClassifier.suggest``), a label set is never empty, and a label never has an empty name or queue. A workspace
that has not changed its list uses the shipped one (``DEFAULT_LABELS``, the demo help center's topics).
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import delete

from copilot.errors import InvalidInput, NotFound
from copilot.store import Repo
from copilot.store.models import TriageLabel

SETTING = "triage"
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
MAX_LABELS = 500


class LabelSpec(BaseModel):
    name: str = Field(pattern=NAME_PATTERN, description="A slug: lower case letters, digits, '_' and '-'.")
    queue: str = Field(min_length=1, max_length=80, description="The team or queue tickets of this topic go to.")
    description: str = Field(default="", max_length=500)

    @field_validator("queue", "description", mode="before")
    @classmethod
    def _strip(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    @field_validator("queue")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value:
            raise ValueError("a label needs a queue")
        return value


DEFAULT_LABELS: tuple[LabelSpec, ...] = tuple(
    LabelSpec(name=name, queue=queue, description=description)
    for name, queue, description in (
        ("billing_charges", "billing", "Duplicate or wrong charges, refunds of a charge"),
        ("payments", "billing", "Failed or declined payments, payment methods, suspended for non-payment"),
        ("plans_pricing", "billing", "Prices, renewals, seats, discounts, changing or downgrading a plan"),
        ("cancellation", "accounts", "Cancelling the subscription, switching to another provider"),
        ("login_security", "accounts", "Two-factor authentication, single sign-on, locked out, access"),
        ("invoices", "product", "Invoice exports, templates and logos, reminder emails"),
        ("data_import", "product", "Importing clients or data from files or other tools"),
        ("feature_request", "product", "Requests for new features or workflows"),
        ("api_webhooks", "developers", "API limits and errors, webhook delivery and signatures"),
        ("integrations", "technical", "Accounting, CRM and shop integrations: sync, tokens, duplicates"),
        ("mobile_app", "technical", "The mobile app: crashes, receipt scanning"),
        ("performance", "technical", "Slow dashboards and reports, timeouts"),
        ("email_delivery", "technical", "Invoice and reminder emails not arriving, bouncing or in spam"),
        ("privacy_legal", "privacy", "GDPR deletion and access requests, data processing agreements"),
    )
)


class TriageSettings(BaseModel):
    """What a workspace tunes: triage on arrival, auto-apply, and the confidence below which a topic is unsure."""

    on_arrival: bool = Field(default=True, description="Triage every new ticket in the background.")
    auto_apply: bool = Field(
        default=False,
        description="Apply confident triage results to the ticket (audited, with a ticket.updated event).",
    )
    unsure_below: float = Field(default=0.5, ge=0.0, le=1.0, description="A topic below this confidence is unsure.")


def triage_settings(repo: Repo) -> TriageSettings:
    return TriageSettings.model_validate((repo.workspace.settings or {}).get(SETTING) or {})


def set_triage_settings(repo: Repo, changes: dict[str, object], actor: str) -> TriageSettings:
    """Change some of the workspace's triage settings (validated), audited."""
    from copilot.review import record_event

    before = triage_settings(repo)
    try:
        after = TriageSettings.model_validate({**before.model_dump(), **changes})
    except ValueError as error:
        first = error.errors()[0]  # type: ignore[attr-defined]
        raise InvalidInput(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    repo.workspace.settings = {**(repo.workspace.settings or {}), SETTING: after.model_dump()}
    record_event(repo, actor, "triage.settings", before=before.model_dump(), after=after.model_dump())
    return after


def _rows(repo: Repo) -> list[TriageLabel]:
    return repo.all(repo.select(TriageLabel).order_by(TriageLabel.position, TriageLabel.id))


def workspace_labels(repo: Repo) -> list[LabelSpec]:
    """The workspace's label set, in its order (the shipped set until the workspace changes it)."""
    rows = _rows(repo)
    if not rows:
        return list(DEFAULT_LABELS)
    return [LabelSpec(name=r.name, queue=r.queue, description=r.description) for r in rows]


def label_names(repo: Repo) -> tuple[str, ...]:
    return tuple(label.name for label in workspace_labels(repo))


def label_queues(repo: Repo) -> dict[str, str]:
    return {label.name: label.queue for label in workspace_labels(repo)}


def check_label(repo: Repo, name: str, field: str = "topic") -> str:
    """``name`` if it is one of the workspace's labels, else InvalidInput naming the field and the set."""
    names = label_names(repo)
    if name not in names:
        raise InvalidInput(f"{field}: '{name}' is not one of this workspace's labels ({', '.join(names)})")
    return name


def set_labels(repo: Repo, labels: list[LabelSpec], actor: str) -> list[LabelSpec]:
    """Replace the workspace's whole label set (non-empty, unique names), audited."""
    from copilot.review import record_event

    if not labels:
        raise InvalidInput("labels: a label set needs at least one label")
    if len(labels) > MAX_LABELS:
        raise InvalidInput(f"labels: at most {MAX_LABELS} labels")
    names = [label.name for label in labels]
    if duplicates := sorted({n for n in names if names.count(n) > 1}):
        raise InvalidInput(f"labels: duplicate label names: {', '.join(duplicates)}")
    before = [label.model_dump() for label in workspace_labels(repo)]
    repo.session.execute(delete(TriageLabel).where(TriageLabel.workspace_id == repo.workspace_id))
    for position, label in enumerate(labels):
        repo.add(TriageLabel(name=label.name, queue=label.queue, description=label.description, position=position))
    repo.session.flush()
    record_event(repo, actor, "triage.labels", before={"labels": before}, after={"labels": names})
    return workspace_labels(repo)


def add_label(repo: Repo, label: LabelSpec, actor: str) -> list[LabelSpec]:
    """Add a label, or change the queue and description of one the set has."""
    current = workspace_labels(repo)
    replaced = [label if existing.name == label.name else existing for existing in current]
    return set_labels(repo, replaced if label.name in {e.name for e in current} else [*current, label], actor)


def remove_label(repo: Repo, name: str, actor: str) -> list[LabelSpec]:
    """Drop a label from the set (never the last one). Tickets keep the topic they had; triage no longer gives it."""
    current = workspace_labels(repo)
    if name not in {label.name for label in current}:
        raise NotFound(f"no label '{name}' in this workspace's label set")
    if len(current) == 1:
        raise InvalidInput(f"label: '{name}' is the last label; a label set is never empty")
    return set_labels(repo, [label for label in current if label.name != name], actor)


def reset_labels(repo: Repo, actor: str) -> list[LabelSpec]:
    return set_labels(repo, list(DEFAULT_LABELS), actor)
