"""NPS themes: stable assignment of new responses, determinism, clear errors on tiny inputs, filters,
naming guard, sentiment over the theme vectors, the build request, the assign job and the CLI.

Most tests run on the bag-of-letters FakeEmbedder with a small sentiment head over its vectors; the test that
checks the topics themselves (and the CLI, end to end) runs on the real all-MiniLM-L6-v2 embedder."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from typer.testing import CliRunner

from copilot.services import Services
from copilot.store import get_or_create_workspace
from copilot.store.models import AiResult, Job, JobStatus, NpsResponse, NpsThemeAssignment, NpsThemeRun
from copilot.tasks.nps_themes import (
    MAX_NAME_CHARS,
    MAX_NAME_WORDS,
    Responses,
    ScoreBand,
    SentenceTable,
    ThemeBuild,
    ThemeError,
    ThemeFilters,
    assign_new_responses,
    build_themes,
    fit_theme_model,
    load_report,
    name_is_grounded,
    polarity,
    run_themes,
    score_lean,
    sentence_sentiment,
    split_sentences,
    theme_phrases,
)
from copilot.tasks.sentiment import Head, SentimentClassifier, features, shipped_head
from tests.conftest import use_settings_in_cli
from tests.fakes import FakeEmbedder

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


def letters_sentiment() -> SentimentClassifier:
    """A sentiment head over FakeEmbedder vectors + VADER: P(positive) - P(negative) follows VADER's compound."""
    dimensions = FakeEmbedder.dimensions
    width = features(np.zeros((1, dimensions), dtype=np.float32), _vader(), [""]).shape[1]
    coef = np.zeros((3, width))
    coef[0, -1], coef[2, -1] = -1.0, 1.0  # the last lexical feature is VADER's compound score
    return SentimentClassifier(FakeEmbedder().encode, Head(coef, np.zeros(3), name="letters head"), _vader())


def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def themes_services(settings, store, fake_model, *, embedder=None, sentiment=None) -> Services:
    return Services(
        settings,
        store,
        fake=fake_model,
        embedder=embedder or FakeEmbedder(),
        sentiment=sentiment or letters_sentiment(),
        sleep=lambda _seconds: None,
    )


@pytest.fixture
def services(settings, store, fake_model):
    """This module's services: the fake model, the FakeEmbedder and a sentiment head over its vectors."""
    services = themes_services(settings, store, fake_model)
    yield services
    services.close()


@pytest.fixture(scope="module")
def minilm():
    from retrieval.embeddings import default_embedder

    return default_embedder()


def run(services: Services, filters: ThemeFilters = WINDOW, **kwargs):
    with services.store.repo("alpha") as repo:
        return run_themes(
            services.context(repo, task="nps_themes"),
            filters,
            now=NOW,
            name_with_model=kwargs.pop("name_with_model", False),
            **kwargs,
        )


def assign(services: Services, run_id: int) -> int:
    with services.store.repo("alpha") as repo:
        return assign_new_responses(services.context(repo, task="nps_themes"), run_id)


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


def test_run_finds_topics_and_saves_report_model_and_assignments(store, two_workspaces, settings, fake_model, minilm):
    by_topic = seed_responses(store)
    services = Services(settings, store, fake=fake_model, embedder=minilm, sleep=lambda _seconds: None)
    params = {"filters": WINDOW.model_dump(mode="json"), "strategy": "keywords", "as_of": NOW.isoformat()}
    with store.repo("alpha") as repo:
        outcome = services.run_task(repo, "nps_themes", params)
    report = outcome.result
    assert report.commented == 24 and report.responses == 25 and report.previous_commented == 24
    assert 2 <= report.k <= 12 and report.k_mode == "auto" and report.embedding_model == minilm.name
    membership = theme_of_response(store, report.run_id)
    for topic, ids in by_topic.items():  # every topic's responses share one theme, and no other topic joins it
        themes = {next(iter(membership[i])) for i in ids}
        assert len(themes) == 1, (topic, themes)
        others = {i for t, rows in by_topic.items() if t != topic for i in rows}
        assert not any(membership[i] & themes for i in others), topic
    for theme in report.themes:
        assert theme.label and theme.keywords and theme.quotes
        assert abs(theme.promoters + theme.passives + theme.detractors - 1) < 1e-3
        # same comments both periods
        assert theme.change is not None and theme.change.previous_responses == theme.responses
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
        assert run_row.embedding_model == minilm.name and run_row.dimensions == minilm.dimensions
        assert row.content["result"]["themes"][0]["label"] == report.themes[0].label
        assert session.scalar(select(func.count()).select_from(AiResult)) == 1  # the runner did not save it twice


def test_same_seed_same_themes(store, two_workspaces, services):
    seed_responses(store)
    first, second = (run(services, seed=3).result for _ in range(2))
    strip = lambda report: report.model_dump(exclude={"run_id", "timings"})  # noqa: E731
    assert strip(first) == strip(second) and first.embedding_model == "fake-letters"
    assert theme_of_response(store, first.run_id) == theme_of_response(store, second.run_id)
    vectors = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    a, b = fit_theme_model(vectors, seed=5), fit_theme_model(vectors, seed=5)
    assert np.array_equal(a.centroids, b.centroids) and np.array_equal(a.theme_of, b.theme_of)


def test_new_responses_join_existing_themes_without_moving_old_ones(store, two_workspaces, services):
    seed_responses(store)
    report = run(services).result
    before = theme_of_response(store, report.run_id)
    quote = report.themes[0].quotes[0]
    with store.repo("alpha") as repo:
        near = repo.add(
            NpsResponse(
                score=quote.score,
                comment=f"{quote.text.upper().rstrip('.')}!!",  # the same letters: the same vector for the fake
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
    assert assign(services, report.run_id) == 2
    after = theme_of_response(store, report.run_id)
    assert {i: after[i] for i in before} == before  # nothing that was assigned moved
    assert after[near_id] == {report.themes[0].id}
    assert other_id in after
    assert assign(services, report.run_id) == 0  # idempotent
    with store.repo("alpha") as repo:
        refreshed = load_report(repo, report.run_id)
    assert refreshed.assigned_after_run == 2 and refreshed.commented == report.commented + 2
    theme = next(t for t in refreshed.themes if t.id == report.themes[0].id)
    assert theme.responses >= report.themes[0].responses + 1 and theme.label == report.themes[0].label


def test_new_responses_need_the_embedder_of_the_run(store, two_workspaces, services, settings, fake_model):
    seed_responses(store)
    report = run(services).result
    before = theme_of_response(store, report.run_id)
    with store.repo("alpha") as repo:
        repo.add(NpsResponse(score=9, comment="Support fixed it.", submitted_at=NOW - timedelta(days=1)))

    class OtherLetters(FakeEmbedder):
        name = "other-letters"

    other = themes_services(settings, store, fake_model, embedder=OtherLetters())
    with pytest.raises(ThemeError, match=r"built with fake-letters \(26 dimensions\); the embedder is other-letters"):
        assign(other, report.run_id)
    assert theme_of_response(store, report.run_id) == before  # nothing written
    with store.session() as session:
        assert session.get(NpsThemeRun, report.run_id).assigned == report.commented
    assert assign(services, report.run_id) == 1  # the run's own embedder


def test_assign_job_puts_new_responses_into_the_run(store, two_workspaces, services):
    seed_responses(store)
    report = run(services).result
    with store.repo("alpha") as repo:
        repo.add(NpsResponse(score=4, comment="The app crashes again.", submitted_at=NOW - timedelta(days=1)))
    with store.repo("alpha") as repo:
        job_id = services.jobs.submit(repo, "nps_assign", {"run_id": report.run_id}).id
    assert services.jobs.run_once()
    with store.session() as session:
        job = session.get(Job, job_id)
        assert job.status is JobStatus.succeeded, job.error
        assert job.result == {"run_id": report.run_id, "assigned": 1}


def test_empty_and_single_comment_inputs_are_clear_errors(store, two_workspaces, services):
    with pytest.raises(ThemeError, match="no NPS comment matches"):
        run(services)
    with store.repo("alpha") as repo:
        repo.add(NpsResponse(score=3, comment="The app keeps crashing.", submitted_at=NOW - timedelta(days=3)))
    with pytest.raises(ThemeError, match="only 1 NPS comment matches .*at least 2"):
        run(services)
    with store.session() as session:  # nothing half-written
        assert session.scalar(select(func.count()).select_from(NpsThemeRun)) == 0
        assert session.scalar(select(func.count()).select_from(AiResult)) == 0


def test_two_comments_make_a_report(store, two_workspaces, services):
    with store.repo("alpha") as repo:
        repo.add(NpsResponse(score=3, comment="The app keeps crashing.", submitted_at=NOW - timedelta(days=3)))
        repo.add(
            NpsResponse(
                score=10,
                comment="The app keeps crashing. Support fixed it fast though.",
                submitted_at=NOW - timedelta(days=2),
            )
        )
    report = run(services).result
    assert report.commented == 2 and sum(t.responses for t in report.themes) >= 2


def test_build_themes_takes_one_request_and_no_database():
    rows = [(i, score, comment, f"R-{i}") for i, (comment, score, _) in enumerate(_comments(np.random.default_rng(1)))]
    rows.append((99, 10, None, "R-99"))  # no comment: counts in the NPS, not in the themes
    request = ThemeBuild(Responses.from_rows(rows), FakeEmbedder(), seed=2, k=4, sentiment=letters_sentiment())
    built = build_themes(request)
    report = built.report
    assert report.k == 4 and report.k_mode == "given" and report.commented == 24 and report.responses == 25
    assert report.embedding_model == "fake-letters" and report.filters == ThemeFilters() and report.run_id is None
    assert report.nps == round(100 * (sum(r[1] >= 9 for r in rows) - sum(r[1] <= 6 for r in rows)) / len(rows), 1)
    assert sorted(t.id for t in report.themes) == [0, 1, 2, 3] and all(t.change is None for t in report.themes)
    assert set(built.quote_ids) <= {r[0] for r in rows} and built.model.centroids.shape[1] == FakeEmbedder.dimensions
    again = build_themes(request)
    assert again.report.model_dump(exclude={"timings", "until"}) == report.model_dump(exclude={"timings", "until"})
    with pytest.raises(ThemeError, match="only 1 NPS comment matches the input"):
        build_themes(ThemeBuild(Responses.from_rows(rows[:1]), FakeEmbedder(), sentiment=letters_sentiment()))


class CountingEncode:
    def __init__(self, encode) -> None:
        self.encode, self.calls = encode, 0

    def __call__(self, texts, batch_size: int = 64) -> np.ndarray:
        self.calls += 1
        return self.encode(texts)


def test_sentiment_reuses_the_theme_vectors_only_for_its_own_embedder():
    texts = ["Support was great and fast.", "The app crashes all the time, awful."]
    fake = FakeEmbedder()
    letters = letters_sentiment()
    counting = CountingEncode(fake.encode)
    classifier = SentimentClassifier(counting, letters.head, letters.vader)
    scores = sentence_sentiment(texts, fake.encode(texts), fake, classifier)  # another embedder: it embeds itself
    assert counting.calls == 1 and scores[0] > 0 > scores[1]

    class MiniLMShaped:  # declares the vectors the shipped head reads
        name, dimensions = "all-MiniLM-L6-v2", 384

        def encode(self, texts, batch_size=64):
            vectors = np.random.default_rng(len(texts)).normal(size=(len(texts), self.dimensions))
            return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)

    embedder, never = MiniLMShaped(), CountingEncode(None)
    vectors = embedder.encode(texts)
    shipped = SentimentClassifier(never, shipped_head(), letters.vader)
    scores = sentence_sentiment(texts, vectors, embedder, shipped)
    p = shipped.head.probabilities(features(vectors, letters.vader, texts))
    assert never.calls == 0 and np.allclose(scores, p[:, 2] - p[:, 0])
    assert len(sentence_sentiment([], np.zeros((0, 0)), embedder, shipped)) == 0


def test_filters_select_the_responses(store, two_workspaces, services):
    seed_responses(store)
    campaign = run(services, WINDOW.model_copy(update={"campaign": CAMPAIGNS[1]})).result
    assert campaign.commented == 12 and campaign.responses == 12
    promoters = run(services, WINDOW.model_copy(update={"score_band": ScoreBand.promoters})).result
    assert all(t.passives == 0 and t.detractors == 0 for t in promoters.themes)
    assert all(q.score >= 9 for t in promoters.themes for q in t.quotes)
    segment = run(services, WINDOW.model_copy(update={"segment": "Enterprise"})).result
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
    previous_only = run(services, ThemeFilters(since=NOW - timedelta(days=60), until=NOW - timedelta(days=30))).result
    assert previous_only.commented == 24 and previous_only.previous_commented == 0
    everything = run(services, ThemeFilters()).result
    assert (
        everything.commented == 48
        and everything.previous_since is None
        and all(t.change is None for t in everything.themes)
    )
    with pytest.raises(ValidationError, match="until must be after since"):
        ThemeFilters(since=NOW, until=NOW - timedelta(days=1))


def test_model_names_are_kept_only_when_grounded(store, two_workspaces, settings, services, fake_model):
    assert name_is_grounded("Mobile app crashes", ["mobile app", "crashes"], [])[0]
    assert name_is_grounded("Pricing concerns", ["price", "expensive"], [])[0]  # prefix match, generic noun allowed
    ok, stray = name_is_grounded("Billing and payroll", ["mobile app", "crashes"], ["The app crashes."])
    assert not ok and stray == ["billing", "payroll"]
    assert not name_is_grounded("x", ["x"], [])[0]
    seed_responses(store)
    keyword_run = run(services, k=4).result
    first = next(t for t in keyword_run.themes if t.id == 0)
    grounded = " ".join(first.keywords[:2])[:40]
    second = next(t for t in keyword_run.themes if t.id == 1)
    listed = ", ".join(second.keywords[:3])  # grounded words, but a keyword list is what names replace
    fake_model.push(
        json.dumps({"name": grounded}),
        json.dumps({"name": listed}),
        *[json.dumps({"name": "Quarterly payroll taxes"})] * (keyword_run.k - 2),
    )
    scripted = themes_services(settings.model_copy(update={"model": "fake/scripted"}), store, fake_model)
    # not a small local model: "auto" names with the model
    outcome = run(scripted, name_with_model=None, k=4)
    labels = {t.id: (t.label, t.label_source) for t in outcome.result.themes}
    assert labels[0] == (grounded[0].upper() + grounded[1:], "model")
    assert all(labels[t.id] == (t.label, "phrases") for t in keyword_run.themes if t.id != 0)
    verdict = outcome.verdicts[0]
    assert verdict.name == "theme_names_grounded" and not verdict.passed and "payroll" in " ".join(verdict.details)
    assert "theme 1: " in " ".join(verdict.details) and "list of keywords" in " ".join(verdict.details)
    assert (
        outcome.used_fallback
        and outcome.provenance.prompt_name == "nps_theme_label"
        and outcome.provenance.model == "fake/scripted"
    )
    assert len(fake_model.calls) == keyword_run.k


def test_cli_prints_the_themes_table(store, two_workspaces, settings, monkeypatch):
    seed_responses(store)
    use_settings_in_cli(monkeypatch, settings)
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


# -- issue 16: names marketing can read, praise and complaints within a theme, driver impact, the eval runner ----

QUICKBOOKS_PRAISE = [
    ("Syncs perfectly with QuickBooks.", 10),
    ("QuickBooks sync saves our bookkeeper a day every month.", 9),
    ("Love how invoices show up in QuickBooks within minutes.", 10),
    ("QuickBooks sync is flawless for us.", 9),
]
QUICKBOOKS_COMPLAINTS = [
    ("The QuickBooks sync breaks every few weeks.", 3),
    ("Our QuickBooks sync keeps failing and duplicating invoices.", 2),
    ("The QuickBooks integration stopped syncing payments again.", 4),
    ("Every update breaks the QuickBooks connection.", 3),
]
CRASHES = [
    ("The mobile app crashes every time I scan a receipt.", 2),
    ("Mobile app keeps crashing on my Android phone.", 3),
    ("The iPhone app crashes when I open an invoice.", 4),
    ("Since the last update the mobile app crashes on launch.", 1),
    ("Support closed my ticket without fixing anything.", 2),
]


def _responses(rows: list[tuple[str, int]]) -> Responses:
    return Responses.from_rows([(i + 1, score, text, f"R-{i + 1}") for i, (text, score) in enumerate(rows)])


def test_a_mixed_theme_is_one_topic_with_its_praise_and_its_complaints(minilm):
    rows = QUICKBOOKS_PRAISE + QUICKBOOKS_COMPLAINTS + CRASHES
    report = build_themes(ThemeBuild(_responses(rows), minilm)).report
    praise = {i + 1 for i in range(len(QUICKBOOKS_PRAISE))}
    complaints = {len(QUICKBOOKS_PRAISE) + i + 1 for i in range(len(QUICKBOOKS_COMPLAINTS))}
    holders = [t for t in report.themes if any(q.response_id in praise | complaints for q in t.quotes)]
    assert len(holders) == 1, [(t.label, [q.text for q in t.quotes]) for t in report.themes]  # one topic, not two
    quickbooks = holders[0]
    assert quickbooks.mixed and quickbooks.sentiment_label == "mixed" and "QuickBooks" in quickbooks.label
    positive, negative = quickbooks.sides
    assert (positive.polarity, negative.polarity) == ("positive", "negative")
    assert {q.response_id for q in positive.quotes} <= praise and {q.response_id for q in negative.quotes} <= complaints
    assert positive.quotes and negative.quotes and positive.responses == negative.responses == 4
    assert positive.share == negative.share == 0.5 and positive.nps == 100 and negative.nps == -100
    assert positive.sentiment > 0 > negative.sentiment
    # the head reads "Support closed my ticket without fixing anything." as praise; from a detractor it is not
    closed = next(t for t in report.themes if any(q.text.startswith("Support closed") for q in t.quotes))
    assert all(side.polarity == "negative" for side in closed.sides) and not closed.mixed


def test_a_sentence_leans_with_its_score_and_turns_after_but():
    head = np.array([0.49, 0.49, -0.65, 0.3])  # what the sentiment head read
    lean = score_lean(np.array([2, 10, 10, 8]), np.array([False, True, False, False]))
    assert lean.tolist() == [-1.0, -1.0, 1.0, 0.0]  # detractor; promoter's "But ..."; promoter; passive
    values = polarity(head, lean)
    assert values[0] < -0.2 and values[1] < -0.2 and values[2] > 0 and values[3] == pytest.approx(0.3)  # passive: head
    table = SentenceTable.build(["Invoicing is quick. But the app crashes. However, support fixed it."])
    assert table.turned.tolist() == [False, True, False]


NAMED = {
    "quickbooks": [
        "The QuickBooks sync breaks every few weeks.",
        "QuickBooks sync is flawless for us.",
        "Our QuickBooks sync keeps failing.",
        "I love the QuickBooks sync.",
    ],
    "payouts": [
        "Payouts take too long to arrive.",
        "Our payouts arrive a week late.",
        "Late payouts hurt our cash flow.",
        "Payouts are always delayed.",
    ],
    "long": [
        "Internationalisation-compatibility configuration is unmanageable.",
        "The internationalisation-compatibility configuration confuses everyone.",
        "Internationalisation-compatibility configuration broke again.",
    ],
}


def _whole_words(name: str, texts: list[str]) -> bool:
    import re

    vocabulary = {w.lower() for t in texts for w in re.findall(r"[^\W\d_]+(?:['’-][^\W\d_]+)*", t)}
    return all(
        w.lower() in vocabulary | {"and", "on", "feedback"} for w in re.findall(r"[^\W\d_]+(?:-[^\W\d_]+)*", name)
    )


def test_theme_names_are_noun_phrases_of_whole_words_never_cut():
    from copilot.tasks.nps_themes.phrases import name_options, name_themes, quote_name

    texts = [t for group in NAMED.values() for t in group]
    themes = np.asarray([t for t, group in enumerate(NAMED.values()) for _ in group])
    phrases, usage = theme_phrases(texts, themes, np.ones(len(texts)), len(NAMED))
    names = name_themes([name_options(p, usage) for p in phrases], [4, 4, 3], [g[0] for g in NAMED.values()])
    assert names[0] == "QuickBooks sync"  # the customers' spelling, not "quickbooks sync" or "Sync, breaks, weeks"
    assert names[1] == "Late payouts"  # a noun phrase customers wrote, no verb ("take", "arrive")
    for name, group in zip(names, NAMED.values(), strict=True):
        assert 1 <= len(name.split()) <= MAX_NAME_WORDS and len(name) <= MAX_NAME_CHARS, name
        assert _whole_words(name, group), name  # no word cut short, nothing invented
    assert len(set(names)) == len(names)
    long = quote_name("Internationalisation-compatibility configuration-management unmanageability everywhere")
    assert len(long) <= MAX_NAME_CHARS and _whole_words(long, [long]) and not long.endswith("-")


def test_the_dashboard_shows_whole_names_sides_drivers_and_the_nps_line(world):
    client, store, keys, _, app = world
    rows = QUICKBOOKS_PRAISE + QUICKBOOKS_COMPLAINTS + CRASHES
    services = app.state.services
    with store.repo("alpha") as repo:
        for n, (text, score) in enumerate(rows):
            repo.add(NpsResponse(external_id=f"Q-{n}", score=score, comment=text, submitted_at=NOW - timedelta(days=n)))
    with store.repo("alpha") as repo:
        report = run_themes(services.context(repo, task="nps_themes"), ThemeFilters(), now=NOW).result
    assert report.drivers and [d.impact for d in report.drivers] == sorted(d.impact for d in report.drivers)
    from tests.test_web import login

    login(client, keys[("alpha", "marketing")])
    page = client.get("/nps", params={"period": "all", "run": report.run_id}).text
    for theme in report.themes:
        assert f">{theme.label}</text>" in page  # the whole name in the charts: nothing cut at 28 characters
    assert 'id="drivers-chart"' in page and 'id="nps-line"' in page and "praise and complaints" in page
    assert "Complaints" in page and "Praise" in page and "impact" in page
    bad = client.get("/nps", params={"period": "forever"}, headers={"Accept": "text/html"})
    assert bad.status_code == 422 and "period" in bad.text


def test_driver_impact_on_a_hand_checked_set():
    from copilot.tasks.nps_themes import ThemeFigures, Totals

    # ten responses: promoters 10, 9, 9, 10; passives 7, 8; detractors 2, 3, 5, 6 -> NPS 0
    scores = np.array([10, 9, 9, 10, 7, 8, 2, 3, 5, 6])
    totals = Totals.of(scores)
    assert (totals.responses, totals.promoters, totals.detractors, totals.nps) == (10, 4, 4, 0.0)
    # theme 0 (payouts): responses 6, 7, 8 (scores 2, 3, 5) and 0 (10). Without them: 9, 9, 10, 7, 8, 6 ->
    # 3 promoters, 1 detractor of 6 = NPS +33.3, so payouts cost 0 - 33.3 = -33.3 points.
    # theme 1 (support): responses 1, 2, 4 (9, 9, 7). Without them: 10, 10, 8, 2, 3, 5, 6 -> 2 - 4 of 7 = -28.6,
    # so support is worth 0 - (-28.6) = +28.6 points.
    response = np.array([6, 7, 8, 0, 1, 2, 4])
    theme = np.array([0, 0, 0, 0, 1, 1, 1])
    polarity_sum = np.array([-0.8, -0.6, -0.5, 0.7, 0.9, 0.8, 0.1])
    figures = ThemeFigures.compute(2, theme, scores[response], np.ones(7), polarity_sum)
    payouts, support = figures.theme_fields(0, 10, totals), figures.theme_fields(1, 10, totals)
    assert payouts["impact"] == -33.3 and support["impact"] == 28.6
    sides = {s["polarity"]: s for s in figures.side_fields(0, totals)}
    # payouts' complaint side (2, 3, 5) alone: without it 10, 9, 9, 10, 7, 8, 6 -> 4 - 1 of 7 = +42.9 -> -42.9
    assert sides["negative"]["responses"] == 3 and sides["negative"]["impact"] == -42.9
    assert sides["positive"]["responses"] == 1 and sides["positive"]["impact"] == round(0 - 100 * (3 - 4) / 9, 1)
    assert payouts["mixed"] is False  # one praising response of four: below the mixed share
    assert totals.impact(10, 4, 4) is None  # a theme every response mentions leaves nothing to compare with


def test_run_impact_counts_responses_without_a_comment(store, two_workspaces, services):
    seed_responses(store)
    report = run(services).result
    with store.session() as session:
        scores = dict(
            session.execute(select(NpsResponse.id, NpsResponse.score).where(NpsResponse.comment.is_not(None))).all()
        )
        silent = session.scalars(select(NpsResponse.score).where(NpsResponse.comment.is_(None))).all()
    window = set(theme_of_response(store, report.run_id))
    every = [scores[i] for i in window] + list(silent)

    def nps(values):
        values = np.asarray(values)
        return 100 * ((values >= 9).mean() - (values <= 6).mean())

    membership = theme_of_response(store, report.run_id)
    for theme in report.themes:
        rest = [scores[i] for i in window if theme.id not in membership[i]] + list(silent)
        assert theme.impact == round(nps(every) - nps(rest), 1), theme.label
    assert report.responses == len(every) and [d.theme_id for d in report.drivers] == [
        t.id for t in sorted(report.themes, key=lambda t: (t.impact, t.id))
    ]


def test_nps_trend_and_filters_by_plan_and_survey(store, two_workspaces, world):
    from copilot.store.models import Account
    from copilot.tasks.nps_themes import filter_options, nps_trend

    client, world_store, keys, _, _ = world
    with world_store.repo("alpha") as repo:
        pro = repo.add(Account(name="Pro customer", plan="Business"))
        free = repo.add(Account(name="Small customer", plan="Starter"))
        repo.session.flush()
        for month, (score, account, survey) in enumerate(
            [(10, pro, "Relationship"), (2, free, "Relationship"), (9, pro, "Onboarding"), (3, free, "Relationship")]
        ):
            repo.add(
                NpsResponse(
                    score=score,
                    comment=None,
                    account_id=account.id,
                    survey=survey,
                    submitted_at=datetime(2026, 1 + month, 15, 9, tzinfo=UTC),
                )
            )
    with world_store.repo("alpha") as repo:
        trend = nps_trend(repo, ThemeFilters(), "month")
        business = nps_trend(repo, ThemeFilters(plan="Business"), "month")
        relationship = nps_trend(repo, ThemeFilters(survey="Relationship", since=datetime(2026, 2, 1, tzinfo=UTC)))
        options = filter_options(repo)
    assert [(p.start.isoformat(), p.nps) for p in trend.points] == [
        ("2026-01-01", 100.0),
        ("2026-02-01", -100.0),
        ("2026-03-01", 100.0),
        ("2026-04-01", -100.0),
    ]
    assert trend.responses == 4 and trend.nps == 0.0 and business.nps == 100.0 and business.responses == 2
    assert relationship.responses == 2 and relationship.nps == -100.0
    assert options.plans == ["Business", "Starter"] and options.surveys == ["Onboarding", "Relationship"]
    headers = {"X-API-Key": keys[("alpha", "marketing")]}
    answer = client.get("/v1/nps/trend", params={"plan": "Starter", "bucket": "month"}, headers=headers)
    assert answer.status_code == 200 and answer.json()["nps"] == -100.0 and len(answer.json()["points"]) == 2
    assert client.get("/v1/nps/filters", headers=headers).json()["plans"] == ["Business", "Starter"]
    bad = client.get("/v1/nps/trend", params={"since": "2026-05-01", "until": "2026-01-01"}, headers=headers)
    assert bad.status_code == 422 and "until" in bad.json()["error"]["message"]
    assert client.get("/v1/nps/trend", params={"bucket": "year"}, headers=headers).status_code == 422
    assert client.get("/v1/nps/trend", headers={"X-API-Key": keys[("alpha", "agent")]}).status_code == 403


def test_the_nps_themes_adapter_runs_in_copilot_eval_run(tmp_path, monkeypatch):
    from copilot.cli.main import app
    from copilot.settings import DEFAULT_MODEL

    monkeypatch.setenv("COPILOT_MODEL", DEFAULT_MODEL)  # the small profile: noun-phrase names, no generation
    rows = QUICKBOOKS_PRAISE + QUICKBOOKS_COMPLAINTS + CRASHES[:4]
    topic = ["quickbooks"] * 8 + ["mobile"] * 4
    polarity = ["positive"] * 4 + ["negative"] * 8
    case = {
        "id": "mixed",
        "inputs": {
            "responses": [
                {"comment": c, "score": s, "topic": t, "polarity": p}
                for (c, s), t, p in zip(rows, topic, polarity, strict=True)
            ],
            "mixed_topics": ["quickbooks"],
        },
    }
    broken = {"id": "broken", "inputs": {"responses": [{"comment": "Only one."}]}}
    (tmp_path / "cases.jsonl").write_text(json.dumps(case) + "\n" + json.dumps(broken) + "\n", encoding="utf-8")
    metrics = {"nmi": {"min": 0.5}, "mixed_split": {}, "names_readable": {}, "driver_impact_valid": {}}
    suite = {"name": "my_nps", "task": "nps_themes", "dataset": "cases.jsonl", "metrics": metrics}
    (tmp_path / "suite.yaml").write_text(json.dumps(suite), encoding="utf-8")
    result = CliRunner().invoke(app, ["eval", "run", "--suite", str(tmp_path / "suite.yaml"), "--no-cache"])
    assert result.exit_code == 1, result.output  # the broken case fails the run, by name
    text = " ".join(result.output.split())
    assert "nmi" in text and "mixed_split" in text and "names_readable" in text and "broken" in text, text
    report = json.loads((tmp_path / "data" / "evals" / "last-run" / "report.json").read_text())
    first = next(c for c in report["runs"][0]["cases"] if c["id"] == "mixed")
    assert first["metrics"]["nmi"] == 1.0 and first["metrics"]["mixed_split"] == 1.0
    assert first["metrics"]["names_readable"] == 1.0 and first["metrics"]["driver_impact_valid"] == 1.0
    assert "QuickBooks" in first["output"]["text"]
