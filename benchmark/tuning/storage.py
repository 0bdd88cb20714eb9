"""Study names and storage: SQLite by default, any Optuna RDB URL, per-study locks."""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna

from ..sources import model_source_hash


# --- names and storage ----------------------------------------------------------------------
def study_name_for(dataset: str, model: str, split_hash: str, config: str | None = None) -> str:
    """The default study name, ``<dataset>-<model>-<split hash>[-<config hash>]``.

    ``config`` (see :func:`study_config_hash`) changes with anything else that changes a
    trial's number, so a study is never resumed with stale trials.
    """
    name = f"{dataset}-{model}-{split_hash}"
    return f"{name}-{config}" if config else name


def study_config_hash(
    cls: type, *, fixed_params: dict[str, Any], epochs: int | None, seed: int
) -> str:
    """Hash (8 hex digits) of what a study's trials depend on besides their parameters:
    the fixed ``--param`` overrides, the epoch cap, the seed, the suite's version and the
    model's source code."""
    from ..results import run_key
    from ..version import __version__

    return run_key(
        fixed=fixed_params, epochs=epochs, seed=seed, version=__version__,
        source=model_source_hash(cls),
    )[:8]


def default_storage(results_dir: str | os.PathLike) -> str:
    """``sqlite:///<results_dir>/optuna.db`` (absolute; the folder is created)."""
    from sqlalchemy.engine import URL

    folder = Path(results_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    # built by SQLAlchemy, so "?", "#" and "%" in the path are escaped, not read as a query
    return URL.create("sqlite", database=str(folder / "optuna.db")).render_as_string(
        hide_password=False
    )


def redact_url(url: str) -> str:
    """The storage URL with its password replaced by ``***`` (for logs and result rows)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: hide anything between ':' and '@'
        head, sep, tail = url.partition("://")
        if sep and "@" in tail:
            cred, at, rest = tail.rpartition("@")
            user = cred.split(":", 1)[0]
            return f"{head}://{user}:***@{rest}"
        return url


def normalize_url(url: str) -> str:
    """Pick an installed PostgreSQL driver for a driverless ``postgresql://`` URL.

    SQLAlchemy 2.1 maps ``postgresql://`` to psycopg 3; with only psycopg2 installed (the
    ``postgres`` extra) the URL becomes ``postgresql+psycopg2://``. ``postgres://`` is
    accepted as ``postgresql://``. Other URLs are returned unchanged.
    """
    import importlib.util

    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
            if importlib.util.find_spec(module) is not None:
                return f"postgresql+{driver}://" + url[len("postgresql://"):]
    return url


def heartbeat_interval() -> int:
    """Seconds between heartbeats of a running trial (``BENCHMARK_TUNE_HEARTBEAT``)."""
    raw = os.environ.get("BENCHMARK_TUNE_HEARTBEAT", "10")
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"BENCHMARK_TUNE_HEARTBEAT must be a whole number of seconds, not {raw!r}") from None
    if value < 1:
        raise ValueError(f"BENCHMARK_TUNE_HEARTBEAT must be at least 1 second, not {value}")
    return value


def make_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats (stale RUNNING trials of dead workers get failed).

    SQLite waits up to 60 s for a locked database (several local workers); other
    databases check pooled connections before use.
    """
    from sqlalchemy.engine import make_url

    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    interval = heartbeat_interval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=interval,
                grace_period=4 * interval,
            )
        except ImportError as exc:
            raise RuntimeError(
                f"storage {redact_url(url)}: its database driver is not installed ({exc}); "
                f"pip install psycopg2-binary (PostgreSQL) or pymysql (MySQL) into the venv"
            ) from exc


class StudyLock:
    """A lock shared by every worker of one study, wherever it runs.

    SQLite: an exclusive ``flock`` on ``<database>.lock`` (local processes; SQLite is a
    local file anyway). PostgreSQL: a session advisory lock keyed by the study name.
    MySQL/MariaDB: ``GET_LOCK``. Any other database: no lock (the budget can then be
    exceeded by at most one trial per extra worker).
    """

    def __init__(self, url: str, study_name: str) -> None:
        from sqlalchemy.engine import make_url

        self.url = url
        self.study_name = study_name
        u = make_url(url)
        self.backend = u.get_backend_name()
        self.database = u.database
        self._engine = None
        digest = hashlib.sha256(study_name.encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)

    def _get_engine(self):
        if self._engine is None:
            from sqlalchemy import create_engine

            self._engine = create_engine(self.url, pool_pre_ping=True)
        return self._engine

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if self.backend == "sqlite":
            if not self.database or self.database == ":memory:":
                yield
                return
            import fcntl

            with open(f"{self.database}.lock", "a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
        elif self.backend == "postgresql":
            from sqlalchemy import text

            with self._get_engine().connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                    conn.commit()
        elif self.backend in ("mysql", "mariadb"):
            from sqlalchemy import text

            name = f"optuna-{self.key & 0xFFFFFFFFFFFF:x}"
            with self._get_engine().connect() as conn:
                conn.execute(text("SELECT GET_LOCK(:n, 600)"), {"n": name})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": name})
        else:
            yield
