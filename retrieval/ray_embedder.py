"""Bulk embedding on a Ray cluster (``COPILOT_RAY_ADDRESS``): large ``encode`` calls fan out over embedding actors.

Reindexing a workspace and NPS themes spend nearly all their time in ``encode``. With a Ray address configured,
``Services.embedder`` is a :class:`RayEmbedder`: a call with at least ``COPILOT_RAY_MIN_BATCH`` texts is split into
shards, one per actor (``COPILOT_RAY_WORKERS`` actors, one CPU each, each loading the embedder once), and the
vectors come back in input order. Smaller calls (a search query, a ticket's messages) stay in this process, so
interactive requests never wait on the cluster.

The vectors are those of the single-process path: the actors run the same backend and weights (the ONNX export is
checked on each node's CPU, as everywhere), and the texts are sharded in the order the backend batches them
(longest first, cut at batch boundaries), so every batch is padded as it would be in one process. Ray is imported
only when an address is configured; nothing here runs otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from copilot.errors import Unavailable
from retrieval.embeddings import BATCH_SIZE, Embedder

log = logging.getLogger("copilot.retrieval")


class EmbeddingActor:
    """One embedder loaded once in a Ray worker process."""

    def __init__(self, backend: str, cache_dir: str, threads: int) -> None:
        from retrieval.embeddings import load_embedder

        self.embedder = load_embedder(backend, Path(cache_dir), threads=threads)

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        return self.embedder.encode(texts, batch_size)

    def name(self) -> str:
        return self.embedder.name


class RayEmbedder:
    """An :class:`Embedder` whose large calls run on Ray actors; same ``name`` and vectors as ``local``."""

    def __init__(self, local: Embedder, address: str, *, workers: int, min_batch: int, cache_dir: Path) -> None:
        self.local, self.address, self.workers, self.min_batch = local, address, workers, min_batch
        self.name, self.dimensions = local.name, local.dimensions
        self.backend = getattr(local, "backend", "torch")
        self.cache_dir = cache_dir
        self._actors: list[Any] = []
        self._lock = threading.Lock()
        self.texts_on_ray = 0  # texts embedded by the actors so far (logs, tests)

    def __getattr__(self, attribute: str) -> Any:  # e.g. the torch model or the ONNX manifest of the local embedder
        if attribute.startswith("__") or attribute == "local":
            raise AttributeError(attribute)
        return getattr(self.local, attribute)

    def encode(self, texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        if len(texts) < self.min_batch:
            return self.local.encode(texts, batch_size)
        import ray

        actors = self.actors()  # this call's actors, whatever stop_actors does meanwhile
        shards = shard(batch_order(self.local, texts), len(actors), batch_size)
        parts = zip(actors, shards, strict=False)
        pending = [actor.encode.remote([texts[i] for i in part], batch_size) for actor, part in parts]
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for part, vectors in zip(shards, ray.get(pending), strict=True):
            out[part] = vectors
        self.texts_on_ray += len(texts)
        return out

    def actors(self) -> list[Any]:
        """The embedding actors, started (and checked to make this embedder's vectors) on first use."""
        with self._lock:
            if not self._actors:
                self._actors = start_actors(self)
            return self._actors

    def stop_actors(self) -> None:
        """Give the actors' CPUs back to the cluster (``Services.close``); the next large call starts new ones."""
        import ray

        with self._lock:
            for actor in self._actors:
                ray.kill(actor)
            self._actors = []


def connect(address: str) -> None:
    """Join the Ray cluster at ``address`` once per process (embedding actors and bulk task actors share it)."""
    import ray

    if not ray.is_initialized():
        check_reachable(address)
        ray.init(address=address, namespace="copilot", log_to_driver=False, logging_level=logging.WARNING)


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds on a ``host:port`` (or ``ray://host:port``) nobody answers: Ray itself retries for minutes."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", or an address Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise Unavailable(f"COPILOT_RAY_ADDRESS: no Ray cluster answers at {address} ({error})") from error


def start_actors(embedder: RayEmbedder) -> list[Any]:
    import ray

    connect(embedder.address)
    actor_class = ray.remote(num_cpus=1)(EmbeddingActor)
    actors = [actor_class.remote(embedder.backend, str(embedder.cache_dir), 1) for _ in range(max(1, embedder.workers))]
    names = set(ray.get([actor.name.remote() for actor in actors]))
    if names != {embedder.name}:
        for actor in actors:
            ray.kill(actor)
        raise RuntimeError(f"Ray embedding actors make {sorted(names)} vectors, this process {embedder.name}")
    log.info("embedding on Ray at %s: %d actors", embedder.address, len(actors))
    return actors


def batch_order(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """The order in which the embedder batches ``texts`` (its own when it says, else longest first by characters)."""
    own = getattr(embedder, "batch_order", None)
    if callable(own):
        return np.asarray(own(texts))
    return np.argsort([-len(t) for t in texts], kind="stable")


def shard(order: np.ndarray, parts: int, batch_size: int) -> list[np.ndarray]:
    """``order`` cut into at most ``parts`` contiguous shards of whole batches (the last shard takes the rest)."""
    batches = -(-len(order) // batch_size)
    per_shard = -(-batches // parts) * batch_size
    return [order[start : start + per_shard] for start in range(0, len(order), per_shard)]


@contextlib.contextmanager
def local_ray_cluster(temp_dir: Path, cpus: int = 2) -> Iterator[str]:
    """A Ray head on 127.0.0.1 for trials, benches and tests, yielding its address for ``COPILOT_RAY_ADDRESS``.

    ``ray start --head --block`` runs in its own process group, and only that group is stopped on exit: ``ray stop``
    would also stop any other Ray cluster on the machine."""
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    from copilot.gateway.server import free_port

    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    log_path = Path(temp_dir) / "ray-start.log"
    command = [ray, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}"]
    command += [f"--num-cpus={cpus}", "--include-dashboard=false", f"--temp-dir={temp_dir}", "--disable-usage-stats"]
    with log_path.open("wb") as log_file:
        head = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_head(head, log_path, timeout_s=180)
        yield f"127.0.0.1:{port}"
    finally:
        import ray as ray_module

        ray_module.shutdown()
        stop_group(head, grace_s=60)


def wait_for_head(head: subprocess.Popen, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while "Ray runtime started" not in log_path.read_text(errors="replace"):
        if head.poll() is not None or time.monotonic() > deadline:
            stop_group(head, grace_s=10)
            raise RuntimeError(f"the local Ray head did not start; see {log_path}")
        time.sleep(0.5)


def stop_group(head: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM to the head's process group (Ray drains, up to 30 s), SIGKILL to what is left after ``grace_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(head.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and group_alive(head.pid):
        head.poll()
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(head.pid, signal.SIGKILL)
    head.wait(timeout=30)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
