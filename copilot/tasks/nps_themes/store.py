"""Theme runs in the record store: loading a period's responses, saving a run with its per-response assignments,
reading its report back, and assigning responses that came in later to its themes (no refit)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import Select, and_, case, exists, func, insert, select

from copilot.errors import InvalidInput, NotFound
from copilot.store import Repo
from copilot.store.models import Account, AiResult, NpsResponse, NpsThemeAssignment, NpsThemeRun, utc
from copilot.tasks.nps_themes.build import BuiltThemes, Pairs, Period, Progress
from copilot.tasks.nps_themes.clustering import ThemeModel
from copilot.tasks.nps_themes.describe import (
    SentenceSentiment,
    ThemeFigures,
    Totals,
    drivers_of,
    polarity,
    response_theme_pairs,
    score_lean,
)
from copilot.tasks.nps_themes.models import Theme, ThemeError, ThemeFilters, ThemeReport, ThemeSide
from copilot.tasks.nps_themes.sentences import Responses, SentenceTable, embed
from retrieval.embeddings import vectors_agree

if TYPE_CHECKING:
    from copilot.tasks.context import TaskContext
    from retrieval.embeddings import Embedder

PREVIOUS_SAMPLE = 20_000  # previous-period responses assigned to estimate the change
ASSIGN_BATCH = 20_000
INSERT_BATCH = 10_000


def workspace_repo(context: TaskContext) -> Repo:
    if context.repo is None:
        raise InvalidInput("NPS themes need a workspace")
    return context.repo


# -- loading responses ---------------------------------------------------------------------------


def resolve_period(filters: ThemeFilters, now: datetime | None = None) -> Period:
    """(since, until, previous since, previous until):
    the previous period is the window of the same length just before."""
    until = filters.until or utc(now or datetime.now(UTC))
    if filters.since is None:
        return None, until, None, None
    length = until - filters.since
    return filters.since, until, filters.since - length, filters.since


def _where(query: Select, repo: Repo, filters: ThemeFilters, since: datetime | None, until: datetime | None) -> Select:
    low, high = filters.score_band.scores
    conditions = [NpsResponse.workspace_id == repo.workspace_id, NpsResponse.score >= low, NpsResponse.score <= high]
    if since is not None:
        conditions.append(NpsResponse.submitted_at >= since)
    if until is not None:
        conditions.append(NpsResponse.submitted_at < until)
    if filters.campaign:
        conditions.append(NpsResponse.campaign == filters.campaign)
    if filters.survey:
        conditions.append(NpsResponse.survey == filters.survey)
    if filters.segment:
        conditions.append(NpsResponse.segment == filters.segment)
    if filters.plan:
        plans = select(Account.id).where(Account.workspace_id == repo.workspace_id, Account.plan == filters.plan)
        conditions.append(NpsResponse.account_id.in_(plans))
    return query.where(and_(*conditions))


def _commented(query: Select) -> Select:
    return query.where(NpsResponse.comment.is_not(None), func.length(func.trim(NpsResponse.comment)) > 0)


def _response_columns() -> Select:
    return select(NpsResponse.id, NpsResponse.score, NpsResponse.comment, NpsResponse.external_id)


def load_responses(
    repo: Repo,
    filters: ThemeFilters,
    since: datetime | None,
    until: datetime | None,
    *,
    limit: int | None = None,
    seed: int = 0,
) -> tuple[Responses, int]:
    """Commented responses in the window (all, or an even sample of ``limit``) and how many there are."""
    columns = _response_columns()
    query = _commented(_where(columns, repo, filters, since, until)).order_by(NpsResponse.id)
    counted = _commented(_where(select(func.count()).select_from(NpsResponse), repo, filters, since, until))
    total = repo.session.scalar(counted) or 0
    if limit is None or total <= limit:
        return Responses.from_rows(list(repo.session.execute(query.execution_options(yield_per=10_000)))), total
    ids = np.asarray(
        repo.session.scalars(_commented(_where(select(NpsResponse.id), repo, filters, since, until))).all()
    )
    keep = np.sort(np.random.default_rng(seed).choice(ids, limit, replace=False))
    rows = []
    for start in range(0, len(keep), 5000):
        rows += repo.session.execute(
            columns.where(NpsResponse.id.in_(keep[start : start + 5000].tolist())).order_by(NpsResponse.id)
        ).all()
    return Responses.from_rows(rows), total


def overall(repo: Repo, filters: ThemeFilters, since: datetime | None, until: datetime | None) -> Totals:
    """Responses in the window (with or without a comment): how many, promoters and detractors."""
    promoters = func.sum(case((NpsResponse.score >= 9, 1), else_=0))
    detractors = func.sum(case((NpsResponse.score <= 6, 1), else_=0))
    total, promoted, detracted = repo.session.execute(
        _where(select(func.count(), promoters, detractors).select_from(NpsResponse), repo, filters, since, until)
    ).one()
    return Totals(int(total or 0), int(promoted or 0), int(detracted or 0))


@dataclass
class Periods:
    """A run's responses: the period's comments, a sample of the previous period's, and the period's totals."""

    period: Period
    current: Responses
    previous: Responses | None
    previous_total: int | None
    totals: Totals

    @property
    def responses_total(self) -> int:
        return self.totals.responses

    @property
    def nps(self) -> float | None:
        return self.totals.nps


def load_periods(repo: Repo, filters: ThemeFilters, *, now: datetime | None = None, seed: int = 0) -> Periods:
    since, until, previous_since, previous_until = period = resolve_period(filters, now)
    current, _ = load_responses(repo, filters, since, until)
    previous, previous_total = (None, None)
    if previous_since is not None:
        previous, previous_total = load_responses(
            repo, filters, previous_since, previous_until, limit=PREVIOUS_SAMPLE, seed=seed
        )
    return Periods(period, current, previous, previous_total, overall(repo, filters, since, until))


# -- saving and reading runs ---------------------------------------------------------------------


def save_run(repo: Repo, filters: ThemeFilters, seed: int, built: BuiltThemes, current: Responses) -> NpsThemeRun:
    """The theme model and its per-response assignments (the report is saved by the caller, as an AiResult)."""
    run = repo.add(
        NpsThemeRun(
            filters=filters.model_dump(mode="json"),
            seed=seed,
            k=built.model.k,
            embedding_model=built.report.embedding_model,
            dimensions=int(built.model.centroids.shape[1]),
            centroids=built.model.to_bytes(),
            theme_of=[int(t) for t in built.model.theme_of],
            assigned=len(current),
        )
    )
    repo.session.flush()
    response_index, theme, sentences, sentiment_sum = built.pairs
    _insert_assignments(repo, run.id, current.ids[response_index], theme, sentences, sentiment_sum)
    built.report.run_id = run.id
    return run


def _insert_assignments(
    repo: Repo,
    run_id: int,
    response_ids: np.ndarray,
    theme: np.ndarray,
    sentences: np.ndarray,
    sentiment_sum: np.ndarray,
) -> None:
    mean = np.divide(sentiment_sum, sentences, out=np.zeros(len(sentences)), where=sentences > 0)
    rows = [
        {
            "workspace_id": repo.workspace_id,
            "run_id": run_id,
            "response_id": int(r),
            "theme": int(t),
            "sentences": int(s),
            "sentiment": round(float(m), 4),
        }
        for r, t, s, m in zip(response_ids, theme, sentences, mean, strict=True)
    ]
    for start in range(0, len(rows), INSERT_BATCH):
        repo.session.execute(insert(NpsThemeAssignment), rows[start : start + INSERT_BATCH])


def get_run(repo: Repo, run_id: int) -> NpsThemeRun:
    run = repo.get(NpsThemeRun, run_id)
    if run is None:
        raise NotFound(f"no NPS theme run {run_id} in workspace '{repo.workspace.slug}'")
    return run


def _report_row(repo: Repo, run: NpsThemeRun) -> AiResult:
    row = repo.get(AiResult, run.ai_result_id) if run.ai_result_id else None
    if row is None:
        raise NotFound(f"NPS theme run {run.id} has no saved report")
    return row


def load_report(repo: Repo, run_id: int) -> ThemeReport:
    return ThemeReport.model_validate(_report_row(repo, get_run(repo, run_id)).content["result"])


# -- assigning new responses ---------------------------------------------------------------------


def assign_new_responses(
    context: TaskContext, run_id: int, *, progress: Callable[[int, int], None] | None = None
) -> int:
    """Assign commented responses that match the run's filters and are not in it yet to its existing themes.

    Nothing is refitted and no existing assignment changes; the saved report's figures are refreshed.
    Returns how many responses were assigned.
    """
    repo = workspace_repo(context)
    run = get_run(repo, run_id)
    model = ThemeModel.from_run(run)
    filters = ThemeFilters.model_validate(run.filters)
    load_report(repo, run_id)  # a run without its report cannot be refreshed: fail before writing anything
    pending = ~exists().where(NpsThemeAssignment.run_id == run.id, NpsThemeAssignment.response_id == NpsResponse.id)
    query = _commented(_where(_response_columns(), repo, filters, filters.since, filters.until)).where(pending)
    rows = list(repo.session.execute(query.order_by(NpsResponse.id)))
    if not rows:
        return 0
    embedder = context.embedder
    _check_embedder(run, embedder)
    sentiment = SentenceSentiment(embedder, context.sentiment)
    tracker = Progress(progress, len(rows))
    assigned = []
    for start in range(0, len(rows), ASSIGN_BATCH):
        batch = Responses.from_rows(rows[start : start + ASSIGN_BATCH])
        assigned.append(_assign_batch(model, batch, embedder, sentiment))
        tracker.advance(len(batch))
    # Written once all are assigned: progress is reported (by a job, in its own transaction) before any write here.
    for response_ids, theme, sentences, sentiment_sum in assigned:
        _insert_assignments(repo, run.id, response_ids, theme, sentences, sentiment_sum)
    run.assigned += len(rows)
    refresh_report(repo, run, added=len(rows))
    return len(rows)


def _check_embedder(run: NpsThemeRun, embedder: Embedder) -> None:
    """A run's centroids only meet vectors that agree with those it was built with (the same embedder, or another
    backend of the same model: retrieval.embeddings.vectors_agree)."""
    if not vectors_agree(run.embedding_model, embedder.name) or embedder.dimensions != run.dimensions:
        raise ThemeError(
            f"run {run.id} was built with {run.embedding_model} ({run.dimensions} dimensions); "
            f"the embedder is {embedder.name} ({embedder.dimensions} dimensions): run the themes again"
        )


def _assign_batch(model: ThemeModel, batch: Responses, embedder: Embedder, score: SentenceSentiment) -> Pairs:
    """(response id, theme, sentences, sentiment sum) per response of the batch and theme it touches."""
    table = SentenceTable.build(batch.comments)
    vectors = embed(embedder.encode, table.texts)
    themes = model.assign(vectors)[0] if len(table.texts) else np.zeros(0, dtype=np.int64)
    sentiment = score(table.texts, vectors)
    lean = score_lean(batch.scores[table.response_of], table.turned)
    response_index, theme, sentences, sentiment_sum = response_theme_pairs(
        table,
        themes[table.unique_of] if len(table.unique_of) else np.zeros(0, dtype=np.int64),
        polarity(sentiment[table.unique_of], lean) if len(table.unique_of) else np.zeros(0),
        len(batch),
        model.k,
    )
    return batch.ids[response_index], theme, sentences, sentiment_sum


def refresh_report(repo: Repo, run: NpsThemeRun, *, added: int = 0) -> ThemeReport:
    """Recompute the saved report's per-theme figures from the stored assignments (labels, keywords and quotes stay)."""
    row = _report_row(repo, run)
    report = ThemeReport.model_validate(row.content["result"])
    figures = _stored_figures(repo, run)
    commented = int(
        repo.session.scalar(
            select(func.count(func.distinct(NpsThemeAssignment.response_id))).where(
                NpsThemeAssignment.run_id == run.id, NpsThemeAssignment.theme >= 0
            )
        )
        or 0
    )
    until = report.filters.until or datetime.now(UTC)
    totals = overall(repo, report.filters, report.since, until)
    report.responses, report.nps = totals.responses, totals.nps
    report.until = until
    report.commented = commented
    report.sentences = int(
        repo.session.scalar(
            select(func.coalesce(func.sum(NpsThemeAssignment.sentences), 0)).where(NpsThemeAssignment.run_id == run.id)
        )
        or 0
    )
    report.assigned_after_run += added
    for theme_row in report.themes:
        for name, value in figures.theme_fields(theme_row.id, commented, totals).items():
            setattr(theme_row, name, value)
        _refresh_sides(theme_row, figures, totals)
        _refresh_change(theme_row)
    report.themes.sort(key=lambda theme_row: (-theme_row.responses, theme_row.id))
    report.drivers = drivers_of(report.themes, figures, totals)
    content = dict(row.content)
    content["result"] = report.model_dump(mode="json")
    row.content = content
    repo.session.flush()
    return report


def _stored_figures(repo: Repo, run: NpsThemeRun) -> ThemeFigures:
    pairs = repo.session.execute(
        select(NpsThemeAssignment.theme, NpsResponse.score, NpsThemeAssignment.sentences, NpsThemeAssignment.sentiment)
        .join(NpsResponse, NpsResponse.id == NpsThemeAssignment.response_id)
        .where(NpsThemeAssignment.run_id == run.id)
    ).all()
    data = np.asarray(pairs, dtype=np.float64).reshape(-1, 4)
    theme, score, sentences, sentiment = (
        data[:, 0].astype(np.int64),
        data[:, 1].astype(np.int64),
        data[:, 2],
        data[:, 3],
    )
    return ThemeFigures.compute(run.k, theme, score, sentences, sentiment * sentences)


def _refresh_sides(theme: Theme, figures: ThemeFigures, totals: Totals) -> None:
    """The sides' refreshed figures; their quotes stay (a side that appeared since has none yet)."""
    quotes = {side.polarity: side.quotes for side in theme.sides}
    theme.sides = [
        ThemeSide(**fields, quotes=quotes.get(fields["polarity"], []))
        for fields in figures.side_fields(theme.id, totals)
    ]


def _refresh_change(theme: Theme) -> None:
    """The change against the previous period, for the theme's refreshed figures (the previous ones stay)."""
    change = theme.change
    if change is None:
        return
    change.share_delta = round(100 * (theme.share - change.previous_share), 2)
    change.avg_score_delta = (
        round(theme.avg_score - change.previous_avg_score, 2)
        if change.previous_avg_score is not None and theme.responses
        else None
    )
    change.sentiment_delta = (
        round(theme.sentiment - change.previous_sentiment, 4)
        if change.previous_sentiment is not None and theme.responses
        else None
    )
