"""Auto-QA against people: scorecards per agent and per topic from stored reply-QA results, and agreement with the
review decisions already stored (approve / edit with its edit distance / reject on reply drafts).

A draft counts as accepted by its reviewer when it was approved as it was, or edited lightly (an edit distance of at
most ``LIGHT_EDIT`` of its length); rejected and heavily edited drafts were not. The drafts are graded as replies
(without the customer's follow-up: the customer never saw them) and the QA verdict (passed or not) is compared with
the reviewer's. ``calibrate`` picks the pass threshold that agrees best, and reports its leave-one-out agreement so
the figure is not flattered by the choice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import exists, select

from copilot.insights.common import Period, classify_cached, save_workspace_config
from copilot.insights.quality import (
    Reply,
    ReplyScore,
    Scorecard,
    body_of,
    grade_rules,
    relevant_kb,
    reply_sentiment,
    score_of,
    scorecard_of,
    scored,
)
from copilot.store import Repo
from copilot.store.models import AiResult, AiStatus, AuditEvent, AuthorKind, KbArticle, Message, Ticket, utc

LIGHT_EDIT = 0.2
TASK = "reply_qa"


class CriterionStats(BaseModel):
    passed: int = 0
    failed: int = 0
    not_applicable: int = 0

    @property
    def pass_rate(self) -> float | None:
        judged = self.passed + self.failed
        return round(self.passed / judged, 4) if judged else None


class Scoreline(BaseModel):
    """One agent's (or topic's) replies graded against the scorecard."""

    group: str
    replies: int
    passed: int
    pass_rate: float
    mean_score: float
    criteria: dict[str, CriterionStats]
    pass_rates: dict[str, float | None] = Field(default_factory=dict)
    failing_examples: list[str] = Field(default_factory=list, description="message:12 / ai_result:3 of failed replies")


class Scorecards(BaseModel):
    by: str  # agent or topic
    since: datetime | None = None
    until: datetime | None = None
    replies: int
    lines: list[Scoreline]


class QaRun(BaseModel):
    tickets: int
    replies: int
    passed: int


def replied_tickets(repo: Repo, limit: int | None = None) -> list[int]:
    """Tickets with at least one agent reply, newest first."""
    replied = exists().where(Message.ticket_id == Ticket.id, Message.author_kind == AuthorKind.agent)
    query = (
        select(Ticket.id)
        .where(Ticket.workspace_id == repo.workspace_id, replied)
        .order_by(Ticket.opened_at.desc(), Ticket.id.desc())
    )
    return list(repo.session.scalars(query.limit(limit) if limit else query))


def score_replies(
    services: Any,
    workspace: str,
    ticket_ids: list[int] | None = None,
    *,
    strategy: str = "auto",
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> QaRun:
    """Reply QA of the given tickets (default: every replied ticket, newest first), one transaction and one stored
    result each. The sentiment of every text the rules read is computed first, in one batch."""
    with services.store.repo(workspace) as repo:
        ids = ticket_ids if ticket_ids is not None else replied_tickets(repo, limit)
        rows = repo.session.execute(
            repo.select(Message)
            .with_only_columns(Message.body, Message.author_kind)
            .where(Message.ticket_id.in_(ids), Message.author_kind != AuthorKind.internal_note)
        ).all()
        texts = [body_of(body) if kind is AuthorKind.agent else body for body, kind in rows]
        classify_cached(services.sentiment.for_workspace(repo), list(dict.fromkeys(texts)))
    run = QaRun(tickets=len(ids), replies=0, passed=0)
    for done, ticket_id in enumerate(ids, 1):
        outcome = services.run_in_workspace(workspace, TASK, {"ticket_id": ticket_id, "strategy": strategy})
        run.replies += len(outcome.result.replies)
        run.passed += sum(r.passed for r in outcome.result.replies)
        if progress is not None:
            progress(done, len(ids))
    return run


def stored_scores(repo: Repo, period: Period | None = None) -> list[ReplyScore]:
    """Every reply's score from the latest reply-QA result of each ticket."""
    rows = repo.all(
        repo.select(AiResult)
        .where(AiResult.task == TASK, AiResult.status.in_([AiStatus.completed, AiStatus.stale]))
        .order_by(AiResult.id)
    )
    latest: dict[int | None, AiResult] = {row.subject_id: row for row in rows}
    scores = [ReplyScore.model_validate(r) for row in latest.values() for r in row.content["result"]["replies"]]
    if period is not None:
        scores = [s for s in scores if period.since <= utc(s.sent_at) < period.until]
    return scores


def scorecards(repo: Repo, by: str = "agent", period: Period | None = None) -> Scorecards:
    scores = stored_scores(repo, period)
    groups: dict[str, list[ReplyScore]] = defaultdict(list)
    for score in scores:
        groups[(score.author or "(unknown)") if by == "agent" else score.topic].append(score)
    lines = []
    for group, items in groups.items():
        criteria: dict[str, CriterionStats] = defaultdict(CriterionStats)
        for item in items:
            for verdict in item.verdicts:
                stats = criteria[verdict.criterion]
                if verdict.verdict == "pass":
                    stats.passed += 1
                elif verdict.verdict == "fail":
                    stats.failed += 1
                else:
                    stats.not_applicable += 1
        passed = sum(i.passed for i in items)
        lines.append(
            Scoreline(
                group=group,
                replies=len(items),
                passed=passed,
                pass_rate=round(passed / len(items), 4),
                mean_score=round(sum(i.score for i in items) / len(items), 4),
                criteria=dict(criteria),
                pass_rates={name: stats.pass_rate for name, stats in criteria.items()},
                failing_examples=[
                    f"message:{i.message_id}" if i.message_id else f"ai_result:{i.ai_result_id}"
                    for i in items
                    if not i.passed
                ][:5],
            )
        )
    lines.sort(key=lambda line: (line.pass_rate, line.group))
    return Scorecards(
        by=by,
        since=period.since if period else None,
        until=period.until if period else None,
        replies=len(scores),
        lines=lines,
    )


# -- agreement with the reviewers ------------------------------------------------------------------
class Decided(BaseModel):
    ai_result_id: int
    ticket_id: int
    decision: str  # approve, edit, reject
    edit_ratio: float = Field(description="Edit distance over the draft's length (1 for a rejection).")
    accepted: bool
    score: float
    passed: bool
    failed_criteria: list[str]


class Agreement(BaseModel):
    drafts: int
    accepted: int
    threshold: float
    agreement: float | None
    kappa: float | None
    confusion: dict[str, int] = Field(description="qa_pass/qa_fail x human_accept/human_reject counts.")
    spearman_edit: float | None = Field(description="Rank correlation of the QA score with the edit ratio (< 0 good).")
    criteria: dict[str, dict[str, float | None]] = Field(
        default_factory=dict, description="Per criterion: fail rate among accepted and among not-accepted drafts."
    )
    best_threshold: float | None = None
    best_agreement: float | None = None
    loo_agreement: float | None = Field(default=None, description="Leave-one-out agreement of the threshold choice.")
    cases: list[Decided] = Field(default_factory=list)


def decided_drafts(repo: Repo) -> list[tuple[AiResult, AuditEvent]]:
    rows = repo.all(
        repo.select(AiResult)
        .where(
            AiResult.task == "reply_draft",
            AiResult.status.in_([AiStatus.approved, AiStatus.edited, AiStatus.rejected, AiStatus.sent]),
        )
        .order_by(AiResult.id)
    )
    out = []
    for row in rows:
        event = repo.session.scalar(
            repo.select(AuditEvent)
            .where(AuditEvent.ai_result_id == row.id, AuditEvent.action.like("review.%"))
            .order_by(AuditEvent.id)
            .limit(1)
        )
        if event is not None and row.subject_id is not None:
            out.append((row, event))
    return out


def _draft_reply(repo: Repo, row: AiResult, kb: list[tuple[str, str]]) -> Reply | None:
    ticket = repo.get(Ticket, row.subject_id) if row.subject_id else None
    text = (row.content.get("result") or {}).get("text")
    if ticket is None or not isinstance(text, str):
        return None
    drafted = utc(row.created_at)
    before = [m for m in sorted(ticket.messages, key=lambda m: (m.sent_at, m.id)) if utc(m.sent_at) < drafted]
    last_agent = max((i for i, m in enumerate(before) if m.author_kind is AuthorKind.agent), default=-1)
    question = [m.body for m in before[last_agent + 1 :] if m.author_kind is AuthorKind.customer]
    return Reply(
        ticket=ticket,
        text=text,
        sent_at=drafted,
        author=None,
        ai_result_id=row.id,
        question=question,
        notes=[m.body for m in before if m.author_kind is AuthorKind.internal_note],
        earlier=[ticket.subject, *(m.body for m in before)],
        kb=relevant_kb(kb, " ".join([ticket.subject, *question])),
    )


def _label(row: AiResult, event: AuditEvent, draft: str) -> tuple[str, float, bool]:
    decision = event.action.removeprefix("review.")
    if decision == "reject" or row.status is AiStatus.rejected:
        return "reject", 1.0, False
    ratio = (event.edit_distance or 0) / max(1, len(draft)) if decision == "edit" else 0.0
    return decision, round(min(1.0, ratio), 4), ratio <= LIGHT_EDIT


def grade_decided(repo: Repo, classifier: Any, card: Scorecard | None = None) -> list[tuple[Decided, ReplyScore]]:
    card = card or scorecard_of(repo)
    kb = [(a.title, a.body) for a in repo.all(repo.select(KbArticle).order_by(KbArticle.id))]
    pairs = [(row, event, reply) for row, event in decided_drafts(repo) if (reply := _draft_reply(repo, row, kb))]
    sentiment = reply_sentiment(classifier, [reply for _, _, reply in pairs])
    out = []
    for row, event, reply in pairs:
        score = scored(reply, grade_rules(reply, card, sentiment), card, "rules")
        decision, ratio, accepted = _label(row, event, reply.text)
        out.append(
            (
                Decided(
                    ai_result_id=row.id,
                    ticket_id=reply.ticket.id,
                    decision=decision,
                    edit_ratio=ratio,
                    accepted=accepted,
                    score=score.score,
                    passed=score.passed,
                    failed_criteria=[v.criterion for v in score.verdicts if v.verdict == "fail"],
                ),
                score,
            )
        )
    return out


def agreement(repo: Repo, classifier: Any, card: Scorecard | None = None) -> Agreement:
    """How often auto-QA (rules) agrees with the reviewers' decisions on stored drafts."""
    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score

    card = card or scorecard_of(repo)
    graded = grade_decided(repo, classifier, card)
    cases = [d for d, _ in graded]
    human = [d.accepted for d in cases]
    qa = [d.passed for d in cases]
    confusion = {
        f"qa_{'pass' if q else 'fail'}_human_{'accept' if h else 'reject'}": 0
        for q in (True, False)
        for h in (True, False)
    }
    for q, h in zip(qa, human, strict=True):
        confusion[f"qa_{'pass' if q else 'fail'}_human_{'accept' if h else 'reject'}"] += 1
    result = Agreement(
        drafts=len(cases),
        accepted=sum(human),
        threshold=card.threshold,
        agreement=round(sum(q == h for q, h in zip(qa, human, strict=True)) / len(cases), 4) if cases else None,
        kappa=round(float(cohen_kappa_score(human, qa)), 4) if len(set(human)) > 1 and len(set(qa)) > 1 else None,
        confusion=confusion,
        spearman_edit=(
            round(float(spearmanr([d.score for d in cases], [d.edit_ratio for d in cases]).statistic), 4)
            if len(cases) > 2
            else None
        ),
        criteria=_criteria_rates(cases, card),
        cases=cases,
    )
    if len(cases) >= 10:
        result.best_threshold, result.best_agreement = _best_threshold(graded, card)
        result.loo_agreement = _loo(graded, card)
    return result


def _criteria_rates(cases: list[Decided], card: Scorecard) -> dict[str, dict[str, float | None]]:
    out = {}
    for name in card.names():
        rates = {}
        for label, group in (
            ("accepted", [c for c in cases if c.accepted]),
            ("not_accepted", [c for c in cases if not c.accepted]),
        ):
            rates[f"fail_rate_{label}"] = (
                round(sum(name in c.failed_criteria for c in group) / len(group), 4) if group else None
            )
        out[name] = rates
    return out


def _passes(score: ReplyScore, card: Scorecard, threshold: float) -> bool:
    return score_of(score.verdicts, card.model_copy(update={"threshold": threshold}))[1]


def _best_threshold(graded: list[tuple[Decided, ReplyScore]], card: Scorecard) -> tuple[float, float]:
    candidates = sorted({0.0, *(s.score for _, s in graded), 1.01})
    best = max(
        candidates,
        key=lambda t: (sum(_passes(s, card, t) == d.accepted for d, s in graded), -abs(t - card.threshold)),
    )
    hits = sum(_passes(s, card, best) == d.accepted for d, s in graded)
    return round(min(best, 1.0), 4), round(hits / len(graded), 4)


def _loo(graded: list[tuple[Decided, ReplyScore]], card: Scorecard) -> float:
    hits = 0
    for index, (decided, score) in enumerate(graded):
        threshold, _ = _best_threshold(graded[:index] + graded[index + 1 :], card)
        hits += _passes(score, card, threshold) == decided.accepted
    return round(hits / len(graded), 4)


def calibrate(repo: Repo, classifier: Any, *, save: bool = False) -> Agreement:
    """Agreement at the current threshold and the best one; ``save`` makes the best one the workspace's."""
    result = agreement(repo, classifier)
    if save and result.best_threshold is not None:
        save_workspace_config(repo, {"qa_threshold": result.best_threshold})
    return result
