"""Read a results folder for the report: pick the rows to show, load per-user arrays, warn.

Which rows are shown: for each (dataset, model, part, split hash, epoch cap) the LAST row
in ``results.jsonl`` (append order, i.e. the latest) names the configuration shown (its
``config_key``: parameters, epochs, code, version); every seed of that configuration is
shown, averaged (the latest row per seed). Older rows (other configurations, reruns of a
seed) are counted as superseded and listed in the report. Rows fitted with ``--epochs``
below the model's own count are a separate entry labelled "capped at N epochs", never
merged with or passed off as full runs. Rows on different splits of the same dataset are
kept side by side and labelled with their split hash.

Protocols (``--protocol``): a row of a protocol other than the paper's strong one (no
``protocol`` key) is its own dataset, ``row["dataset"]`` = ``"ml-100k (weak)"``, the recorded
name kept in ``row["dataset_id"]`` (see :meth:`ReportData.protocol` and :meth:`ReportData.base`).

Several seeds of one configuration become one row: ``metrics`` is the mean over seeds of
each seed's mean; ``sem`` the standard error over users of each user's mean over seeds;
``seed_sd`` the standard deviation (ddof 1) of the seeds' means; its per-user arrays are
the users' means over seeds (what the significance tests pair); ``seeds`` lists them. Seeds
whose rows reuse one fit (``same_fit_as``: a model whose fit has no randomness given the
split) count as that one fit, shown once.

Nothing here raises on bad input: unreadable lines, rows without the fields the report
needs, missing metrics and missing or unreadable per-user arrays each become a warning
(``warnings.warn`` with :class:`ReportWarning`, and a line in the report's warnings section).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..results import RESULTS_FILE, SCHEMA_VERSION, ResultStore, capped_epochs, inside, row_label

TABLE_METRICS: tuple[str, ...] = ("recall@20", "recall@50", "ndcg@100")
METRIC_LABELS: dict[str, str] = {
    "recall@20": "Recall@20",
    "recall@50": "Recall@50",
    "ndcg@100": "NDCG@100",
}
BASELINE = "multvae"
#: Order of datasets in the report: the paper's first, then the rest alphabetically.
PAPER_DATASETS = ("ml-20m", "netflix", "msd")
#: The evaluation protocols, in report order (``strong`` is the paper's, section 4.2).
PROTOCOLS = ("strong", "weak", "temporal", "leave-last-out")
PROTOCOL_NAMES = {"strong": "strong generalisation", "weak": "weak generalisation",
                  "temporal": "temporal split", "leave-last-out": "leave-last-out"}
STRONG = "strong"


def protocol_name(protocol: str) -> str:
    """How a protocol is named in captions: "weak generalisation", ..."""
    return PROTOCOL_NAMES.get(protocol, protocol)


def _protocol_order(protocol: str) -> tuple[int, str]:
    return (PROTOCOLS.index(protocol), "") if protocol in PROTOCOLS else (len(PROTOCOLS), protocol)


class ReportWarning(UserWarning):
    """Something in the results folder the report could not use as is."""


@dataclass
class Notes:
    """Warnings collected while building a report (also emitted with ``warnings.warn``)."""

    messages: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        if message not in self.messages:
            self.messages.append(message)
            warnings.warn(message, ReportWarning, stacklevel=3)


def number(x: Any) -> float | None:
    """A finite float, or None (missing, null, NaN, text)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    f = float(x)
    return f if math.isfinite(f) else None


@dataclass
class ReportData:
    """The rows a report shows, and access to their per-user arrays.

    Attributes:
        results_dir: the results folder.
        rows: selected rows (latest per dataset, model, part, split hash), in file order.
        superseded: older rows of the same keys, not shown.
        n_lines: rows read from ``results.jsonl`` (readable ones).
        notes: the warnings.
        scope: what ``report --models/--datasets/--exclude`` kept ("" for everything).
        left_out: entries read but left out by that scope.
        names: display names over the recorded ones (``report --names id=Name``).
    """

    results_dir: Path
    rows: list[dict[str, Any]]
    superseded: list[dict[str, Any]]
    n_lines: int
    notes: Notes
    scope: str = ""
    left_out: int = 0
    names: dict[str, str] = field(default_factory=dict)
    _arrays: dict[str, dict[str, np.ndarray] | None] = field(default_factory=dict)

    # --- selections -----------------------------------------------------------------------
    def datasets(self, protocol: str | None = None) -> list[str]:
        """Dataset labels: the paper's datasets first, then the rest alphabetically, each
        under its protocols in :data:`PROTOCOLS` order; only ``protocol``'s when given."""
        labels = {r["dataset"]: (r.get("dataset_id", r["dataset"]), r.get("protocol", STRONG))
                  for r in self.rows}
        if protocol is not None:
            labels = {k: v for k, v in labels.items() if v[1] == protocol}
        bases = {b for b, _ in labels.values()}
        order = [d for d in PAPER_DATASETS if d in bases] + sorted(bases - set(PAPER_DATASETS))
        return sorted(labels, key=lambda k: (order.index(labels[k][0]), _protocol_order(labels[k][1])))

    def protocols(self) -> list[str]:
        """The protocols of the rows shown, strong (the paper's) first."""
        return sorted({r.get("protocol", STRONG) for r in self.rows}, key=_protocol_order)

    def protocol(self, dataset: str) -> str:
        """The protocol of a dataset label ("strong" for the paper's)."""
        return next((r.get("protocol", STRONG) for r in self.rows if r["dataset"] == dataset), STRONG)

    def base(self, dataset: str) -> str:
        """The dataset name a label's rows recorded ("ml-100k" for "ml-100k (weak)")."""
        return next((r.get("dataset_id", dataset) for r in self.rows if r["dataset"] == dataset), dataset)

    def part_rows(self, dataset: str, part: str = "test") -> list[dict[str, Any]]:
        return [r for r in self.rows if r["dataset"] == dataset and r["part"] == part]

    def split_hashes(self, dataset: str, part: str = "test") -> list[str]:
        """Split hashes of a dataset, the main one first (most models; ties: latest)."""
        rows = self.part_rows(dataset, part)
        stats: dict[str, tuple[int, int]] = {}
        for r in rows:
            n, last = stats.get(r["split_hash"], (0, -1))
            stats[r["split_hash"]] = (n + 1, max(last, r["_line"]))
        return sorted(stats, key=lambda h: (-stats[h][0], -stats[h][1], h))

    def main_split(self, dataset: str, part: str = "test") -> str | None:
        hashes = self.split_hashes(dataset, part) or self.split_hashes(dataset, "valid")
        return hashes[0] if hashes else None

    def label(self, row: dict[str, Any]) -> str:
        """Model name, "[capped at N epochs]" for capped rows, and the split hash when the
        dataset has rows on several splits."""
        label = row_label(row, self.names)
        if row.get("tuning") and any(r["model"] == row["model"] and not r.get("tuning")
                                     and r["dataset"] == row["dataset"] for r in self.rows):
            label += " [tuned]"  # beside the same model's row with its defaults
        if len(self.split_hashes(row["dataset"], row["part"])) > 1:
            return f"{label} [split {str(row['split_hash'])[:8]}]"
        return label

    def partner(self, row: dict[str, Any], part: str) -> dict[str, Any] | None:
        """The row of the same dataset, model, split and epoch cap for another part."""
        for r in self.rows:
            if _entry(r)[:2] + _entry(r)[3:] == _entry(row)[:2] + _entry(row)[3:] and r["part"] == part:
                return r
        return None

    def capped(self) -> list[dict[str, Any]]:
        """Shown rows fitted below their model's own epoch count."""
        return [r for r in self.rows if capped_epochs(r) is not None]

    # --- seeds --------------------------------------------------------------------------------
    def combine_seeds(self, members: list[dict[str, Any]]) -> dict[str, Any]:
        """One row for several seeds of one configuration (see the module docstring)."""
        last = members[-1]
        if len(members) == 1:
            return dict(last, seeds=last.get("shared_seeds") or [last.get("seed")], n_seeds=1)
        row = dict(last)
        row["id"] = f"seeds-{last['id']}"
        row["member_ids"] = [str(m["id"]) for m in members]
        row["seeds"] = sorted((m.get("seed") for m in members), key=lambda x: (x is None, x))
        row["n_seeds"] = len(members)
        row["arrays"] = None
        names = sorted({k for m in members for k in m["metrics"]})
        metrics, sem, sd = {}, {}, {}
        for k in names:
            vals = [number(m["metrics"].get(k)) for m in members]
            if any(v is None for v in vals):
                continue
            metrics[k] = float(np.mean(vals))
            sd[k] = float(np.std(vals, ddof=1))
        fits = [number(m.get("fit_seconds")) for m in members]
        if all(f is not None for f in fits):
            row["fit_seconds"] = float(np.mean(fits))
        arrays = [self.arrays(m) for m in members]
        per_user: dict[str, np.ndarray] | None = None
        if all(a is not None and "users" in a for a in arrays):
            users = arrays[0]["users"]
            for a in arrays[1:]:
                users = np.intersect1d(users, a["users"])
            per_user = {"users": users}
            pos = [_positions(np.asarray(a["users"]), users) for a in arrays]
            if "fold_in_size" in arrays[0]:
                per_user["fold_in_size"] = np.asarray(arrays[0]["fold_in_size"])[pos[0]]
            for k in names:
                if all(k in a for a in arrays):
                    stacked = np.stack([np.asarray(a[k], dtype=np.float64)[p] for a, p in zip(arrays, pos, strict=True)])
                    per_user[k] = stacked.mean(axis=0)
                    if k in metrics and len(users) > 1:
                        sem[k] = float(per_user[k].std(ddof=1) / np.sqrt(len(users)))
        else:
            self.notes.warn(
                f"{row['model']} on {row['dataset']} ({row['part']}): per-user arrays of some "
                f"seeds are missing, so its standard error is the mean of the seeds' and it is "
                f"not paired in the significance tests"
            )
            for k in metrics:
                ses = [number(m["sem"].get(k)) for m in members]
                if all(v is not None for v in ses):
                    sem[k] = float(np.mean(ses))
        row["metrics"], row["sem"], row["seed_sd"] = metrics, sem, sd
        self._arrays[row["id"]] = per_user
        return row

    # --- per-user arrays ------------------------------------------------------------------
    def arrays(self, row: dict[str, Any]) -> dict[str, np.ndarray] | None:
        """Per-user arrays of a row (metric -> (n_users,), ``users``, ``fold_in_size``).

        Returns None, with a warning, when the file is missing or unreadable.
        """
        rid = str(row.get("id"))
        if rid in self._arrays:
            return self._arrays[rid]
        rel = row.get("arrays") or f"arrays/{rid}.npz"
        out: dict[str, np.ndarray] | None = None
        try:  # never opened outside the results folder ("../../etc/passwd", "/etc/passwd")
            path = inside(self.results_dir, rel, "arrays")
        except ValueError as exc:
            self.notes.warn(f"row {rid} ({row['model']} on {row['dataset']}, {row['part']}): {exc}; "
                            "its per-user arrays are not read")
            self._arrays[rid] = None
            return None
        if not path.is_file():
            self.notes.warn(
                f"per-user arrays of {row['model']} on {row['dataset']} ({row['part']}) are "
                f"missing ({rel}): it is left out of the significance tests and the "
                f"activity-quintile figure"
            )
        else:
            try:
                with np.load(path, allow_pickle=False) as z:
                    out = {k: np.asarray(z[k]) for k in z.files}
            except Exception as exc:  # corrupt zip, truncated file, ...
                self.notes.warn(
                    f"per-user arrays of {row['model']} on {row['dataset']} ({row['part']}) "
                    f"could not be read ({rel}: {type(exc).__name__}: {exc}); they are left out"
                )
        self._arrays[rid] = out
        return out


def _clean_row(row: dict[str, Any], lineno: int, notes: Notes) -> dict[str, Any] | None:
    """Check the fields the report relies on; fill safe defaults; None if unusable."""
    missing = [k for k in ("dataset", "model", "part") if not isinstance(row.get(k), str)]
    if missing:
        notes.warn(
            f"{RESULTS_FILE} line {lineno}: a row without {', '.join(missing)} was skipped"
        )
        return None
    if row["part"] not in ("valid", "test"):
        notes.warn(
            f"{RESULTS_FILE} line {lineno}: part {row['part']!r} of {row['model']} is neither "
            f"'valid' nor 'test'; skipped"
        )
        return None
    version = row.get("schema_version", 1)  # rows before the schema had a version: 1
    if isinstance(version, int) and version > SCHEMA_VERSION:
        notes.warn(
            f"{RESULTS_FILE} line {lineno}: {row['model']} on {row['dataset']} was written by a "
            f"newer cf-benchmark (row schema {version}, this one reads up to {SCHEMA_VERSION}); "
            f"shown as far as it is understood: upgrade to report it fully"
        )
    r = dict(row)
    r["_line"] = lineno
    proto = r.get("protocol")
    if proto is not None and proto != STRONG:  # shown as a dataset of its own
        r["protocol"] = str(proto)
        r["dataset_id"] = r["dataset"]
        r["dataset"] = f"{r['dataset']} ({proto})"
    else:
        r.pop("protocol", None)
    r["split_hash"] = str(r.get("split_hash") or "unknown")
    r.setdefault("id", f"line{lineno}")
    for key in ("metrics", "sem"):
        if not isinstance(r.get(key), dict):
            if key == "metrics":
                notes.warn(
                    f"{RESULTS_FILE} line {lineno}: {r['model']} on {r['dataset']} "
                    f"({r['part']}) has no metrics"
                )
            r[key] = {}
    return r


def load_results(results_dir: str | Path, notes: Notes | None = None) -> ReportData:
    """Read and select the rows of a results folder (never raises on bad content).

    Args:
        results_dir: folder holding ``results.jsonl`` and ``arrays/``.
        notes: where warnings go (a new collector when None).
    """
    notes = notes or Notes()
    d = Path(results_dir)
    store = ResultStore(d)
    raw: list[tuple[int, dict[str, Any]]] = []
    if not d.exists():
        notes.warn(
            f"results folder {d} does not exist: run `python -m benchmark run --models ... "
            f"--dataset ... --results-dir {d}` first, or pass --results-dir"
        )
    elif not store.path.exists():
        notes.warn(
            f"no {RESULTS_FILE} in {d}: run `python -m benchmark run ...` first, or pass the "
            f"folder that holds it with --results-dir"
        )
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rows = store.rows(warn=True)
        for w in caught:
            text = str(w.message)
            text = text.replace(str(store.path), RESULTS_FILE)  # no machine paths in outputs
            notes.warn(text)
        # Line numbers of readable rows (ResultStore skips blank and corrupt lines).
        lines = _readable_line_numbers(store.path)
        if len(lines) != len(rows):  # should not happen; fall back to positions
            lines = list(range(1, len(rows) + 1))
        raw = list(zip(lines, rows, strict=True))
        if not rows:
            notes.warn(f"{d / RESULTS_FILE} has no readable result rows")
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for lineno, row in raw:
        r = _clean_row(row, lineno, notes)
        if r is not None:
            groups.setdefault(_entry(r), []).append(r)
    superseded: list[dict[str, Any]] = []
    chosen: list[list[dict[str, Any]]] = []
    for rows_k in groups.values():
        last = rows_k[-1]
        ck = last.get("config_key")
        members = [r for r in rows_k if ck and r.get("config_key") == ck] or [last]
        per_seed: dict[Any, dict[str, Any]] = {}
        for r in members:
            per_seed[r.get("seed")] = r  # the latest row of each seed
        per_fit: dict[Any, list[dict[str, Any]]] = {}
        for r in per_seed.values():  # seeds that reuse one fit (same_fit_as) are one fit
            per_fit.setdefault(r.get("same_fit_as") or r.get("run_key") or id(r), []).append(r)
        keep = sorted((dict(f[0], shared_seeds=sorted(x.get("seed") for x in f)) if len(f) > 1
                       else f[0] for f in per_fit.values()), key=lambda r: r["_line"])
        kept = {id(r) for r in per_seed.values()}
        superseded += [r for r in rows_k if id(r) not in kept]
        chosen.append(keep)
    data = ReportData(d, [], sorted(superseded, key=lambda r: r["_line"]), len(raw), notes)
    data.rows = sorted((data.combine_seeds(m) for m in chosen), key=lambda r: r["_line"])
    for r in data.rows:
        absent = [m for m in TABLE_METRICS if number(r["metrics"].get(m)) is None]
        if absent and r["metrics"]:
            notes.warn(
                f"{r['model']} on {r['dataset']} ({r['part']}) has no value for "
                f"{', '.join(absent)}; shown as '-'"
            )
    return data


def restrict(data: ReportData, *, models: list[str] | None = None,
             datasets: list[str] | None = None, exclude: list[str] | None = None) -> ReportData:
    """Keep only the rows of ``models`` on ``datasets``, less ``exclude`` (in place).

    Raises:
        ValueError: a named model or dataset has no row in the folder (naming those it has).
    """
    have_models = {r["model"] for r in data.rows}
    have_data = {r["dataset"] for r in data.rows} | {r.get("dataset_id", r["dataset"]) for r in data.rows}
    problems = []
    for option, names, have in (("--models", models, have_models), ("--datasets", datasets, have_data),
                                ("--exclude", exclude, have_models)):
        missing = sorted(set(names or ()) - have)
        if missing:
            problems.append(f"{option}: {', '.join(missing)} not in {data.results_dir} "
                            f"(it has: {', '.join(sorted(have)) or 'no rows'})")
    if problems:
        raise ValueError("; ".join(problems))

    def keep(r: dict[str, Any]) -> bool:
        return ((models is None or r["model"] in models)
                and (datasets is None or r["dataset"] in datasets
                     or r.get("dataset_id", r["dataset"]) in datasets)
                and r["model"] not in (exclude or ()))

    before = len(data.rows)
    data.rows = [r for r in data.rows if keep(r)]
    data.superseded = [r for r in data.superseded if keep(r)]
    data.left_out = before - len(data.rows)
    data.scope = "; ".join(f"{what} {', '.join(v)}" for what, v in (
        ("models", models), ("datasets", datasets), ("excluding", exclude)) if v)
    return data


def _entry(r: dict[str, Any]) -> tuple:
    """What one shown entry is: dataset, model, part, split hash, epoch cap, and whether it
    was tuned (a tuned row and a default row of one model are shown apart)."""
    return (r["dataset"], r["model"], r["part"], r["split_hash"], capped_epochs(r), bool(r.get("tuning")))


def _positions(users: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Positions of ``wanted`` users in an unsorted ``users`` array."""
    order = np.argsort(users, kind="stable")
    return order[np.searchsorted(users[order], wanted)]


def _readable_line_numbers(path: Path) -> list[int]:
    import json

    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                if isinstance(json.loads(line), dict):
                    out.append(lineno)
            except ValueError:
                pass
    return out
