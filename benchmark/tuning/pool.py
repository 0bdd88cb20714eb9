"""Where a study's workers run: local processes, or Ray tasks (``tune --ray``).

Local: ``workers`` processes started with ``spawn``, each running trials against the
study's storage until the study holds its budget (:func:`run_local_workers`).

Ray (:func:`run_ray_workers`): each worker is a Ray task. A PostgreSQL (or any server)
storage is reached by the workers directly, as local workers do. The default SQLite study,
a file on the driver, is served to them through Optuna's own gRPC storage proxy
(``optuna.storages.run_grpc_proxy_server`` on the driver, ``GrpcStorageProxy`` in the
workers): no protocol of our own. Counting and creating trials happen under one lock, so
the workers together run exactly the budget: for a server storage its row lock
(:class:`benchmark.tuning.storage.StudyLock`), for the proxied SQLite a Ray actor holding
an ``asyncio.Lock``. Each worker's TPE sampler is seeded from (the seed, the worker's index,
the study's trial count when the workers started), so no two workers, and no resumed
worker, replay one sequence.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..logs import logger
from ..protocol import Split
from .policy import log

__all__ = ["run_local_workers", "run_ray_workers", "worker_seed"]


def worker_seed(seed: int, worker_index: int, trials_at_start: int) -> int:
    """A TPE seed apart for each (seed, worker, study size at start)."""
    return int(np.random.SeedSequence([int(seed), int(worker_index), int(trials_at_start)])
               .generate_state(1)[0])


def _worker_entry(run: Callable[..., None], name: str, split: Split, kwargs: dict[str, Any]) -> None:
    """Entry point of a spawned worker process (exit code 1 on error, 130 on Ctrl+C)."""
    try:
        run(name, split, **kwargs)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        log(f"[{name} w{kwargs.get('worker_index')}] worker failed: {type(exc).__name__}: {exc}")
        sys.exit(1)


def run_local_workers(run: Callable[..., None], name: str, split: Split, workers: int,
                      kwargs: dict[str, Any]) -> None:
    """``workers`` spawned processes, each ``run(name, split, worker_index=i, **kwargs)``
    (:func:`benchmark.tuning.workers._run_worker`)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    procs = []
    for i in range(workers):
        p = ctx.Process(
            target=_worker_entry,
            args=(run, name, split, dict(kwargs, worker_index=i + 1)),
            name=f"tune-{name}-{i + 1}",
        )
        p.start()
        procs.append(p)
    log(f"[{name}] {workers} worker processes on one study (pids {', '.join(str(p.pid) for p in procs)})")
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
        raise
    bad = [p for p in procs if p.exitcode != 0]
    if bad:
        log(f"[{name}] {len(bad)} of {workers} workers exited with an error "
            f"(codes {[p.exitcode for p in bad]}); the others' trials are kept")


class _LockActor:
    """A Ray actor holding one ``asyncio.Lock`` (an async actor serves calls concurrently,
    so a waiting ``acquire`` does not block ``release``)."""

    def __init__(self) -> None:
        import asyncio

        self._lock = asyncio.Lock()

    async def acquire(self) -> bool:
        await self._lock.acquire()
        return True

    async def release(self) -> bool:
        if self._lock.locked():
            self._lock.release()
        return True


class RayLock:
    """:class:`benchmark.tuning.storage.StudyLock`'s interface over a :class:`_LockActor`."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        import ray

        ray.get(self.actor.acquire.remote())
        try:
            yield
        finally:
            ray.get(self.actor.release.remote())


def _ray_worker(run: Callable[..., None], name: str, split: Split, kwargs: dict[str, Any],
                proxy: tuple[str, int] | None, lock_actor: Any) -> dict[str, Any]:
    """One Ray task: trials until the study holds its budget; returns where it ran."""
    import ray

    extra: dict[str, Any] = {}
    if proxy is not None:
        from optuna.storages import GrpcStorageProxy

        extra = {"storage": GrpcStorageProxy(host=proxy[0], port=proxy[1]),
                 "lock": RayLock(lock_actor)}
    run(name, split, **kwargs, **extra)
    return {"node_id": ray.get_runtime_context().get_node_id(), "worker": kwargs["worker_index"]}


def _serve_proxy(storage_url: str, host: str) -> tuple[Any, int]:
    """Optuna's gRPC proxy of ``storage_url`` on a free port of ``host``; (server, port)."""
    import optuna

    with socket.socket() as s:
        s.bind((host, 0))
        port = s.getsockname()[1]
    storage = optuna.storages.get_storage(storage_url)
    try:
        from optuna.storages._grpc.server import make_server
    except ImportError:  # pragma: no cover - a future Optuna: the public entry, in a thread
        import threading

        threading.Thread(target=optuna.storages.run_grpc_proxy_server,
                         args=(storage,), kwargs={"host": host, "port": port}, daemon=True).start()
        return None, port
    server = make_server(storage, host, port)
    server.start()
    return server, port


def run_ray_workers(run: Callable[..., None], name: str, split: Split, workers: int,
                    kwargs: dict[str, Any], *, address: str | None = None) -> None:
    """``workers`` Ray tasks, each ``run(name, split, ...)`` on one study (see the module's
    docstring)."""
    import optuna

    from ..cluster import connect

    ray = connect(address)
    url = kwargs["storage_url"]
    proxy = server = lock_actor = None
    if url.startswith("sqlite"):
        host = ray.util.get_node_ip_address()
        server, port = _serve_proxy(url, host)
        proxy = (host, port)
        lock_actor = ray.remote(_LockActor).options(num_cpus=0).remote()
        log(f"[{name}] the study is served to the Ray workers by Optuna's gRPC proxy on {host}:{port}")
    study = optuna.load_study(study_name=kwargs["study_name"], storage=url)
    at_start = len(study.get_trials(deepcopy=False))
    task = ray.remote(_ray_worker)
    threads = kwargs.get("threads") or 1
    split_ref = ray.put(split)
    refs = [task.options(num_cpus=threads, name=f"tune {name} w{i + 1}").remote(
                run, name, split_ref, dict(kwargs, worker_index=i + 1,
                                      sampler_seed=worker_seed(kwargs["seed"], i + 1, at_start)),
                proxy, lock_actor)
            for i in range(workers)]
    log(f"[{name}] {workers} Ray worker(s) on one study ({threads} CPU each)")
    try:
        for ref in refs:
            try:
                where = ray.get(ref)
                logger.info(f"[{name} w{where['worker']}] done on node {where['node_id'][:12]}")
            except ray.exceptions.RayError as exc:
                log(f"[{name}] a Ray worker failed ({type(exc).__name__}); the others' trials are kept")
    except KeyboardInterrupt:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
    finally:
        if server is not None:
            server.stop(grace=None)
        if lock_actor is not None:
            ray.kill(lock_actor)
