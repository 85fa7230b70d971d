"""Eval reports: the terminal tables, a JSON report, an HTML report (failures first, filterable) and JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evals import metrics as m
from evals.baseline import SuiteDiff
from evals.results import EvalReport, SuiteRun

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _bounds(run: SuiteRun, name: str) -> str:
    spec = run.specs.get(name)
    if spec is None:
        return ""
    parts = []
    if spec.min is not None:
        parts.append(f">= {m.fmt(name, spec.min)}")
    if spec.max is not None:
        parts.append(f"<= {m.fmt(name, spec.max)}")
    return ", ".join(parts)


def _status(run: SuiteRun, name: str) -> str:
    kinds = {f.kind for f in run.failures if f.metric == name}
    if "below_threshold" in kinds or "above_threshold" in kinds:
        return "[red]FAIL threshold[/]"
    if "baseline_regression" in kinds:
        return "[red]FAIL regression[/]"
    return "[green]ok[/]"


def suite_table(report: EvalReport) -> Table:
    """One row per suite and metric: value, threshold, approved baseline, status."""
    several = len(report.models) > 1
    title = f"eval run {report.run_id}" + ("" if several else f" · model {report.models[0] if report.models else '-'}")
    table = Table(title=title)
    columns = ["suite", *(["model"] if several else []), "metric", "value", "threshold", "baseline", "status"]
    for column in columns:
        table.add_column(
            column,
            justify="right" if column in ("value", "baseline") else "left",
            no_wrap=column in ("suite", "metric", "value", "baseline"),
            overflow="fold",
        )
    for run in report.runs:
        lead = [escape(run.suite), *([escape(run.model)] if several else [])]
        blank = [""] * len(lead)
        if run.skipped:
            table.add_row(*lead, "-", "-", "", "", "[yellow]skipped[/]", end_section=True)
            continue
        names = list(run.metrics)
        for index, name in enumerate(names):
            value = run.metrics[name]
            base = run.baseline.metrics.get(name) if run.baseline and run.baseline.compared else None
            table.add_row(
                *(lead if index == 0 else blank),
                name,
                m.fmt(name, value),
                _bounds(run, name),
                m.fmt(name, base) if base is not None else "",
                _status(run, name),
                end_section=index == len(names) - 1,
            )
    return table


def suite_notes(report: EvalReport) -> list[str]:
    """One line per suite run: cases passing, time, model calls, baseline state."""
    lines = []
    for run in report.runs:
        label = run.suite if len(report.models) <= 1 else f"{run.suite} [{run.model}]"
        if run.skipped:
            lines.append(f"{label}: {run.skipped}")
            continue
        passed = sum(c.passed for c in run.cases)
        note = (
            f"{label}: {passed}/{len(run.cases)} cases pass · {run.wall_s:.1f}s · "
            f"{run.model_calls} model calls, {run.cache_hits} cached"
        )
        if run.baseline is None:
            note += " · no approved baseline yet"
        else:
            note += f" · baseline approved by {run.baseline.approved_by} on {(run.baseline.approved_at or '')[:10]}"
            if run.baseline.note:
                note += f" ({run.baseline.note})"
        lines.append(note)
    return lines


def comparison_table(report: EvalReport) -> Table:
    """Several models side by side: one row per suite and metric, one column per model."""
    table = Table(title="model comparison")
    table.add_column("suite")
    table.add_column("metric")
    for model in report.models:
        table.add_column(model, justify="right")
    by_key = {(r.suite, r.model): r for r in report.runs}
    suites = list(dict.fromkeys(r.suite for r in report.runs))
    for suite in suites:
        runs = [by_key.get((suite, model)) for model in report.models]
        names = list(dict.fromkeys(n for r in runs if r for n in r.metrics))
        for index, name in enumerate(names):
            values = [r.metrics.get(name) if r and not r.skipped else None for r in runs]
            known = [v for v in values if v is not None]
            metric = m.METRICS[name]
            best = (
                (max(known) if metric.higher_is_better else min(known))
                if known and len(known) > 1 and metric.higher_is_better is not False
                else None
            )
            cells = [
                ("[bold]" + m.fmt(name, v) + "[/]") if best is not None and v == best else m.fmt(name, v)
                for v in values
            ]
            table.add_row(suite if index == 0 else "", name, *cells, end_section=index == len(names) - 1)
    return table


def print_report(report: EvalReport, console: Console) -> None:
    console.print(suite_table(report))
    for run, line in zip(report.runs, suite_notes(report), strict=True):
        console.print(escape(line), style="yellow" if run.skipped else "dim", highlight=False, soft_wrap=True)
    if len(report.models) > 1:
        console.print(comparison_table(report))
    for failure in report.failures:
        console.print(f"[red]FAIL[/] {escape(failure.message)}", highlight=False, soft_wrap=True)
    calls = report.model_calls
    console.print(
        f"{len(report.runs)} suite run(s) in {report.wall_s:.1f}s · {calls} model call(s) · "
        + ("[green]passed[/]" if report.passed else f"[red]{len(report.failures)} failure(s)[/]"),
        highlight=False,
    )


def print_review(
    diffs: list[SuiteDiff], console: Console, *, show_unchanged: bool = False, max_cases: int = 30
) -> None:
    """What changed against the approved baselines, case by case, new failures first."""
    for diff in diffs:
        header = f"[bold]{escape(diff.suite)}[/] ({diff.task}, {escape(diff.model)})"
        if diff.has_baseline:
            header += f" vs baseline approved by {escape(diff.approved_by or '')} on {diff.approved_at}"
        console.print(header, highlight=False)
        if diff.note:
            console.print(f"  [yellow]{escape(diff.note)}[/]", highlight=False)
        metrics = Table("metric", "baseline", "now", "delta", "")
        for change in diff.metrics:
            colour = {"regressed": "red", "improved": "green"}.get(change.status, "white")
            delta = (
                ""
                if change.delta is None
                else ("+" if change.delta >= 0 else "-") + m.fmt(change.metric, abs(change.delta))
            )
            metrics.add_row(
                change.metric,
                m.fmt(change.metric, change.baseline),
                m.fmt(change.metric, change.current),
                delta,
                f"[{colour}]{change.status}[/]",
            )
        console.print(metrics)
        counts = diff.counts()
        console.print("  " + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items()), highlight=False)
        shown = [c for c in diff.cases if show_unchanged or c.kind != "unchanged"]
        for change in shown[:max_cases]:
            colour = {"new_failure": "red", "worse": "red", "still_failing": "yellow", "fixed": "green"}.get(
                change.kind, "cyan"
            )
            moved = ""
            if change.worse_metrics:
                moved = " worse: " + ", ".join(
                    f"{n} {m.fmt(n, change.baseline_metrics.get(n))} -> {m.fmt(n, change.current_metrics.get(n))}"
                    for n in change.worse_metrics
                )
            console.print(
                f"  [{colour}]{change.kind.replace('_', ' ')}[/] {escape(change.case_id)}{escape(moved)}",
                highlight=False,
            )
            if change.baseline_output is not None and change.baseline_output != change.current_output:
                console.print(f"    [dim]was:[/] {escape(_short(change.baseline_output))}", highlight=False)
            if change.current_output is not None and (change.kind != "unchanged"):
                expected = (
                    f" [dim](expected {escape(change.expected)})[/]"
                    if isinstance(change.expected, str) and len(change.expected) <= 40
                    else ""
                )
                console.print(f"    [dim]now:[/] {escape(_short(change.current_output))}{expected}", highlight=False)
            for problem in change.problems[:3]:
                console.print(f"    [dim]- {escape(_short(problem, 200))}[/]", highlight=False)
        if len(shown) > max_cases:
            console.print(f"  ... {len(shown) - max_cases} more (see the HTML report)")
        for failure in diff.failures:
            console.print(f"  [red]FAIL[/] {escape(failure)}", highlight=False, soft_wrap=True)
        console.print()


def _short(text: str | None, limit: int = 160) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- files ------------------------------------------------------------------------------------------


def _brief(inputs: dict, limit: int = 140) -> str:
    """The main text of a case's inputs, shortened: what the summary line of the input cell shows."""
    messages = inputs.get("messages") or inputs.get("turns")
    text = inputs.get("text") or inputs.get("message")
    if text is None and isinstance(messages, list) and messages:
        last = messages[-1]
        text = last.get("text") or last.get("body") if isinstance(last, dict) else last
        text = f"({len(messages)} messages) … {text}"
    if inputs.get("tone"):
        text = f"[{inputs['tone']}] {text}"
    return _short(str(text if text is not None else "input"), limit)


def write_html(report: EvalReport, path: Path) -> Path:
    environment = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]))
    environment.filters["fmt"] = lambda value, name: m.fmt(name, value)
    environment.filters["brief"] = _brief
    environment.filters["pretty"] = lambda value: (
        value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=1)
    )
    runs = []
    for run in report.runs:
        ordered = sorted(run.cases, key=lambda c: c.passed)  # failures first
        runs.append({"run": run, "cases": ordered})
    html = environment.get_template("report.html.j2").render(report=report, runs=runs, metrics=m.METRICS)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path


def write_junit(report: EvalReport, path: Path) -> Path:
    """One <testsuite> per suite run: a <testcase> per metric bound and per case."""
    root = ET.Element("testsuites", name="copilot evals", time=f"{report.wall_s:.2f}")
    for run in report.runs:
        suite = ET.SubElement(root, "testsuite", name=f"{run.suite}[{run.model}]", time=f"{run.wall_s:.2f}")
        tests = failures = skipped = 0
        if run.skipped:
            case = ET.SubElement(suite, "testcase", classname=f"evals.{run.suite}", name="suite")
            ET.SubElement(case, "skipped", message=run.skipped)
            tests, skipped = 1, 1
        for name, value in run.metrics.items():
            tests += 1
            case = ET.SubElement(suite, "testcase", classname=f"evals.{run.suite}.metrics", name=name)
            ET.SubElement(case, "system-out").text = f"{name} = {m.fmt(name, value)}"
            problems = [f for f in run.failures if f.metric == name]
            if problems:
                failures += 1
                ET.SubElement(case, "failure", message=problems[0].message, type=problems[0].kind).text = "\n".join(
                    f.message for f in problems
                )
        for result in run.cases:
            tests += 1
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"evals.{run.suite}.cases",
                name=result.id,
                time=f"{result.output.latency_ms / 1000:.3f}",
            )
            if not result.passed:
                failures += 1
                message = "; ".join(result.problems[:3]) or f"failed: {', '.join(result.failed_metrics)}"
                ET.SubElement(case, "failure", message=message[:500], type="case").text = json.dumps(
                    {
                        "failed_metrics": result.failed_metrics,
                        "metrics": result.metrics,
                        "output": result.output.text,
                        "problems": result.problems,
                    },
                    ensure_ascii=False,
                    indent=1,
                )
        suite.set("tests", str(tests))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
        suite.set("skipped", str(skipped))
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def write_all(report: EvalReport, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        "json": report.save(out_dir / "report.json"),
        "html": write_html(report, out_dir / "report.html"),
        "junit": write_junit(report, out_dir / "junit.xml"),
    }
