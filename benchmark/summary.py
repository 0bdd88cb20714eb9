"""The plain-text tables the commands print: ``run``'s results (the report has the full
ones), ``tune``'s studies, ``models --params`` and ``prepare``'s split statistics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .evaluate import DEFAULT_METRICS
from .results import row_label

__all__ = ["format_models", "format_table", "format_tuning", "format_params", "format_split", "format_datasets"]


def format_models() -> str:
    """``models``: each registered model's id, display name and description."""
    import benchmark.registry as registry

    reg = registry.discover()
    w = max(len(n) for n in reg)
    d = max(len(c.label_for_reports()) for c in reg.values())
    return "\n".join(f"{name.ljust(w)}  {reg[name].label_for_reports().ljust(d)}  {reg[name].description}"
                     + (" [iterative]" if reg[name].iterative else "") for name in sorted(reg))


def format_table(rows: list[dict[str, Any]], metrics: Sequence[str] = DEFAULT_METRICS) -> str:
    """A plain-text table of test metrics with validation NDCG@100, one line per model.

    One seed: mean ± s.e. over users. Several seeds: the mean over seeds ± the standard
    deviation over seeds (the report adds the s.e. over users of the per-user means). A
    model fitted once for several seeds (``same_fit_as``) is one fit: "3 (1 fit)", ± s.e.
    """
    by_model: dict[str, dict[str, list[dict]]] = {}
    for r in rows:
        by_model.setdefault(row_label(r, display=False), {}).setdefault(r["part"], []).append(r)
    header = ["model", "seeds", "valid ndcg@100"] + [f"test {m}" for m in metrics] + ["fit s"]
    lines = []
    for model, parts in by_model.items():
        test, valid = parts.get("test", []), parts.get("valid", [])
        fits = {r.get("same_fit_as") or r.get("run_key") for r in test}
        if len(fits) < len(test):  # seeds sharing one fit: count (and average) fits only
            seeds = f"{len(test)} ({len(fits)} fit{'s' if len(fits) > 1 else ''})"
            test = [r for r in test if not r.get("same_fit_as")]
            valid = [r for r in valid if not r.get("same_fit_as")]
        else:
            seeds = str(len(test))
        cells = [model, seeds, _fmt(_mean(valid, "ndcg@100"))]
        for m in metrics:
            if len(test) > 1:
                vals = [r["metrics"][m] for r in test if isinstance((r.get("metrics") or {}).get(m), (int, float))]
                sd = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
                cells.append(_fmt(_mean(test, m), sd, "sd"))
            else:
                cells.append(_fmt(_mean(test, m), test[0].get("sem", {}).get(m) if test else None))
        fs = [r["fit_seconds"] for r in test if isinstance(r.get("fit_seconds"), (int, float))]
        cells.append(f"{np.mean(fs):.1f}" if fs else "")
        lines.append(cells)
    lines.sort(key=lambda c: c[2 + len(metrics)], reverse=True)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths))]
    out.append("-+-".join("-" * w for w in widths))
    out += [" | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) for cells in lines]
    return "\n".join(out)


def _mean(rows: list[dict[str, Any]], metric: str) -> float | None:
    vals = [r["metrics"][metric] for r in rows
            if isinstance((r.get("metrics") or {}).get(metric), (int, float))]
    return float(np.mean(vals)) if vals else None


def _fmt(mean: Any, sem: Any = None, what: str = "") -> str:
    if not isinstance(mean, (int, float)):
        return "-"
    return f"{mean:.4f}" + (f" ± {sem:.4f}{' ' + what if what else ''}" if isinstance(sem, (int, float)) else "")


def format_tuning(results: list[tuple[str, dict[str, Any]]]) -> str:
    """A table per model: defaults vs best validation NDCG@100, trial counts, seconds."""
    from .tuning.workers import _short as short_value

    header = ["model", "defaults ndcg@100", "best ndcg@100", "best trial", "complete", "pruned",
              "failed", "tuning s"]
    rows = []
    for name, info in results:
        dv, bv = info.get("default_value"), info.get("best_value")
        rows.append([
            name,
            f"{dv:.4f}" if isinstance(dv, float) else (info.get("default_state") or "-").lower(),
            f"{bv:.4f}" if isinstance(bv, float) else "-",
            f"#{info['best_trial']}" if info.get("best_trial") is not None else "-",
            str(info["complete"]),
            str(info["pruned"]),
            str(info["failed"]),
            f"{info['seconds']:.1f}",
        ])
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths)), "-+-".join("-" * w for w in widths)]
    out += [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    for name, info in results:
        params = info.get("best_params") or {}
        ps = ", ".join(f"{k}={short_value(v)}" for k, v in params.items()) or "(no search space)"
        out.append(f"{name}: best trial #{info.get('best_trial')} value {info.get('best_value'):.6f}"
                   f"  {ps}  [study {info['study']}]")
    return "\n".join(out)


def format_params(cls: type) -> str:
    """``models --params NAME``: each parameter, its default, its type and its search range."""
    import inspect

    from .tuning import probe_distributions

    sig = inspect.signature(cls.__init__)
    space = probe_distributions(cls)
    rows = [("parameter", "default", "type", "search space (tune)")]
    for p in sig.parameters.values():
        if p.name == "self" or p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            continue
        ann = p.annotation if p.annotation is not inspect.Parameter.empty else ""
        default = cls.default_params().get(p.name, "(required)")
        rows.append((p.name, repr(default), str(ann), space.get(p.name, "")))
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    out = [f"{cls.name}: {cls.description}"]
    out += ["  " + "  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip() for r in rows]
    out.append(f"  (set one with --param {cls.name}.NAME=VALUE)")
    return "\n".join(out)


def format_split(split: Any) -> str:
    """``prepare``'s statistics of a split, one line each."""
    s = split.stats()
    c = split.meta.get("counts", {})
    out = [
        f"dataset            {s['dataset']}",
        f"users              {s['users']:,}",
        f"items              {s['items']:,}  (items of training users; {s['items_after_filter']:,} after the filters)",
        f"interactions       {s['interactions']:,}  (after the filters; {s['interactions_in_split']:,} kept by the split)",
        f"density            {s['density']:.4%}",
        f"train users        {s['train_users']:,}  ({s['train_interactions']:,} interactions)",
        f"valid users        {s['valid_users']:,}  ({s['valid_heldout_interactions']:,} held-out interactions)",
        f"test users         {s['test_users']:,}  ({s['test_heldout_interactions']:,} held-out interactions)",
        f"split hash         {s['split_hash']}  (seed {split.meta.get('seed')})",
    ]
    kinds = {part: "integers" if np.asarray(ids).dtype.kind in "iu" else "text"
             for part, ids in (("users", split.users.get("train", [])), ("items", split.items))}
    out.append(f"ids                users read as {kinds['users']}, items as {kinds['items']}"
               + ("  (text: an id that is not a plain integer, e.g. '07', keeps them all as "
                  "written, so '07' and '7' stay apart)" if "text" in kinds.values() else ""))
    if c:
        out.append(f"raw rows           {c.get('raw_rows', 0):,}  -> positives {c.get('positives', 0):,}")
    return "\n".join(out)


def format_datasets(data_dir: str) -> str:
    """``datasets``: each dataset, whether its raw and processed data are on disk, its source."""
    from pathlib import Path

    from .data import dataset_dir, dataset_names, get_dataset

    rows = []
    for name in dataset_names():
        spec = get_dataset(name)
        root = dataset_dir(spec, data_dir)
        raw = "generated" if spec.generated else ("yes" if spec.raw_present(root / "raw") else "no")
        processed = "yes" if any((root / "processed").glob("*/meta.json")) else "no"
        rows.append((name, raw, processed, spec.description, spec.source))
    w = max(len(r[0]) for r in rows)
    out = [f"{'name'.ljust(w)}  raw        processed  description / source"]
    for name, raw, processed, desc, src in rows:
        out.append(f"{name.ljust(w)}  {raw.ljust(9)}  {processed.ljust(9)}  {desc}")
        out.append(f"{''.ljust(w)}  {''.ljust(9)}  {''.ljust(9)}  source: {src}")
    out.append(f"\ndata root: {Path(data_dir).resolve()}  (raw files go in <root>/<name>/raw/)")
    return "\n".join(out)
