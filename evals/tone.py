"""Tone-rewrite quality on ParaDetox (rude sentence -> human neutral rewrites).

chrF (sacrebleu, against all references) for the default path, the rule path, the model path
(first --model-cases only: slow on CPU) and the identity baseline (output = input), plus the
fact-preservation guard's pass rate per path.
Run: python -m evals.tone [--model-cases 30]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from copilot.services import Services
from copilot.settings import Settings
from copilot.tasks.tone_rewrite import rewrite_guards, rewrite_text, rule_rewrite
from evals.data import DataUnavailable, dataset
from evals.metrics import corpus_chrf

TONE = "neutral"


def load() -> list[tuple[str, list[str]]]:
    rows = [json.loads(line) for line in dataset("paradetox/dev.jsonl").open(encoding="utf-8")]
    return [(row["toxic"], row["neutral_references"]) for row in rows if row["neutral_references"]]


def chrf(outputs: list[str], cases: list[tuple[str, list[str]]]) -> float:
    return round(corpus_chrf(outputs, [refs for _, refs in cases]), 2)


def preserved(outputs: list[str], cases: list[tuple[str, list[str]]]) -> float:
    return round(
        sum(rewrite_guards(src, out).preserved.passed for out, (src, _) in zip(outputs, cases, strict=True))
        / len(cases),
        4,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-cases", type=int, default=0)
    args = parser.parse_args()
    try:
        cases = load()
    except DataUnavailable as error:
        print(error)
        return 0
    services = Services(Settings(data_dir=Path(tempfile.mkdtemp())))
    context = services.context(None)
    systems = {
        "default": [rewrite_text(context, src, TONE).result.text for src, _ in cases],
        "rules": [rule_rewrite(src, TONE) for src, _ in cases],
        "identity": [src for src, _ in cases],
    }
    report = {
        name: {"chrF": chrf(out, cases), "fact_preservation": preserved(out, cases), "cases": len(cases)}
        for name, out in systems.items()
    }
    if args.model_cases:
        subset = cases[: args.model_cases]
        outputs = [rewrite_text(context, src, TONE, "model").result.text for src, _ in subset]
        report[f"model@{len(subset)}"] = {
            "chrF": chrf(outputs, subset),
            "fact_preservation": preserved(outputs, subset),
            "cases": len(subset),
        }
        identity = [src for src, _ in subset]
        report[f"identity@{len(subset)}"] = {
            "chrF": chrf(identity, subset),
            "fact_preservation": 1.0,
            "cases": len(subset),
        }
    services.close()
    print(f"paradetox ({len(cases)} cases), tone '{TONE}'   chrF   fact preservation")
    for name, figures in report.items():
        print(f"  {name:<14} {figures['chrF']:>6.2f}   {figures['fact_preservation']:.4f}")
    ok = report["default"]["chrF"] > report["identity"]["chrF"]
    print("default beats identity" if ok else "FAIL: default does not beat identity")
    print(json.dumps(report))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
