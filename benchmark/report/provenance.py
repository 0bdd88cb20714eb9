"""The report's provenance tables: tuning, runs, parameters and environment.

Each is a :class:`~benchmark.report.cells.Table` (HTML and Markdown only, never in
``tables.tex``) built from the rows alone, so the same results give the same tables; the
result, significance and rank tables are in :mod:`benchmark.report.tables`.
"""

from __future__ import annotations

from typing import Any

from ..results import capped_epochs, how_set
from ..units import fmt_seconds
from .cells import DASH, Cell, Row, Table, compact_json, fmt, fmt_int
from .load import ReportData, number


def tuning_summary(t: dict[str, Any]) -> dict[str, Any]:
    """Normalise the tuning record of a row (its fields vary with the tuner's version)."""
    trials = t.get("trials") if isinstance(t.get("trials"), dict) else {}

    def count(*names: str) -> Any:
        for n in names:
            for src in (trials, t):
                if n in src and number(src[n]) is not None:
                    return src[n]
        return None

    best = t.get("best_params", t.get("best", t.get("params")))
    return {
        "complete": count("complete", "n_complete", "completed"),
        "pruned": count("pruned", "n_pruned"),
        "failed": count("failed", "n_failed", "fail"),
        "seconds": count("seconds", "tuning_seconds", "duration"),
        "best_value": count("best_value", "value"),
        "best_params": best if isinstance(best, dict) else None,
        "study": t.get("study") or t.get("study_name"),
    }


def tuning_table(data: ReportData) -> Table | None:
    rows = []
    for r in data.rows:
        t = r.get("tuning")
        if r["part"] != "test" or not isinstance(t, dict):
            continue
        s = tuning_summary(t)
        rows.append(
            Row(
                [
                    Cell(r["dataset"]),
                    Cell(data.label(r)),
                    Cell(f"{fmt_int(s['complete'])} / {fmt_int(s['pruned'])} / {fmt_int(s['failed'])}"),
                    Cell(fmt_seconds(s["seconds"], unit=False, missing=DASH)),
                    Cell(fmt(s["best_value"])),
                    Cell(compact_json(s["best_params"], digits=4) if s["best_params"] is not None else DASH, code=True),
                ]
            )
        )
    if not rows:
        return None
    return Table(
        key="tuning",
        title="Tuning",
        header=["Dataset", "Model", "Trials (complete / pruned / failed)", "Seconds", "Best valid NDCG@100", "Best parameters"],
        rows=rows,
        align="llrrrl",
        notes=["Optuna studies on validation NDCG@100; test users are never seen by tuning."],
        latex=False,
    )


def runs_table(data: ReportData) -> Table | None:
    """Provenance: one line per dataset x model x split (test row, with its valid partner)."""
    rows = []
    done = set()
    for r in sorted(data.rows, key=lambda r: (data.datasets().index(r["dataset"]), r["_line"])):
        key = (r["dataset"], r["model"], r["split_hash"], capped_epochs(r))
        if key in done:
            continue
        done.add(key)
        test = r if r["part"] == "test" else data.partner(r, "test")
        valid = r if r["part"] == "valid" else data.partner(r, "valid")
        main = test or valid
        assert main is not None
        commit = main.get("git_commit")
        rows.append(
            Row(
                [
                    Cell(r["dataset"]),
                    Cell(data.label(r)),
                    Cell(f"{r['split_hash'][:8]}" + (f" (seed {main['split_seed']})" if main.get("split_seed") is not None else "")),
                    Cell(", ".join(str(x) for x in main.get("seeds") or [main.get("seed", DASH)])),
                    Cell(fmt(valid["metrics"].get("ndcg@100")) if valid else DASH),
                    Cell(fmt(test["metrics"].get("ndcg@100")) if test else DASH),
                    Cell(fmt_seconds(main.get("fit_seconds"), unit=False, missing=DASH)),
                    Cell(fmt_seconds(test.get("score_seconds"), unit=False, missing=DASH) if test else DASH),
                    Cell(str(main.get("device", DASH))),
                    Cell(
                        f"{fmt_int(test.get('n_users'))} ({fmt_int(test.get('n_excluded'))})" if test else DASH
                    ),
                    Cell(str(commit)[:10] if commit else DASH, code=bool(commit)),
                    Cell(str(main.get("timestamp", DASH))),
                ]
            )
        )
    if not rows:
        return None
    return Table(
        key="runs",
        title="Runs (provenance)",
        header=[
            "Dataset", "Model", "Split (seed)", "Seeds", "Valid NDCG@100", "Test NDCG@100",
            "Fit s", "Score s", "Device", "Test users (excl.)", "Commit", "Time",
        ],
        rows=rows,
        align="lllrrrrrlrll",
        notes=[
            "Fit s: wall time of fit (training users, best epoch on validation; the mean over "
            "seeds); Score s: scoring and metrics on the test users. Users excluded have no "
            "held-out items."
        ],
        latex=False,
    )


def used_params(row: dict[str, Any]) -> dict[str, Any]:
    """The parameters a row was fitted with, its epoch count the one actually used."""
    p = row.get("params")
    if not isinstance(p, dict):
        return p
    p = dict(p)
    e = row.get("epochs")
    cap = capped_epochs(row)
    if cap is not None:
        name = e.get("param", "epochs") if isinstance(e, dict) else "epochs"
        p[name] = f"{cap} (capped by --epochs; model default {p.get(name)})"
    return p


def params_table(data: ReportData) -> Table | None:
    rows = []
    seen = set()
    for r in data.rows:
        key = (r["dataset"], r["model"], r["split_hash"], capped_epochs(r), bool(r.get("tuning")))
        if key in seen:
            continue
        seen.add(key)
        p = used_params(r)
        rows.append(Row([Cell(r["dataset"]), Cell(data.label(r)), Cell(how_set(r)),
                         Cell(compact_json(p, digits=4) if p else "{}", code=True)]))
    if not rows:
        return None
    return Table(key="params", title="Parameters", header=["Dataset", "Model", "Set by", "Parameters"],
                 rows=rows, align="llll", latex=False,
                 notes=["The parameters each row was fitted with; a capped row shows the epochs it ran."])


def environment_table(data: ReportData) -> Table | None:
    if not data.rows:
        return None

    def uniq(key: str, render) -> str:
        vals = sorted({render(r.get(key)) for r in data.rows if r.get(key) not in (None, "", {})})
        return "; ".join(vals) if vals else DASH

    versions = uniq("versions", lambda v: ", ".join(f"{k} {v[k]}" for k in sorted(v)) if isinstance(v, dict) else str(v))
    hardware = uniq("hardware", lambda v: ", ".join(f"{k}: {v[k]}" for k in sorted(v)) if isinstance(v, dict) else str(v))
    seeds = sorted(
        {int(x) for r in data.rows for x in (r.get("seeds") or [r.get("seed")]) if isinstance(x, int)}
    )
    seeds = [str(x) for x in seeds]
    splits = sorted({f"{r['dataset']} {r['split_hash'][:16]}" + (f" (seed {r['split_seed']})" if r.get("split_seed") is not None else "") for r in data.rows})
    stamps = sorted(str(r["timestamp"]) for r in data.rows if r.get("timestamp"))
    fit_total = sum(number(r.get("fit_seconds")) or 0.0 for r in data.rows if r["part"] == "test")
    items = [
        ("Datasets and split hashes", "; ".join(splits)),
        ("Model seeds", ", ".join(seeds) or DASH),
        ("Versions", versions),
        ("Git commits", uniq("git_commit", str)),
        ("Hardware", hardware),
        ("Devices", uniq("device", str)),
        ("Runs between", f"{stamps[0]} and {stamps[-1]}" if stamps else DASH),
        ("Total fit time", f"{fmt_seconds(fit_total, unit=False, missing=DASH)} s"),
    ]
    return Table(
        key="environment",
        title="Environment",
        header=["", ""],
        rows=[Row([Cell(k), Cell(v)]) for k, v in items],
        align="ll",
        latex=False,
    )
