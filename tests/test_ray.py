"""Bulk embedding on Ray (COPILOT_RAY_ADDRESS): a local Ray cluster started by the test (``ray start --head`` on
127.0.0.1, stopped at the end). Reindexing a workspace and NPS themes through Ray give the index contents and the
theme assignments of the single-process path. Skipped when Ray is not installed (``pip install -e .[ray]``)."""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")

from sqlalchemy import select  # noqa: E402

from copilot.gateway.fake import FakeModel, echo  # noqa: E402
from copilot.jobs import JobRunner  # noqa: E402
from copilot.services import Services  # noqa: E402
from copilot.settings import Settings  # noqa: E402
from copilot.store import Store, get_or_create_workspace  # noqa: E402
from copilot.store.models import AiResult, AuthorKind, Job, Message, NpsResponse, NpsThemeAssignment, Ticket  # noqa: E402
from copilot.tasks.nps_themes import ThemeFilters, run_themes  # noqa: E402
from evals.runner import RunOptions, run_evals  # noqa: E402
from evals.suite import select_suites  # noqa: E402
from retrieval.index import collection_name  # noqa: E402
from retrieval.ray_embedder import RayEmbedder, local_ray_cluster  # noqa: E402

pytestmark = pytest.mark.slow
ISSUES = ["charged twice", "cannot log in", "export to CSV fails", "the app crashes", "sync with QuickBooks"]
ASKS = ["Please help", "When will this be fixed?", "Can you refund me?", "Any update?", "I need this today."]
NOW = datetime(2026, 11, 1, tzinfo=UTC)
# The size CI runs; COPILOT_RAY_TEST_MESSAGES=100000 COPILOT_RAY_TEST_COMMENTS=100000 is the full-size check (about an
# hour on 2 cores, README "Bulk embedding on Ray").
MESSAGES = int(os.environ.get("COPILOT_RAY_TEST_MESSAGES", "2000"))
COMMENTS = int(os.environ.get("COPILOT_RAY_TEST_COMMENTS", "1200"))
PER_TICKET = 10
RECORDS = MESSAGES // PER_TICKET + MESSAGES + COMMENTS  # tickets, messages, comments
PAGE = 5000


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory):
    with local_ray_cluster(tmp_path_factory.mktemp("ray")) as address:
        yield address


def seeded_store(data_dir: Path, models_dir: Path, ray_address: str | None) -> tuple[Settings, Store]:
    """The same MESSAGES messages (PER_TICKET per ticket) and COMMENTS NPS comments in a new data dir."""
    settings = Settings(
        data_dir=data_dir,
        model="fake/echo",
        index_on_ingest=False,
        embedding_cache_dir=models_dir,
        ray_address=ray_address,
        ray_min_batch=256,
    )
    store = Store.from_settings(settings)
    rng = random.Random(7)
    with store.session() as session:
        get_or_create_workspace(session, "alpha")
    with store.repo("alpha") as repo:
        for t in range(MESSAGES // PER_TICKET):
            ticket = repo.add(Ticket(external_id=f"T-{t}", subject=rng.choice(ISSUES).capitalize()))
            repo.session.flush()
            for m in range(PER_TICKET):
                body = f"{rng.choice(ISSUES).capitalize()} since {rng.randint(1, 28)} May. {rng.choice(ASKS)}" * (
                    1 + m % 3
                )
                repo.add(Message(ticket_id=ticket.id, author_kind=AuthorKind.customer, body=body))
        for n in range(COMMENTS):
            comment = f"{rng.choice(ISSUES).capitalize()}. {rng.choice(['Love it', 'Too slow', 'Great team'])}."
            submitted = NOW - timedelta(days=n % 20)
            repo.add(NpsResponse(external_id=f"N-{n}", score=n % 11, comment=comment, submitted_at=submitted))
    return settings, store


def index_contents(services: Services) -> tuple[list, np.ndarray]:
    with services.store.repo("alpha") as repo:
        workspace_id = repo.workspace_id
    collection = services.index.client.get_collection(collection_name(workspace_id))
    got: dict[str, list] = {"ids": [], "documents": [], "metadatas": [], "embeddings": []}
    for offset in range(0, collection.count(), PAGE):  # one get of 100,000+ rows is more SQL variables than allowed
        page = collection.get(include=["embeddings", "documents", "metadatas"], limit=PAGE, offset=offset)
        for key in got:
            got[key].extend(page[key])
    order = np.argsort(got["ids"])
    # ts is when the seeding wrote the record (each data dir seeds at its own moment): everything else must match
    rows = [(got["ids"][i], got["documents"][i], {**got["metadatas"][i], "ts": None}) for i in order]
    return rows, np.asarray(got["embeddings"])[order]


def themes(services: Services) -> dict[int, list[int]]:
    with services.store.repo("alpha") as repo:
        report = run_themes(services.context(repo, task="nps_themes"), ThemeFilters(), now=NOW, seed=0).result
    with services.store.session() as session:
        rows = session.execute(
            select(NpsThemeAssignment.response_id, NpsThemeAssignment.theme).where(
                NpsThemeAssignment.run_id == report.run_id
            )
        ).all()
    assigned: dict[int, list[int]] = {}
    for response, theme in rows:
        assigned.setdefault(response, []).append(theme)
    return {response: sorted(found) for response, found in assigned.items()}


def test_reindex_and_nps_themes_on_ray_match_the_single_process_path(tmp_path, ray_address):
    models = tmp_path / "models"
    results = {}
    for name, address in (("local", None), ("ray", ray_address)):
        settings, store = seeded_store(tmp_path / name, models, address)
        services = Services(settings, store, sleep=lambda _seconds: None)
        try:
            with store.repo("alpha") as repo:
                assert services.index.rebuild(repo) == RECORDS
            results[name] = (*index_contents(services), themes(services))
            backend = services.embedder.backend
            if address:
                assert isinstance(services.embedder, RayEmbedder)
                assert services.embedder.texts_on_ray >= MESSAGES  # the bulk encodes went to the actors
        finally:
            services.close()
            store.engine.dispose()
    (local_rows, local_vectors, local_themes), (ray_rows, ray_vectors, ray_themes) = results["local"], results["ray"]
    assert ray_rows == local_rows and len(local_rows) >= RECORDS
    # bf16 rounds one unit apart where an actor's single thread sums in another order than the process's two threads
    assert np.abs(ray_vectors - local_vectors).max() < (2e-3 if backend == "torch-bf16" else 1e-5)
    assert ray_themes == local_themes and len(set(map(tuple, local_themes.values()))) > 1


def bulk_summaries(services: Services, tickets: int) -> tuple[dict, dict[int, dict]]:
    """A bulk-summary job over the first ``tickets`` tickets: the job's result and each ticket's saved summary."""
    runner = JobRunner(services, threads=0)
    items = [{"ticket_id": f"T-{t}"} for t in range(tickets)]
    with services.store.repo("alpha") as repo:
        job_id = runner.submit(repo, "task_batch", {"task": "ticket_summary", "items": items}).id
    assert runner.run_once()
    with services.store.session() as session:
        job = session.get(Job, job_id)
        summaries = {r.subject_id: r.content["result"] for r in session.scalars(select(AiResult))}
        return {**job.result, "done": job.done, "status": job.status.value}, summaries


def test_bulk_summaries_on_ray_actors_match_the_single_process_path(tmp_path, ray_address):
    tickets = 24
    results = {}
    for name, address in (("local", None), ("ray", ray_address)):
        settings, store = seeded_store(tmp_path / name, tmp_path / "models", address)
        services = Services(settings.model_copy(update={"model_concurrency": {"fake": 3}}), store)
        try:
            results[name] = bulk_summaries(services, tickets)
        finally:
            services.close()
            store.engine.dispose()
    (local_job, local_summaries), (ray_job, ray_summaries) = results["local"], results["ray"]
    assert (local_job["on_ray"], ray_job["on_ray"]) == (False, True)
    for job in (local_job, ray_job):
        assert (job["status"], job["done"], job["failed"], job["concurrency"]) == ("succeeded", tickets, [], 3)
        assert len(set(job["ai_result_ids"])) == tickets
    assert ray_summaries == local_summaries and len(local_summaries) == tickets
    assert len({str(summary) for summary in local_summaries.values()}) > 1  # the tickets differ, so do summaries


def first_line_summary(messages, params):
    """A model that summarises by quoting the prompt's first message line, so each case's answer differs."""
    lines = [line for line in messages[-1]["content"].splitlines() if line.startswith(("Customer:", "Agent:"))]
    if "You summarise customer support conversations" not in messages[0]["content"] or not lines:
        return echo(messages, params)
    return f"The thread starts: {lines[0].split(':', 1)[1].strip()[:160]}"


def test_eval_runs_on_ray_actors_match_the_single_process_path(tmp_path, ray_address):
    """ticket_summary on the model path (every case a model call) and reply_draft (its prepare writes records and
    indexes them on each actor): the same outputs, metrics and call counts on 3 Ray actors as on 3 threads."""
    suites = select_suites(["ticket_summary", "reply_draft"])
    runs, progress = {}, {}
    for name, address in (("local", None), ("ray", ray_address)):
        settings = Settings(data_dir=tmp_path / name, model="fake/echo", embedding_backend="torch", ray_address=address)
        seen = progress[name] = []
        runs[name], fake = {}, FakeModel(function=first_line_summary)
        for strategy in ("model", None):
            options = RunOptions(
                strategy=strategy,
                concurrency=3,
                cache=False,
                compare_baseline=False,
                fake=fake,
                progress=lambda label, done, total, seen=seen: seen.append((label, done, total)),
            )
            runs[name] |= {(run.suite, run.strategy): run for run in run_evals(suites, settings, options).runs}
        calls = sum(run.model_calls for run in runs[name].values())
        assert len(fake.calls) == (0 if address else calls)  # on Ray, the actors' copies of the model answered
    assert runs["local"].keys() == runs["ray"].keys()
    for key, local in runs["local"].items():
        on_ray = runs["ray"][key]
        assert [case_view(c) for c in on_ray.cases] == [case_view(c) for c in local.cases], key
        assert without_latency(on_ray.metrics) == without_latency(local.metrics), key
        assert on_ray.model_calls == local.model_calls, key
    summaries = runs["local"][("ticket_summary", "model")]
    assert summaries.model_calls >= len(summaries.cases) - 1  # the injection case never reaches the model
    assert len({c.output.text for c in summaries.cases}) > 1
    assert progress["ray"] == progress["local"]  # each case counted once, in order


def case_view(case) -> tuple:
    output = case.output
    return case.id, output.text, output.label, output.data, output.error, output.used_fallback, case.passed


def without_latency(metrics: dict) -> dict:
    return {name: value for name, value in metrics.items() if "latency" not in name}


def test_an_unreachable_ray_address_fails_in_seconds_naming_it(tmp_path):
    """Ray retries a dead address for many minutes; an eval run (and any bulk job) says so within seconds."""
    import ray

    from api.errors import copilot_error
    from copilot.errors import Unavailable
    from copilot.gateway.server import free_port

    ray.shutdown()  # a process joins one cluster; this one leaves the module's cluster (the next test joins again)
    address = f"127.0.0.1:{free_port()}"
    settings = Settings(data_dir=tmp_path / "data", model="fake/echo", ray_address=address)
    started = time.perf_counter()
    with pytest.raises(Unavailable, match=f"no Ray cluster answers at {address}") as raised:
        run_evals(select_suites(["ticket_summary"]), settings, RunOptions(cache=False, compare_baseline=False))
    assert time.perf_counter() - started < 30
    assert copilot_error(None, raised.value).status_code == 503
