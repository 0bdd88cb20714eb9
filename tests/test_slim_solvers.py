"""SLIM's gram solver (dense co-occurrence matrix, working sets) against the sparse solver
(scikit-learn's ElasticNet on the sparse columns, the former default): the same objective
per column to 1e-6; on ml-100k the same recall, NDCG@100 within the solvers' tolerance, and
all three metrics equal at a tight tolerance."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from benchmark.evaluate import evaluate
from benchmark.model import FitOptions
from benchmark.models.slim import SLIM
from benchmark.models.slim_solvers import _GramSolver

OPTS = FitOptions(progress=False, threads=2)


def _objectives(x: sp.csr_matrix, w: sp.csr_matrix, l1: float, l2: float) -> np.ndarray:
    """1/2 ||x_j - X w_j||^2 + l1 ||w_j||_1 + l2/2 ||w_j||^2 for every column j, in float64."""
    xd = sp.csr_matrix(x, dtype=np.float64)
    wd = sp.csc_matrix(w, dtype=np.float64)
    r = (xd - xd @ wd).toarray()
    return 0.5 * (r * r).sum(0) + l1 * np.asarray(wd.sum(0)).ravel() + 0.5 * l2 * np.asarray(
        wd.multiply(wd).sum(0)).ravel()


def _both(x, l1, l2, **kw):
    sparse = SLIM(l1=l1, l2=l2, solver="sparse", **kw).fit(x, options=OPTS)
    gram = SLIM(l1=l1, l2=l2, solver="gram", **kw).fit(x, options=OPTS)
    assert sparse.solver_ == "sparse" and gram.solver_ == "gram"
    return sparse, gram


@pytest.mark.parametrize("l1,l2", [(0.5, 1.0), (1.0, 5.0), (5.0, 0.1)])
def test_gram_solver_reaches_the_sparse_solvers_objective_on_planted_data(planted_split, l1, l2):
    x = planted_split.train
    sparse, gram = _both(x, l1, l2)
    fs = _objectives(x, sparse.weights_, l1, l2)
    fg = _objectives(x, gram.weights_, l1, l2)
    # Both stop at a duality gap <= tol * |x_j|, so neither is above the optimum by more;
    # measured: within 1e-9 of each other relative to the objective.
    assert np.all(fg <= fs * (1 + 1e-6) + 1e-9)
    assert np.all(fs <= fg * (1 + 1e-6) + 1e-9)
    assert np.all(np.diag(gram.weights_.toarray()) == 0) and np.all(gram.weights_.data > 0)
    # The supports agree up to weights at the tolerance's scale.
    diff = abs(gram.weights_ - sparse.weights_)
    assert diff.max() < 1e-3 * max(1.0, sparse.weights_.max())


def test_gram_solver_gives_the_sparse_solvers_ml100k_metrics(ml100k_split):
    x = ml100k_split.train
    sparse, gram = _both(x, 1.0, 5.0)
    fs = _objectives(x, sparse.weights_, 1.0, 5.0)
    fg = _objectives(x, gram.weights_, 1.0, 5.0)
    # The sparse solver stops up to 4e-5 (relative) above the optimum on some columns at
    # the default tol; the gram solver's warm-started rounds end nearer it, never above.
    assert np.all(fg <= fs * (1 + 1e-6))
    a = evaluate(sparse.score, ml100k_split.test).mean()
    b = evaluate(gram.score, ml100k_split.test).mean()
    for metric in ("recall@20", "recall@50"):
        assert a[metric] == pytest.approx(b[metric], abs=1e-9), metric
    # NDCG@100 moves by a few 1e-4 within either solver's tolerance (measured 3.6e-4: the
    # sparse solver's 0.4519 against 0.4515, which both give at tol 1e-6: the next test).
    assert a["ndcg@100"] == pytest.approx(b["ndcg@100"], abs=6e-4)


def test_both_solvers_agree_to_1e_6_at_a_tight_tolerance(ml100k_split):
    x = ml100k_split.train
    sparse, gram = _both(x, 1.0, 5.0, tol=1e-7, max_iter=1000)
    np.testing.assert_allclose(
        _objectives(x, gram.weights_, 1.0, 5.0), _objectives(x, sparse.weights_, 1.0, 5.0), rtol=1e-6)
    a = evaluate(sparse.score, ml100k_split.test).mean()
    b = evaluate(gram.score, ml100k_split.test).mean()
    for metric in ("recall@20", "recall@50", "ndcg@100"):
        assert round(a[metric], 4) == round(b[metric], 4), metric


def test_gram_solver_grows_its_working_set_until_no_candidate_violates(planted_split, monkeypatch):
    """A first working set of one candidate forces many rounds; the result is the same."""
    monkeypatch.setattr(_GramSolver, "FIRST", 0.0)
    monkeypatch.setattr(_GramSolver, "ADD_MIN", 1)
    monkeypatch.setattr(_GramSolver, "GROW", 0.5)
    x = planted_split.train
    sparse, gram = _both(x, 0.5, 1.0, tol=1e-8, max_iter=2000)
    np.testing.assert_allclose(
        _objectives(x, gram.weights_, 0.5, 1.0), _objectives(x, sparse.weights_, 0.5, 1.0), rtol=1e-9)
    np.testing.assert_allclose(gram.weights_.toarray(), sparse.weights_.toarray(), atol=1e-5)


def test_auto_picks_gram_where_it_fits_and_sparse_otherwise(planted_split, monkeypatch):
    x = planted_split.train
    assert SLIM(l1=0.5, l2=1.0).fit(x, options=OPTS).solver_ == "gram"
    assert SLIM(l1=0.0, l2=1.0).fit(x, options=OPTS).solver_ == "sparse"  # no L1: no working sets
    monkeypatch.setenv("BENCHMARK_MEMORY_LIMIT", "1K")
    model = SLIM(l1=0.5, l2=1.0).fit(x, options=OPTS)
    assert model.solver_ == "sparse" and model.results_extra()["solver"] == "sparse"


def test_bad_solver_choices_are_named():
    x = sp.random(30, 10, density=0.3, format="csr", random_state=0)
    x.data[:] = 1
    with pytest.raises(ValueError, match="solver='cholesky'"):
        SLIM(solver="cholesky").fit(x, options=OPTS)
    with pytest.raises(ValueError, match="l1=0"):
        SLIM(l1=0.0, l2=1.0, solver="gram").fit(x, options=OPTS)
