"""Ticket-summary quality on public support/dialogue data: ROUGE of the default path, extractive, model and LEAD-2.

ROUGE-1/2/L F1 with stemming (rouge-score), max over the references of each case.
  tweetsumm/dev.jsonl  real Twitter customer-support threads (customer/agent turns)
  dialogsum/dev.jsonl  everyday two-person dialogues (#Person1# taken as the customer)
The model path runs the configured model (default: the embedded SmolLM2) on the first
--model-cases cases only, as it is slow on 2 CPU cores.
Run: python -m evals.summaries [--model-cases 30]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from copilot.services import Services
from copilot.settings import Settings
from copilot.tasks import registry
from copilot.tasks.context import TaskContext
from copilot.tasks.thread import Thread, ThreadMessage
from copilot.tasks.ticket_summary import extractive_summary, summarize_thread
from evals.data import DataUnavailable, dataset
from evals.metrics import rouge

METRICS = ("rouge1", "rouge2", "rougeL")


class Case:
    def __init__(self, thread: Thread, references: list[str]) -> None:
        self.thread, self.references = thread, references


def tweetsumm_cases() -> list[Case]:
    cases = []
    for line in dataset("tweetsumm/dev.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        messages = [
            ThreadMessage(id=i, author_kind=t["speaker"], text=t["text"]) for i, t in enumerate(row["turns"], start=1)
        ]
        cases.append(Case(Thread(subject="", channel="social", messages=messages), row["abstractive_summaries"]))
    return cases


def dialogsum_cases() -> list[Case]:
    cases = []
    for line in dataset("dialogsum/dev.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        messages = []
        for i, utterance in enumerate(row["dialogue"].split("\n"), start=1):
            match = re.match(r"#(Person\d)#:\s*(.*)", utterance.strip())
            if match:
                role = "customer" if match.group(1) == "Person1" else "agent"
                messages.append(ThreadMessage(id=i, author_kind=role, text=match.group(2)))
        cases.append(Case(Thread(subject="", channel="chat", messages=messages), [row["summary"]]))
    return cases


def lead(thread: Thread, n: int = 2) -> str:
    return " ".join(m.text for m in thread.messages[:n])


def score(predictions: list[str], cases: list[Case]) -> dict[str, float]:
    totals = dict.fromkeys(METRICS, 0.0)
    for prediction, case in zip(predictions, cases, strict=True):
        for metric in METRICS:
            totals[metric] += rouge(prediction, case.references, metric)
    return {metric: round(total / len(cases), 4) for metric, total in totals.items()}


def run_suite(name: str, cases: list[Case], context: TaskContext, model_cases: int) -> dict[str, dict[str, float]]:
    systems: dict[str, Callable[[Case], str]] = {
        "default": lambda c: summarize_thread(context, c.thread).result.as_text(),
        "extractive": lambda c: extractive_summary(c.thread, context.embedder.encode).as_text(),
        "lead2": lambda c: lead(c.thread),
    }
    default_is_extractive = registry.get("ticket_summary").resolve_strategy("auto", context.profile) == "extractive"
    if default_is_extractive:  # score it once
        systems.pop("extractive")
    results = {system: score([run(c) for c in cases], cases) for system, run in systems.items()}
    if default_is_extractive:
        results["extractive"] = results["default"]
    if model_cases:
        subset = cases[:model_cases]
        results[f"model@{len(subset)}"] = score(
            [summarize_thread(context, c.thread, "model").result.as_text() for c in subset], subset
        )
        results[f"lead2@{len(subset)}"] = score([lead(c.thread) for c in subset], subset)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-cases", type=int, default=0, help="also run the model path on the first N cases")
    args = parser.parse_args()
    services = Services(Settings(data_dir=Path(tempfile.mkdtemp())))
    context = services.context(None)
    report: dict[str, dict[str, dict[str, float]]] = {}
    failed = False
    for name, load in (("tweetsumm", tweetsumm_cases), ("dialogsum", dialogsum_cases)):
        try:
            cases = load()
        except DataUnavailable as error:
            print(f"{name}: {error}")
            continue
        report[name] = run_suite(name, cases, context, args.model_cases)
        print(f"\n{name} ({len(cases)} cases)   {'R-1':>7} {'R-2':>7} {'R-L':>7}")
        for system, figures in report[name].items():
            print(f"  {system:<16} {figures['rouge1']:>7.4f} {figures['rouge2']:>7.4f} {figures['rougeL']:>7.4f}")
        if report[name]["default"]["rougeL"] < report[name]["lead2"]["rougeL"]:
            print(f"  FAIL: the default path is below LEAD-2 on {name}")
            failed = True
    services.close()
    print(json.dumps(report))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
