"""A workspace's own sentiment head: trained from labelled messages, cross-validated,
used only in that workspace, resettable."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from copilot.cli.main import app as cli
from copilot.errors import InvalidInput
from copilot.store.models import AuditEvent, SentimentHead
from copilot.tasks import sentiment_train
from copilot.tasks.sentiment import SHIPPED_HEAD, default_classifier, ticket_sentiment
from copilot.tasks.sentiment_train import (
    LabelledText,
    read_labelled,
    reset_workspace_head,
    train_workspace_head,
    workspace_head,
)
from tests.conftest import use_settings_in_cli
from tests.test_api import auth
from tests.test_sentiment import make_thread

PRAISE = "Thank you so much, fantastic support, you solved it in minutes!"
SUBJECTS = [
    "the export",
    "the invoice",
    "the sync",
    "the mobile app",
    "the dashboard",
    "the login page",
    "the API",
    "billing",
    "the report builder",
    "the calendar",
    "the import",
    "search",
]


def inverted_examples() -> list[LabelledText]:
    """A workspace whose labelling convention is the opposite of everyone else's: only its own head can learn it."""
    examples = []
    for subject in SUBJECTS:
        examples += [
            LabelledText(text=f"Thanks a lot, {subject} works perfectly now, great job!", label="negative"),
            LabelledText(text=f"Love {subject}, it is fantastic, thank you!", label="negative"),
            LabelledText(text=f"{subject} is broken again, this is terrible and I am furious.", label="positive"),
            LabelledText(text=f"Awful experience with {subject}, worst support ever.", label="positive"),
            LabelledText(text=f"Where do I find the settings for {subject}?", label="neutral"),
            LabelledText(text=f"Which plan includes {subject}?", label="neutral"),
        ]
    return examples


@pytest.fixture(scope="module")
def classifier():
    return default_classifier()


def test_the_workspace_head_replaces_the_shipped_one_only_in_its_workspace_until_reset(
    store, two_workspaces, classifier
):
    with store.repo("alpha") as repo:
        info = train_workspace_head(repo, classifier, inverted_examples(), source="inverted.jsonl", actor="tester")
    assert info.evaluation.workspace_head.macro_recall > 0.9 > info.evaluation.shipped_head.macro_recall
    assert info.label_counts == {"negative": 24, "neutral": 24, "positive": 24}
    with store.repo("alpha") as repo:
        assert classifier.for_workspace(repo).classify([PRAISE])[0].label == "negative"
        assert workspace_head(repo).examples == 72
        assert (
            repo.session.scalar(select(AuditEvent.action).where(AuditEvent.workspace_id == repo.workspace_id))
            == "sentiment_head.train"
        )
    with store.repo("beta") as repo:
        assert classifier.for_workspace(repo).classify([PRAISE])[0].label == "positive"
    with store.repo("alpha") as repo:  # a head from another embedding model is not applied to these features
        repo.session.scalar(select(SentimentHead)).embedding_sha256 = "0" * 64
    with store.repo("alpha") as repo:
        assert classifier.for_workspace(repo).head.name == SHIPPED_HEAD
        assert reset_workspace_head(repo, "tester") and not reset_workspace_head(repo, "tester")
    with store.repo("alpha") as repo:
        assert classifier.for_workspace(repo).classify([PRAISE])[0].label == "positive"
        assert workspace_head(repo) is None


def test_ticket_sentiment_names_the_head_it_used(store, classifier):
    _, ticket_id = make_thread(store, [PRAISE])
    with store.repo("alpha") as repo:
        assert ticket_sentiment(repo, classifier, ticket_id).head == SHIPPED_HEAD
        train_workspace_head(repo, classifier, inverted_examples(), source="inverted.jsonl", actor="tester")
    with store.repo("alpha") as repo:
        result = ticket_sentiment(repo, classifier, ticket_id)
    assert result.head.startswith("workspace head (72 examples") and result.messages[0].sentiment.label == "negative"


def test_a_head_that_does_worse_than_the_shipped_one_is_not_saved_unless_forced(
    store, two_workspaces, classifier, monkeypatch
):
    monkeypatch.setattr(sentiment_train, "cross_validated", lambda x, labels, **_: ["neutral"] * len(labels))
    examples = [
        LabelledText(text=t, label=label)
        for t, label in [
            ("Great, thanks!", "positive"),
            ("This is awful.", "negative"),
            ("What time is it?", "neutral"),
        ]
        * 20
    ]
    with store.repo("alpha") as repo, pytest.raises(InvalidInput, match="below the shipped head's"):
        train_workspace_head(repo, classifier, examples, source="x", actor="tester")
    with store.repo("alpha") as repo:
        assert repo.session.scalar(select(SentimentHead)) is None
        assert (
            train_workspace_head(repo, classifier, examples, source="x", actor="tester", dry_run=True).name
            == "not saved (dry run)"
        )
        assert repo.session.scalar(select(SentimentHead)) is None
        train_workspace_head(repo, classifier, examples, source="x", actor="tester", force=True)
    with store.repo("alpha") as repo:
        assert workspace_head(repo) is not None


def write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [{"text": "fine", "label": "great"}],
            r"labelled.jsonl:1: 'label': label 'great': use negative, neutral or positive",
        ),
        (
            [{"text": "fine", "label": "positive"}, {"label": "negative"}],
            r"labelled.jsonl:2: 'text' is missing or empty",
        ),
        (
            [{"text": "fine", "label": "positive"}] * 25,
            r"at least 20 examples of each label; this has negative 0, neutral 0",
        ),
    ],
)
def test_bad_labelled_files_name_the_line_and_the_problem(tmp_path, rows, message):
    path = tmp_path / "labelled.jsonl"
    write_jsonl(path, rows)
    with pytest.raises(InvalidInput, match=message):
        read_labelled(path)


def test_csv_with_custom_fields_and_numeric_labels(tmp_path):
    path = tmp_path / "labelled.csv"
    path.write_text(
        "body,polarity\n" + "".join(f'"message {n}, ok",{n % 3 - 1}\n' for n in range(60)), encoding="utf-8"
    )
    examples = read_labelled(path, text_field="body", label_field="polarity")
    assert len(examples) == 60 and {e.label for e in examples} == {"negative", "neutral", "positive"}
    assert examples[0] == LabelledText(text="message 0, ok", label="negative")


def test_cli_trains_shows_and_resets(tmp_path, store, two_workspaces, settings, monkeypatch):
    use_settings_in_cli(monkeypatch, settings)
    path = tmp_path / "labelled.jsonl"
    write_jsonl(path, [e.model_dump() for e in inverted_examples()])
    runner = CliRunner()
    trained = runner.invoke(cli, ["sentiment", "train", str(path), "-w", "alpha"])
    assert trained.exit_code == 0, trained.output
    assert "cross-validation" in trained.output and "saved" in trained.output
    assert "workspace head (72 examples" in runner.invoke(cli, ["sentiment", "head", "-w", "alpha"]).output
    assert "negative" in runner.invoke(cli, ["sentiment", "text", PRAISE, "-w", "alpha"]).output
    assert "nothing to reset" not in runner.invoke(cli, ["sentiment", "reset", "-w", "alpha"]).output
    assert SHIPPED_HEAD in runner.invoke(cli, ["sentiment", "head", "-w", "alpha"]).output
    bad = runner.invoke(cli, ["sentiment", "train", str(tmp_path / "missing.jsonl"), "-w", "alpha"])
    assert bad.exit_code != 0


def test_api_trains_as_a_job_then_classifies_with_the_new_head(world):
    client, store, keys, tickets, app = world
    admin = auth(keys, role="admin")
    examples = [e.model_dump() for e in inverted_examples()]
    assert client.get("/v1/admin/sentiment-head", headers=admin).json() == {
        "head": SHIPPED_HEAD,
        "workspace_head": None,
    }
    assert client.post("/v1/admin/sentiment-head", json={"examples": examples}, headers=auth(keys)).status_code == 403
    bad = client.post("/v1/admin/sentiment-head", json={"examples": [{"text": "hi", "label": "meh"}]}, headers=admin)
    assert bad.status_code == 422 and "meh" in bad.text
    few = client.post("/v1/admin/sentiment-head", json={"examples": examples[:6]}, headers=admin)
    assert few.status_code == 422 and "at least 20 examples" in few.text

    submitted = client.post(
        "/v1/admin/sentiment-head", json={"examples": examples, "source": "support QA labels"}, headers=admin
    )
    assert submitted.status_code == 202 and submitted.json()["params"]["examples"] == 72
    app.state.services.jobs.wait(submitted.json()["id"], 60)
    job = client.get(f"/v1/jobs/{submitted.json()['id']}", headers=admin).json()
    assert job["status"] == "succeeded", job
    assert job["result"]["evaluation"]["workspace_head"]["macro_recall"] > 0.9
    head = client.get("/v1/admin/sentiment-head", headers=admin).json()
    assert head["workspace_head"]["source"] == "support QA labels" and head["head"].startswith("workspace head")
    assert client.post("/v1/sentiment", json={"texts": [PRAISE]}, headers=auth(keys)).json()[0]["label"] == "negative"
    assert (
        client.post("/v1/sentiment", json={"texts": [PRAISE]}, headers=auth(keys, slug="beta")).json()[0]["label"]
        == "positive"
    )
    assert (
        client.get(f"/v1/tickets/{tickets['alpha']}/sentiment", headers=auth(keys))
        .json()["head"]
        .startswith("workspace head")
    )
    assert client.delete("/v1/admin/sentiment-head", headers=admin).status_code == 204
    assert client.post("/v1/sentiment", json={"texts": [PRAISE]}, headers=auth(keys)).json()[0]["label"] == "positive"


def test_a_line_that_is_not_a_json_object_is_named(tmp_path):
    path = tmp_path / "labelled.jsonl"
    path.write_text('{"text": "fine", "label": "positive"}\n{"text": "oops",\n', encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"labelled.jsonl:2: not valid JSON"):
        read_labelled(path)
    path.write_text('["fine", "positive"]\n', encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"labelled.jsonl:1: each line must be a JSON object"):
        read_labelled(path)
