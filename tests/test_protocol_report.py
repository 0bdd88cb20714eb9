"""Report under several evaluation protocols: Table 2 per (dataset, protocol), published
numbers beside strong tables only, ranks and Friedman per protocol, and the "Ranking across
protocols" section (ranks, Kendall's tau, flipped pairs with paired tests, bump chart).

The results folder is built by hand: one dataset (ml-20m, which has published numbers)
under three protocols, four models whose planted test NDCG@100 order flips between them.
"""

from __future__ import annotations

import itertools
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from test_report import _build, _per_user, add_row

from benchmark.report import holm, load_results, protocol_rankings, rank_analyses
from benchmark.report.load import restrict
from benchmark.report.ranks import rank_analysis
from benchmark.report.tables import build_tables
from benchmark.results import ResultStore

USERS = np.arange(10, 70)
FOLD = np.array([3, 5, 5, 5, 5, 8, 9, 9, 12, 15] * 6)
SPLITS = {"strong": "aaaa000000000001", "weak": "bbbb000000000002", "temporal": "cccc000000000003"}
#: Planted test NDCG@100 per protocol (exact means of the per-user arrays).
LEVELS = {
    "strong": {"multvae": 0.40, "ease": 0.38, "wmf": 0.30, "popularity": 0.15},
    "weak": {"multvae": 0.42, "ease": 0.45, "wmf": 0.35, "popularity": 0.20},
    "temporal": {"multvae": 0.30, "ease": 0.25, "wmf": 0.28, "popularity": 0.10},
}
RANKS = {  # 1 = best
    "strong": {"multvae": 1, "ease": 2, "wmf": 3, "popularity": 4},
    "weak": {"ease": 1, "multvae": 2, "wmf": 3, "popularity": 4},
    "temporal": {"multvae": 1, "wmf": 2, "ease": 3, "popularity": 4},
}
#: (first, second) -> the planted flips as (above under first, below under first).
FLIPS = {
    ("strong", "weak"): {("multvae", "ease")},
    ("strong", "temporal"): {("ease", "wmf")},
    ("weak", "temporal"): {("ease", "multvae"), ("ease", "wmf")},
}
NAMES = {"multvae": "Mult-VAE", "ease": "EASE", "wmf": "WMF", "popularity": "Popularity"}


def _arrays(rng: np.random.Generator, level: float) -> dict:
    a = _per_user(rng, level, USERS, FOLD)
    a["ndcg@100"] = a["ndcg@100"] - a["ndcg@100"].mean() + level  # the mean is the planted level
    return a


def _add(store: ResultStore, rng, dataset: str, protocol: str, model: str, level: float, **kw) -> None:
    more = {"display_name": NAMES.get(model, model)}
    if protocol != "strong":
        more["protocol"] = protocol
    add_row(store, model=model, part="test", dataset=dataset, split_hash=SPLITS[protocol],
            arrays=_arrays(rng, level), more=more, **kw)


def make_protocol_results(path: Path, *, no_arrays: tuple[str, str] | None = None) -> Path:
    store = ResultStore(path)
    rng = np.random.default_rng(22)
    for protocol, levels in LEVELS.items():
        for model, level in levels.items():
            _add(store, rng, "ml-20m", protocol, model, level,
                 write_arrays=(protocol, model) != no_arrays)
    return path


def _load(path: Path, **scope):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_results(path)
        return restrict(data, **scope) if scope else data


@pytest.fixture(scope="module")
def protocol_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("protocols")
    results = make_protocol_results(tmp / "r", no_arrays=("temporal", "wmf"))
    index, _ = _build(tmp, results)
    return results, index.parent


def _block(md: str, heading: str) -> str:
    """The Markdown of one table: from its heading to the next heading."""
    start = md.index(heading)
    end = min(i for i in (md.find("\n### ", start + 1), md.find("\n## ", start + 1), len(md)) if i > 0)
    return md[start:end]


# --- Table 2 per (dataset, protocol) --------------------------------------------------------------
def test_rows_are_keyed_by_dataset_and_protocol(tmp_path):
    data = _load(make_protocol_results(tmp_path / "r"))
    assert data.datasets() == ["ml-20m", "ml-20m (weak)", "ml-20m (temporal)"]
    assert data.datasets("weak") == ["ml-20m (weak)"]
    assert [data.protocol(d) for d in data.datasets()] == ["strong", "weak", "temporal"]
    assert {data.base(d) for d in data.datasets()} == {"ml-20m"}
    strong = data.part_rows("ml-20m")
    assert len(strong) == 4 and all("protocol" not in r and "dataset_id" not in r for r in strong)
    assert all(r["dataset_id"] == "ml-20m" for r in data.part_rows("ml-20m (weak)"))
    # --datasets names the recorded dataset: every protocol of it is kept
    kept = _load(tmp_path / "r", datasets=["ml-20m"])
    assert len(kept.rows) == 12 and kept.left_out == 0
    only_weak = _load(tmp_path / "r", datasets=["ml-20m (weak)"])
    assert {r["dataset"] for r in only_weak.rows} == {"ml-20m (weak)"}


def test_one_table_2_per_protocol_and_published_numbers_beside_strong_only(protocol_report):
    _, out = protocol_report
    md = (out / "tables.md").read_text()
    strong = _block(md, "### Table 2: ml-20m, test users")
    weak = _block(md, "### Table 2: ml-20m, weak generalisation, test users")
    temporal = _block(md, "### Table 2: ml-20m, temporal split, test users")
    assert "Published, same protocol" in strong and "Liang et al. 2018" in strong
    for block in (weak, temporal):
        assert "Published" not in block and "Liang et al." not in block and "Δ" not in block
        assert "published numbers do not apply and are not shown" in block
    # each table shows its own protocol's rows only
    assert "0.4500" in weak and "0.4500" not in strong and "0.4500" not in temporal
    tex = (out / "tables.tex").read_text()
    assert "ml-20m, weak generalisation, test users" in tex
    keys = [t["key"] for t in json.loads((out / "report.json").read_text())["tables"]]
    assert {"table2-ml-20m", "table2-ml-20m-weak", "table2-ml-20m-temporal"} <= set(keys)


# --- ranking across protocols ---------------------------------------------------------------------
def test_ranks_kendall_tau_and_flips_are_the_planted_ones(tmp_path):
    data = _load(make_protocol_results(tmp_path / "r"))
    (pr,) = protocol_rankings(data)
    assert pr.dataset == "ml-20m" and pr.protocols == ["strong", "weak", "temporal"]
    assert pr.models == sorted(LEVELS["strong"])
    for p, ranks in RANKS.items():
        assert {m: pr.rank(p, m) for m in pr.models} == ranks
    assert len(pr.taus) == 3
    for first, second, tau, pvalue in pr.taus:
        x = [RANKS[first][m] for m in pr.models]
        y = [RANKS[second][m] for m in pr.models]
        want = stats.kendalltau(x, y)
        assert tau == pytest.approx(want.statistic) and pvalue == pytest.approx(want.pvalue)
    got = {}
    for f in pr.flips:
        got.setdefault((f.first, f.second), set()).add((f.above, f.below))
    assert got == FLIPS
    # each flip's p: the paired t-test of the per-user arrays, Holm over that pair's flips
    for first, second in FLIPS:
        flips = [f for f in pr.flips if (f.first, f.second) == (first, second)]
        for p in (first, second):
            raw = []
            for f in flips:
                rows = {r["model"]: r for r in data.part_rows(pr.labels[pr.protocols.index(p)])}
                a, b = data.arrays(rows[f.above]), data.arrays(rows[f.below])
                raw.append(stats.ttest_rel(a["ndcg@100"], b["ndcg@100"]).pvalue)
                assert f.diff[p] == pytest.approx(LEVELS[p][f.above] - LEVELS[p][f.below])
            assert [f.p[p] for f in flips] == pytest.approx(raw)
            assert [f.p_holm[p] for f in flips] == pytest.approx(list(holm(raw)))


def test_the_section_in_markdown_html_latex_and_the_bump_chart(protocol_report):
    _, out = protocol_report
    md = (out / "tables.md").read_text()
    assert md.count("## Ranking across protocols") == 1
    assert md.index("## Results") < md.index("## Ranking across protocols") < md.index("## Figures")
    ranks = _block(md, "### Rank per protocol: ml-20m")
    assert "| Model | strong generalisation | weak generalisation | temporal split |" in ranks
    assert "| **1** (0.4000) | 2 (0.4200) | **1** (0.3000) |" in ranks  # Mult-VAE
    tau = _block(md, "### Kendall's tau between protocols: ml-20m")
    want = stats.kendalltau([1, 2, 4, 3], [2, 1, 4, 3])  # ease, multvae, popularity, wmf
    assert f"| strong generalisation vs weak generalisation | {want.statistic:+.3f} |" in tau
    assert "| 1 of 6 |" in tau and "| 2 of 6 |" in tau
    flips = _block(md, "### Order flips, strong generalisation vs temporal split: ml-20m")
    assert "EASE vs WMF" in flips and "n/a" in flips  # WMF has no arrays under temporal
    assert "### Order flips, weak generalisation vs temporal split: ml-20m" in md
    html = (out / "index.html").read_text()
    assert '<section id="Ranking-across-protocols"><h2>Ranking across protocols</h2>' in html
    assert 'href="#Ranking-across-protocols"' in html
    tex = (out / "tables.tex").read_text()
    assert "% Ranking across protocols" in tex and "Kendall's tau between protocols: ml-20m" in tex
    manifest = json.loads((out / "report.json").read_text())
    fig = next(f for f in manifest["figures"] if f["key"] == "protocols-ml-20m")
    for kind in ("png", "svg", "pdf"):
        assert (out / fig[kind]).stat().st_size > 1000
    assert "![Ranks across protocols (ml-20m)](figures/protocols-ml-20m.png)" in md
    svg = (out / fig["svg"]).read_text()
    for name in NAMES.values():  # display names in the legend
        assert f"<!-- {name} -->" in svg


def test_a_strong_only_folder_has_no_protocol_section(tmp_path):
    store = ResultStore(tmp_path / "r")
    rng = np.random.default_rng(3)
    for model, level in LEVELS["strong"].items():
        _add(store, rng, "ml-20m", "strong", model, level)
    assert protocol_rankings(_load(tmp_path / "r")) == []
    index, _ = _build(tmp_path, tmp_path / "r", figures=False)
    for name in ("tables.md", "tables.tex", "index.html"):
        text = (index.parent / name).read_text()
        assert "across protocols" not in text and "weak generalisation" not in text


def test_fewer_than_three_common_models_give_no_ranking(tmp_path):
    store = ResultStore(tmp_path / "r")
    rng = np.random.default_rng(4)
    for protocol in ("strong", "weak"):
        for model in ("multvae", "ease") + (("wmf",) if protocol == "strong" else ()):
            _add(store, rng, "ml-20m", protocol, model, LEVELS[protocol][model])
    assert protocol_rankings(_load(tmp_path / "r")) == []


# --- cross-dataset ranks within one protocol ------------------------------------------------------
def _datasets_under(path: Path, plan: dict[str, list[str]]) -> Path:
    """Four models on each (protocol -> datasets), levels shuffled per dataset."""
    store = ResultStore(path)
    rng = np.random.default_rng(9)
    for protocol, datasets in plan.items():
        for i, d in enumerate(datasets):
            levels = list(LEVELS["strong"].values())
            for model, level in zip(LEVELS["strong"], np.roll(levels, i if protocol == "weak" else 0)):
                _add(store, rng, d, protocol, model, float(level) - 0.01 * i)
    return path


def test_two_strong_and_one_weak_dataset_are_not_three_datasets(tmp_path):
    data = _load(_datasets_under(tmp_path / "r", {"strong": ["ml-20m", "netflix"], "weak": ["msd"]}))
    assert rank_analysis(data) is None  # two strong datasets: fewer than three
    assert rank_analyses(data) == []
    assert not any(t.key.startswith("ranks") for t in build_tables(data, _sig(data), rank_analyses(data)))


def test_friedman_uses_only_the_datasets_of_one_protocol(tmp_path):
    plan = {"strong": ["ml-20m", "netflix", "msd"], "weak": ["ml-20m", "netflix", "msd"]}
    data = _load(_datasets_under(tmp_path / "r", plan))
    strong, weak = rank_analyses(data)
    assert (strong.protocol, weak.protocol) == ("strong", "weak")
    nd = next(r for r in strong.results if r.metric == "ndcg@100")
    assert nd.datasets == ["ml-20m", "netflix", "msd"]
    assert (nd.ranks == np.array([[2, 1, 4, 3]] * 3)).all()  # ease, multvae, popularity, wmf
    chi = stats.friedmanchisquare(*nd.values.T)
    assert nd.friedman_stat == pytest.approx(chi.statistic) and nd.friedman_p == pytest.approx(chi.pvalue)
    wnd = next(r for r in weak.results if r.metric == "ndcg@100")
    assert wnd.datasets == ["ml-20m (weak)", "netflix (weak)", "msd (weak)"]
    chi = stats.friedmanchisquare(*wnd.values.T)
    assert wnd.friedman_p == pytest.approx(chi.pvalue)
    titles = [t.title for t in build_tables(data, _sig(data), [strong, weak]) if t.key.startswith("ranks")]
    assert titles == ["Average rank across datasets", "Average rank across datasets, weak generalisation"]
    # the same three strong datasets with one weak one: the weak one is not ranked with them
    data = _load(_datasets_under(tmp_path / "r2", {"strong": plan["strong"], "weak": ["ml-20m"]}))
    (only,) = rank_analyses(data)
    assert only.protocol == "strong" and only.results[0].datasets == ["ml-20m", "netflix", "msd"]


def _sig(data):
    from benchmark.report import significance

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return significance(data)


def test_kendall_pairs_cover_every_protocol_pair(tmp_path):
    data = _load(make_protocol_results(tmp_path / "r"))
    (pr,) = protocol_rankings(data)
    assert [(a, b) for a, b, _, _ in pr.taus] == list(itertools.combinations(pr.protocols, 2))
