"""The golden evals in CI: every golden suite against its approved baseline, the response cache,
and a prompt regression.

``make test`` runs this file, so `.ci/run` fails when a golden metric falls below its threshold or
drops more than its tolerance below the approved baseline (the failure names suite, metric, cases).
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from copilot.gateway.fake import FakeModel, echo
from copilot.settings import DEFAULT_MODEL, Settings
from evals.baseline import review
from evals.runner import RunOptions, run_evals
from evals.suite import select_suites

PROMPTS = Path(__file__).resolve().parents[1] / "prompts"
BUDGET_S = 240  # the budget is "well under 5 minutes" uncached on 2 cores; measured about 30 s


def test_golden_suites_pass_against_their_approved_baselines(tmp_path):
    """The embedded default strategies on every golden suite: thresholds and approved baselines hold.

    On the fp32 torch vectors: int8 ONNX kernels differ by CPU (an AMD EPYC flips sentiment case se-17, one case of
    36, past the 0.01 tolerance), and a baseline must hold on every machine. ONNX agreement has its own tests."""
    settings = Settings(data_dir=tmp_path / "data", model=DEFAULT_MODEL, embedding_backend="torch")
    started = time.perf_counter()
    report = run_evals(select_suites(), settings, RunOptions(cache_dir=tmp_path / "cache"))
    elapsed = time.perf_counter() - started
    assert report.passed, "golden evals failed:\n" + "\n".join(f.message for f in report.failures)
    assert {r.task for r in report.runs} >= {"ticket_summary", "reply_draft", "tone_rewrite", "sentiment"}
    for run in report.runs:
        assert run.baseline is not None and run.baseline.compared, (
            f"{run.suite}: not compared with an approved baseline ({run.baseline})"
        )
    assert report.model_calls == 0  # the default strategies for the embedded model do not generate
    assert elapsed < BUDGET_S, f"golden evals took {elapsed:.0f}s"


@pytest.fixture
def scripted_summaries():
    """A fake model that summarises what the prompt shows it: the first customer and agent messages, in two sentences.

    It reads the rendered prompt, so a template that stops showing the messages makes it summarise nothing useful.
    """
    block = re.compile(r'<data kind="message" id="\d+">\n(Customer|Agent): (.*?)\n</data>', re.S)

    def first_sentence(text: str) -> str:
        return re.split(r"(?<=[.!?])\s+", text.strip().replace("\n", " "))[0].rstrip(".!?")[:200]

    def answer(messages, params):
        if "You summarise customer support conversations" not in messages[0]["content"]:
            return echo(messages, params)
        found = block.findall(messages[-1]["content"])
        customer = next((t for kind, t in found if kind == "Customer"), "a request")
        agent = next((t for kind, t in found if kind == "Agent"), None)
        written = f"The customer wrote: {first_sentence(customer)}."
        return written + (f" The agent replied: {first_sentence(agent)}." if agent else " No agent has replied yet.")

    return FakeModel(function=answer)


def test_a_broken_prompt_template_fails_against_the_baseline_naming_metric_and_cases(tmp_path, scripted_summaries):
    settings = Settings(data_dir=tmp_path / "data", model="fake/echo")
    options = dict(
        strategy="model",
        limit=8,
        cache_dir=tmp_path / "cache",
        baselines_dir=tmp_path / "baselines",
        fake=scripted_summaries,
    )
    suites = select_suites(["ticket_summary"])
    good = run_evals(suites, settings, RunOptions(**options))
    # the model path answered; ts-03-injection carries a prompt injection, so the model never sees that thread
    assert good.runs[0].model_calls == 7 and sum(not c.output.used_fallback for c in good.runs[0].cases) >= 6
    from evals.baseline import approve

    approve(good, by="tester", baselines_dir=tmp_path / "baselines")

    broken = tmp_path / "prompts"
    shutil.copytree(PROMPTS, broken)
    template = broken / "ticket_summary.j2"
    text = template.read_text()
    shown = '"Agent: ") ~ m.text) | data("message", id=m.id) }}'
    assert shown in text
    template.write_text(text.replace(shown, '"Agent: ") ~ m.author_kind) | data("message", id=m.id) }}'))
    bad = run_evals(suites, settings, RunOptions(**options, prompts_dir=broken))
    assert not bad.passed
    run = bad.runs[0]
    assert run.prompt_versions["ticket_summary"] != good.runs[0].prompt_versions["ticket_summary"]
    regression = next(f for f in run.failures if f.kind == "baseline_regression" and f.metric == "rougeL")
    assert regression.message.startswith("[ticket_summary] rougeL") and "approved baseline" in regression.message
    assert len(regression.cases) >= 6 and all(case_id in regression.message for case_id in regression.cases[:3])
    threshold = next(f for f in run.failures if f.kind == "below_threshold" and f.metric == "rougeL")
    assert "ts-0" in threshold.message
    (diff,) = review(bad, baselines_dir=tmp_path / "baselines")
    assert diff.cases[0].kind in ("new_failure", "worse") and "rougeL" in diff.cases[0].worse_metrics


def test_a_full_cached_rerun_makes_zero_model_calls(tmp_path, fake_script):
    """Every golden suite on the model path (fake model): the second run is answered from the response cache."""
    settings = Settings(data_dir=tmp_path / "data", model="fake/echo")
    options = RunOptions(
        strategy="model", limit=4, cache_dir=tmp_path / "cache", compare_baseline=False, fake=fake_script
    )
    first = run_evals(select_suites(), settings, options)
    calls = len(fake_script.calls)
    assert first.model_calls > 0 and calls == first.model_calls
    fake_script.reset()
    second = run_evals(select_suites(), settings, options)
    assert second.model_calls == 0 and fake_script.calls == []
    assert sum(r.cache_hits for r in second.runs) == sum(r.model_calls + r.cache_hits for r in first.runs)
    outputs = lambda report: [(c.id, c.output.text, c.output.label) for r in report.runs for c in r.cases]  # noqa: E731
    assert outputs(second) == outputs(first)
