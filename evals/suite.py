"""Eval suites as data: a YAML file names a task, a JSONL dataset, field mappings, metrics and thresholds.

```yaml
name: my_replies                  # default: the file name
task: reply_draft                 # an adapter in evals/adapters.py
dataset: exported/replies.jsonl   # relative to this file, absolute, or shared:<path> (public dev data)
fields: {body: message, final_text: expected}   # or a list: ["body -> message", "final_text -> expected"]
defaults: {channel: email}        # inputs every case gets unless it sets them
labels: {0: negative, 1: neutral, 2: positive}  # optional: map expected label values
strategy: auto                    # the task strategy (auto = the product default for the model)
limit: 200                        # optional: only the first N cases
baseline: baselines/my_replies.json   # optional; default: baselines/<name>.json next to this file
metrics:
  chrF: {min: 20, tolerance: 2}    # fail below 20, or more than 2 below the approved baseline
  guard_pass_rate: {min: 1.0}
  latency_ms: {max: 5000}
```

A JSONL row is one case. Rows in the golden format carry ``id``, ``inputs`` (a dict),
``expected`` (text, list of reference texts, or a label) and optional ``checks`` and ``tags``;
flat rows (a user's export) are mapped with ``fields``: the targets ``id``, ``expected``,
``checks``, ``tags`` and ``note`` go to the case, every other field becomes an input.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from copilot.errors import CopilotError
from copilot.jsonl import json_objects
from evals.data import DataUnavailable, shared_data_dir

SUITES_DIR = Path(__file__).resolve().parent / "suites"
BASELINES_DIR = Path(__file__).resolve().parent / "baselines"
CASE_FIELDS = ("id", "expected", "checks", "tags", "note")
SHARED_PREFIX = "shared:"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


class SuiteError(CopilotError):
    """A suite file or its dataset that cannot be used; the message names the file and the problem."""


class MetricSpec(BaseModel):
    """Thresholds for one metric; every bound is optional (no bound: the metric is only reported)."""

    min: float | None = Field(default=None, description="Fail when the suite value is below this.")
    max: float | None = Field(default=None, description="Fail when the suite value is above this (latency, cost).")
    tolerance: float | None = Field(
        default=None, description="Fail when the value drops more than this below the approved baseline."
    )
    case_min: float | None = Field(
        default=None, description="A case fails this metric below this value (binary metrics: below 1)."
    )


class Case(BaseModel):
    id: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    expected: Any = None
    checks: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    note: str | None = None

    @property
    def references(self) -> list[str]:
        """Expected output as a list of reference texts (empty when there is none)."""
        if self.expected is None:
            return []
        if isinstance(self.expected, list):
            return [str(e) for e in self.expected if str(e).strip()]
        return [str(self.expected)] if str(self.expected).strip() else []


class Suite(BaseModel):
    name: str
    task: str
    description: str = ""
    dataset: str
    fields: dict[str, str] = Field(default_factory=dict)
    defaults: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    strategy: str = "auto"
    limit: int | None = None
    derive: str | None = Field(default=None, description="Build cases from the whole dataset (evals/derive.py).")
    public: bool = False
    baseline: str | None = None
    metrics: dict[str, MetricSpec] = Field(default_factory=dict)
    path: Path | None = Field(default=None, description="The suite file (set when loaded).")

    @field_validator("fields", mode="before")
    @classmethod
    def _arrows(cls, value: Any) -> Any:
        """Accept ``{"text": "message"}`` or ``["text -> message", ...]``."""
        if isinstance(value, list):
            pairs = {}
            for item in value:
                source, arrow, target = str(item).partition("->")
                if not arrow or not source.strip() or not target.strip():
                    raise ValueError(f"'{item}': write a field mapping as 'source -> target'")
                pairs[source.strip()] = target.strip()
            return pairs
        return value

    @field_validator("labels", mode="before")
    @classmethod
    def _label_keys(cls, value: Any) -> Any:
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else value

    @field_validator("metrics", mode="before")
    @classmethod
    def _metric_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {str(name): {} for name in value}
        if isinstance(value, dict):
            return {name: spec or {} for name, spec in value.items()}
        return value

    @property
    def directory(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def dataset_path(self) -> Path:
        """Where the JSONL file is; raises DataUnavailable for absent public data (the run skips the suite)."""
        if self.dataset.startswith(SHARED_PREFIX):
            path = shared_data_dir() / self.dataset.removeprefix(SHARED_PREFIX)
            if not path.is_file():
                raise DataUnavailable(
                    f"skipped: public dev data {path} is not present "
                    "(set COPILOT_SHARED_DATA to the folder that holds it)"
                )
            return path
        path = Path(self.dataset).expanduser()
        path = path if path.is_absolute() else self.directory / path
        if not path.is_file():
            raise SuiteError(f"{self.path or self.name}: dataset {path} does not exist")
        return path

    def baseline_path(self, baselines_dir: Path | None = None) -> Path:
        if baselines_dir is not None:
            return baselines_dir / f"{self.name}.json"
        if self.baseline:
            path = Path(self.baseline).expanduser()
            return path if path.is_absolute() else (self.directory / path).resolve()
        return self.directory / "baselines" / f"{self.name}.json"


def load_suite(path: Path) -> Suite:
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise SuiteError(f"suite file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise SuiteError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise SuiteError(f"{path}: a suite file is a YAML mapping (task, dataset, metrics, ...)")
    raw.setdefault("name", path.stem)
    try:
        suite = Suite.model_validate({**raw, "path": path})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(file)"
        raise SuiteError(f"{path}: {where}: {first['msg']}") from None
    if not NAME.match(suite.name):
        raise SuiteError(f"{path}: name '{suite.name}': use letters, digits, '_', '-' or '.'")
    return suite


def golden_suite_paths(directory: Path = SUITES_DIR) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


def discover(directory: Path = SUITES_DIR, *, public: bool = False) -> list[Suite]:
    """The project's suites: golden ones, plus the public-data ones when asked."""
    suites = [load_suite(p) for p in golden_suite_paths(directory)]
    return [s for s in suites if public or not s.public]


def select_suites(
    names: list[str] | None = None,
    tasks: list[str] | None = None,
    *,
    public: bool = False,
    directory: Path = SUITES_DIR,
) -> list[Suite]:
    """Suites by name (of a project suite) or by path (any YAML file, from any directory), filtered by task."""
    if names:
        known = {s.name: s for s in discover(directory, public=True)}
        suites = []
        for name in names:
            candidate = Path(name).expanduser()
            if name in known and not candidate.is_file():
                suites.append(known[name])
            elif candidate.suffix in (".yaml", ".yml") or candidate.is_file():
                suites.append(load_suite(candidate))
            else:
                raise SuiteError(
                    f"no suite '{name}' (project suites: {', '.join(sorted(known))}; "
                    "or give a path to a suite .yaml file)"
                )
    else:
        suites = discover(directory, public=public)
    if tasks:
        suites = [s for s in suites if s.task in tasks]
        if not suites:
            raise SuiteError(f"no suite for task(s) {', '.join(tasks)}")
    return suites


def load_cases(suite: Suite) -> list[Case]:
    """The suite's cases, mapped and defaulted; raises DataUnavailable for absent public data."""
    path = suite.dataset_path()
    cases: list[Case] = []
    seen: set[str] = set()
    for line_number, row in json_objects(path, SuiteError):
        case = map_row(suite, row, line_number, path)
        if case.id in seen:
            raise SuiteError(f"{path}:{line_number}: id: duplicate case id '{case.id}'")
        seen.add(case.id)
        cases.append(case)
        if suite.limit is not None and len(cases) >= suite.limit and suite.derive is None:
            break
    if not cases:
        raise SuiteError(f"{path}: no cases")
    if suite.derive is not None:
        from evals.derive import DERIVATIONS

        if suite.derive not in DERIVATIONS:
            raise SuiteError(
                f"{suite.path or suite.name}: derive: unknown '{suite.derive}' (known: {', '.join(DERIVATIONS)})"
            )
        cases = DERIVATIONS[suite.derive](cases, suite.limit)
    return cases


def map_row(suite: Suite, row: dict[str, Any], line_number: int, path: Path) -> Case:
    mapped: dict[str, Any] = {}
    for key, value in row.items():
        mapped[suite.fields.get(key, key)] = value
    inputs = dict(suite.defaults)
    nested = mapped.pop("inputs", None)
    if nested is not None and not isinstance(nested, dict):
        raise SuiteError(f"{path}:{line_number}: inputs: must be an object")
    inputs.update(nested or {})
    case_fields = {k: mapped.pop(k) for k in CASE_FIELDS if k in mapped}
    inputs.update(mapped)
    expected = case_fields.get("expected")
    if suite.labels and expected is not None and not isinstance(expected, list):
        expected = suite.labels.get(str(expected), expected)
    try:
        return Case(
            id=str(case_fields.get("id", f"{suite.name}-{line_number}")),
            inputs=inputs,
            expected=expected,
            checks=case_fields.get("checks") or {},
            tags=case_fields.get("tags") or [],
            note=case_fields.get("note"),
        )
    except ValidationError as error:
        first = error.errors()[0]
        raise SuiteError(f"{path}:{line_number}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
