"""The report's tables as plain objects (rendered to Markdown, LaTeX and HTML elsewhere).

Every table is built once as a :class:`Table` (cells with bold and significance marks) and
rendered three ways (Markdown and LaTeX (booktabs) in :mod:`benchmark.report.render`, HTML
in :mod:`benchmark.report.html`), so the three outputs always agree. Rendering is a pure
function of the results: no dates, paths or dictionary-order effects, so the same results
give byte-identical ``tables.md``/``tables.tex``.

The result, significance and rank tables are built here; the provenance tables (tuning,
runs, parameters, environment) in :mod:`benchmark.report.provenance`.
"""

from __future__ import annotations

import math
from typing import Any

from ..reference import MODEL_TO_METHOD, load_published, published_for, source_label
from ..results import capped_epochs, how_set
from .cells import (  # noqa: F401  (the table builders' vocabulary, re-exported)
    DASH,
    Cell,
    Row,
    Table,
    _cell,
    compact_json,
    fmt,
    fmt_diff,
    fmt_int,
    fmt_p,
    fmt_pub,
    slug,
)
from .effects import RESAMPLES, Effect
from .effects import SEED as BOOT_SEED
from .load import METRIC_LABELS, STRONG, TABLE_METRICS, ReportData, number, protocol_name
from .provenance import environment_table, params_table, runs_table, tuning_table
from .ranks import RankAnalysis, model_entries
from .stats import ALPHA, MARK_DOWN, MARK_T, MARK_UP, MARK_W, Comparison, Significance


def _ours_by_model(data: ReportData, dataset: str) -> dict[str, dict[str, Any]]:
    """Our full (not capped) test row of each model on the dataset's main split, for the
    differences from published numbers: a capped run is never set against them."""
    return {m: r for m, r in model_entries(data, dataset).items() if capped_epochs(r) is None}


def results_table(data: ReportData, sig: Significance, dataset: str) -> Table:
    """The paper's Table 2 block for one dataset: our models, then the published rows."""
    rows = data.part_rows(dataset, "test")

    def sort_key(r: dict[str, Any]) -> tuple:
        v = number(r["metrics"].get("ndcg@100"))
        return (v is None, -(v or 0.0), data.label(r))

    rows = sorted(rows, key=sort_key)
    best = {}
    for m in TABLE_METRICS:
        vals = [round(v, 4) for r in rows if (v := number(r["metrics"].get(m))) is not None]
        best[m] = max(vals) if vals else None
    out: list[Row] = []
    for r in rows:
        tags = []
        if r.get("n_seeds", 1) > 1:
            tags.append(f"{r['n_seeds']} seeds")
        tags.append(how_set(r))
        if r.get("replaces"):  # a plugin took a built-in's name on purpose
            tags.append(f"plugin replacing the built-in {r['model']}")
        if r.get("shared_seeds") and r.get("n_seeds", 1) == 1:  # fit_uses_seed False: one fit serves every seed
            tags.append(f"one fit for seeds {', '.join(map(str, r['shared_seeds']))}")
        if sig.is_reference(r):
            tags.append("reference")
        cells = [Cell(data.label(r), sub=f"({', '.join(tags)})" if tags else "")]
        for m in TABLE_METRICS:
            v = number(r["metrics"].get(m))
            se = number(r["sem"].get(m))
            sd = number((r.get("seed_sd") or {}).get(m))
            if v is None:
                cells.append(Cell(DASH))
                continue
            sub = ""
            if se is not None:
                sub = f"({fmt(se)}; sd {fmt(sd)})" if sd is not None else f"({fmt(se)})"
            cells.append(
                Cell(
                    fmt(v),
                    sub=sub,
                    bold=round(v, 4) == best[m] and len(rows) > 1,
                    marks=sig.marks(r, m),
                )
            )
        out.append(Row(cells))
    ours = _ours_by_model(data, dataset)
    published = [e for e in _published(data, dataset) if not e.get("only_if_run") or e.get("model") in ours]
    if published:
        out.append(Row([], section="Published, same protocol and metric code (Δ = ours - published)"))
        for e in published:
            label = f"{e['method']}, {source_label(e)}"
            cells = [Cell(label)]
            mine = ours.get(e.get("model") or "")
            for m in TABLE_METRICS:
                v = number(e.get(m))
                if v is None:
                    cells.append(Cell(e.get("note") or DASH))
                    continue
                text = f"~{v:g}" if e.get("note") == "about" else fmt_pub(v)
                mv = number(mine["metrics"].get(m)) if mine else None
                cells.append(Cell(text, sub=f"(Δ {fmt_diff(mv - v)})" if mv is not None else ""))
            out.append(Row(cells, muted=True))
    caption = _results_caption(data, sig, dataset, rows, bool(published))
    ref = sig.reference.get(dataset)
    notes = ["Mean (standard error) over test users; best of our rows in bold per column."]
    if any(r.get("n_seeds", 1) > 1 for r in rows):
        notes.append(
            "Rows over several seeds: the mean over seeds of the test metric (standard error "
            "over users of each user's mean over the seeds; sd: standard deviation over seeds)."
        )
    if ref and sig.for_dataset(dataset):
        notes.append(
            f"{MARK_UP}{MARK_T} / {MARK_DOWN}{MARK_T}: significantly better / worse than the "
            f"reference {ref} ({sig.how.get(dataset, '')}) by the paired t-test on the same "
            f"users, Holm-adjusted p < {ALPHA}; the marks follow the t-test alone (the Wilcoxon "
            f"signed-rank test is in the significance table as a check)."
        )
    notes += sig.notes.get(dataset, [])
    if published:
        mapped = sorted(
            {m for m in ours if m in MODEL_TO_METHOD and any(e.get("model") == m for e in published)}
        )
        notes.append(
            "Published rows: "
            + (
                "Δ is given for " + ", ".join(f"{m} = {MODEL_TO_METHOD[m]}" for m in mapped) + ". "
                if mapped
                else "no model of ours maps to a published row. "
            )
            + "Tags: [V] checked against the authors' code output, [P] as printed in the paper."
        )
    proto = data.protocol(dataset)
    return Table(
        key=f"table2-{slug(dataset)}",
        title=f"Table 2: {dataset if proto == STRONG else data.base(dataset) + ', ' + protocol_name(proto)}, test users",
        header=["Model"] + [METRIC_LABELS[m] for m in TABLE_METRICS],
        rows=out,
        caption=caption,
        notes=notes,
    )


def _results_caption(
    data: ReportData, sig: Significance, dataset: str, rows: list[dict[str, Any]], published: bool
) -> str:
    parts = []
    users = sorted({(r.get("n_users"), r.get("n_excluded")) for r in rows}, key=str)
    if len(users) == 1 and number(users[0][0]) is not None:
        n, ex = users[0]
        parts.append(
            f"{fmt_int(n)} test users with held-out items"
            + (f" ({fmt_int(ex)} without were excluded)" if number(ex) else "")
        )
    elif rows:
        parts.append("the number of test users differs between rows (see Runs)")
    hashes = data.split_hashes(dataset)
    if len(hashes) == 1:
        parts.append(f"split {hashes[0][:8]}")
    elif hashes:
        parts.append(f"{len(hashes)} splits: " + ", ".join(h[:8] for h in hashes))
    if data.protocol(dataset) != STRONG:
        parts.append(f"{protocol_name(data.protocol(dataset))}, not the paper's strong generalisation: "
                     "published numbers do not apply and are not shown")
    elif not published:
        parts.append("no published numbers exist for this dataset on the paper's protocol")
    capped = sorted({data.label(r) for r in rows if capped_epochs(r) is not None})
    text = "; ".join(parts) + "." if parts else ""
    if capped:
        text += (
            f" CAPPED: {', '.join(capped)} had fewer epochs than the model's own count "
            f"(--epochs); not full runs, not comparable with the paper's numbers."
        )
    return text.strip()


def _published(data: ReportData, dataset: str) -> list[dict[str, Any]]:
    """The published entries of a dataset label: none for a protocol other than strong."""
    return published_for(dataset) if data.protocol(dataset) == STRONG else []


def _ci(lo: float, hi: float) -> str:
    return DASH if not (math.isfinite(lo) and math.isfinite(hi)) else f"[{fmt_diff(lo)}, {fmt_diff(hi)}]"


def _signed(x: float) -> str:
    return fmt_diff(x) if math.isfinite(x) else DASH


def _effect_cells(c: Comparison, with_seeds: bool) -> list[Cell]:
    e = c.effect or Effect()
    cells = [Cell(_ci(e.t_low, e.t_high)), Cell(_ci(e.boot_low, e.boot_high)), Cell(_signed(e.d_z))]
    if with_seeds:
        cells.append(Cell(fmt(e.seed_sd) if math.isfinite(e.seed_sd) else DASH,
                          sub=f"({e.n_seeds} seeds)" if math.isfinite(e.seed_sd) else ""))
    return cells


def significance_table(data: ReportData, sig: Significance, dataset: str) -> Table | None:
    """The paired tests of one dataset; None when nothing was compared (no empty section)."""
    comps = sig.for_dataset(dataset)
    if not comps:
        return None
    ref = sig.reference.get(dataset, "the reference")
    with_seeds = any(c.paired and max(c.seeds) > 1 for c in comps)
    header = ["Model", "Metric", "Users paired", "Δ mean", "95% CI (t)", "95% CI (bootstrap)", "d_z"]
    header += ["Seed sd of Δ"] * with_seeds + ["t-test p (Holm)", "Wilcoxon p (Holm)"]
    rows: list[Row] = []
    seen_unpaired: set[str] = set()
    for c in comps:
        if not c.paired:
            if c.row_id in seen_unpaired:
                continue
            seen_unpaired.add(c.row_id)
            rows.append(Row([Cell(c.label), Cell("all"), Cell(c.reason)] + [Cell(DASH)] * (len(header) - 3)))
            continue
        r = c.result
        assert r is not None
        rows.append(
            Row(
                [
                    Cell(c.label),
                    Cell(METRIC_LABELS.get(c.metric, c.metric)),
                    Cell(fmt_int(r.n)),
                    Cell(fmt_diff(r.mean_diff), marks=c.marks[:1] if c.marks[:1] in (MARK_UP, MARK_DOWN) else ""),
                    *_effect_cells(c, with_seeds),
                    Cell(fmt_p(r.t_p), sub=f"({fmt_p(c.t_p_holm)})", marks=MARK_T if c.t_p_holm < ALPHA else ""),
                    Cell(fmt_p(r.w_p), sub=f"({fmt_p(c.w_p_holm)})", marks=MARK_W if c.w_p_holm < ALPHA else ""),
                ]
            )
        )
    paired = sorted({c.label for c in comps if c.paired})
    unpaired = sorted({f"{c.label} ({c.reason})" for c in comps if not c.paired})
    partial = sorted({c.label for c in comps if c.reason == "paired on the common users only"})
    notes = [
        f"Each model's test row against the test row of the reference {ref} "
        f"({sig.how.get(dataset, '')}) on the same split hash, user by user (users matched by "
        f"their row index in the held-out set; rows over several seeds by each user's mean "
        f"over the seeds: the unit is the user). Δ mean = model - {ref}, over the paired users."
    ]
    notes.append(
        f"95% CI of Δ mean: (t) the paired t interval, mean ± t(0.975, n - 1) * sd / sqrt(n); "
        f"(bootstrap) the 2.5th and 97.5th percentiles of the mean over {RESAMPLES:,} paired "
        f"bootstrap resamples of the users (seed {BOOT_SEED}; the same resamples for every "
        f"model paired on the same number of users). d_z: Cohen's d for paired samples, "
        f"Δ mean / sd of the per-user differences (ddof 1)."
    )
    if with_seeds:
        notes.append(
            "Seed sd of Δ: the standard deviation (ddof 1) over the seeds both rows ran of "
            "each seed's mean difference over the paired users, with the number of those "
            "seeds; - where the two rows have fewer than 2 seeds in common."
        )
    notes.append(
        f"p: raw two-sided p-value, in parentheses Holm-adjusted over all comparisons of this "
        f"dataset and split, separately per test; {MARK_T} / {MARK_W}: adjusted p < {ALPHA}. "
        f"{MARK_UP} / {MARK_DOWN}: significantly better / worse by the t-test ({MARK_T}) "
        f"alone; the Wilcoxon signed-rank test ({MARK_W}) is a check and sets no mark."
    )
    if paired:
        notes.append("Paired: " + ", ".join(paired) + ".")
    if partial:
        notes.append("Paired on their common users only (different evaluated users): " + ", ".join(partial) + ".")
    if unpaired:
        notes.append("Not paired: " + "; ".join(unpaired) + ".")
    return Table(
        key=f"significance-{slug(dataset)}",
        title=f"Significance against {ref}: {dataset}",
        header=header,
        rows=rows,
        align="llr" + "r" * (len(header) - 3),
        notes=notes,
    )


def sources_list(data: ReportData) -> list[str]:
    """Citations of the published sources shown in the tables."""
    ref = load_published()
    src = ref["sources"]
    shown = set()
    for d in data.datasets():
        ours = _ours_by_model(data, d)
        shown |= {
            e["source"] for e in _published(data, d) if not e.get("only_if_run") or e.get("model") in ours
        }
    used = [s for s in dict.fromkeys(e["source"] for e in ref["entries"]) if s in shown]
    return [f"{src[s]['short']}: {src[s]['citation']} ({src[s]['where']})" for s in used if s in src]


def ranks_table(ranks: RankAnalysis) -> Table:
    """Average rank per model and metric across datasets, with Friedman and Nemenyi."""
    by_metric = {r.metric: r for r in ranks.results}
    models = sorted({m for r in ranks.results for m in r.models})
    best = {r.metric: round(float(r.avg_ranks.min()), 2) for r in ranks.results}
    rows = []
    for model in models:
        cells = [Cell(model)]
        for m in TABLE_METRICS:
            r = by_metric.get(m)
            if r is None or model not in r.models:
                cells.append(Cell(DASH))
                continue
            v = float(r.avg_ranks[r.models.index(model)])
            cells.append(Cell(f"{v:.2f}", bold=round(v, 2) == best[m]))
        rows.append(Row(cells))
    rows.sort(key=lambda row: [float(c.text) if c.text != DASH else math.inf for c in row.cells[1:]][::-1])
    first = ranks.results[0]
    notes = [
        f"Rank of each model among the {len(first.models)} models on each of the "
        f"{len(first.datasets)} datasets ({', '.join(first.datasets)}; test users, main split), "
        f"1 = best, ties averaged; the mean over datasets, lowest in bold (Demšar 2006)."
    ]
    for r in ranks.results:
        f = (f"Friedman chi2 = {r.friedman_stat:.3f}, p = {fmt_p(r.friedman_p)}"
             if math.isfinite(r.friedman_stat) else "Friedman test needs 3 or more models")
        notes.append(
            f"{METRIC_LABELS.get(r.metric, r.metric)}: {f}; Nemenyi critical difference "
            f"CD = {r.cd:.3f} (alpha = {r.alpha}, k = {len(r.models)}, N = {len(r.datasets)}): "
            f"models whose average ranks differ by less are not significantly different."
        )
    if ranks.excluded:
        notes.append("Not ranked (no test row on every dataset): " + ", ".join(ranks.excluded) + ".")
    strong = ranks.protocol == STRONG
    return Table(
        key="ranks" if strong else f"ranks-{slug(ranks.protocol)}",
        title="Average rank across datasets" + ("" if strong else f", {protocol_name(ranks.protocol)}"),
        header=["Model"] + [METRIC_LABELS[m] for m in TABLE_METRICS],
        rows=rows,
        notes=notes,
    )


def build_tables(data: ReportData, sig: Significance,
                 ranks: RankAnalysis | list[RankAnalysis] | None = None) -> list[Table]:
    """Every table; ``ranks``: the rank analysis, or one per protocol (each its own table)."""
    tables: list[Table] = []
    for d in data.datasets():
        if data.part_rows(d, "test"):
            tables.append(results_table(data, sig, d))
        t = significance_table(data, sig, d)
        if t:
            tables.append(t)
    for r in [ranks] if isinstance(ranks, RankAnalysis) else ranks or []:
        tables.append(ranks_table(r))
    for builder in (tuning_table, runs_table, params_table, environment_table):
        t = builder(data)
        if t:
            tables.append(t)
    return tables
