"""Figures that read: one colour per model in every render, disjoint activity bins, the
quintile figure's default models, the time figure's floor, PDFs, Optuna's tuning plots.

Figures are drawn one at a time (not the whole report) on small results folders made with
the fixture helpers of ``test_report``; texts are read back from the SVGs (matplotlib
writes each text as a comment there). The fixed palette is kept in a golden file::

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_figures.py -q
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_report import _build, _check_golden, _per_user, add_row

from benchmark.report import load_results
from benchmark.report._plotting import BUILTIN_STYLES, FAMILIES, Look, model_styles
from benchmark.report.figures import epochs_figure, time_figure
from benchmark.report.paired_figures import quintile_figure, quintile_selection
from benchmark.report.stats import activity_edges, activity_labels, quintile_groups
from benchmark.results import ResultStore

USERS = np.arange(10, 70)
FOLD = np.array([3, 5, 5, 5, 5, 8, 9, 9, 12, 15] * 6)  # many ties at the natural cuts


def _results(path: Path, levels: dict[str, float], *, valid: dict[str, float] | None = None,
             fit: dict[str, float] | None = None, **more) -> Path:
    """Test rows (and validation rows when ``valid`` gives their level) with arrays."""
    store = ResultStore(path)
    rng = np.random.default_rng(7)
    for model, level in levels.items():
        add_row(store, model=model, part="test", arrays=_per_user(rng, level, USERS, FOLD),
                fit_seconds=(fit or {}).get(model, 1.0), more={"display_name": model.upper()},
                **more.get(model, {}))
        if valid and model in valid:
            add_row(store, model=model, part="valid", arrays=_per_user(rng, valid[model], USERS, FOLD),
                    more={"display_name": model.upper()})
    return path


def _load(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_results(path)


def _svg_texts(svg: Path) -> list[str]:
    return [t.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
            for t in re.findall(r"<!-- (.*?) -->", svg.read_text())]


def _legend_colours(svg: Path) -> dict[str, str]:
    """{legend label: the last fill colour drawn before it} in the figure's legend."""
    text = svg.read_text()
    legend = text[text.index('<g id="legend_1">'):]
    out = {}
    for chunk, label in re.findall(r"(.*?)<!-- (.*?) -->", legend, flags=re.S):
        fills = re.findall(r"fill: (#[0-9a-f]{6})", chunk)
        if fills:
            out[label] = fills[-1]
    return out


# --- colours -----------------------------------------------------------------------------------
def test_the_palette_is_fixed_and_plugins_come_after():
    with_plugins = model_styles(["multvae", "zeta-plugin", "alpha-plugin", "ease"])
    alone = model_styles(["ease"])
    for m in BUILTIN_STYLES:  # adding plugins changes no built-in
        assert with_plugins[m] == alone[m]
    builtin_colours = {c for c, _ in BUILTIN_STYLES.values()}
    assert len(builtin_colours) == len(BUILTIN_STYLES)  # one colour per built-in model
    assert len({mk for _, mk in BUILTIN_STYLES.values()}) == len(BUILTIN_STYLES)  # one marker each
    assert with_plugins["alpha-plugin"].color not in builtin_colours
    assert (with_plugins["alpha-plugin"], with_plugins["zeta-plugin"]) == (
        model_styles(["zeta-plugin", "alpha-plugin"])["alpha-plugin"],
        model_styles(["alpha-plugin", "zeta-plugin"])["zeta-plugin"])  # sorted ids, not row order
    assert with_plugins["alpha-plugin"] != with_plugins["zeta-plugin"]
    assert {m for ms in FAMILIES.values() for m in ms} == set(BUILTIN_STYLES)
    golden = {m: [s.color, s.marker, s.family] for m, s in with_plugins.items()}
    _check_golden(json.dumps(golden, indent=1, sort_keys=True) + "\n", "figure-styles.json")


def test_stable_colours_across_two_renders_with_and_without_a_plugin(tmp_path):
    levels = {"multvae": 0.4, "multdae": 0.35, "ease": 0.38, "popularity": 0.2}
    colours = []
    for name, extra in (("plain", {}), ("plugin", {"aaa-plugin": 0.3})):
        data = _load(_results(tmp_path / name, {**levels, **extra}))
        look = Look.of(data)
        (tmp_path / f"{name}-fig").mkdir()
        fig = quintile_figure(data, "ml-20m", tmp_path / f"{name}-fig", look, reference="multvae")
        colours.append(_legend_colours(tmp_path / f"{name}-fig" / fig.svg))
    plain, plugin = colours
    assert set(plain) == {"MULTVAE", "MULTDAE", "EASE", "POPULARITY"}  # display names
    assert plugin == {**plain, "AAA-PLUGIN": plugin["AAA-PLUGIN"]}  # same colour in both renders
    assert plain["MULTVAE"] == BUILTIN_STYLES["multvae"][0].lower()
    assert plugin["AAA-PLUGIN"] not in plain.values()


# --- activity bins -----------------------------------------------------------------------------
def _parse(label: str) -> tuple[int, int]:
    a, _, b = label.partition("-")
    return int(a), int(b or a)


def test_activity_bins_are_disjoint_and_match_the_assignment():
    sizes = np.array([3, 5, 5, 5, 5, 8, 9, 9, 12, 15] * 6 + [22] * 7 + [38])
    users = np.arange(len(sizes))[::-1]
    edges = activity_edges(sizes)
    labels = activity_labels(edges, sizes.min(), sizes.max())
    ranges = [_parse(x) for x in labels]
    assert ranges[0][0] == 3 and ranges[-1][1] == 38
    for (_, hi), (lo, _) in zip(ranges, ranges[1:], strict=False):
        assert lo == hi + 1  # disjoint and adjacent: "15-21", "22-38", never "15-22", "22-38"
    groups = quintile_groups(sizes, users, edges=edges)
    assert sum(len(g) for g in groups) == len(sizes)
    for g, (lo, hi) in zip(groups, ranges, strict=True):
        assert len(g) and lo <= sizes[g].min() and sizes[g].max() <= hi  # labels say who is in
    assert len(labels) == 5
    one = quintile_groups(np.full(9, 4), np.arange(9))  # one size: one group, not five
    assert len(one) == 1 and one[0].tolist() == list(range(9))


def test_quintile_figure_labels_are_disjoint_ranges(tmp_path):
    data = _load(_results(tmp_path / "r", {"multvae": 0.4, "multdae": 0.3}))
    fig = quintile_figure(data, "ml-20m", tmp_path, Look.of(data), reference="multvae")
    ticks = [t for t in _svg_texts(tmp_path / fig.svg) if re.fullmatch(r"Q\d: \d+(-\d+)?", t)]
    ranges = [_parse(t.split(": ")[1]) for t in ticks]
    assert len(ranges) >= 3
    assert all(b[0] == a[1] + 1 for a, b in zip(ranges, ranges[1:], strict=False))
    assert "paired t-test" in fig.caption and "Holm" in fig.caption


# --- which models the quintile figure shows ----------------------------------------------------
def test_quintile_default_is_the_reference_and_the_best_of_each_family(tmp_path):
    test = {"multvae": 0.40, "gaussian-vae": 0.39, "multdae": 0.36, "gaussian-dae": 0.37, "ease": 0.41,
            "edlae": 0.40, "wmf": 0.33, "popularity": 0.2, "my-plugin": 0.3}
    valid = {**test, "gaussian-vae": 0.45, "gaussian-dae": 0.30, "edlae": 0.42}  # chosen by validation
    data = _load(_results(tmp_path / "r", test, valid=valid))
    default = quintile_selection(data, "ml-20m", "multvae")
    assert default == ["multvae", "gaussian-vae", "multdae", "edlae", "wmf", "popularity", "my-plugin"]
    assert quintile_selection(data, "ml-20m", "ease")[:3] == ["ease", "gaussian-vae", "multdae"]
    chosen = quintile_selection(data, "ml-20m", "multvae", ["wmf", "ease", "not-here"])
    assert chosen == ["multvae", "ease", "wmf"]  # the reference first, then palette order
    fig = quintile_figure(data, "ml-20m", tmp_path, Look.of(data), reference="multvae")
    assert set(_legend_colours(tmp_path / fig.svg)) == {m.upper() for m in default}


def test_figure_models_reach_the_report_and_unknown_ones_are_refused(tmp_path):
    results = _results(tmp_path / "r", {"multvae": 0.4, "multdae": 0.35, "ease": 0.38})
    index, _ = _build(tmp_path, results, figure_models=["ease"])
    svg = index.parent / "figures" / "quintiles-ml-20m.svg"
    assert set(_legend_colours(svg)) == {"MULTVAE", "EASE"}
    with pytest.raises(ValueError, match="--figure-models: nope"):
        _build(tmp_path, results, "other", figure_models=["nope"])


# --- time, epochs, files -----------------------------------------------------------------------
def test_time_figure_draws_sub_resolution_fits_at_the_floor(tmp_path):
    data = _load(_results(tmp_path / "r", {"multvae": 0.4, "popularity": 0.2},
                          fit={"multvae": 30.0, "popularity": 0.0}))
    fig = time_figure(data, "ml-20m", tmp_path, Look.of(data))
    assert "< 1 ms" in _svg_texts(tmp_path / fig.svg)
    assert "axis floor" in fig.caption
    slow = _load(_results(tmp_path / "r2", {"multvae": 0.4, "popularity": 0.2},
                          fit={"multvae": 30.0, "popularity": 0.5}))
    (tmp_path / "slow").mkdir()
    fig = time_figure(slow, "ml-20m", tmp_path / "slow", Look.of(slow))
    assert "< 1 ms" not in _svg_texts(tmp_path / "slow" / fig.svg)


def test_epochs_figure_has_a_panel_per_model_in_its_unit_and_marks_the_kept_epoch(tmp_path):
    hist = [{"epoch": e, "ndcg@100": 0.3 + 0.01 * e} for e in range(1, 7)]
    more = {m: {"extra": {"history": hist, "training": {"best_epoch": 3}}} for m in ("multvae", "wmf")}
    data = _load(_results(tmp_path / "r", {"multvae": 0.4, "wmf": 0.3, "ease": 0.38}, **more))
    fig = epochs_figure(data, "ml-20m", tmp_path, Look.of(data))
    texts = _svg_texts(tmp_path / fig.svg)
    assert {"MULTVAE", "WMF", "epoch", "ALS sweep", "kept: epoch 3", "kept: ALS sweep 3"} <= set(texts)
    assert "EASE" not in texts  # not iterative: no panel


def test_every_figure_is_written_as_png_svg_and_pdf(tmp_path):
    data = _load(_results(tmp_path / "r", {"multvae": 0.4, "popularity": 0.2}))
    fig = time_figure(data, "ml-20m", tmp_path, Look.of(data))
    assert (fig.png, fig.svg, fig.pdf) == ("time-ml-20m.png", "time-ml-20m.svg", "time-ml-20m.pdf")
    pdf = (tmp_path / fig.pdf).read_bytes()
    assert pdf.startswith(b"%PDF") and b"/Subtype /Image" not in pdf  # vector, no bitmap
    assert b"/FontFile2" in pdf  # TrueType fonts embedded (Type 42), not Type 3
    assert (tmp_path / fig.png).read_bytes().startswith(b"\x89PNG")


# --- tuning --------------------------------------------------------------------------------------
def _tuned(distributions: dict | None) -> dict:
    hist = [{"number": n, "value": 0.40 - (lr - 0.01) ** 2 - 0.001 * abs(h - 200) / 100, "state": "COMPLETE",
             "params": {"lr": lr, "hidden": h}}
            for n, (lr, h) in enumerate([(0.01, 200), (0.02, 100), (0.005, 300), (0.03, 150), (0.008, 250)])]
    hist[3]["number"] = 4  # trial 3 was still running: not in the history
    hist.append({"number": 5, "value": 0.2, "state": "PRUNED", "params": {"lr": 0.04, "hidden": 350}})
    if distributions:
        for h in hist:
            h["distributions"] = distributions
    return {"study": "s", "complete": 5, "pruned": 1, "history": hist}


def test_tuning_study_is_rebuilt_from_the_row(tmp_path):
    from optuna.distributions import FloatDistribution, IntDistribution, distribution_to_json

    from benchmark.report.tuning_figures import rebuild_study, tuning_figures

    recorded = {"lr": distribution_to_json(FloatDistribution(1e-4, 0.1, log=True)),
                "hidden": distribution_to_json(IntDistribution(50, 400, step=50))}
    row = {"tuning": _tuned(recorded)}
    study, inferred = rebuild_study(row, row["tuning"]["history"])
    assert [t.number for t in study.trials] == list(range(6))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3 + ["FAIL", "COMPLETE", "PRUNED"]
    assert inferred == [] and study.trials[0].distributions["lr"] == FloatDistribution(1e-4, 0.1, log=True)
    old = {"tuning": _tuned(None)}  # rows written before distributions were recorded
    study, inferred = rebuild_study(old, old["tuning"]["history"])
    assert inferred == ["hidden", "lr"]
    assert study.trials[0].distributions["lr"] == FloatDistribution(0.005, 0.04)

    data = _load(_results(tmp_path / "r", {"multvae": 0.4, "multdae": 0.35},
                          multdae={"tuning": _tuned(None)}))
    import matplotlib.pyplot as plt

    open_before = plt.get_fignums()  # another test's figures may be open in this process
    figs = tuning_figures(data, "ml-20m", tmp_path, Look.of(data))
    assert [f.key for f in figs] == ["tuning-ml-20m-multdae", "tuning-ml-20m-multdae-importance",
                                     "tuning-ml-20m-multdae-slices"]
    history = _svg_texts(tmp_path / figs[0].svg)
    assert "Optimisation history: MULTDAE on ml-20m" in history and "trial 0 (paper defaults)" in history
    assert "inferred from the values tried" in figs[1].caption
    assert plt.get_fignums() == open_before and plt.rcParams["axes.facecolor"] == "white"  # nothing left over
