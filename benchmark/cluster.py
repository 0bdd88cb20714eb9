"""Fits as Ray tasks: ``run --ray [ADDRESS]`` (optional extra ``cf-benchmark[ray]``).

Each :class:`benchmark.jobs.FitJob` becomes one Ray task whose resource request comes from
the plan (``num_cpus`` = the fit's threads, ``num_gpus`` = 1 for a CUDA fit, ``memory`` =
its planned peak), so Ray places it on a node where it fits. The split reaches the workers
once, through Ray's object store (``ray.put``), never through a shared disk. A task gives
back the :class:`benchmark.jobs.JobResult` (rows, per-user arrays, and with
``--save-models`` the model's files as bytes); the driver alone writes the results folder,
so resume, run keys, the report and MLflow logging are those of a local run.

Before any fit: every job's request is checked against the cluster's nodes (a request no
node can ever satisfy is refused with the request and the largest node: Ray would queue it
forever), and each node's suite and package versions are compared with the driver's (a
mismatch is a warning). A worker lost mid-fit is retried by Ray (``max_retries``); a fit
that raises comes back as an error; Ctrl-C cancels the remote tasks. A plugin model's file
travels with its job and is checked against the driver's source hash.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .jobs import FitJob, JobResult, ModelRef, fit_job
from .logs import logger
from .protocol import Split
from .results import versions
from .units import fmt_bytes
from .version import __version__

__all__ = ["RayExecutor", "ray_available", "connect", "request_problem", "pack_dir", "unpack_dir"]

def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def connect(address: str | None) -> Any:
    """Join a Ray cluster: ``address`` (``ray://`` included); None: ``RAY_ADDRESS``, else the
    cluster running on this machine, else a new one started here. Returns the ``ray`` module.

    Raises:
        RuntimeError: Ray is not installed, or the address cannot be reached.
    """
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError("--ray needs Ray: pip install 'cf-benchmark[ray]'") from exc
    if ray.is_initialized():
        return ray
    kwargs = {"log_to_driver": False, "configure_logging": False}
    try:
        if address:
            ray.init(address=address, **kwargs)
        elif os.environ.get("RAY_ADDRESS"):
            ray.init(**kwargs)
        else:
            try:
                ray.init(address="auto", **kwargs)
            except (ConnectionError, RuntimeError):  # no cluster here: start one
                ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RuntimeError(f"--ray {address or ''}: could not join the Ray cluster ({exc}); start "
                           "one with `ray start --head` (docs/cluster.md)".replace("  ", " ")) from exc
    return ray


def pack_dir(folder: str | Path) -> dict[str, bytes]:
    """Every file under ``folder`` as {relative path: bytes} (a saved model, to the driver)."""
    root = Path(folder)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def unpack_dir(files: dict[str, bytes], folder: str | Path) -> Path:
    """Write :func:`pack_dir`'s output under ``folder``; names must stay inside it."""
    root = Path(folder).resolve()
    for rel, data in files.items():
        target = (root / rel).resolve()
        if root not in target.parents:
            raise ValueError(f"{rel!r} lies outside the model folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def writable(split: Split) -> Split:
    """A copy of a split whose arrays may be written: those Ray hands a task from its object
    store are read-only views, which LightFM's Cython (and any model that writes into its
    input) cannot take."""
    import copy

    return copy.deepcopy(split)


def _with_plugin(ref: ModelRef, source: str | None) -> ModelRef:
    """On a worker: the plugin's file where the driver's path is missing here, written from
    the text that came with the job (its source hash is checked when the class resolves)."""
    if not ref.plugin_file or source is None or Path(ref.plugin_file).is_file():
        return ref
    folder = Path(tempfile.mkdtemp(prefix="cf-plugin-"))
    path = folder / Path(ref.plugin_file).name
    path.write_text(source)
    return dataclasses.replace(ref, plugin_file=str(path))


def _worker_facts(ray: Any) -> dict[str, Any]:
    ctx = ray.get_runtime_context()
    return {"executor": "ray", "node_id": ctx.get_node_id(),
            "resources": dict(ctx.get_assigned_resources()), "hostname": os.uname().nodename,
            "pid": os.getpid(), "suite_version": __version__,
            "versions": versions()}


def _remote_fit(job: FitJob, split: Split, plugin_source: str | None) -> JobResult:
    """The body of one Ray task: one fit, its saved model packed into the result."""
    import ray

    if job.options.threads:
        try:
            import torch

            torch.set_num_threads(int(job.options.threads))
        except ImportError:  # pragma: no cover
            pass
    job = dataclasses.replace(job, model=_with_plugin(job.model, plugin_source))
    result = fit_job(job, writable(split))
    result.worker = _worker_facts(ray)
    if result.model_dir:
        folder = Path(result.model_dir)
        result.model_files = pack_dir(folder)
        shutil.rmtree(folder.parent, ignore_errors=True)
        result.model_dir = None
    return result


def _probe() -> dict[str, Any]:
    import ray

    return _worker_facts(ray)


def request_problem(request: dict[str, float], nodes: list[dict[str, Any]]) -> str | None:
    """Why no alive node can ever run a task asking for ``request``; None when one can.

    ``request``: Ray's task options (``num_cpus``, ``num_gpus``, ``memory`` in bytes);
    ``nodes``: ``ray.nodes()``.
    """
    keys = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive")]
    for res in alive:
        if all(res.get(keys[k], 0) >= v for k, v in request.items() if v):
            return None

    def show(res: dict[str, float]) -> str:
        return (f"{res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs, "
                f"{fmt_bytes(res.get('memory', 0))} memory")

    asked = show({keys[k]: v for k, v in request.items()})
    if not alive:
        return f"asks for {asked} and the cluster has no alive node"
    largest = max(alive, key=lambda r: (r.get("GPU", 0), r.get("memory", 0), r.get("CPU", 0)))
    return (f"asks for {asked}, which no node of the cluster has (the largest: {show(largest)}); "
            "add a larger node, or lower the request (--threads, a smaller model)")


class RayExecutor:
    """Runs fit jobs as Ray tasks (see the module's docstring).

    Args:
        address: the cluster (None: see :func:`connect`).
        requests: per model name, Ray task options from the plan (``num_cpus``, ``num_gpus``,
            ``memory``); a model absent gets ``{"num_cpus": threads}``.
        threads: CPU threads of a fit without a request (each job's ``options.threads``).
        max_retries: how often Ray reruns a task whose worker died (not one that raised).
        seconds: per model name, the plan's fit time: the longest fits are submitted
            first (longest-processing-time order: the table's wall time is bounded by its
            longest fit, so that one should not start last).
    """

    name = "ray"

    def __init__(self, address: str | None = None, *, requests: dict[str, dict] | None = None,
                 threads: int = 1, max_retries: int = 2,
                 seconds: dict[str, float] | None = None) -> None:
        self.address, self.requests = address, dict(requests or {})
        self.seconds = dict(seconds or {})
        self.threads, self.max_retries = max(1, int(threads)), int(max_retries)

    def request(self, job: FitJob) -> dict[str, float]:
        req = {"num_cpus": float(self.threads), **self.requests.get(job.model.name, {})}
        return {k: v for k, v in req.items() if v}

    def map(self, jobs: list[FitJob], split: Split) -> Iterator[JobResult]:
        if not jobs:
            return
        ray = connect(self.address)
        nodes = ray.nodes()
        self._check_versions(ray, nodes)
        remote = ray.remote(_remote_fit)
        split_ref = ray.put(split)  # once, through the object store
        pending: dict[Any, FitJob] = {}
        sources = {j.model.plugin_file: Path(j.model.plugin_file).read_text()
                   for j in jobs if j.model.plugin_file}
        for job in sorted(jobs, key=lambda j: -(self.seconds.get(j.model.name) or 0.0)):
            req = self.request(job)
            problem = request_problem(req, nodes)
            if problem:
                yield JobResult(job, error=f"RayResourceError: {problem}",
                                worker={"executor": self.name})
                continue
            job = dataclasses.replace(job, options=dataclasses.replace(
                job.options, threads=max(1, int(req.get("num_cpus", 1))), progress=False))
            ref = remote.options(max_retries=self.max_retries, name=f"fit {job.label}",
                                 **req).remote(job, split_ref, sources.get(job.model.plugin_file))
            pending[ref] = job
        logger.info(f"ray: {len(pending)} fit(s) submitted to {sum(n['Alive'] for n in nodes)} node(s)")
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(done[0])
                yield self._collect(ray, done[0], job)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            logger.warning(f"ray: {len(pending)} remote fit(s) cancelled")
            raise

    def _collect(self, ray: Any, ref: Any, job: FitJob) -> JobResult:
        try:
            result = ray.get(ref)
        except ray.exceptions.RayError as exc:  # worker or node lost after the retries
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return JobResult(job, error=(
                f"RayWorkerError: the fit's Ray worker was lost ({type(exc).__name__}: {first}) "
                f"after {self.max_retries} retries; nothing of it was written, rerun to fit it"),
                worker={"executor": self.name})
        if getattr(result, "model_files", None):
            folder = Path(tempfile.mkdtemp(prefix="cf-model-")) / "model"
            result.model_dir = str(unpack_dir(result.model_files, folder))
            result.model_files = None
        return result

    def _check_versions(self, ray: Any, nodes: list[dict[str, Any]]) -> None:
        """Each alive node's suite and package versions against the driver's: a warning."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        probe = ray.remote(_probe)
        refs = [probe.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
            n["NodeID"], soft=False)).remote() for n in nodes if n.get("Alive")]
        here = {"suite_version": __version__, **versions()}
        for facts in ray.get(refs):
            theirs = {"suite_version": facts["suite_version"], **facts["versions"]}
            differ = {k: (here.get(k), theirs.get(k)) for k in here if here.get(k) != theirs.get(k)}
            if differ:
                logger.warning(f"ray: node {facts['node_id'][:12]} ({facts['hostname']}) differs from "
                               "this machine: " + ", ".join(f"{k} {a} here, {b} there"
                                                           for k, (a, b) in differ.items()))
