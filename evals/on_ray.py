"""Eval runs on Ray (``COPILOT_RAY_ADDRESS``): a suite's cases run on ``--concurrency`` Ray actors instead of threads.

The actors are started once per eval run and serve its suites in turn. For each suite run, each actor builds its
own run environment (a temporary store and index on its node, its own ``Services`` from the runner's settings) and
runs the suite's ``prepare`` in case order, so record ids, prompts and response-cache keys are those of the
single-process run, and so are the outputs (tests/test_ray.py). The driver hands out one case at a time to each
actor, reports progress as cases finish, and scores them as on threads.

What the actors need from the driver's machine must reach the cluster's nodes under the same addresses and paths:
the model servers, the response cache folder and an edited ``--prompts-dir``. With a local model, each actor starts
its own model server on its node.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from copilot.batch import in_flight
from evals import metrics as m
from evals.adapters import EvalEnv, get_adapter
from evals.suite import Case, Suite

if TYPE_CHECKING:
    from copilot.gateway.fake import FakeModel
    from copilot.settings import Settings
    from evals.runner import RunOptions


class EvalActor:
    """A Ray actor running the cases of one suite run at a time, each run in a fresh environment."""

    def __init__(self, prompts_dir: str | None) -> None:
        if prompts_dir:
            from copilot.tasks.tones import builtin_tones

            os.environ["COPILOT_PROMPTS_DIR"] = prompts_dir  # this process serves one eval run
            builtin_tones.cache_clear()
        self.env: EvalEnv | None = None
        self.workdir = ""

    def begin(
        self, settings: Settings, strategy: str, task: str, fake: FakeModel | None, judge_model: str | None
    ) -> None:
        self.task, self.adapter = task, get_adapter(task)
        self.workdir = tempfile.mkdtemp(prefix="copilot-eval-")
        self.env = EvalEnv.create(settings, strategy, Path(self.workdir), fake=fake, judge_model=judge_model)

    def prepare(self, cases: list[Case]) -> None:
        if self.adapter.prepare is not None:
            self.adapter.prepare(self.env, cases)

    def run(self, case: Case) -> m.CaseOutput:
        from evals.runner import run_case

        assert self.env is not None, "begin() first"
        return run_case(self.env, self.adapter, self.task, case)

    def end(self) -> tuple[int, int]:
        """Model calls and cache hits of this suite run's cases; its environment and folder are removed."""
        env, self.env = self.env, None
        if env is None:
            return 0, 0
        try:
            env.close()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return env.calls.model_calls, env.calls.cache_hits


class EvalActors:
    """The Ray actors of one eval run (``with EvalActors(settings, options) as actors``), started on first use."""

    def __init__(self, settings: Settings, options: RunOptions) -> None:
        self.address = settings.ray_address or ""
        self.width = max(1, options.concurrency)
        self.prompts_dir = str(Path(options.prompts_dir).expanduser().resolve()) if options.prompts_dir else None
        self._actors: list[Any] = []

    def __enter__(self) -> EvalActors:
        return self

    def __exit__(self, *_exc: object) -> None:
        import ray

        for actor in self._actors:
            ray.kill(actor)
        self._actors = []

    def take(self, width: int) -> list[Any]:
        import ray

        from retrieval.ray_embedder import connect

        if not self._actors:
            connect(self.address)
            # They wait on model calls or run short CPU steps; SPREAD puts them on the cluster's nodes in turn.
            actor_class = ray.remote(num_cpus=0, scheduling_strategy="SPREAD")(EvalActor)
            self._actors = [actor_class.remote(self.prompts_dir) for _ in range(self.width)]
        return self._actors[:width]

    def run_cases(
        self, settings: Settings, strategy: str, suite: Suite, cases: list[Case], options: RunOptions, label: str
    ) -> tuple[list[m.CaseOutput], tuple[int, int]]:
        """The outputs of ``cases`` in case order, and the suite run's (model calls, cache hits)."""
        import ray

        progress = options.progress or (lambda *_: None)
        progress(label, 0, len(cases))
        actors = self.take(min(self.width, max(1, len(cases))))
        try:
            ray.get([a.begin.remote(settings, strategy, suite.task, options.fake, options.judge_model) for a in actors])
            ray.get([actor.prepare.remote(cases) for actor in actors])
            outputs = _run_on(actors, cases, lambda done: progress(label, done, len(cases)))
        finally:
            counts = ray.get([actor.end.remote() for actor in actors])
        return outputs, (sum(calls for calls, _ in counts), sum(hits for _, hits in counts))


def _run_on(actors: list[Any], cases: list[Case], progress: Callable[[int], None]) -> list[m.CaseOutput]:
    """Each case on an idle actor, one case in flight per actor."""
    outputs: dict[int, m.CaseOutput] = {}
    idle = list(actors)
    started: dict[Future[Any], tuple[Any, int]] = {}

    def start(n: int) -> Future[Any]:
        actor = idle.pop()
        future = actor.run.remote(cases[n]).future()
        started[future] = (actor, n)
        return future

    for done, future in enumerate(in_flight(list(range(len(cases))), len(actors), start), start=1):
        actor, n = started.pop(future)
        idle.append(actor)
        outputs[n] = future.result()
        progress(done)
    return [outputs[n] for n in range(len(cases))]
