"""Optional experiment tracking: ``run --mlflow URI`` logs every fit to MLflow.

One MLflow run per fit, i.e. per ``run_key`` (a model, its parameters and a seed on one
split): the fit's two result rows (``valid`` and ``test``) become

- params: the model's parameters after ``--param`` overrides (nested dicts flattened with
  ``.``, values stringified and cut to MLflow's length limit);
- metrics: ``test_ndcg_at_100``, ``valid_recall_at_20``, ... (MLflow names may not hold
  ``@``), each metric's standard error as ``..._sem``, ``fit_seconds``,
  ``<part>_score_seconds`` and ``<part>_n_users``;
- tags: model, dataset, seed, run_key, config_key, split_hash, split_seed, suite_version,
  source_hash, device, git_commit, and ``fit_id``, which names this fit;
- artifacts: ``rows.json`` (both rows as written to ``results.jsonl``) and ``report/``
  (the report rendered at the end of the run).

The experiment is ``$MLFLOW_EXPERIMENT_NAME`` when set, else ``cf-benchmark/<dataset>``.
Rerunning the same command logs nothing twice: a fit whose ``fit_id`` already has a
finished run in the experiment is skipped. MLflow is imported only here and only when
asked for (``pip install 'cf-benchmark[mlflow]'``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

__all__ = [
    "MLFLOW_MISSING",
    "TrackingError",
    "connect",
    "log_run",
    "experiment_name",
    "log_rows",
    "metric_name",
    "mlflow_problems",
    "open_experiment",
]

MLFLOW_MISSING = "--mlflow needs MLflow: pip install 'cf-benchmark[mlflow]'"

_TAG_KEYS = ("model", "dataset", "seed", "run_key", "config_key", "split_hash", "split_seed",
             "suite_version", "source_hash", "device", "git_commit")


class TrackingError(RuntimeError):
    """The tracking server could not be reached or refused what we logged."""


def _import_mlflow():
    import mlflow  # noqa: F401  (the optional extra)
    from mlflow.tracking import MlflowClient

    return MlflowClient


def local_path(uri: str) -> Path | None:
    """The folder of a file-store URI (``file:///x/mlruns``, ``./mlruns``), else None."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):  # a plain path
        return Path(uri)
    return None


def mlflow_problems(uri: str | None) -> list[str]:
    """Problem lines for ``--mlflow URI`` (empty when it can work); imports MLflow to check."""
    if uri is None:
        return []
    if not str(uri).strip():
        return ["--mlflow: give a tracking URI, e.g. --mlflow file:///tmp/mlruns or "
                "--mlflow http://localhost:5000"]
    try:
        _import_mlflow()
    except ImportError:
        return [MLFLOW_MISSING]
    except Exception as exc:  # a broken install: say so now, not after hours of fitting
        return [f"{MLFLOW_MISSING} (importing it failed: {type(exc).__name__}: {exc})"]
    path = local_path(uri)
    if path is not None:
        from .fsutil import check_writable_dir

        problem = check_writable_dir(path, "--mlflow")
        if problem:
            return [problem]
    return []


def experiment_name(dataset: str) -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or f"cf-benchmark/{dataset}"


@contextlib.contextmanager
def _env_defaults(**values: str) -> Iterator[None]:
    """Set environment variables that are not set, for the duration of the block."""
    added = [k for k in values if k not in os.environ]
    os.environ.update({k: values[k] for k in added})
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def connect(uri: str, *, probe_timeout: int = 20) -> Any:
    """An MlflowClient on ``uri`` that has answered one query (run before any fit).

    A file store (``file:`` URI or a plain path) is allowed explicitly: MLflow 3 refuses it
    unless ``MLFLOW_ALLOW_FILE_STORE`` is set, and asking for one by URI is that consent
    (an explicit ``MLFLOW_ALLOW_FILE_STORE=false`` still wins). The probe of a server is
    tried once with a short timeout (MLflow's own retries take minutes to give up on a
    server that is down); logging later keeps MLflow's retries. Both are MLflow's
    ``MLFLOW_HTTP_REQUEST_*`` settings, and set ones are left alone.
    """
    client_cls = _import_mlflow()
    if local_path(uri) is not None:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        client = client_cls(tracking_uri=uri)
        with _env_defaults(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
                           MLFLOW_HTTP_REQUEST_TIMEOUT=str(int(probe_timeout))):
            client.search_experiments(max_results=1)
    except Exception as exc:
        raise TrackingError(f"cannot open MLflow tracking store {uri}: "
                            f"{type(exc).__name__}: {exc}") from exc
    return client


def open_experiment(uri: str, experiment: str, client: Any = None) -> tuple[Any, str]:
    """(client, experiment id): opens the store and gets or creates ``experiment``."""
    client = client if client is not None else connect(uri)
    try:
        found = client.get_experiment_by_name(experiment)
        if found is not None and found.lifecycle_stage != "active":
            raise TrackingError(f"MLflow experiment {experiment!r} is deleted; restore it "
                                f"or set MLFLOW_EXPERIMENT_NAME to another name")
        exp_id = found.experiment_id if found is not None else client.create_experiment(experiment)
    except TrackingError:
        raise
    except Exception as exc:
        raise TrackingError(f"cannot open MLflow tracking store {uri}: "
                            f"{type(exc).__name__}: {exc}") from exc
    return client, exp_id


def metric_name(part: str, metric: str, suffix: str = "") -> str:
    """``("test", "ndcg@100")`` -> ``test_ndcg_at_100`` (MLflow names may not hold ``@``)."""
    name = f"{part}_{metric}{suffix}".replace("@", "_at_")
    return "".join(c if c.isalnum() or c in "_-./ :" else "_" for c in name)


def _limits() -> tuple[int, int, int]:
    try:
        from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, MAX_PARAM_VAL_LENGTH
    except ImportError:  # older MLflow: its documented limits
        return 250, 500, 5000
    try:
        from mlflow.utils.validation import MAX_TAG_VAL_LENGTH
    except ImportError:
        MAX_TAG_VAL_LENGTH = 5000
    return MAX_ENTITY_KEY_LENGTH, MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}, "c": [1, 2]}`` -> ``{"a.b": "1", "c": "[1, 2]"}``."""
    out: dict[str, str] = {}
    for key, value in (params or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, prefix=f"{name}."))
        else:
            out[name] = _text(value)
    return out


def fit_id(row: dict[str, Any]) -> str:
    """Names one fit: its run key, when it was written, and its fit time (exact)."""
    ident = f"{row.get('run_key')}|{row.get('timestamp')}|{float(row.get('fit_seconds') or 0)!r}"
    return hashlib.sha1(ident.encode()).hexdigest()[:16]


def _group(rows: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The rows of each fit together (valid before test), in the order of the rows."""
    fits: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        fits.setdefault(fit_id(row), []).append(row)
    order = {"valid": 0, "test": 1}
    return [sorted(g, key=lambda r: order.get(r.get("part"), 2)) for g in fits.values()]


def _entities(fit: list[dict[str, Any]]):
    from mlflow.entities import Metric, Param, RunTag

    key_max, param_max, tag_max = _limits()
    first = fit[0]
    params = [Param(_cut(k, key_max), _cut(v, param_max))
              for k, v in flatten(first.get("params") or {}).items()]
    now = int(time.time() * 1000)
    values: dict[str, float] = {}
    if first.get("fit_seconds") is not None:
        values["fit_seconds"] = float(first["fit_seconds"])
    for row in fit:
        part = str(row.get("part"))
        for name, value in (row.get("metrics") or {}).items():
            if value is not None:
                values[metric_name(part, name)] = float(value)
        for name, value in (row.get("sem") or {}).items():
            if value is not None:
                values[metric_name(part, name, "_sem")] = float(value)
        for name in ("score_seconds", "n_users", "n_excluded"):
            if row.get(name) is not None:
                values[metric_name(part, name)] = float(row[name])
    metrics = [Metric(_cut(k, key_max), v, now, 0) for k, v in values.items()]
    tags = {k: _text(first[k]) for k in _TAG_KEYS if first.get(k) is not None}
    tags["fit_id"] = fit_id(first)
    tags["parts"] = ",".join(str(r.get("part")) for r in fit)
    epochs = first.get("epochs")
    if isinstance(epochs, dict) and epochs.get("capped"):
        tags["epochs_capped_at"] = _text(epochs.get("effective"))
    tag_list = [RunTag(_cut(k, key_max), _cut(v, tag_max)) for k, v in tags.items()]
    return params, metrics, tag_list


def _in_batches(client: Any, run_id: str, params: list, metrics: list, tags: list) -> None:
    """log_batch takes at most 100 params + tags and 1000 metrics per call."""
    for i in range(0, max(len(params), len(tags), 1), 100):
        client.log_batch(run_id, params=params[i:i + 100], tags=tags[i:i + 100])
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i:i + 1000])


def _log_report(client: Any, run_id: str, report_dir: Path) -> None:
    for entry in sorted(report_dir.iterdir()):
        if entry.name.startswith("."):  # a report being written by someone else
            continue
        if entry.is_dir():
            client.log_artifacts(run_id, str(entry), f"report/{entry.name}")
        elif entry.is_file():
            client.log_artifact(run_id, str(entry), "report")


def log_rows(
    uri: str,
    rows: Iterable[dict[str, Any]],
    *,
    experiment: str | None = None,
    report_dir: str | os.PathLike | None = None,
) -> list[str]:
    """Log each fit of ``rows`` (result rows of ``run``) as one MLflow run.

    Args:
        uri: the tracking URI (``file:///.../mlruns``, ``http://host:5000``, ...).
        rows: result rows; a fit's ``valid`` and ``test`` rows go into one MLflow run.
        experiment: the experiment's name (default: :func:`experiment_name` of each row's
            dataset, so a run over several datasets fills one experiment per dataset).
        report_dir: the rendered report folder, logged under ``report/`` of every new run.

    Returns:
        the ids of the MLflow runs created (fits already logged are skipped).

    Raises:
        TrackingError: the store could not be opened or refused a run (the runs logged
            before it are kept; a rerun logs the rest).
    """
    fits = _group(rows)
    if not fits:
        return []
    client = connect(uri)
    experiments: dict[str, str] = {}
    created: list[str] = []
    for fit in fits:
        first = fit[0]
        name = experiment or experiment_name(str(first.get("dataset")))
        if name not in experiments:
            experiments[name] = open_experiment(uri, name, client)[1]
        exp_id = experiments[name]
        ident = fit_id(first)
        try:
            seen = client.search_runs(
                [exp_id], f"tags.fit_id = '{ident}' and attributes.status = 'FINISHED'",
                max_results=1,
            )
        except Exception as exc:
            raise TrackingError(f"MLflow ({uri}): cannot search experiment {name!r}: "
                                f"{type(exc).__name__}: {exc}") from exc
        if seen:
            continue
        run_name = f"{first.get('model')} seed {first.get('seed')}"
        run_id = None
        try:
            params, metrics, tags = _entities(fit)
            run_id = client.create_run(exp_id, run_name=run_name).info.run_id
            _in_batches(client, run_id, params, metrics, tags)
            client.log_text(run_id, json.dumps(fit, indent=1, sort_keys=True, default=str),
                            "rows.json")
            if report_dir is not None and Path(report_dir).is_dir():
                _log_report(client, run_id, Path(report_dir))
            client.set_terminated(run_id, "FINISHED")
        except Exception as exc:
            if run_id is not None:
                try:
                    client.set_terminated(run_id, "FAILED")
                except Exception:
                    pass
            raise TrackingError(f"MLflow ({uri}): could not log {run_name}: "
                                f"{type(exc).__name__}: {exc}") from exc
        created.append(run_id)
    return created


def log_run(uri: str, rows: list[dict[str, Any]], report_dir: Path | None) -> list[str]:
    """Log a run's result rows (and its report) to MLflow; returns the failure, if any."""
    from .logs import logger

    try:
        ids = log_rows(uri, rows, report_dir=report_dir)
    except TrackingError as exc:
        return [f"mlflow: {exc} (results are kept; rerun the same command to log them)"]
    logger.info(f"mlflow: {len(ids)} run(s) logged to {uri}")
    return []
