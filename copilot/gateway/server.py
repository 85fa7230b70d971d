"""Local models run out of process: llama-cpp-python's OpenAI-compatible server on loopback, supervised.

A native crash in llama.cpp (a bad build, a grammar it cannot hold) kills that server, never the API: the request
in flight gets a connection error (retried, then the task's fallback or a 502/503), the supervisor restarts the
server with backoff, and the next request is served. The gateway reaches the server through litellm's OpenAI
provider with ``api_base``: the same path Ollama, vLLM and LM Studio users take.

One server per model file is shared by every process on the data dir: the first process that needs it starts and
supervises it and records its port in ``<data dir>/run/``; other processes (API workers, CLI commands, job workers)
find it there and use it. When its owner exits, the server stops with it; the next user starts a new one.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from copilot.errors import CopilotError
from copilot.gateway.catalog import ModelFile

log = logging.getLogger(__name__)

HEALTHY_RESET_S = 60.0  # a server that stayed up this long starts its backoff over
MAX_BACKOFF_S = 30.0
PR_SET_PDEATHSIG = 1


class ModelServerError(CopilotError):
    """The local model server could not be started or did not become ready."""


@dataclass(frozen=True)
class ServerOptions:
    context_tokens: int = 4096
    threads: int | None = None
    start_timeout_s: float = 180.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:
    """Child-side: get SIGTERM when the owning process dies, even by SIGKILL (Linux; elsewhere atexit covers it)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def healthy(base_url: str, timeout_s: float = 2.0) -> bool:
    try:
        return httpx.get(f"{base_url}/v1/models", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SupervisedServer:
    """One llama-cpp-python server process for one model file, restarted with backoff when it dies."""

    def __init__(self, alias: str, file: ModelFile, options: ServerOptions, log_path: Path) -> None:
        self.alias, self.file, self.options, self.log_path = alias, file, options, log_path
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._monitor: threading.Thread | None = None
        self._start_error: ModelServerError | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self) -> list[str]:
        threads = self.options.threads or os.cpu_count() or 1
        return [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.file.path),
            "--model_alias",
            self.alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.options.context_tokens),
            "--n_threads",
            str(threads),
            "--n_threads_batch",
            str(threads),
            # A new request must queue behind the one being generated, not cut it off.
            "--interrupt_requests",
            "False",
        ]

    def start(self) -> None:
        """Start the process and wait until it answers; raises ModelServerError when it cannot come up.

        The process is spawned, and re-spawned, by one long-lived supervisor thread: the kernel's parent-death
        signal follows the thread that forked, so a short-lived request thread must never be that parent.
        """
        self._stopping.clear()
        self._start_error = None
        started = threading.Event()
        self._monitor = threading.Thread(
            target=self._supervise, args=(started,), name=f"model-{self.alias}", daemon=True
        )
        self._monitor.start()
        started.wait()
        if self._start_error is not None:
            raise self._start_error

    def _supervise(self, started: threading.Event) -> None:
        try:
            self._spawn()
            self._wait_ready()
        except ModelServerError as error:
            self._start_error = error
            return
        finally:
            started.set()
        backoff, up_since = 0.5, time.monotonic()
        while not self._stopping.is_set():
            process = self.process
            if process is not None and process.poll() is None:
                self._stopping.wait(0.2)
                continue
            self._ready.clear()
            if time.monotonic() - up_since > HEALTHY_RESET_S:
                backoff = 0.5
            log.warning(
                "local model server %s exited (code %s); restarting in %.1f s",
                self.alias,
                process.returncode if process else None,
                backoff,
            )
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, MAX_BACKOFF_S)
            try:
                self._spawn()
                self._wait_ready()
                self.restarts += 1
                up_since = time.monotonic()
            except ModelServerError as error:
                log.error("%s", error)

    def _spawn(self) -> None:
        with self._lock:
            self._ready.clear()
            self.port = self.port or free_port()  # a restart keeps the port other processes know
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("ab") as log_file:
                self.process = subprocess.Popen(
                    self.command(),
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=_die_with_parent,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.options.start_timeout_s
        while time.monotonic() < deadline and not self._stopping.is_set():
            process = self.process
            if process is None or process.poll() is not None:
                code = process.returncode if process else None
                raise ModelServerError(
                    f"the local model server for {self.alias} exited during start-up (code {code}); "
                    f"its log is {self.log_path}"
                )
            if healthy(self.base_url, timeout_s=1.0):
                self._ready.set()
                return
            time.sleep(0.1)
        self._terminate()
        raise ModelServerError(
            f"the local model server for {self.alias} did not answer within {self.options.start_timeout_s:.0f} s; "
            f"its log is {self.log_path}"
        )

    def wait_ready(self, timeout_s: float) -> bool:
        return self._ready.wait(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        self._ready.clear()
        self._terminate(timeout_s)
        if self._monitor is not None and self._monitor is not threading.current_thread():
            self._monitor.join(timeout_s)

    def _terminate(self, timeout_s: float = 10.0) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout_s)


class ModelServers:
    """The local model servers this process uses: started on first need, shared through the data dir."""

    def __init__(self, run_dir: Path, options: ServerOptions) -> None:
        self.run_dir, self.options = run_dir, options
        self.owned: dict[str, SupervisedServer] = {}
        self._lock = threading.Lock()

    def state_path(self, alias: str) -> Path:
        return self.run_dir / f"model-{alias}.json"

    def base_url(self, alias: str, file: ModelFile) -> str:
        """Where the server for ``alias`` answers, starting it (or waiting for its restart) when needed."""
        owned = self.owned.get(alias)
        if owned is not None:
            if not owned.wait_ready(self.options.start_timeout_s):
                raise ModelServerError(f"the local model server for {alias} is restarting and not ready yet")
            return owned.base_url
        shared = self._shared(alias, file)
        if shared is not None:
            return shared
        with self._lock, self._start_lock(alias):
            shared = self._shared(alias, file)  # another process may have started it while we waited
            if shared is not None:
                return shared
            if alias not in self.owned:
                server = SupervisedServer(alias, file, self.options, self.run_dir / f"model-{alias}.log")
                server.start()
                self.owned[alias] = server
                self._publish(server)
            return self.owned[alias].base_url

    def _shared(self, alias: str, file: ModelFile) -> str | None:
        """A healthy server another live process runs for the same file."""
        try:
            state = json.loads(self.state_path(alias).read_text())
        except (OSError, ValueError):
            return None
        if state.get("owner_pid") == os.getpid() or state.get("sha256") != file.sha256:
            return None
        if not _pid_alive(int(state.get("owner_pid", 0))):
            return None
        base = f"http://127.0.0.1:{state['port']}"
        return base if healthy(base) else None

    def _publish(self, server: SupervisedServer) -> None:
        state = {
            "owner_pid": os.getpid(),
            "port": server.port,
            "pid": server.pid,
            "sha256": server.file.sha256,
            "file": str(server.file.path),
        }
        path = self.state_path(server.alias)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(path)

    @contextlib.contextmanager
    def _start_lock(self, alias: str) -> Iterator[None]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with (self.run_dir / f"model-{alias}.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def stop(self) -> None:
        with self._lock:
            for alias, server in list(self.owned.items()):
                server.stop()
                with contextlib.suppress(OSError):
                    state = json.loads(self.state_path(alias).read_text())
                    if state.get("owner_pid") == os.getpid():
                        self.state_path(alias).unlink()
            self.owned.clear()

    def status(self) -> list[dict[str, object]]:
        return [
            {
                "model": alias,
                "pid": s.pid,
                "port": s.port,
                "ready": s.wait_ready(0),
                "restarts": s.restarts,
                "file": str(s.file.path),
            }
            for alias, s in self.owned.items()
        ]
