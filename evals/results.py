"""What an eval run produces: per-case results, per-suite runs, failures, and the whole report (JSON on disk)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from evals.metrics import CaseOutput
from evals.suite import MetricSpec

FailureKind = Literal["below_threshold", "above_threshold", "baseline_regression", "suite_error"]


class CaseResult(BaseModel):
    id: str
    inputs: dict[str, Any]
    expected: Any = None
    checks: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    note: str | None = None
    output: CaseOutput
    metrics: dict[str, float | None] = Field(default_factory=dict)
    passed: bool = True
    failed_metrics: list[str] = Field(default_factory=list)
    problems: list[str] = Field(
        default_factory=list, description="Why the case failed or needs a look: errors, guards, checks."
    )


class Failure(BaseModel):
    """One reason CI fails: names the suite, the metric and the cases behind it."""

    suite: str
    model: str
    kind: FailureKind
    metric: str | None = None
    value: float | None = None
    bound: float | None = None
    cases: list[str] = Field(default_factory=list)
    message: str


class BaselineInfo(BaseModel):
    path: str
    approved_by: str | None = None
    approved_at: str | None = None
    model: str | None = None
    metrics: dict[str, float | None] = Field(default_factory=dict)
    compared: bool = False
    note: str | None = None


class SuiteRun(BaseModel):
    suite: str
    task: str
    model: str
    strategy: str
    description: str = ""
    suite_path: str | None = None
    dataset: str | None = None
    skipped: str | None = Field(default=None, description="Why the suite did not run (e.g. public data absent).")
    specs: dict[str, MetricSpec] = Field(default_factory=dict)
    metrics: dict[str, float | None] = Field(default_factory=dict)
    cases: list[CaseResult] = Field(default_factory=list)
    failures: list[Failure] = Field(default_factory=list)
    baseline_path: str | None = None
    baseline: BaselineInfo | None = None
    prompt_versions: dict[str, str] = Field(default_factory=dict)
    model_calls: int = 0
    cache_hits: int = 0
    wall_s: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def failed_cases(self) -> list[CaseResult]:
        return [c for c in self.cases if not c.passed]


class EvalReport(BaseModel):
    run_id: str
    started_at: str
    finished_at: str | None = None
    wall_s: float = 0.0
    models: list[str] = Field(default_factory=list)
    prompts_dir: str | None = None
    cache_dir: str | None = None
    runs: list[SuiteRun] = Field(default_factory=list)

    @property
    def failures(self) -> list[Failure]:
        return [f for run in self.runs for f in run.failures]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def model_calls(self) -> int:
        return sum(r.model_calls for r in self.runs)

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> EvalReport:
        from copilot.errors import NotFound

        if not path.is_file():
            raise NotFound(f"no eval report at {path}: run `copilot eval run` first (or pass --report)")
        return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
