"""How AI results read on the pages: call summaries as notes rather than JSON, task names in words."""

from __future__ import annotations

from pydantic import ValidationError

from copilot.review import draft_text
from copilot.store.models import AiResult
from copilot.tasks.call_summary import CallSummary

TASK_LABELS = {
    "reply_draft": "Reply draft",
    "tone_rewrite": "Tone rewrite",
    "call_summary": "Call summary",
    "ticket_summary": "Ticket summary",
    "deal_brief": "Deal brief",
    "nps_themes": "NPS themes",
    "nps_thank_you": "NPS thank-you",
    "nps_follow_up": "NPS follow-up",
}


def task_label(task: str) -> str:
    return TASK_LABELS.get(task, task.replace("_", " ").capitalize())


def call_summary_of(row: AiResult) -> CallSummary | None:
    """The call summary a result holds (None for other tasks or a result that does not parse)."""
    if row.task != "call_summary":
        return None
    try:
        return CallSummary.model_validate(row.content.get("result", {}))
    except ValidationError:
        return None


def call_summary_text(summary: CallSummary) -> str:
    """The summary as notes a rep would write: summary, key points, objections, decisions, action items, next step."""
    lines = [summary.summary.strip()]
    for heading, points in (
        ("Key points", summary.key_points),
        ("Objections", summary.objections),
        ("Decisions", summary.decisions),
    ):
        if points:
            lines += ["", f"{heading}:", *(f"- {p.text}" for p in points)]
    if summary.action_items:
        lines += ["", "Action items:"]
        for item in summary.action_items:
            extra = ", ".join(x for x in (item.owner, f"due {item.due}" if item.due else None) if x)
            lines.append(f"- {item.what}" + (f" ({extra})" if extra else ""))
    if summary.next_step:
        lines += ["", f"Next step: {summary.next_step.text}"]
    return "\n".join(lines).strip()


def display_text(row: AiResult) -> str:
    """The text a reviewer reads and edits: a call summary as notes (unless already edited), else the draft text."""
    summary = call_summary_of(row) if row.final_text is None else None
    return call_summary_text(summary) if summary is not None else draft_text(row)
