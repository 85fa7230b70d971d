"""Insight commands: ``copilot kpis``, ``copilot qa``, ``copilot csat``, ``copilot health`` and ``copilot scores``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from copilot.cli.common import (
    WorkspaceOption,
    console,
    fail,
    load_settings,
    open_services,
    open_store,
    task_strategy,
    workspace_slug,
)

DateOption = Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"])]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]

qa_app = typer.Typer(help="Reply quality (auto-QA): score agent replies, scorecards, agreement with reviewers.")
csat_app = typer.Typer(help="CSAT prediction for solved tickets without a survey answer.")
scores_app = typer.Typer(help="Win probability per open deal, lead scores, calibration and the forecast.")


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "USD":
        return f"${value:,.0f}"
    if unit in ("count",):
        return f"{value:.0f}"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:.1f}"


def kpis_command(
    workspace: WorkspaceOption = None,
    since: DateOption = None,
    until: DateOption = None,
    days: Annotated[float | None, typer.Option(help="Period length when --since is not given (default 90).")] = None,
    team: Annotated[str | None, typer.Option(help="A team, or one assignee / deal owner.")] = None,
    channel: Annotated[str | None, typer.Option(help="Ticket channel.")] = None,
    segment: Annotated[str | None, typer.Option(help="Account segment.")] = None,
    source: Annotated[str | None, typer.Option(help="Lead source of deals and leads.")] = None,
    stage: Annotated[list[str] | None, typer.Option(help="support, sales or customers; repeatable.")] = None,
    as_json: JsonOption = False,
) -> None:
    """KPIs per stage computed from the records, with the previous period beside each."""
    from copilot.insights.common import Filters, Period  # the store loads with the command, not for --help
    from copilot.insights.kpis import STAGES, compute_kpis

    stages = stage or list(STAGES)
    if unknown := [s for s in stages if s not in STAGES]:
        raise fail(f"--stage: unknown stage(s) {', '.join(unknown)} (one of: {', '.join(STAGES)})")
    settings = load_settings()
    with open_store(settings).repo(workspace_slug(settings, workspace)) as repo:
        report = compute_kpis(
            repo,
            Period.of(since, until, days),
            Filters(team=team, channel=channel, segment=segment, source=source),
            stages,  # type: ignore[arg-type]
        )
    if as_json:
        console.print_json(report.model_dump_json())
        return
    console.print(
        f"[bold]{report.workspace}[/] {report.period.since:%Y-%m-%d} to {report.period.until:%Y-%m-%d} "
        f"(previous: {report.previous.since:%Y-%m-%d} to {report.previous.until:%Y-%m-%d})"
        + (f" · filters {report.filters.given()}" if report.filters.given() else "")
        + f" · {report.elapsed_ms:.0f} ms"
    )
    for section in report.sections:
        table = Table(title=section.stage.capitalize(), title_justify="left")
        for column in ("KPI", "now", "previous", "n (now / previous)"):
            table.add_column(column, justify="left" if column == "KPI" else "right")
        for kpi in section.kpis:
            table.add_row(
                kpi.label, _number(kpi.value, kpi.unit), _number(kpi.previous, kpi.unit), f"{kpi.n} / {kpi.previous_n}"
            )
        for breakdown in section.breakdowns:
            for row in breakdown.rows:
                table.add_row(
                    f"{breakdown.label}: {row.group}",
                    _number(row.value, breakdown.unit),
                    _number(row.previous, breakdown.unit),
                    f"{row.n} / {row.previous_n}",
                )
        for series in section.series:
            points = " ".join(_number(p.value, "score") for p in series.points)
            table.add_row(f"{series.label} ({len(series.points)} buckets)", points, "", "")
        console.print(table)
        if section.filters_ignored:
            console.print(f"[dim]{section.stage}: no {', '.join(section.filters_ignored)} on these records[/]")


# -- reply QA -------------------------------------------------------------------------------------
@qa_app.command("run")
def qa_run(
    ticket: Annotated[
        str | None, typer.Argument(help="A ticket id or external id (default: every replied ticket).")
    ] = None,
    workspace: WorkspaceOption = None,
    strategy: Annotated[str, typer.Option(help="auto, model or rules.")] = "auto",
    limit: Annotated[int, typer.Option(help="At most this many tickets when no ticket is given.")] = 2000,
) -> None:
    """Score agent replies against the workspace scorecard (one ticket, or every ticket with replies)."""
    from copilot.insights.qa_review import TASK, score_replies
    from copilot.store.models import Ticket

    task_strategy(TASK, strategy)
    services = open_services()
    slug = workspace_slug(services.settings, workspace)
    if ticket:
        with services.store.repo(slug) as repo:
            ticket_id = repo.resolve(Ticket, ticket).id
        outcome = services.run_in_workspace(slug, TASK, {"ticket_id": ticket_id, "strategy": strategy})
        _show_replies(outcome.result)
        passed = sum(r.passed for r in outcome.result.replies)
        console.print(f"{len(outcome.result.replies)} replies scored; {passed} passed the scorecard.")
        return
    with console.status("scoring replies...", spinner="dots") as status:
        run = score_replies(
            services,
            slug,
            strategy=strategy,
            limit=limit,
            progress=lambda done, total: status.update(f"scoring replies: ticket {done} of {total}"),
        )
    console.print(f"{run.replies} replies on {run.tickets} ticket(s) scored; {run.passed} passed the scorecard.")


def _show_replies(result) -> None:
    for reply in result.replies:
        where = f"message {reply.message_id}" if reply.message_id else f"approved draft {reply.ai_result_id}"
        mark = "[green]passed[/]" if reply.passed else "[red]failed[/]"
        console.print(
            f"[bold]{where}[/] by {escape(reply.author or '?')} · {reply.topic} · score {reply.score:.2f} "
            f"{mark} ({reply.method})"
        )
        for verdict in reply.verdicts:
            colour = {"pass": "green", "fail": "red"}.get(verdict.verdict, "dim")
            evidence = f' "{escape(verdict.evidence[:140])}" [dim]({verdict.source})[/]' if verdict.evidence else ""
            console.print(f"  [{colour}]{verdict.verdict:4}[/] {verdict.criterion}: {escape(verdict.why)}{evidence}")


@qa_app.command("scorecards")
def qa_scorecards(
    workspace: WorkspaceOption = None,
    by: Annotated[str, typer.Option(help="agent or topic.")] = "agent",
    days: Annotated[float | None, typer.Option(help="Only replies of the last N days.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Per-agent or per-topic scorecards from the stored QA results."""
    from copilot.insights.common import Period
    from copilot.insights.qa_review import scorecards

    if by not in ("agent", "topic"):
        raise fail("--by: agent or topic")
    settings = load_settings()
    with open_store(settings).repo(workspace_slug(settings, workspace)) as repo:
        cards = scorecards(repo, by, Period.of(days=days) if days else None)
    if as_json:
        console.print_json(cards.model_dump_json())
        return
    if not cards.lines:
        raise fail("no stored QA results yet: run `copilot qa run` first")
    criteria = sorted({name for line in cards.lines for name in line.criteria})
    table = Table(title=f"Reply QA by {by} ({cards.replies} replies)", title_justify="left")
    for column in (by, "replies", "passed", "mean score", *criteria):
        table.add_column(column, justify="left" if column == by else "right")
    for line in cards.lines:
        rates = [line.pass_rates.get(c) for c in criteria]
        table.add_row(
            line.group,
            str(line.replies),
            f"{100 * line.pass_rate:.0f}%",
            f"{line.mean_score:.2f}",
            *("-" if r is None else f"{100 * r:.0f}%" for r in rates),
        )
    console.print(table)


@qa_app.command("agreement")
def qa_agreement(
    workspace: WorkspaceOption = None,
    save: Annotated[bool, typer.Option(help="Make the best-agreeing threshold the workspace's.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Agreement of auto-QA with the reviewers' stored decisions on reply drafts (and the calibrated threshold)."""
    from copilot.insights.qa_review import calibrate

    services = open_services()
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        result = calibrate(repo, services.sentiment.for_workspace(repo), save=save)
    if as_json:
        console.print_json(result.model_dump_json(exclude={"cases"}))
        return
    if not result.drafts:
        raise fail("no decided reply drafts in this workspace: nothing to compare with")
    console.print(
        f"{result.drafts} decided drafts ({result.accepted} accepted: approved or lightly edited). At threshold "
        f"{result.threshold:.2f}: agreement {100 * (result.agreement or 0):.1f}%, Cohen's kappa {result.kappa}, "
        f"Spearman(score, edit ratio) {result.spearman_edit}."
    )
    if result.best_threshold is not None:
        console.print(
            f"Best threshold {result.best_threshold:.2f}: agreement {100 * result.best_agreement:.1f}% "
            f"(leave-one-out {100 * result.loo_agreement:.1f}%)" + (" — saved." if save else ".")
        )
    console.print(f"confusion: {result.confusion}")


# -- CSAT -----------------------------------------------------------------------------------------
@csat_app.command("predict")
def csat_predict(
    workspace: WorkspaceOption = None,
    limit: Annotated[int, typer.Option(help="Show the N lowest.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Predicted CSAT of solved tickets without a survey answer, lowest first."""
    from copilot.insights.csat import predict_csat

    services = open_services()
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        board = predict_csat(repo, services.sentiment.for_workspace(repo))
    if as_json:
        console.print_json(board.model_dump_json())
        return
    if board.refusal:
        raise fail(board.refusal.reason)
    console.print(f"learned from {board.rated} rated tickets ({100 * board.good_rate:.0f}% good)")
    table = Table("ticket", "subject", "P(good)", "top signals")
    for p in board.predictions[:limit]:
        table.add_row(
            p.ticket_ref,
            escape(p.subject[:50]),
            f"{p.probability_good:.2f}",
            escape("; ".join(s.text for s in p.top_signals[:3])),
        )
    console.print(table)


@csat_app.command("evaluate")
def csat_evaluate(workspace: WorkspaceOption = None, seed: int = 0) -> None:
    """AUC of the CSAT prediction on held-out rated tickets."""
    from copilot.insights.csat import evaluate_csat

    services = open_services()
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        result = evaluate_csat(repo, services.sentiment.for_workspace(repo), seed=seed)
    console.print(
        f"{result.rated} rated tickets ({result.good} good); trained on {result.train}, held out {result.test}: "
        f"AUC {result.auc}, Brier {result.brier} (base rate {result.brier_base_rate}), seed {result.seed}"
    )


# -- accounts -------------------------------------------------------------------------------------
def health_command(
    account: Annotated[str | None, typer.Argument(help="An account id or external id (default: going sour).")] = None,
    workspace: WorkspaceOption = None,
    every: Annotated[bool, typer.Option("--all", help="Every account, not only those going sour.")] = False,
    backtest: Annotated[
        bool, typer.Option(help="How the risk ranked churned accounts 60 days before they churned (AUC).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Account health and churn risk with reasons and evidence; without an account, the "going sour" list."""
    from copilot.insights.health import churn_backtest, going_sour, health_report
    from copilot.store.models import Account

    services = open_services()
    with services.store.repo(workspace_slug(services.settings, workspace)) as repo:
        if backtest:
            result = churn_backtest(repo, services.sentiment.for_workspace(repo))
            console.print(
                f"{result.churned} churned and {result.active} active accounts; risk {result.lead_days} days before "
                f"each churn: churned {result.churned_risk}, active mean {result.active_risk_mean}; AUC {result.auc}"
            )
            return
        ids = [repo.resolve(Account, account).id] if account else None
        report = health_report(repo, services.sentiment.for_workspace(repo), account_ids=ids)
    shown = report if account or every else going_sour(report)
    if as_json:
        console.print_json(f"[{','.join(h.model_dump_json() for h in shown)}]")
        return
    for h in shown:
        trend = " → ".join(str(p.risk) for p in h.history)
        arr = f"${h.arr:,.0f}" if h.arr is not None else "-"
        console.print(
            f"[bold]{escape(h.name)}[/] ({h.account_ref}) risk [bold]{h.risk}[/] {h.band} · ARR {arr} · "
            f"risk 90/60/30/0 days ago: {trend}"
        )
        for reason in h.reasons[: None if account else 3]:
            console.print(f"  {reason.points:+3d} {escape(reason.text)} [dim]{', '.join(reason.evidence_ids[:4])}[/]")


# -- deals and leads ------------------------------------------------------------------------------
@scores_app.command("deals")
def scores_deals(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Win probability of every open deal, lowest first, with its top signals."""
    from copilot.insights.scoring import score_deals

    settings = load_settings()
    with open_store(settings).repo(workspace_slug(settings, workspace)) as repo:
        board = score_deals(repo)
    if as_json:
        console.print_json(board.model_dump_json())
        return
    if board.refusal:
        raise fail(board.refusal.reason)
    console.print(f"learned from {board.trained_on} closed deals ({100 * board.base_rate:.0f}% won)")
    table = Table("deal", "name", "stage", "P(win)", "top signals")
    for s in board.deals:
        table.add_row(
            s.deal_ref,
            escape(s.name[:40]),
            s.stage,
            f"{s.win_probability:.2f}",
            escape("; ".join(f"{x.text} ({x.logit:+.2f})" for x in s.top_signals[:3])),
        )
    console.print(table)


@scores_app.command("leads")
def scores_leads(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """A score (0-100) per open or qualified lead, highest first."""
    from copilot.insights.scoring import score_leads

    settings = load_settings()
    with open_store(settings).repo(workspace_slug(settings, workspace)) as repo:
        board = score_leads(repo)
    if as_json:
        console.print_json(board.model_dump_json())
        return
    if board.refusal:
        raise fail(board.refusal.reason)
    table = Table("lead", "name", "source", "score", "top signals")
    for s in board.leads:
        table.add_row(
            s.contact_ref,
            escape(s.name),
            s.source or "-",
            str(s.score),
            escape("; ".join(x.text for x in s.top_signals[:3])),
        )
    console.print(table)


@scores_app.command("calibration")
def scores_calibration(
    workspace: WorkspaceOption = None,
    kind: Annotated[str, typer.Option(help="deals (win probability) or leads (conversion).")] = "deals",
    folds: int = 5,
    repeats: int = 3,
    as_json: JsonOption = False,
) -> None:
    """Cross-validated win (or lead conversion) probabilities: Brier score and reliability table."""
    from copilot.insights.scoring import deal_calibration, lead_calibration

    calibrations = {
        "deals": (deal_calibration, "won", "closed deals"),
        "leads": (lead_calibration, "converted", "decided leads"),
    }
    if kind not in calibrations:
        raise fail(f"--kind: unknown kind '{kind}' (one of: deals, leads)")
    calibrate, outcome, record = calibrations[kind]
    settings = load_settings()
    with open_store(settings).repo(workspace_slug(settings, workspace)) as repo:
        result = calibrate(repo, folds=folds, repeats=repeats)
    if as_json:
        console.print_json(result.model_dump_json())
        return
    console.print(
        f"{result.examples} {record} ({result.positives} {outcome}, base rate {result.base_rate:.3f}); "
        f"{result.folds}-fold CV x {result.repeats}: Brier {result.brier} vs {result.brier_base_rate} for the base "
        f"rate (skill {result.brier_skill}), log loss {result.log_loss}, AUC {result.auc}"
    )
    table = Table("predicted", kind, "mean predicted", f"observed {outcome}")
    for b in result.reliability:
        shown = ["-" if v is None else f"{v:.3f}" for v in (b.mean_predicted, b.observed)]
        table.add_row(f"{b.low:.1f}-{b.high:.1f}", str(b.count), *shown)
    console.print(table)


@scores_app.command("forecast")
def scores_forecast(workspace: WorkspaceOption = None, months: int = 3) -> None:
    """Expected value (amount x win probability) of the open deals per month of close date."""
    from copilot.insights.scoring import forecast

    settings = load_settings()
    with open_store(settings).repo(workspace_slug(settings, workspace)) as repo:
        result = forecast(repo, months=months)
    if result.refusal:
        raise fail(result.refusal.reason)
    table = Table("month", "open deals", "pipeline", "expected", "won")
    for p in [*result.periods, *([result.overdue] if result.overdue else [])]:
        label = "overdue" if p is result.overdue else f"{p.since:%Y-%m}"
        table.add_row(label, str(p.deals), f"${p.pipeline:,.0f}", f"${p.expected:,.0f}", f"${p.won:,.0f}")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("kpis", help="KPIs per stage (support, sales, customers) with the previous period beside each.")(
        kpis_command
    )
    app.command("health", help="Account health and churn risk; without an account, the accounts going sour.")(
        health_command
    )
    app.add_typer(qa_app, name="qa")
    app.add_typer(csat_app, name="csat")
    app.add_typer(scores_app, name="scores")
