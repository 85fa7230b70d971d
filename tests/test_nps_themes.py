"""NPS themes: stable assignment of new responses, determinism, clear errors on tiny inputs, filters,
naming guard, CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from typer.testing import CliRunner

from copilot.gateway import Gateway
from copilot.store import get_or_create_workspace
from copilot.store.models import AiResult, NpsResponse, NpsThemeAssignment, NpsThemeRun
from copilot.tasks.context import TaskContext
from copilot.tasks.nps_themes import (
    ScoreBand,
    ThemeError,
    ThemeFilters,
    assign_new_responses,
    fit_theme_model,
    load_report,
    name_is_grounded,
    run_themes,
    split_sentences,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
WINDOW = ThemeFilters(since=NOW - timedelta(days=30), until=NOW)

TOPICS: dict[str, tuple[list[str], tuple[int, int]]] = {
    "mobile": (
        [
            "The mobile app crashes every time I open it.",
            "Our iPhone app keeps crashing when we scan receipts.",
            "The Android app freezes and then crashes.",
            "Mobile app crashes constantly on my phone.",
            "The phone app crashed twice during a client meeting.",
            "Since the last update the mobile app crashes on launch.",
        ],
        (2, 6),
    ),
    "pricing": (
        [
            "Way too expensive for a small business like ours.",
            "The price went up again at renewal, far too expensive.",
            "Pricing per extra user is too expensive.",
            "It costs too much compared to cheaper alternatives.",
            "The subscription price is too high for what we get.",
            "Expensive plans, we pay too much every month.",
        ],
        (3, 7),
    ),
    "support": (
        [
            "Support answered within minutes and fixed our problem.",
            "The support team is friendly and fast.",
            "Great customer support, they always help us quickly.",
            "Our support agent solved the issue the same day.",
            "Fast and helpful support whenever we ask.",
            "The support staff were kind and resolved our ticket quickly.",
        ],
        (9, 10),
    ),
    "invoices": (
        [
            "Recurring invoices save us hours every month.",
            "Automatic invoice reminders get our clients to pay on time.",
            "Creating and sending invoices is quick and simple.",
            "We love the recurring invoice schedules.",
            "Invoice reminders mean we chase fewer late payments.",
            "Sending invoices to clients takes seconds now.",
        ],
        (8, 10),
    ),
}
CAMPAIGNS = ("Q2 survey", "Onboarding survey")


def _comments(rng: np.random.Generator) -> list[tuple[str, int, str]]:
    rows = []
    for name, (sentences, (low, high)) in TOPICS.items():
        for sentence in sentences:
            rows.append((sentence, int(rng.integers(low, high + 1)), name))
    return rows


def seed_responses(store, workspace: str = "alpha", *, now: datetime = NOW) -> dict[str, list[int]]:
    """Each topic's sentences once in the current 30 days and once in the 30 days before; topics by response id."""
    rng = np.random.default_rng(1)
    by_topic: dict[str, list[int]] = {}
    with store.session() as session:
        get_or_create_workspace(session, workspace)
    with store.repo(workspace) as repo:
        for period, (low, high) in enumerate(((1, 29), (31, 59))):
            for n, (comment, score, topic) in enumerate(_comments(rng)):
                row = repo.add(
                    NpsResponse(
                        external_id=f"{workspace}-{period}-{n}",
                        score=score,
                        comment=comment,
                        submitted_at=now - timedelta(days=int(rng.integers(low, high + 1))),
                        campaign=CAMPAIGNS[n % 2],
                        segment="SMB" if n % 3 else "Enterprise",
                    )
                )
                repo.session.flush()
                if period == 0:
                    by_topic.setdefault(topic, []).append(row.id)
        # a response without a comment counts in the NPS but not in the themes
        repo.add(
            NpsResponse(
                external_id=f"{workspace}-silent",
                score=10,
                comment=None,
                submitted_at=now - timedelta(days=2),
                campaign=CAMPAIGNS[0],
            )
        )
    return by_topic


@pytest.fixture(scope="module")
def embedder():
    from retrieval.embeddings import default_embedder

    return default_embedder()


def context_for(repo, settings, embedder) -> TaskContext:
    return TaskContext(settings, repo, Gateway(settings, sleep=lambda _s: None), _embedder=embedder)


def run(store, settings, embedder, filters: ThemeFilters = WINDOW, **kwargs):
    with store.repo("alpha") as repo:
        return run_themes(
            context_for(repo, settings, embedder),
            filters,
            now=NOW,
            name_with_model=kwargs.pop("name_with_model", False),
            **kwargs,
        )


def theme_of_response(store, run_id: int) -> dict[int, set[int]]:
    with store.session() as session:
        rows = session.execute(
            select(NpsThemeAssignment.response_id, NpsThemeAssignment.theme).where(NpsThemeAssignment.run_id == run_id)
        ).all()
    out: dict[int, set[int]] = {}
    for response_id, theme in rows:
        out.setdefault(response_id, set()).add(theme)
    return out


def test_split_sentences_drops_connectors_and_empty_pieces():
    assert split_sentences("Great app. But support takes days!\nAlso, pricing is high; - ") == [
        "Great app.",
        "Support takes days!",
        "Pricing is high",
    ]
    assert split_sentences(None) == [] and split_sentences("  ...  ") == []


def test_run_finds_topics_and_saves_report_model_and_assignments(store, two_workspaces, settings, embedder):
    by_topic = seed_responses(store)
    outcome = run(store, settings, embedder)
    report = outcome.result
    assert report.commented == 24 and report.responses == 25 and report.previous_commented == 24
    assert 2 <= report.k <= 12 and report.k_mode == "auto"
    membership = theme_of_response(store, report.run_id)
    for topic, ids in by_topic.items():  # every topic's responses share one theme, and no other topic joins it
        themes = {next(iter(membership[i])) for i in ids}
        assert len(themes) == 1, (topic, themes)
        others = {i for t, rows in by_topic.items() if t != topic for i in rows}
        assert not any(membership[i] & themes for i in others), topic
    for theme in report.themes:
        assert theme.label and theme.keywords and theme.quotes
        assert abs(theme.promoters + theme.passives + theme.detractors - 1) < 1e-3
        assert (
            theme.change is not None and theme.change.previous_responses == theme.responses
        )  # same comments both periods
        assert all(q.response_id in membership and theme.id in membership[q.response_id] for q in theme.quotes)
    mobile_theme = next(iter(membership[by_topic["mobile"][0]]))
    mobile = next(t for t in report.themes if t.id == mobile_theme)
    assert mobile.detractors > 0.5 and mobile.sentiment < 0 and any("app" in k or "crash" in k for k in mobile.keywords)
    with store.session() as session:
        row = session.get(AiResult, outcome.ai_result_id)
        run_row = session.get(NpsThemeRun, report.run_id)
        assert (row.task, row.subject_kind, row.subject_id, row.status.value) == (
            "nps_themes",
            "nps_run",
            report.run_id,
            "completed",
        )
        assert run_row.ai_result_id == row.id and run_row.k == report.k
        assert row.content["result"]["themes"][0]["label"] == report.themes[0].label


def test_same_seed_same_themes(store, two_workspaces, settings, embedder):
    seed_responses(store)
    first, second = (run(store, settings, embedder, seed=3).result for _ in range(2))
    strip = lambda report: report.model_dump(exclude={"run_id", "timings"})  # noqa: E731
    assert strip(first) == strip(second)
    assert theme_of_response(store, first.run_id) == theme_of_response(store, second.run_id)
    vectors = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    a, b = fit_theme_model(vectors, seed=5), fit_theme_model(vectors, seed=5)
    assert np.array_equal(a.centroids, b.centroids) and np.array_equal(a.theme_of, b.theme_of)


def test_new_responses_join_existing_themes_without_moving_old_ones(store, two_workspaces, settings, embedder):
    seed_responses(store)
    report = run(store, settings, embedder).result
    before = theme_of_response(store, report.run_id)
    quote = report.themes[0].quotes[0]
    with store.repo("alpha") as repo:
        near = repo.add(
            NpsResponse(
                score=quote.score,
                comment=f"Honestly, {quote.text.lower().rstrip('.')}!!",
                submitted_at=NOW - timedelta(days=1),
                campaign=CAMPAIGNS[0],
            )
        )
        other = repo.add(
            NpsResponse(
                score=9, comment="Support fixed our problem quickly and kindly.", submitted_at=NOW - timedelta(days=1)
            )
        )
        repo.add(NpsResponse(score=9, comment="Outside the window.", submitted_at=NOW + timedelta(days=1)))
        repo.session.flush()
        near_id, other_id = near.id, other.id
    with store.repo("alpha") as repo:
        assert assign_new_responses(context_for(repo, settings, embedder), report.run_id) == 2
    after = theme_of_response(store, report.run_id)
    assert {i: after[i] for i in before} == before  # nothing that was assigned moved
    assert after[near_id] == {report.themes[0].id}
    assert other_id in after
    with store.repo("alpha") as repo:
        assert assign_new_responses(context_for(repo, settings, embedder), report.run_id) == 0  # idempotent
        refreshed = load_report(repo, report.run_id)
    assert refreshed.assigned_after_run == 2 and refreshed.commented == report.commented + 2
    theme = next(t for t in refreshed.themes if t.id == report.themes[0].id)
    assert theme.responses >= report.themes[0].responses + 1 and theme.label == report.themes[0].label


def test_empty_and_single_comment_inputs_are_clear_errors(store, two_workspaces, settings, embedder):
    with pytest.raises(ThemeError, match="no NPS comment matches"):
        run(store, settings, embedder)
    with store.repo("alpha") as repo:
        repo.add(NpsResponse(score=3, comment="The app keeps crashing.", submitted_at=NOW - timedelta(days=3)))
    with pytest.raises(ThemeError, match="only 1 NPS comment matches .*at least 2"):
        run(store, settings, embedder)
    with store.session() as session:  # nothing half-written
        assert session.scalar(select(func.count()).select_from(NpsThemeRun)) == 0
        assert session.scalar(select(func.count()).select_from(AiResult)) == 0


def test_two_comments_make_a_report(store, two_workspaces, settings, embedder):
    with store.repo("alpha") as repo:
        repo.add(NpsResponse(score=3, comment="The app keeps crashing.", submitted_at=NOW - timedelta(days=3)))
        repo.add(
            NpsResponse(
                score=10,
                comment="The app keeps crashing. Support fixed it fast though.",
                submitted_at=NOW - timedelta(days=2),
            )
        )
    report = run(store, settings, embedder).result
    assert report.commented == 2 and sum(t.responses for t in report.themes) >= 2


def test_filters_select_the_responses(store, two_workspaces, settings, embedder):
    seed_responses(store)
    campaign = run(store, settings, embedder, WINDOW.model_copy(update={"campaign": CAMPAIGNS[1]})).result
    assert campaign.commented == 12 and campaign.responses == 12
    promoters = run(store, settings, embedder, WINDOW.model_copy(update={"score_band": ScoreBand.promoters})).result
    assert all(t.passives == 0 and t.detractors == 0 for t in promoters.themes)
    assert all(q.score >= 9 for t in promoters.themes for q in t.quotes)
    segment = run(store, settings, embedder, WINDOW.model_copy(update={"segment": "Enterprise"})).result
    with store.session() as session:
        ids = {
            i
            for (i,) in session.execute(
                select(NpsThemeAssignment.response_id).where(NpsThemeAssignment.run_id == segment.run_id)
            )
        }
        rows = session.execute(
            select(NpsResponse.segment, NpsResponse.campaign, NpsResponse.submitted_at).where(NpsResponse.id.in_(ids))
        ).all()
        campaign_ids = {
            i
            for (i,) in session.execute(
                select(NpsThemeAssignment.response_id).where(NpsThemeAssignment.run_id == campaign.run_id)
            )
        }
        campaigns = set(session.scalars(select(NpsResponse.campaign).where(NpsResponse.id.in_(campaign_ids))))
    assert rows and all(r.segment == "Enterprise" for r in rows) and len(ids) == segment.commented
    assert all(
        WINDOW.since.replace(tzinfo=None) <= r.submitted_at.replace(tzinfo=None) < NOW.replace(tzinfo=None)
        for r in rows
    )
    assert campaigns == {CAMPAIGNS[1]}
    previous_only = run(
        store, settings, embedder, ThemeFilters(since=NOW - timedelta(days=60), until=NOW - timedelta(days=30))
    ).result
    assert previous_only.commented == 24 and previous_only.previous_commented == 0
    everything = run(store, settings, embedder, ThemeFilters()).result
    assert (
        everything.commented == 48
        and everything.previous_since is None
        and all(t.change is None for t in everything.themes)
    )
    with pytest.raises(ValidationError, match="until must be after since"):
        ThemeFilters(since=NOW, until=NOW - timedelta(days=1))


def test_model_names_are_kept_only_when_grounded(store, two_workspaces, settings, embedder, fake_script):
    assert name_is_grounded("Mobile app crashes", ["mobile app", "crashes"], [])[0]
    assert name_is_grounded("Pricing concerns", ["price", "expensive"], [])[0]  # prefix match, generic noun allowed
    ok, stray = name_is_grounded("Billing and payroll", ["mobile app", "crashes"], ["The app crashes."])
    assert not ok and stray == ["billing", "payroll"]
    assert not name_is_grounded("x", ["x"], [])[0]
    seed_responses(store)
    scripted = settings.model_copy(update={"model": "fake/scripted"})
    keyword_run = run(store, settings, embedder).result
    first = next(t for t in keyword_run.themes if t.id == 0)
    grounded = " ".join(first.keywords[:2])[:40]
    fake_script.push(
        json.dumps({"name": grounded}), *[json.dumps({"name": "Quarterly payroll taxes"})] * (keyword_run.k - 1)
    )
    with store.repo("alpha") as repo:
        outcome = run_themes(
            context_for(repo, scripted, embedder), WINDOW, now=NOW
        )  # not the small local model: names with the model
    labels = {t.id: (t.label, t.label_source) for t in outcome.result.themes}
    assert labels[0] == (grounded[0].upper() + grounded[1:], "model")
    assert all(labels[t.id] == (t.label, "keywords") for t in keyword_run.themes if t.id != 0)
    verdict = outcome.verdicts[0]
    assert verdict.name == "theme_names_grounded" and not verdict.passed and "payroll" in " ".join(verdict.details)
    assert (
        outcome.used_fallback
        and outcome.provenance.prompt_name == "nps_theme_label"
        and outcome.provenance.model == "fake/scripted"
    )


def test_cli_prints_the_themes_table(store, two_workspaces, settings, monkeypatch):
    seed_responses(store)
    monkeypatch.setenv("COPILOT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("COLUMNS", "160")
    from copilot.cli.main import app

    args = ["nps-themes", "-w", "alpha", "--since", "2026-05-02", "--until", "2026-06-01", "--label", "keywords"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "prom / pass / detr" in result.output and "vs previous" in result.output and "alpha-0-" in result.output
    assert "24 with a comment" in result.output and "--assign-new" in result.output
    run_id = int(result.output.split("NPS themes · run ")[1].split()[0])
    again = CliRunner().invoke(app, ["nps-themes", "-w", "alpha", "--assign-new", str(run_id)])
    assert again.exit_code == 0 and "0 new response(s) assigned" in again.output
    bad = CliRunner().invoke(app, ["nps-themes", "-w", "alpha", "--score-band", "fans"])
    assert bad.exit_code != 0 and "--score-band" in bad.output
    empty = CliRunner().invoke(app, ["nps-themes", "-w", "beta"])
    assert (
        empty.exit_code != 0
        and isinstance(empty.exception, ThemeError)
        and "no NPS comment matches" in str(empty.exception)
    )
