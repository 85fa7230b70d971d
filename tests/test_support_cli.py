"""Support commands end to end through the CLI: result, verdicts and provenance shown; one-line errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from copilot.auth import Permission
from copilot.cli.main import app, main
from copilot.ingest import ingest_file
from copilot.store.models import AiResult
from tests.fakes import upper_task
from tests.test_ingest import DATA


@pytest.fixture
def workspace(store, two_workspaces, settings, monkeypatch):
    for name in ("accounts.jsonl", "contacts.csv", "tickets.jsonl", "messages.jsonl"):
        ingest_file(store, "alpha", DATA / name)
    monkeypatch.setenv("COPILOT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("COPILOT_MODEL", "local/smollm2-135m-instruct")  # extractive/rule defaults: no generation
    return "alpha"


def test_summarize_ticket_shows_summary_verdicts_and_provenance(workspace):
    result = CliRunner().invoke(app, ["summarize-ticket", "T-1", "-w", workspace])
    assert result.exit_code == 0, result.output
    assert "charged twice" in result.output and "grounded_facts" in result.output and "ticket_summary@" in result.output


def test_rewrite_shows_the_rewrite_and_guards(workspace):
    result = CliRunner().invoke(
        app, ["rewrite", "--tone", "neutral", "-w", workspace, "This STUPID export is broken!!! Fix it by May 3."]
    )
    assert result.exit_code == 0, result.output
    assert "stupid" not in result.output.lower() and "May 3" in result.output and "fact_preservation" in result.output


def test_unknown_ticket_is_a_one_line_error(workspace, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["copilot", "summarize-ticket", "T-404", "-w", workspace])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and "no ticket 'T-404'" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        (
            "COPILOT_TASK_STRATEGIES",
            "reply_draft=magic",
            "COPILOT_TASK_STRATEGIES: reply_draft has no strategy 'magic'",
        ),
        ("COPILOT_TASK_STRATEGIES", "nope=model", "COPILOT_TASK_STRATEGIES: unknown task 'nope'"),
        ("COPILOT_TASK_PROFILES", "reply_draft=huge", "COPILOT_TASK_PROFILES (reply_draft): Input should be"),
        ("COPILOT_LOCAL_THREADS", "many", "COPILOT_LOCAL_THREADS: Input should be a valid integer"),
    ],
)
def test_a_bad_setting_is_a_one_line_error_naming_the_variable(
    workspace, monkeypatch, capsys, variable, value, problem
):
    monkeypatch.setenv(variable, value)
    monkeypatch.setattr("sys.argv", ["copilot", "summarize-ticket", "T-1", "-w", workspace])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and problem in err and "Traceback" not in err and len(err.splitlines()) == 1


@pytest.fixture
def shout_task():
    with upper_task("shout", Permission.run_support, Permission.review_support):
        yield


def test_task_list_shows_what_auto_runs_when_the_settings_choose_it(workspace, monkeypatch):
    monkeypatch.setenv("COPILOT_TASK_STRATEGIES", "reply_draft=model")
    listed = CliRunner().invoke(app, ["task", "list"], env={"COLUMNS": "250"})
    rows = {line.split("│")[1].strip(): line for line in listed.output.splitlines() if line.count("│") > 3}
    assert "model (COPILOT_TASK_STRATEGIES)" in rows["reply_draft"], listed.output
    assert "retrieval / retrieval" not in rows["reply_draft"] and "extractive / model" in rows["ticket_summary"]


def test_a_registered_task_gets_cli_commands(workspace, shout_task, store, monkeypatch, capsys):
    listed = CliRunner().invoke(app, ["task", "list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "shout" in listed.output and "upper / upper" in listed.output
    ran = CliRunner().invoke(app, ["task", "run", "shout", "-p", "text=hello there", "-w", workspace, "--json"])
    assert ran.exit_code == 0, ran.output
    outcome = json.loads(ran.output)
    assert outcome["result"] == {"text": "HELLO THERE"} and outcome["status"] == "pending"
    with store.repo(workspace) as repo:
        assert repo.get(AiResult, outcome["ai_result_id"]).task == "shout"  # saved for review like any task

    for argv, problem in (
        (["-p", "text="], "text: String should have at least 1 character"),
        (["-p", "text=hi", "-p", "loud=1"], "loud: Extra inputs are not permitted"),
        (["--params", "[1, 2]"], "--params: give a JSON object"),
        (["-p", "no-equals-sign"], "write it as key=value"),
    ):
        monkeypatch.setattr("sys.argv", ["copilot", "task", "run", "shout", "-w", workspace, *argv])
        with pytest.raises(SystemExit) as exit_info:
            main()
        err = capsys.readouterr().err
        assert exit_info.value.code == 1 and problem in " ".join(err.split()) and "Traceback" not in err
