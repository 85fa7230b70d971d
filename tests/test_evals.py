"""Evals: suites as data, metrics, the runner, reports, baselines (review / approve), redaction and export.

These tests avoid the embedding model (tone-rewrite suites run on the deterministic rules path),
so they are fast; tests/test_evals_golden.py runs the golden suites end to end.
"""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from copilot.cli.main import app
from copilot.settings import DEFAULT_MODEL
from copilot.tasks.base import Provenance, TaskOutcome
from copilot.tasks.registry import TaskParams
from copilot.tasks.tone_rules import CLOSERS
from evals import metrics as m
from evals.baseline import Baseline, approve, diff_run, review
from evals.redact import Redactor, luhn_ok, redact
from evals.report import write_html, write_junit
from evals.results import EvalReport
from evals.runner import RunOptions, run_checks, run_evals
from evals.suite import SUITES_DIR, Case, SuiteError, load_cases, load_suite, select_suites

PROMPTS = Path(__file__).resolve().parents[1] / "prompts"

FORMAL_CLOSER = CLOSERS["formal"]["en"]  # what a formal rewrite ends with
USER_ROWS = [
    {
        "ref": "u1",
        "draft": "Your STUPID export is broken!!! Fix INV-2026-0042 by March 3.",
        "wanted": f"Your export is broken! Fix INV-2026-0042 by March 3. {FORMAL_CLOSER}",
    },
    {
        "ref": "u2",
        "draft": "We can't refund $99.00 twice, it's the same charge.",
        "wanted": f"We cannot refund $99.00 twice, it is the same charge. {FORMAL_CLOSER}",
    },
    {"ref": "u3", "draft": "Thanks, that's sorted now.", "wanted": f"Thank you, that is sorted now. {FORMAL_CLOSER}"},
]


def write_user_suite(folder: Path, rows: list[dict] = USER_ROWS, **extra: object) -> Path:
    """A user's own suite: a flat JSONL export mapped onto the tone task's inputs, in a folder of its own."""
    (folder / "exports").mkdir(parents=True, exist_ok=True)
    with (folder / "exports" / "drafts.jsonl").open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    suite = {
        "name": "my_rewrites",
        "task": "tone_rewrite",
        "dataset": "exports/drafts.jsonl",
        "fields": ["ref -> id", "draft -> text", "wanted -> expected"],
        "defaults": {"tone": "formal"},
        "strategy": "rules",
        "metrics": {
            "chrF": {"min": 40, "tolerance": 1},
            "fact_preservation": {"min": 1.0},
            "changed_rate": {},
            "latency_ms": {},
        },
        **extra,
    }
    path = folder / "my_suite.yaml"
    path.write_text(json.dumps(suite), encoding="utf-8")  # JSON is YAML
    return path


@pytest.fixture
def local_model(monkeypatch):
    monkeypatch.setenv("COPILOT_MODEL", DEFAULT_MODEL)  # rules / extractive defaults: no generation
    return DEFAULT_MODEL


# -- suites as data -----------------------------------------------------------------------------------


def test_user_suite_maps_fields_and_resolves_its_dataset_relative_to_the_suite_file(tmp_path, monkeypatch):
    path = write_user_suite(tmp_path / "mine")
    monkeypatch.chdir(tmp_path)  # any working directory
    suite = load_suite(path)
    cases = load_cases(suite)
    assert [c.id for c in cases] == ["u1", "u2", "u3"]
    assert (
        cases[0].inputs == {"tone": "formal", "text": USER_ROWS[0]["draft"]}
        and cases[0].expected == USER_ROWS[0]["wanted"]
    )
    assert suite.baseline_path() == tmp_path / "mine" / "baselines" / "my_rewrites.json"


def test_suite_errors_name_the_file_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: tone_rewrite\ndataset: nowhere.jsonl\nfields: ['text to message']\n")
    with pytest.raises(SuiteError, match=r"bad.yaml: fields: .*source -> target"):
        load_suite(bad)
    bad.write_text("task: tone_rewrite\ndataset: nowhere.jsonl\n")
    with pytest.raises(SuiteError, match="nowhere.jsonl does not exist"):
        load_cases(load_suite(bad))
    (tmp_path / "rows.jsonl").write_text('{"id": "a", "inputs": {"text": "x"}}\n{"id": "a", "inputs": {"text": "y"}}\n')
    bad.write_text("task: tone_rewrite\ndataset: rows.jsonl\n")
    with pytest.raises(SuiteError, match=r"rows.jsonl:2: id: duplicate case id 'a'"):
        load_cases(load_suite(bad))


def test_golden_suites_are_well_formed():
    suites = select_suites()
    assert {s.task for s in suites} >= {"ticket_summary", "reply_draft", "tone_rewrite", "sentiment"}
    for suite in suites:
        cases = load_cases(suite)
        # a case may be a whole call, deal or set of NPS answers: such a hand-written suite may be small
        assert 3 <= len(cases) <= 50, suite.name
        themes = suite.task == "nps_themes"  # its cases label each response with its topic, in the inputs
        assert all(c.inputs["responses"] if themes else c.expected is not None for c in cases), suite.name
        assert suite.baseline_path().is_file(), f"{suite.name}: no approved baseline"
        assert set(suite.metrics) <= set(m.METRICS)


def test_public_suite_is_skipped_with_a_note_when_the_shared_data_is_absent(tmp_path, monkeypatch, local_model):
    monkeypatch.setenv("COPILOT_SHARED_DATA", str(tmp_path / "nothing-here"))
    from copilot.settings import Settings

    report = run_evals(select_suites(["public_paradetox"]), Settings(), RunOptions(cache=False))
    run = report.runs[0]
    assert run.skipped and "not present" in run.skipped and "COPILOT_SHARED_DATA" in run.skipped
    assert report.passed  # a skip is not a failure
    from rich.console import Console

    from evals.report import print_report

    console = Console(record=True, width=200)
    print_report(report, console)
    printed = console.export_text()
    assert "public_paradetox: skipped: public dev data" in printed and "[yellow]" not in printed


# -- metrics and checks ---------------------------------------------------------------------------------


def test_reference_metrics_come_from_the_libraries():
    assert m.rouge("the refund was issued", ["the refund was issued"]) == pytest.approx(1.0)
    assert m.rouge("nothing alike", ["the refund was issued", "nothing alike here"]) > 0.5  # best reference
    assert m.corpus_chrf(["abc def"], [["abc def"]]) == pytest.approx(100.0)
    gold, predicted = ["neg", "neg", "pos", "neu"], ["neg", "pos", "pos", "neu"]
    assert m.macro_recall(gold, predicted) == pytest.approx((0.5 + 1 + 1) / 3)
    assert 0 < m.macro_f1(gold, predicted) < 1


def test_case_checks():
    case = Case(
        id="c",
        inputs={},
        checks={
            "must_include": ["INV-1"],
            "must_not_include": ["refund"],
            "expect": {"language": "es"},
            "max_chars": 20,
        },
    )
    ok = m.CaseOutput(text="Factura INV-1 ok", data={"language": "es"})
    assert run_checks(case, ok) == ([], 4)
    bad = m.CaseOutput(text="We will REFUND invoice 2 in full today", data={"language": "en"})
    failures, _ = run_checks(case, bad)
    assert any("lacks 'INV-1'" in f for f in failures) and any("contains 'refund'" in f for f in failures)
    assert any("language is 'en', expected 'es'" in f for f in failures) and any("characters" in f for f in failures)


# -- runner, reports, review and approve --------------------------------------------------------------


def test_cli_run_review_approve_round_trip_from_any_directory(tmp_path, monkeypatch, local_model):
    suite_file = write_user_suite(tmp_path / "mine")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    runner = CliRunner()

    first = runner.invoke(app, ["eval", "run", "--suite", str(suite_file)])
    assert first.exit_code == 0, first.output
    assert "my_rewrites" in first.output and "chrF" in first.output and "no approved baseline yet" in first.output
    reviewed = runner.invoke(app, ["eval", "review"])
    assert reviewed.exit_code == 0 and "no approved baseline yet" in reviewed.output

    approved = runner.invoke(app, ["eval", "approve", "--by", "Dana Reviewer"])
    assert approved.exit_code == 0, approved.output
    baseline = Baseline.load(tmp_path / "mine" / "baselines" / "my_rewrites.json")
    assert (
        baseline.approved_by == "Dana Reviewer" and baseline.approved_at and set(baseline.cases) == {"u1", "u2", "u3"}
    )
    assert baseline.cases["u1"].text and "stupid" not in baseline.cases["u1"].text.lower()

    again = runner.invoke(app, ["eval", "run", "--suite", str(suite_file)])
    assert again.exit_code == 0 and "baseline approved by Dana Reviewer" in again.output

    # a broken rewrite (it changes nothing) scores lower than the approved run: a regression against the baseline
    monkeypatch.setattr("copilot.tasks.tone_rewrite.rewrite_by_rules", lambda text, tone, language="en": text)
    broken = runner.invoke(app, ["eval", "run", "--suite", str(suite_file)])
    assert broken.exit_code == 1, broken.output
    text = " ".join(broken.output.split())
    assert "[my_rewrites] chrF" in text and "approved baseline" in text and "u1 (" in text and "u2 (" in text, text
    review_out = runner.invoke(app, ["eval", "review"])
    assert review_out.exit_code == 0
    listed = re.findall(
        r"^  (new failure|worse|new case|still failing|changed|fixed|unchanged) (u\d)", review_out.output, re.M
    )
    assert listed and listed[0][0] == "worse" and {case for _, case in listed} == {"u1", "u2", "u3"}


def test_threshold_failure_names_suite_metric_and_cases(tmp_path, local_model):
    from copilot.settings import Settings

    suite = load_suite(write_user_suite(tmp_path, metrics={"chrF": {"min": 99}, "fact_preservation": {"min": 1.0}}))
    report = run_evals([suite], Settings(), RunOptions(cache=False, compare_baseline=False))
    assert not report.passed
    failure = next(f for f in report.failures if f.metric == "chrF")
    assert failure.kind == "below_threshold" and failure.suite == "my_rewrites" and failure.cases
    assert (
        failure.message.startswith("[my_rewrites] chrF")
        and "threshold" in failure.message
        and failure.cases[0] in failure.message
    )


def test_broken_prompt_template_fails_the_golden_suite_naming_metric_and_cases(tmp_path, local_model):
    """Default strategies: a tone template that lost its front matter breaks every tone case."""
    from copilot.settings import Settings

    broken = tmp_path / "prompts"
    shutil.copytree(PROMPTS, broken)
    template = broken / "tone_rewrite.j2"
    template.write_text(template.read_text().split("---\n", 2)[2])  # front matter gone
    report = run_evals(
        select_suites(["tone_rewrite"]), Settings(), RunOptions(cache=False, prompts_dir=broken, limit=5)
    )
    assert not report.passed
    messages = [f.message for f in report.failures]
    assert any("[tone_rewrite] chrF" in msg and "tr-01-prices-signature-formal" in msg for msg in messages), messages
    assert any("cases raised an error" in msg and "missing the '---' front matter" in msg for msg in messages), messages
    ok = run_evals(
        select_suites(["tone_rewrite"]), Settings(), RunOptions(cache=False, limit=5)
    )  # the override is gone again
    assert all(c.output.error is None for c in ok.runs[0].cases)


def test_html_report_lists_failures_first_and_junit_counts_them(tmp_path, local_model):
    from copilot.settings import Settings

    rows = [dict(r) for r in USER_ROWS]
    rows[2]["wanted"] = "Nothing like the output at all, not even close."
    suite = load_suite(write_user_suite(tmp_path, rows, metrics={"chrF": {"case_min": 50}}))
    report = run_evals([suite], Settings(), RunOptions(cache=False, compare_baseline=False))
    html = write_html(report, tmp_path / "report.html").read_text()
    assert html.index("<b>u3</b>") < html.index("<b>u1</b>") < html.index("<b>u2</b>")  # the failing case first
    assert 'id="only-failures"' in html and "<html" in html
    root = ET.parse(write_junit(report, tmp_path / "junit.xml")).getroot()
    suite_node = root.find("testsuite")
    assert suite_node is not None and suite_node.get("failures") == "1"
    failed = [c.get("name") for c in suite_node.iter("testcase") if c.find("failure") is not None]
    assert failed == ["u3"]


def test_review_diff_is_typed_and_orders_new_failures_first(tmp_path, monkeypatch, local_model):
    from copilot.settings import Settings
    from copilot.tasks import tone_rewrite

    metrics = {"chrF": {"case_min": 50}, "fact_preservation": {"min": 1.0}}
    report = run_evals([load_suite(write_user_suite(tmp_path, metrics=metrics))], Settings(), RunOptions(cache=False))
    approve(report, by="tester")

    real = tone_rewrite.rewrite_by_rules
    monkeypatch.setattr(
        tone_rewrite,
        "rewrite_by_rules",
        lambda text, tone, language="en": "Done." if text.startswith("Thanks") else real(text, tone, language),
    )
    rows = [dict(r) for r in USER_ROWS]
    rows[0]["wanted"] = (
        "Your export is broken. Please fix INV-2026-0042 by March 3."  # a reference edited since the approval
    )
    rows.append({"ref": "u4", "draft": "ok", "wanted": "ok"})
    later = run_evals(
        [load_suite(write_user_suite(tmp_path, rows, metrics=metrics))], Settings(), RunOptions(cache=False)
    )
    (diff,) = review(later)
    assert diff.has_baseline and diff.approved_by == "tester"
    first = diff.cases[0]
    assert (
        (first.case_id, first.kind) == ("u3", "new_failure")
        and "chrF" in first.worse_metrics
        and first.baseline_output != first.current_output
    )
    kinds = {c.case_id: c for c in diff.cases}
    assert kinds["u4"].kind == "new_case"
    assert kinds["u1"].kind == "changed" and "reference changed" in kinds["u1"].problems[0]
    assert kinds["u2"].kind == "unchanged"
    assert "1 with a changed reference" in (later.runs[0].baseline.note or "")
    assert diff_run(later.runs[0], None).cases[0].kind == "new_case"
    saved = EvalReport.load(later.save(tmp_path / "r.json"))  # the report round-trips through JSON
    assert [c.passed for c in saved.runs[0].cases] == [c.passed for c in later.runs[0].cases]


# -- redaction and export ----------------------------------------------------------------------------


def test_redaction_of_emails_phones_cards_and_contact_names():
    hide = Redactor(["Ana Lima", "Jonas Weber"])
    text = (
        "Hi Ana, Jonas Weber here (jonas.weber@acme.example, +49 30 1234 5678). Card 4111 1111 1111 1111 was charged "
        "$1,250.00 twice for INV-2026-0042 on 2026-03-04; order 113542617735902. Thanks, Ana Lima"
    )
    out = hide(text)
    for secret in (
        "Ana",
        "Jonas",
        "Weber",
        "Lima",
        "jonas.weber@acme.example",
        "+49 30 1234 5678",
        "4111 1111 1111 1111",
    ):
        assert secret not in out, secret
    for kept in (
        "$1,250.00",
        "INV-2026-0042",
        "2026-03-04",
        "113542617735902",
        "[EMAIL]",
        "[PHONE]",
        "[CARD]",
        "[NAME]",
    ):
        assert kept in out, kept
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert redact("call 555-0100-22 or (415) 555-0199", []) == "call [PHONE] or [PHONE]"


def test_export_approved_reply_drafts_become_redacted_cases(store, tmp_path, monkeypatch):
    from copilot.store import get_or_create_workspace
    from copilot.store.models import Account, AiResult, AiStatus, AuthorKind, Contact, Message, Ticket

    with store.session() as session:
        get_or_create_workspace(session, "alpha")
    with store.repo("alpha") as repo:
        account = repo.add(Account(name="Acme"))
        repo.session.flush()
        contact = repo.add(Contact(account_id=account.id, name="Ana Lima", email="ana@acme.example", language="en"))
        repo.session.flush()
        ticket = repo.add(
            Ticket(subject="Charged twice", account_id=account.id, contact_id=contact.id, assignee="Priya Nair")
        )
        repo.session.flush()
        message = repo.add(
            Message(
                ticket_id=ticket.id,
                author_kind=AuthorKind.customer,
                author="Ana Lima",
                body="Hi, Ana Lima here (ana@acme.example, +1 415 555 0199). We were charged twice for INV-2026-0042.",
            )
        )
        repo.session.flush()
        common = {
            "task": "reply_draft",
            "subject_kind": "ticket",
            "subject_id": ticket.id,
            "input_ids": [f"message:{message.id}"],
        }
        repo.add(
            AiResult(
                **common,
                status=AiStatus.edited,
                content={"result": {"text": "Hi Ana, draft"}},
                final_text=(
                    "Hi Ana,\n\nWe refunded the duplicate for INV-2026-0042. Write to ana@acme.example if not.\n\nPriya"
                ),
            )
        )
        repo.add(
            AiResult(**common, status=AiStatus.approved, content={"result": {"text": "Hi Ana, the approved draft."}})
        )
        repo.add(AiResult(**common, status=AiStatus.rejected, content={"result": {"text": "rejected"}}))
        repo.add(AiResult(**common, status=AiStatus.pending, content={"result": {"text": "pending"}}))

    monkeypatch.setenv("COPILOT_DATA_DIR", str(store.engine.url.database).rsplit("/", 1)[0])
    out = tmp_path / "export"
    result = CliRunner().invoke(
        app, ["eval", "export-approved", "--task", "reply_draft", "-w", "alpha", "--out-dir", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "reply_draft_approved.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["tags"] == ["edited"] and rows[1]["tags"] == ["approved"]
    assert (
        "We refunded the duplicate" in rows[0]["expected"] and rows[1]["expected"] == "Hi [NAME], the approved draft."
    )
    dumped = json.dumps(rows)
    for secret in ("Ana", "Lima", "ana@acme.example", "415 555 0199"):
        assert secret not in dumped, secret
    assert "INV-2026-0042" in dumped and rows[0]["inputs"]["messages"][0]["author_kind"] == "customer"
    suite = load_suite(out / "reply_draft_approved.yaml")
    assert suite.task == "reply_draft" and len(load_cases(suite)) == 2


def test_golden_suite_files_live_in_the_package():
    assert (SUITES_DIR / "data" / "ticket_summary.jsonl").is_file()
    from importlib import resources

    assert resources.files("evals").joinpath("suites", "ticket_summary.yaml").is_file()


def test_llm_judge_is_off_by_default_and_scores_with_the_rubric(tmp_path, local_model, fake_script):
    from copilot.settings import Settings

    suite = load_suite(write_user_suite(tmp_path))
    plain = run_evals([suite], Settings(), RunOptions(cache=False, compare_baseline=False))
    assert "judge" not in plain.runs[0].metrics and fake_script.calls == []
    fake_script.push(*['{"score": 4, "reason": "faithful, slightly stiff"}'] * 3)
    judged = run_evals(
        [suite],
        Settings(),
        RunOptions(cache=False, compare_baseline=False, judge_model="fake/scripted", fake=fake_script),
    )
    run = judged.runs[0]
    assert run.metrics["judge"] == pytest.approx(0.75) and run.model_calls == 3
    prompt = fake_script.calls[0]["messages"]
    assert prompt[0]["role"] == "system" and "score 1 to 5" in prompt[0]["content"]
    assert '<data kind="output">' in prompt[-1]["content"] and '<data kind="reference">' in prompt[-1]["content"]


def test_several_models_print_a_side_by_side_table(tmp_path, local_model):
    from rich.console import Console

    from copilot.settings import Settings
    from evals.report import print_report

    suite = load_suite(write_user_suite(tmp_path, strategy="auto"))
    report = run_evals(
        [suite],
        Settings(),
        RunOptions(models=[DEFAULT_MODEL, "fake/echo"], cache_dir=tmp_path / "cache", compare_baseline=False),
    )
    assert [r.model for r in report.runs] == [DEFAULT_MODEL, "fake/echo"]
    console = Console(record=True, width=160)
    print_report(report, console)
    text = console.export_text()
    assert "model comparison" in text and DEFAULT_MODEL in text and "fake/echo" in text


# -- every registered task is evaluated ---------------------------------------------------------------


def test_every_registered_task_has_a_prompt_an_eval_adapter_an_injection_spec_and_a_reviewer():
    from copilot.auth import Permission
    from copilot.prompting import load_prompt
    from copilot.tasks import registry
    from evals.adapters import ADAPTERS, get_adapter
    from evals.injection.specs import spec_for

    tasks = registry.tasks()
    assert {"ticket_summary", "reply_draft", "tone_rewrite", "call_summary", "deal_brief", "nps_themes"} <= set(tasks)
    for name, task in tasks.items():
        if task.uses_model:
            assert task.prompt, f"{name}: calls a model but declares no prompt"
            assert load_prompt(task.prompt).name == task.prompt, name
        adapter = get_adapter(name)  # its own (ADAPTERS) or the generic one
        assert adapter.task == name and (name in ADAPTERS or adapter.metrics), name
        assert spec_for(name).name == name  # its own injection spec or the generic one
        assert isinstance(task.review, Permission) and isinstance(task.permission, Permission), name


class CountParams(TaskParams):
    text: str
    strategy: Literal["auto", "count"] = "auto"


class WordCount(BaseModel):
    words: int
    longest: str


def count_words(context, params: CountParams) -> TaskOutcome[WordCount]:
    """Count the words of a text (a task with no eval adapter of its own)."""
    words = params.text.split()
    return TaskOutcome[WordCount](
        task="word_count",
        result=WordCount(words=len(words), longest=max(words, key=len, default="")),
        provenance=Provenance(task="word_count"),
    )


@pytest.fixture
def word_count_task():
    """The word_count task, declared through the registry for the test (it has no eval adapter of its own)."""
    from copilot.auth import Permission
    from copilot.profiles import Profile
    from copilot.tasks import registry

    registry.task(
        "word_count",
        subject="text",
        permission=Permission.run_support,
        review=Permission.review_support,
        needs_approval=False,
        defaults={Profile.small: "count", Profile.capable: "count"},
    )(count_words)
    yield "word_count"
    registry.unregister("word_count")


def test_a_run_reports_progress_once_per_case_in_order_on_concurrent_cases(tmp_path, word_count_task):
    from copilot.settings import Settings

    rows = [json.dumps({"id": f"w{n}", "inputs": {"text": "a " * n}, "expected": "{}"}) for n in range(1, 8)]
    (tmp_path / "rows.jsonl").write_text("\n".join(rows) + "\n")
    (tmp_path / "words.yaml").write_text("name: words\ntask: word_count\ndataset: rows.jsonl\n")
    seen: list[tuple[str, int, int]] = []
    options = RunOptions(cache=False, concurrency=4, progress=lambda *call: seen.append(call))
    run_evals([load_suite(tmp_path / "words.yaml")], Settings(data_dir=tmp_path / "data"), options)
    assert seen == [("words", done, 7) for done in range(8)]


def test_a_registered_task_without_an_adapter_runs_through_the_generic_one(tmp_path, word_count_task):
    from copilot.settings import Settings
    from copilot.store.models import AiResult
    from evals.adapters import EvalEnv, generic_adapter

    (tmp_path / "rows.jsonl").write_text(
        json.dumps({"id": "w1", "inputs": {"text": "one two three"}, "expected": '{"longest": "three"}'})
        + "\n"
        + json.dumps({"id": "w2", "inputs": {"text": "a b", "colour": "red"}, "checks": {"expect": {"words": 2}}})
        + "\n"
    )
    (tmp_path / "words.yaml").write_text("name: words\ntask: word_count\ndataset: rows.jsonl\n")
    settings = Settings(data_dir=tmp_path / "data")
    report = run_evals([load_suite(tmp_path / "words.yaml")], settings, RunOptions(cache=False))

    env = EvalEnv.create(settings, "auto", tmp_path / "env")
    adapter = generic_adapter("word_count")
    adapter.prepare(env, [])
    assert json.loads(adapter.run(env, Case(id="x", inputs={"text": "hi there"})).text)["words"] == 2
    with env.store.session() as session:  # the eval never keeps what the task wrote
        assert session.query(AiResult).count() == 0
    env.close()
    run = report.runs[0]
    first, second = run.cases
    assert json.loads(first.output.text) == {"longest": "three", "words": 3} and first.output.data["words"] == 3
    assert first.passed and run.metrics["chrF"] > 0 and "schema_validity" in run.metrics
    assert "colour: Extra inputs are not permitted" in (second.output.error or "")  # inputs are the task's params


def test_the_intent_judge_reads_what_a_draft_answers_and_never_learns_the_replies_it_judges(tmp_path):
    from evals.intent_judge import DATA, load_intent_judges
    from retrieval.embeddings import default_embedder

    replies = {
        "cancel_order": [
            "To cancel order {n}, open Order Details and press Cancel Order.",
            "Order {n} can be cancelled from your order history: choose the order and click Cancel.",
        ],
        "recover_password": [
            "To reset your password, click 'Forgot password' on the login page and follow the link we email you ({n}).",
            "Use the password reset link on the sign-in page; it expires after {n} hours.",
        ],
        "delivery_options": [
            "We ship with standard ({n} days) or express delivery; pick one at checkout.",
            "Delivery options at checkout: standard, express or pickup point ({n} stores).",
        ],
    }
    rows = [
        {"intent": intent, "response": text.format(n=n)}
        for intent, texts in replies.items()
        for n in range(1, 9)
        for text in texts
    ]
    (tmp_path / DATA).parent.mkdir(parents=True)
    (tmp_path / DATA).write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    encoder = default_embedder()
    calls = []

    def encode(texts):
        calls.append(len(texts))
        return encoder.encode(texts)

    only_passwords = {row["response"] for row in rows if row["intent"] == "recover_password"}
    fold = {rows[0]["response"]}
    blind, seen = load_intent_judges(tmp_path, tmp_path / "cache", [only_passwords, fold], encode)
    assert "recover_password" not in blind.intents and "recover_password" in seen.intents  # its replies were left out
    draft = "Hi Ana,\n\nYou can cancel order 4411 under Order Details [S1].\n\nBest regards,\nLiam Chen"
    assert seen.intent_of([draft, "Pick express delivery at checkout."], encode) == ["cancel_order", "delivery_options"]
    load_intent_judges(tmp_path, tmp_path / "cache", [fold], encode)
    assert calls.count(len(rows)) == 1  # the reply vectors are embedded once, then read from the cache
