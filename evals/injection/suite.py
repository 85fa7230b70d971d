"""Running the suite: for every attempt a fresh workspace, every task that reads its carrier, the checks.

One ``Services`` per suite run holds the store, the model gateway (observed: every prompt sent is recorded), the
cached embedder, the search index and the sentiment classifier; with ``--model fake`` a ``FakeModel`` answers
``fake/scripted`` as the attacker wants (see ``InjectionSpec.script``).
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from copilot.errors import InvalidInput
from copilot.settings import Settings
from evals.injection.corpus import CARRIERS, CORPUS, Attempt, load_corpus
from evals.injection.fixtures import THREAD, Planted, last_message, plant_workspace
from evals.injection.scoring import adopted, evaluate, exposed_to
from evals.injection.specs import LOCAL_NOTE, TASKS, InjectionSpec, Observation, available_tasks, read_stored
from retrieval.embeddings import BATCH_SIZE

if TYPE_CHECKING:
    from copilot.gateway import Completion
    from copilot.gateway.fake import FakeModel
    from copilot.services import Services
    from retrieval.embeddings import Embedder

MODELS = {"fake": "fake/scripted", "local": "local/smollm2-135m-instruct"}
INDEXED = ("ticket", "message", "kb_article")  # what a task that searches the history retrieves from


class PromptRecorder:
    """A gateway observer keeping every prompt sent (to see whether an attack reached the model, and what it was
    told)."""

    def __init__(self) -> None:
        self.prompts: list[list[dict[str, str]]] = []

    def __call__(self, messages: list[dict[str, str]], completion: Completion) -> None:
        self.prompts.append([dict(m) for m in messages])

    def take(self) -> list[list[dict[str, str]]]:
        prompts, self.prompts = self.prompts, []
        return prompts


class CachedEmbedder:
    """An Embedder wrapping another with a memo: every attempt's workspace holds mostly the same texts, so each is
    embedded once. Same name and dimensions as the wrapped one (its vectors are the wrapped one's)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name, self.dimensions = inner.name, inner.dimensions
        self._memo: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def encode(self, texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._memo]
            if missing:
                self._memo.update(zip(missing, self.inner.encode(missing, batch_size), strict=True))
            return np.stack([self._memo[t] for t in texts]) if texts else self.inner.encode([])


@dataclass
class Env:
    """One suite run: its services, the prompt recorder, and the fake model (``--model fake``)."""

    model: str  # fake | local
    services: Services
    recorder: PromptRecorder
    fake: FakeModel | None = None

    def strategy(self, spec: InjectionSpec) -> str:
        """The model path wherever a task has one (a capable profile's default may be rules, as for tone)."""
        if self.model == "local":
            return spec.local_strategy
        from copilot.tasks import registry
        from copilot.tasks.registry import MODEL_STRATEGY

        registered = registry.tasks().get(spec.name)
        return MODEL_STRATEGY if registered is not None and registered.uses_model else "auto"

    def close(self) -> None:
        self.services.close()
        self.services.store.engine.dispose()


def make_env(model: str, workdir: Path) -> Env:
    from copilot.gateway.fake import FakeModel
    from copilot.services import Services
    from copilot.store import Store
    from copilot.tasks.sentiment import SentimentClassifier
    from retrieval.embeddings import default_embedder

    if model not in MODELS:
        raise InvalidInput(f"model: use one of {', '.join(MODELS)}")
    # Everything explicit: no COPILOT_* variable of the caller's environment (a database, a cache, fallbacks)
    # may leak in.
    settings = Settings(
        data_dir=workdir,
        database_url=None,
        chroma_path=None,
        chroma_url=None,
        cache_dir=None,
        model=MODELS[model],
        fallback_models=[],
        redact_pii=None,
        index_on_ingest=False,
        max_retries=0,
    )
    fake = FakeModel() if model == "fake" else None
    recorder = PromptRecorder()
    embedder = CachedEmbedder(default_embedder())
    services = Services(
        settings,
        Store.from_settings(settings),
        fake=fake,
        observers=(recorder,),
        embedder=embedder,
        sentiment=SentimentClassifier(embedder.encode),
        sleep=lambda _s: None,
    )
    if model == "local":
        services.gateway.check_ready()
    return Env(model=model, services=services, recorder=recorder, fake=fake)


@dataclass
class SuiteResult:
    model: str
    observations: list[Observation]
    seconds: float
    skipped_tasks: list[str]
    notes: list[str] = field(default_factory=list)

    def by_task(self) -> dict[str, list[Observation]]:
        out: dict[str, list[Observation]] = {}
        for o in self.observations:
            out.setdefault(o.task, []).append(o)
        return out

    @property
    def failures(self) -> list[Observation]:
        return [o for o in self.observations if not o.passed]

    def summary(self) -> dict[str, Any]:
        tasks = {
            task: {
                "run": len(obs),
                "passed": sum(o.passed for o in obs),
                "exposed": sum(o.exposed for o in obs),
                "flagged": sum(bool(o.flags) for o in obs),
                "adopted": sum(o.adopted for o in obs),
                "failed": [o.attempt.id for o in obs if not o.passed],
            }
            for task, obs in self.by_task().items()
        }
        return {
            "suite": "injection",
            "model": self.model,
            "attempts": len({o.attempt.id for o in self.observations}),
            "runs": len(self.observations),
            "passed": sum(o.passed for o in self.observations),
            "failed": len(self.failures),
            "tasks": tasks,
            "skipped_tasks": self.skipped_tasks,
            "notes": self.notes,
            "seconds": round(self.seconds, 1),
        }


def plan_runs(
    attempts: list[Attempt], specs: list[InjectionSpec], limit: int | None
) -> list[tuple[Attempt, list[InjectionSpec]]]:
    """Attempts with the tasks to run on each; ``limit`` caps the runs per task, taking carriers in turn."""
    if limit is None:
        return [(a, [s for s in specs if a.carrier in s.carriers]) for a in attempts]
    queues = {carrier: [a for a in attempts if a.carrier == carrier] for carrier in CARRIERS}
    interleaved = [
        queue[i]
        for i in range(max(map(len, queues.values()), default=0))
        for queue in queues.values()
        if i < len(queue)
    ]
    counts = {s.name: 0 for s in specs}
    plan = []
    for attempt in interleaved:
        chosen = [s for s in specs if attempt.carrier in s.carriers and counts[s.name] < limit]
        for s in chosen:
            counts[s.name] += 1
        if chosen:
            plan.append((attempt, chosen))
    return plan


def _record_ids(repo: Any, kind: str) -> list[int]:
    from sqlalchemy import select

    from retrieval.chunking import MODELS as RECORD_MODELS

    model = RECORD_MODELS[kind]
    return list(repo.session.scalars(select(model.id).where(model.workspace_id == repo.workspace_id)))


def warm_up(env: Env, plans: list[tuple[Planted, list[InjectionSpec]]]) -> None:
    """Embed, in one batch, the texts the tasks will embed one call at a time
    (each call costs most on a busy machine)."""
    from copilot.store.models import CallTurn, Message, NpsResponse
    from copilot.tasks.thread import clip, sentences
    from retrieval.chunking import load_chunks

    store = env.services.store
    texts: list[str] = []
    for planted, specs in plans:
        with store.repo(planted.slug) as repo:
            if any(s.searches for s in specs):
                texts += [c.text for kind in INDEXED for c in load_chunks(repo, kind, _record_ids(repo, kind))]
            bodies = [m.body for m in repo.all(repo.select(Message))]
            turns = [t.text for t in repo.all(repo.select(CallTurn))]
            comments = [r.comment for r in repo.all(repo.select(NpsResponse)) if r.comment]
        texts += [planted.attempt.text, *bodies]
        # the reply draft's search query
        texts.append(" ".join(["Charged twice for INV-2026-0042", THREAD[0][2], last_message(planted.attempt)])[:2000])
        for body in [*bodies, *turns]:
            for sentence in sentences(body):
                texts += [sentence, clip(sentence, 240), clip(sentence, 300, one_line=True)]
        try:  # what the NPS theme job embeds (only a warm-up: skipped if the module moves it)
            from copilot.tasks.nps_themes import split_sentences
        except ImportError:
            continue
        texts += [sentence for comment in comments for sentence in split_sentences(comment)]
    env.services.embedder.encode(list(dict.fromkeys(texts)))


def index_workspace(env: Env, planted: Planted) -> None:
    with env.services.store.repo(planted.slug) as repo:
        for kind in INDEXED:
            env.services.index.index_records(repo, kind, _record_ids(repo, kind))


def run_attempt(env: Env, planted: Planted, specs: list[InjectionSpec]) -> list[Observation]:
    from copilot.store.models import AiResult

    attempt, store = planted.attempt, env.services.store
    if any(s.searches for s in specs):  # retrieval reads the index: build it for this workspace
        index_workspace(env, planted)
    observations = []
    for spec in specs:
        env.recorder.take()
        if env.fake is not None:
            env.fake.reset()
            env.fake.function = None
            spec.script(env.fake, attempt, planted)
        try:
            with store.repo(planted.slug) as repo:
                result_id, observation = spec.run(env.services, repo, planted, env.strategy(spec))
            if result_id is not None and spec.read is not None:
                with store.repo(planted.slug) as repo:  # read back what was stored, in a new transaction
                    spec.read(observation, read_stored(observation, repo.get(AiResult, result_id)), planted)
        except Exception as error:
            observation = Observation(spec.name, attempt, error=f"{type(error).__name__}: {error}"[:300])
        finally:
            if env.fake is not None:
                env.fake.reset()
                env.fake.function = None
        observation.prompts = env.recorder.take()
        observation.exposed = spec.checks_output and exposed_to(observation.prompts, attempt.text)
        if spec.checks_output and observation.output:
            observation.adopted = adopted(spec, observation, planted)
        observation.failures = evaluate(spec, observation, planted)
        observations.append(observation)
    return observations


def select_specs(tasks: list[str] | None) -> tuple[list[InjectionSpec], list[str]]:
    """The specs to run (all available ones, or the named ones) and the built-in ones skipped (task not present)."""
    specs = available_tasks()
    skipped = [t.name for t in TASKS if t.name not in {s.name for s in specs}]
    if tasks:
        known = [s.name for s in specs] + skipped
        unknown = sorted(set(tasks) - set(known))
        if unknown:
            raise InvalidInput(f"task: unknown task(s) {', '.join(unknown)} (known: {', '.join(known)})")
        specs = [s for s in specs if s.name in tasks]
    return specs, skipped


def run_suite(
    model: str = "fake",
    *,
    limit: int | None = None,
    tasks: list[str] | None = None,
    attempt_ids: list[str] | None = None,
    corpus: Path = CORPUS,
    workdir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> SuiteResult:
    started = time.perf_counter()
    attempts = load_corpus(corpus)
    if attempt_ids:
        unknown = sorted(set(attempt_ids) - {a.id for a in attempts})
        if unknown:
            raise InvalidInput(f"attempt: unknown id(s) {', '.join(unknown)}")
        attempts = [a for a in attempts if a.id in attempt_ids]
    specs, skipped = select_specs(tasks)
    with _workdir(workdir) as folder:
        env = make_env(model, folder)
        try:
            plans = [
                (plant_workspace(env.services.store, number, attempt), chosen)
                for number, (attempt, chosen) in enumerate(plan_runs(attempts, specs, limit), start=1)
            ]
            warm_up(env, plans)
            observations: list[Observation] = []
            for planted, chosen in plans:
                if progress:
                    progress(f"{planted.attempt.id}: {', '.join(s.name for s in chosen)}")
                observations += run_attempt(env, planted, chosen)
        finally:
            env.close()
    notes = [LOCAL_NOTE] if model == "local" and any(s.local_strategy != "model" for s in specs) else []
    return SuiteResult(
        model=MODELS[model],
        observations=observations,
        seconds=time.perf_counter() - started,
        skipped_tasks=skipped,
        notes=notes,
    )


class _workdir:
    def __init__(self, given: Path | None) -> None:
        self.given = given
        self.temporary: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> Path:
        if self.given is not None:
            self.given.mkdir(parents=True, exist_ok=True)
            return self.given
        self.temporary = tempfile.TemporaryDirectory(prefix="copilot-injection-", ignore_cleanup_errors=True)
        return Path(self.temporary.name)

    def __exit__(self, *exc: object) -> None:
        if self.temporary is not None:
            self.temporary.cleanup()


def render(result: SuiteResult) -> Iterator[str]:
    yield f"Prompt-injection suite, model {result.model}: {len({o.attempt.id for o in result.observations})} attempts"
    header = f"{'task':<16}{'run':>5}{'passed':>8}{'exposed':>9}{'flagged':>9}{'adopted':>9}"
    yield header
    yield "-" * len(header)
    for task, obs in result.by_task().items():
        yield (
            f"{task:<16}{len(obs):>5}{sum(o.passed for o in obs):>8}{sum(o.exposed for o in obs):>9}"
            f"{sum(bool(o.flags) for o in obs):>9}{sum(o.adopted for o in obs):>9}"
        )
    if result.skipped_tasks:
        yield f"skipped (task not registered): {', '.join(result.skipped_tasks)}"
    yield from (f"note: {note}" for note in result.notes)
    yield (
        "exposed: the attack reached a prompt; flagged: a failed guard verdict, a fallback or injection_suspected; "
        "adopted: the payload is in the output"
    )
    for task, obs in result.by_task().items():
        failed = [o for o in obs if not o.passed]
        if failed:
            yield f"\n{task}: {len(failed)} failed"
            for o in failed:
                yield f"  - {o.attempt.id} ({o.attempt.carrier}, {o.attempt.technique}): {'; '.join(o.failures)}"
