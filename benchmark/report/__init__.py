"""Paper-style reports from a results folder: tables, significance, figures, one web page.

``build_report(results_dir, out_dir)`` reads only ``results.jsonl`` and the per-user arrays
beside it (so it works for any model, plugins included) and writes::

    out_dir/
      tables.md        the paper's Table 2 per dataset and protocol (mean (s.e.), best in
                       bold, published rows with differences, strong protocol only),
                       significance against a reference model (Mult-VAE by default),
                       average ranks across datasets (per protocol), the ranking across
                       protocols (:mod:`.protocols`), provenance
      tables.tex       the result and significance tables for LaTeX (booktabs)
      index.html       one self-contained page: tables, figures (embedded), provenance
      figures/*.png    the figures, and the same as *.svg and *.pdf (vector, for LaTeX)
      report.json      what is in the report (table keys, figure files, warnings)

The same results give byte-identical ``tables.md`` and ``tables.tex``. Problems in the
results (a corrupt line, missing metrics or arrays, one model only, no results at all) give
a report of what is there plus warnings, in the outputs and via ``warnings.warn``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..fsutil import follow_umask
from .figures import FigureInfo, make_figures
from .html import render_html
from .load import Notes, ReportData, ReportWarning, load_results, restrict
from .protocols import protocol_figures, protocol_rankings, protocol_tables
from .ranks import critical_difference, nemenyi_q, rank_analyses, rank_analysis
from .render import render_latex, render_markdown
from .stats import Significance, holm, paired_tests, significance
from .tables import Table, build_tables

__all__ = [
    "ReportWarning",
    "build_report",
    "critical_difference",
    "nemenyi_q",
    "rank_analysis",
    "rank_analyses",
    "protocol_rankings",
    "holm",
    "load_results",
    "paired_tests",
    "significance",
]


def _write(path: Path, text: str) -> None:
    """Write a text file atomically with ``\\n`` line ends."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, path)


def build_report(
    results_dir: str | os.PathLike = "results",
    out_dir: str | os.PathLike = "reports",
    *,
    figures: bool = True,
    reference: str | None = None,
    models: list[str] | None = None,
    datasets: list[str] | None = None,
    exclude: list[str] | None = None,
    names: dict[str, str] | None = None,
    figure_models: list[str] | None = None,
) -> Path:
    """Render the report of a results folder.

    Args:
        results_dir: folder with ``results.jsonl`` (and ``arrays/``, ``optuna.db``).
        out_dir: where the report goes (created).
        figures: draw the figures (PNG + SVG); False for tables only.
        reference: the model every other model is tested against (default per dataset:
            multvae when present, else the best by validation NDCG@100).
        models, datasets, exclude: show only these models and datasets, less ``exclude``
            (tables, figures and tests; the opening lines say what else was read).
        names: {registry id: display name} over the names the rows recorded at the fit.
        figure_models: the models the activity-quintile figure shows beside the reference,
            which is always shown first (default None: the best model of each family).

    Raises:
        ValueError: a model or dataset named in ``models``, ``datasets``, ``exclude`` or
            ``figure_models`` has no row in the folder.

    Returns:
        the path of ``index.html``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Everything is made in a private folder inside ``out``, then moved in: two reports
    # into one folder never see each other's half-written files.
    stage = Path(tempfile.mkdtemp(prefix=".report-", dir=out))
    follow_umask(stage, directory=True)
    try:
        _build(results_dir, stage, figures=figures, reference=reference,
               scope={"models": models, "datasets": datasets, "exclude": exclude}, names=names,
               figure_models=figure_models)
        if figures:
            _swap_folder(stage / "figures", out / "figures", stage.name)
        for name in REPORT_FILES:
            os.replace(stage / name, out / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out / "index.html"


#: The files a report writes at the top of its folder (beside ``figures/``).
REPORT_FILES = ("tables.md", "tables.tex", "index.html", "report.json")


def _swap_folder(new: Path, target: Path, tag: str) -> None:
    """Replace ``target`` by ``new`` (both in one folder), retrying if another report
    swaps its own in at the same moment."""
    new.mkdir(exist_ok=True)
    for _ in range(5):
        old = target.with_name(f".{target.name}-old-{tag}")
        try:
            os.replace(target, old)
        except FileNotFoundError:
            pass
        try:
            os.replace(new, target)
            return
        except OSError:
            continue
        finally:
            shutil.rmtree(old, ignore_errors=True)
    raise OSError(f"could not put the new figures in place at {target}")


def _build(results_dir, out: Path, *, figures: bool, reference: str | None,
           scope: dict[str, list[str] | None] | None = None,
           names: dict[str, str] | None = None, figure_models: list[str] | None = None) -> None:
    """Render every file of the report into ``out`` (a fresh folder)."""
    notes = Notes()
    data: ReportData = load_results(results_dir, notes)
    if scope and any(scope.values()):
        restrict(data, **scope)
    if reference is not None and data.rows and reference not in {r["model"] for r in data.rows}:
        raise ValueError(f"--reference {reference}: no row of that model in {data.results_dir} "
                         f"(it has: {', '.join(sorted({r['model'] for r in data.rows}))})")
    shown = sorted({r["model"] for r in data.rows})
    unknown = sorted(set(figure_models or ()) - set(shown))
    if data.rows and unknown:
        raise ValueError(f"--figure-models: {', '.join(unknown)} not in the rows shown from "
                         f"{data.results_dir} (they have: {', '.join(shown)})")
    data.names = dict(names or {})
    sig: Significance = significance(data, reference=reference)
    ranks = rank_analyses(data)  # one per protocol, each over its own datasets
    rankings = protocol_rankings(data)  # a dataset under several protocols
    tables: list[Table] = build_tables(data, sig, ranks)
    at = next((i for i, t in enumerate(tables) if not t.latex), len(tables))
    tables[at:at] = protocol_tables(rankings)  # their own section, before the provenance
    fig_dir = out / "figures"
    figs: list[FigureInfo] = make_figures(data, fig_dir, ranks, references=sig.reference,
                                          figure_models=figure_models) if figures else []
    if figures:
        figs += protocol_figures(data, rankings, fig_dir)
    warns = list(notes.messages)
    _write(out / "tables.md", render_markdown(data, tables, warns, figs))
    _write(out / "tables.tex", render_latex(data, tables, warns))
    index = out / "index.html"
    _write(index, render_html(data, tables, figs, warns, fig_dir))
    manifest = {
        "tables": [{"key": t.key, "title": t.title, "rows": len(t.rows)} for t in tables],
        "figures": [
            {"key": f.key, "title": f.title, "png": f"figures/{f.png}", "svg": f"figures/{f.svg}",
             "pdf": f"figures/{f.pdf}"}
            for f in figs
        ],
        "warnings": warns,
        "rows_shown": len(data.rows),
        "rows_superseded": len(data.superseded),
        "datasets": data.datasets(),
    }
    _write(out / "report.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
