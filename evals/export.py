"""The feedback loop: outputs humans approved or edited become eval cases, with what the human sent as the reference.

``copilot eval export-approved --task reply_draft`` reads AiResult rows with status approved,
edited or sent; the reference is ``final_text`` (what the human approved, after edits), falling
back to the draft in ``content["result"]["text"]``. Inputs are rebuilt from the records the
output was made from (its ``input_ids``, and for drafts the cited KB articles and past replies),
and every text is PII-redacted (emails, phones, card numbers, the workspace's contact names).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from copilot.errors import InvalidInput
from copilot.store import Repo
from copilot.store.models import AiResult, AiStatus, Contact, KbArticle, Message, Ticket
from evals.adapters import get_adapter
from evals.redact import Redactor

APPROVED = (AiStatus.approved, AiStatus.edited, AiStatus.sent)
EXPORTABLE = ("reply_draft", "ticket_summary", "tone_rewrite")


def reference_text(row: AiResult) -> str | None:
    """What the human approved: final_text, else the draft's text (ticket summaries: the summary as prose)."""
    if row.final_text and row.final_text.strip():
        return row.final_text
    result = (row.content or {}).get("result") or {}
    if isinstance(result.get("text"), str):
        return result["text"]
    if row.task == "ticket_summary" and result.get("intent") is not None:
        from copilot.tasks.ticket_summary import TicketSummary

        return TicketSummary.model_validate(result).as_text()
    return None


def _ids(values: list[Any], kind: str) -> list[int]:
    out = []
    for value in values or []:
        text = str(value).split("=", 1)[-1]  # source ids look like "S1=message:12"
        prefix, _, number = text.partition(":")
        if prefix == kind and number.isdigit():
            out.append(int(number))
    return out


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _ticket_inputs(repo: Repo, row: AiResult, hide: Redactor) -> dict[str, Any] | None:
    ticket = repo.get(Ticket, row.subject_id) if row.subject_kind == "ticket" and row.subject_id else None
    if ticket is None:
        return None
    seen = set(_ids(row.input_ids, "message"))
    messages = (
        [m for m in ticket.messages if m.id in seen]
        if seen
        else [m for m in ticket.messages if _naive(m.sent_at) <= _naive(row.created_at)]
    )
    inputs: dict[str, Any] = {
        "subject": hide(ticket.subject),
        "channel": ticket.channel.value,
        "status": ticket.status.value,
        "messages": [
            {"author_kind": m.author_kind.value, "author": hide(m.author) if m.author else None, "text": hide(m.body)}
            for m in messages
        ],
    }
    if ticket.contact is not None:
        inputs["customer"] = {"name": hide(ticket.contact.name), "language": ticket.contact.language}
    if ticket.assignee:
        inputs["assignee"] = hide(ticket.assignee)
    if row.task == "reply_draft":
        articles = [a for a in (repo.get(KbArticle, i) for i in _ids(row.source_ids, "kb_article")) if a is not None]
        inputs["kb"] = [{"title": hide(a.title), "body": hide(a.body), "tags": a.tags} for a in articles] or "none"
        past = [p for p in (repo.get(Message, i) for i in _ids(row.source_ids, "message")) if p is not None]
        if past:
            inputs["history"] = [{"subject": hide(p.ticket.subject), "agent": hide(p.body)} for p in past]
    return inputs


def export_approved(
    repo: Repo, task: str, *, limit: int | None = None, extra_names: list[str] | None = None
) -> list[dict[str, Any]]:
    """Eval cases (golden JSONL rows) from the workspace's approved, edited or sent outputs of ``task``."""
    if task not in EXPORTABLE:
        raise InvalidInput(f"task: export-approved supports {', '.join(EXPORTABLE)}")
    names = [c.name for c in repo.all(repo.select(Contact))] + list(extra_names or [])
    hide = Redactor(names)
    query = repo.select(AiResult).where(AiResult.task == task, AiResult.status.in_(APPROVED)).order_by(AiResult.id)
    if limit:
        query = query.limit(limit)
    cases = []
    for row in repo.all(query):
        reference = reference_text(row)
        if not reference:
            continue
        if task == "tone_rewrite":
            result = (row.content or {}).get("result") or {}
            if not result.get("original"):
                continue
            inputs: dict[str, Any] | None = {"text": hide(result["original"]), "tone": result.get("tone", "friendly")}
        else:
            inputs = _ticket_inputs(repo, row, hide)
        if inputs is None:
            continue
        cases.append(
            {
                "id": f"{task}-{row.id}",
                "inputs": inputs,
                "expected": hide(reference),
                "tags": [row.status.value],
                "note": f"AI result {row.id} ({row.status.value}{', edited by a human' if row.final_text else ''})",
            }
        )
    return cases


def write_export(
    cases: list[dict[str, Any]], task: str, out_dir: Path, *, name: str | None = None, workspace: str = ""
) -> tuple[Path, Path]:
    """Write ``<name>.jsonl`` and a suite ``<name>.yaml`` pointing at it (run it with ``copilot eval run --suite``)."""
    name = name or f"{task}_approved"
    out_dir.mkdir(parents=True, exist_ok=True)
    data = out_dir / f"{name}.jsonl"
    with data.open("w", encoding="utf-8") as handle:
        for case in cases:
            handle.write(json.dumps(case, ensure_ascii=False) + "\n")
    suite = {
        "name": name,
        "task": task,
        "description": f"{task} outputs humans approved or edited{f' in workspace {workspace}' if workspace else ''}, "
        f"exported {datetime.now(UTC):%Y-%m-%d}; PII redacted. The reference is what the human approved.",
        "dataset": data.name,
        "metrics": {metric: {} for metric in get_adapter(task).metrics},
    }
    suite_path = out_dir / f"{name}.yaml"
    suite_path.write_text(yaml.safe_dump(suite, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return data, suite_path
