"""The model runtime: install check, model files, profiles, and the supervised local model server."""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from copilot.gateway import Gateway, ModelFileError
from copilot.gateway.buildcheck import check_build, cpu_flags
from copilot.gateway.catalog import CATALOG, SMOLLM2, LocalModelSpec, assemble, catalog_file
from copilot.profiles import Profile
from copilot.settings import Settings
from copilot.store.models import AiResult, AiStatus, AuthorKind, Message

MESSAGES = [{"role": "system", "content": "You are brief."}, {"role": "user", "content": "Write a long story."}]
COUNTING = [
    {"role": "system", "content": "You count."},
    {"role": "user", "content": "Count from 1 to 400, comma-separated."},
]


def test_a_build_that_crashes_fails_the_install_check_with_the_cpu_flags(tmp_path):
    crash = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    problem = check_build(tmp_path / "model.gguf", child_code=crash)
    assert problem is not None and "SIGSEGV" in problem and "make install" in problem
    assert "\n" not in problem and "flags [" in problem


def test_a_working_build_passes_the_install_check(tmp_path):
    assert check_build(tmp_path / "model.gguf", child_code="print('one token')") is None


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor: 0\nflags\t\t: fpu avx avx2 fma f16c amx_tile amx_int8\n")
    assert cpu_flags(cpuinfo) == ["avx", "avx2", "fma", "f16c", "amx_tile", "amx_int8"]


def _fake_split_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, parts: int) -> LocalModelSpec:
    """A split model carried by `parts` throw-away packages on sys.path, each with one data/partNN.bin."""
    packages = []
    size = -(-len(content) // parts)
    for n in range(parts):
        folder = tmp_path / "site" / f"fake_model_part{n + 1}" / "data"
        folder.mkdir(parents=True)
        (folder.parent / "__init__.py").write_text("raise ImportError('never imported')\n")
        (folder / f"part{n + 1:02d}.bin").write_bytes(content[n * size : (n + 1) * size])
        packages.append(f"fake_model_part{n + 1}")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return LocalModelSpec(
        name="fake",
        title="Fake",
        profile=Profile.capable,
        file_name="fake.gguf",
        size_bytes=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        license="none",
        packages=tuple(packages),
        install="pip install fake",
    )


def test_split_parts_are_joined_in_order_once_and_verified(tmp_path, monkeypatch):
    content = bytes(range(256)) * 41
    spec = _fake_split_model(tmp_path, monkeypatch, content, parts=11)  # part10 and part11 sort after part2
    path = assemble(spec, tmp_path / "models")
    assert path.read_bytes() == content
    mtime = path.stat().st_mtime_ns
    assert assemble(spec, tmp_path / "models").stat().st_mtime_ns == mtime  # not joined again


def test_a_corrupt_part_is_refused_and_leaves_no_file(tmp_path, monkeypatch):
    spec = _fake_split_model(tmp_path, monkeypatch, b"x" * 1000, parts=2)
    (tmp_path / "site" / "fake_model_part2" / "data" / "part02.bin").write_bytes(b"y" * 500)
    with pytest.raises(ModelFileError, match="reinstall"):
        assemble(spec, tmp_path / "models")
    assert not list((tmp_path / "models").iterdir())


def test_profiles_are_declared_not_guessed(tmp_path):
    def profile(**overrides) -> Profile:
        return Gateway(Settings(data_dir=tmp_path, **overrides)).profile

    assert profile(model="local/smollm2-135m-instruct") is Profile.small
    assert profile(model="local/qwen2.5-coder-0.5b") is Profile.capable
    assert profile(model="openai/gpt-4o-mini") is Profile.capable
    assert profile(model="local/smollm2-135m-instruct", model_profile="capable") is Profile.capable
    gateway = Gateway(Settings(data_dir=tmp_path, model="openai/gpt-4o-mini", task_profiles="reply_draft=small"))
    assert gateway.for_task("reply_draft").profile is Profile.small and gateway.for_task("x").profile is Profile.capable


def test_a_capable_gguf_set_by_path_is_named_after_its_file_and_is_capable(tmp_path, monkeypatch):
    monkeypatch.delenv("COPILOT_MODEL")
    bundled = catalog_file(SMOLLM2, tmp_path).path
    custom = tmp_path / "My-Capable.Q4.gguf"
    custom.write_bytes(bundled.read_bytes() + b"\0")  # another file: its sha256 is not in the catalog
    settings = Settings(data_dir=tmp_path, local_model_path=custom)
    gateway = Gateway(settings)
    assert settings.model == "local/my-capable.q4" and gateway.profile is Profile.capable
    assert gateway.local.file(settings.model).label.startswith("My-Capable.Q4.gguf sha256:")
    same_as_smollm2 = Settings(data_dir=tmp_path, local_model_path=bundled)
    assert Gateway(same_as_smollm2).profile is Profile.small  # recognised by its sha256


def test_per_task_models_route_each_task_to_its_own_model(tmp_path, fake_script):
    fake_script.push("from the task model")
    settings = Settings(data_dir=tmp_path, model="fake/echo", task_models="reply_draft=fake/scripted")
    gateway = Gateway(settings, fake=fake_script)
    assert gateway.for_task("reply_draft").complete(MESSAGES).text == "from the task model"
    assert gateway.for_task("ticket_summary").complete(MESSAGES).model == "fake/echo"


def test_unknown_local_model_is_a_one_line_error(tmp_path):
    with pytest.raises(ModelFileError, match="unknown local model 'local/nope'"):
        Gateway(Settings(data_dir=tmp_path, model="local/nope")).check_ready()


def test_bad_task_model_setting_names_the_problem(tmp_path):
    with pytest.raises(ValueError, match="task=value"):
        Settings(data_dir=tmp_path, task_models="reply_draft")


def wait_for_restart(server, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while server.restarts < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.restarts >= 1 and server.wait_ready(timeout_s)


@pytest.mark.slow
def test_the_model_server_killed_mid_request_is_restarted_and_the_next_call_works(tmp_path):
    from copilot.errors import ModelError

    gateway = Gateway(Settings(data_dir=tmp_path, model=SMOLLM2.model, max_retries=0))
    gateway.check_ready()
    server = gateway.local.servers.owned[SMOLLM2.name]
    first_pid = server.pid
    chunks = iter(gateway.stream(COUNTING, max_tokens=400))
    next(chunks)  # it is generating now
    os.kill(first_pid, signal.SIGKILL)
    with pytest.raises(ModelError):
        for _chunk in chunks:
            pass
    wait_for_restart(server)
    assert server.pid != first_pid
    assert gateway.complete(MESSAGES, max_tokens=4).tokens_out > 0
    gateway.local.servers.stop()
    assert server.process.poll() is not None  # stopped with its owner


@pytest.mark.slow
def test_a_second_process_uses_the_running_server(tmp_path):
    gateway = Gateway(Settings(data_dir=tmp_path, model=SMOLLM2.model))
    gateway.check_ready()
    code = (
        "from pathlib import Path; from copilot.settings import Settings; from copilot.gateway import Gateway;"
        f"g = Gateway(Settings(data_dir=Path({str(tmp_path)!r}), model={SMOLLM2.model!r}));"
        "g.complete([{'role':'system','content':'x'},{'role':'user','content':'hi'}], max_tokens=2);"
        "print(len(g.local.servers.owned))"
    )
    import subprocess

    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "0", done.stderr  # it started no server of its own
    assert time.monotonic() - started < 60
    gateway.local.servers.stop()


def test_catalog_names_the_shipped_models():
    assert set(CATALOG) == {"smollm2-135m-instruct", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"}
    assert all(len(spec.sha256) == 64 for spec in CATALOG.values())


# -- budgets, usage and precompute ------------------------------------------------------------------------
def auth(keys, role="agent"):
    return {"Authorization": f"Bearer {keys[('alpha', role)]}"}


def test_a_spent_budget_falls_back_with_a_verdict_and_refuses_explicit_model_calls(world):
    client, store, keys, tickets, _ = world
    budget = client.put("/v1/admin/budget", headers=auth(keys, "admin"), json={"daily_tokens": 5})
    assert budget.status_code == 200 and budget.json()["exhausted"] is None
    first = client.post(f"/v1/tickets/{tickets['alpha']}/summary", headers=auth(keys)).json()
    assert first["provenance"]["model"] == "fake/echo" and first["provenance"]["tokens_in"] > 5
    second = client.post(f"/v1/tickets/{tickets['alpha']}/summary", headers=auth(keys)).json()
    assert second["used_fallback"] and second["provenance"]["model"] == "extractive"
    assert second["verdicts"][0]["name"] == "budget" and "budget is spent" in second["fallback_reason"]
    explicit = client.post(f"/v1/tickets/{tickets['alpha']}/summary", headers=auth(keys), json={"strategy": "model"})
    assert explicit.status_code == 429 and explicit.json()["error"]["type"] == "budget_exceeded"
    status = client.get("/v1/admin/budget", headers=auth(keys, "admin")).json()
    assert (
        status["exhausted"]
        and status["tokens_today"] == first["provenance"]["tokens_in"] + first["provenance"]["tokens_out"]
    )
    usage = client.get("/v1/admin/usage", headers=auth(keys, "admin")).json()
    by_model = {row["model"]: row for row in usage if row["task"] == "ticket_summary"}
    assert by_model["fake/echo"]["calls"] == 1 and by_model["extractive"]["calls"] == 1
    assert client.get("/v1/admin/usage", headers=auth(keys)).status_code == 403


def message(ticket: str, external_id: str, body: str) -> dict:
    return {
        "external_id": external_id,
        "ticket": ticket,
        "author_kind": "customer",
        "author": "Dana",
        "body": body,
        "sent_at": "2026-11-30T10:00:00Z",
    }


def test_a_new_customer_message_precomputes_the_summary_and_a_draft(world):
    client, store, keys, tickets, app = world
    assert client.put("/v1/admin/precompute", headers=auth(keys, "admin"), json={"enabled": True}).json()["enabled"]
    posted = client.post("/v1/records/message", headers=auth(keys, "admin"), json=[message("T-1", "M-2", "Any news?")])
    assert posted.status_code == 200, posted.text
    job = client.get("/v1/jobs?kind=precompute_ticket", headers=auth(keys)).json()[0]
    app.state.services.jobs.wait(job["id"], 60)
    done = client.get(f"/v1/jobs/{job['id']}", headers=auth(keys)).json()
    assert done["status"] == "succeeded", done
    ids = done["result"]["ai_result_ids"]
    summary = client.get(f"/v1/review/{ids['ticket_summary']}", headers=auth(keys)).json()
    draft = client.get(f"/v1/review/{ids['reply_draft']}", headers=auth(keys)).json()
    assert summary["status"] == "completed" and draft["status"] == "pending"
    client.post("/v1/records/message", headers=auth(keys, "admin"), json=[message("T-1", "M-3", "Hello??")])
    for result_id in ids.values():
        assert client.get(f"/v1/review/{result_id}", headers=auth(keys)).json()["status"] == "stale"


def test_precompute_results_made_while_the_customer_wrote_again_are_stale(world):
    from copilot.tasks import registry

    client, store, keys, tickets, app = world
    client.put("/v1/admin/precompute", headers=auth(keys, "admin"), json={"enabled": True})
    original = registry.get("reply_draft").run

    def draft_then_customer_writes(context, params):
        outcome = original(context, params)
        with store.repo("alpha") as repo:  # another request commits a customer message meanwhile
            repo.add(Message(ticket_id=tickets["alpha"], author_kind=AuthorKind.customer, body="Still broken."))
        return outcome

    app.state.services.jobs.shutdown()  # run the job here, in this thread
    with registry.overridden("reply_draft", run=draft_then_customer_writes):
        client.post("/v1/records/message", headers=auth(keys, "admin"), json=[message("T-1", "M-2", "Any news?")])
        assert app.state.services.jobs.run_once()
    job = client.get("/v1/jobs?kind=precompute_ticket", headers=auth(keys)).json()[0]
    draft_id = job["result"]["ai_result_ids"]["reply_draft"]
    assert client.get(f"/v1/review/{draft_id}", headers=auth(keys)).json()["status"] == "stale"


def test_a_draft_a_reviewer_decides_while_precompute_finishes_stays_decided(world, monkeypatch):
    from copilot.tasks import precompute

    client, store, keys, tickets, app = world
    client.put("/v1/admin/precompute", headers=auth(keys, "admin"), json={"enabled": True})
    newest_input = precompute._newest_input

    def reviewer_decides_meanwhile(row):
        with store.repo("alpha") as repo:  # another replica commits a decision on the loaded row
            repo.get(AiResult, row.id).status = AiStatus.approved
        return newest_input(row) - 1  # and the customer wrote again

    monkeypatch.setattr(precompute, "_newest_input", reviewer_decides_meanwhile)
    app.state.services.jobs.shutdown()
    client.post("/v1/records/message", headers=auth(keys, "admin"), json=[message("T-1", "M-2", "Any news?")])
    assert app.state.services.jobs.run_once()
    job = client.get("/v1/jobs?kind=precompute_ticket", headers=auth(keys)).json()[0]
    assert job["status"] == "succeeded", job
    draft = client.get(f"/v1/review/{job['result']['ai_result_ids']['reply_draft']}", headers=auth(keys)).json()
    assert draft["status"] == "approved"


def test_precompute_is_off_by_default_for_a_small_model(settings):
    from copilot.services import Services
    from copilot.store import Store, get_or_create_workspace
    from copilot.tasks.precompute import precompute_enabled

    small = Services(
        settings.model_copy(update={"model": "local/smollm2-135m-instruct"}), Store.from_settings(settings)
    )
    with small.store.session() as session:
        get_or_create_workspace(session, "alpha")
    with small.store.repo("alpha") as repo:
        assert precompute_enabled(small, repo) is False
    capable = Services(settings, small.store)  # fake/echo: capable
    with capable.store.repo("alpha") as repo:
        assert precompute_enabled(capable, repo) is True


@pytest.mark.slow
def test_a_model_crash_mid_request_is_an_error_never_an_outage(settings, tmp_path):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from copilot.auth import create_key
    from copilot.services import Services
    from copilot.store import Store, get_or_create_workspace
    from copilot.store.models import Ticket

    local = settings.model_copy(update={"model": SMOLLM2.model, "max_retries": 0})
    store = Store.from_settings(local)
    with store.session() as session:
        get_or_create_workspace(session, "alpha")
    with store.repo("alpha") as repo:
        ticket = repo.add(Ticket(subject="Charged twice"))
        repo.session.flush()
        repo.add(Message(ticket_id=ticket.id, author_kind=AuthorKind.customer, body="I was charged twice. " * 20))
        key = create_key(repo, "agent", "agent")[0]
        ticket_id = ticket.id
    services = Services(local, store)
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(services=services)) as client:
        services.gateway.check_ready()
        server = services.gateway.local.servers.owned[SMOLLM2.name]
        url = f"/v1/tickets/{ticket_id}/draft?stream=true"
        with client.stream("POST", url, headers=headers, json={"strategy": "model"}) as response:
            lines = response.iter_lines()
            for line in lines:
                if line.startswith("event: token"):
                    os.kill(server.pid, signal.SIGKILL)  # the model dies while it writes the draft
                    break
            rest = "\n".join(lines)
        assert response.status_code == 200 and ("event: result" in rest or "event: error" in rest), rest[-500:]
        if "event: result" in rest:  # the task's own fallback, flagged
            assert '"used_fallback": true' in rest.replace('":true', '": true')
        assert client.get("/v1/health").status_code == 200  # the service kept answering
        wait_for_restart(server)
        after = client.post(f"/v1/tickets/{ticket_id}/summary", headers=headers, json={"strategy": "model"})
        assert after.status_code == 200 and after.json()["provenance"]["model_file"].startswith("SmolLM2-135M")


@pytest.mark.slow
def test_a_capable_gguf_gets_the_model_path_and_provenance_names_its_file(settings, tmp_path, monkeypatch, fake_model):
    from copilot.services import Services
    from copilot.store import Store, get_or_create_workspace
    from copilot.store.models import Ticket

    monkeypatch.delenv("COPILOT_MODEL")
    custom = tmp_path / "Team-Model.gguf"
    custom.write_bytes(catalog_file(SMOLLM2, tmp_path).path.read_bytes() + b"\0")
    local = Settings(data_dir=settings.data_dir, local_model_path=custom)
    services = Services(local, Store.from_settings(local))
    with services.store.session() as session:
        get_or_create_workspace(session, "alpha")
    with services.store.repo("alpha") as repo:
        ticket = repo.add(Ticket(subject="Export is empty"))
        repo.session.flush()
        repo.add(Message(ticket_id=ticket.id, author_kind=AuthorKind.customer, body="My CSV export is empty."))
        repo.session.flush()
        outcome = services.run_task(repo, "ticket_summary", {"ticket_id": ticket.id})
    assert outcome.provenance.model == "local/team-model"
    assert outcome.provenance.model_file.startswith("Team-Model.gguf sha256:")
    services.close()
