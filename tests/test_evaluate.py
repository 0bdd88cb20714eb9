"""Metrics against values worked out by hand, and the batched evaluator's bookkeeping."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from benchmark.evaluate import (
    compute_metrics,
    evaluate,
    ndcg_at_k,
    parse_metric,
    recall_at_k,
    topk_indices,
)
from benchmark.protocol import HeldOut


def csr(rows):
    return sp.csr_matrix(np.asarray(rows, dtype=np.float32))


def test_topk_orders_best_first_and_breaks_ties_by_lower_index():
    s = np.array([[0.1, 0.9, 0.5, 0.9, 0.2]])
    # 0.9 at items 1 and 3 (tie -> 1 first), then 0.5 at item 2
    assert topk_indices(s, 3).tolist() == [[1, 3, 2]]
    # all equal: the k lowest indices
    assert topk_indices(np.zeros((2, 6)), 4).tolist() == [[0, 1, 2, 3]] * 2
    # the tie straddles the cut: two of three 0.5s fit
    s = np.array([[0.5, 1.0, 0.5, 0.5]])
    assert topk_indices(s, 3).tolist() == [[1, 0, 2]]


def test_topk_k_larger_than_catalogue():
    s = np.array([[3.0, 1.0, 2.0]])
    assert topk_indices(s, 100).tolist() == [[0, 2, 1]]


def test_recall_by_hand():
    # ranking [0, 1, 2, 3, 4]; holdout {1, 4, 7}
    top = np.array([[0, 1, 2, 3, 4, 5, 6, 7]])
    hold = csr([[0, 1, 0, 0, 1, 0, 0, 1]])
    # Recall@2: hits {1} -> 1 / min(2, 3) = 0.5
    assert recall_at_k(top, hold, 2)[0] == pytest.approx(0.5)
    # Recall@5: hits {1, 4} -> 2 / min(5, 3) = 2/3
    assert recall_at_k(top, hold, 5)[0] == pytest.approx(2 / 3)


def test_ndcg_by_hand():
    top = np.array([[0, 1, 2, 3, 4, 5, 6, 7]])
    hold = csr([[0, 1, 0, 0, 1, 0, 0, 1]])
    # NDCG@5: hits at ranks 2 and 5 -> DCG = 1/log2(3) + 1/log2(6) = 0.63093 + 0.38685
    # IDCG over min(3, 5) = 3 -> 1 + 1/log2(3) + 1/log2(4) = 1 + 0.63093 + 0.5
    dcg = 1 / math.log2(3) + 1 / math.log2(6)
    idcg = 1 + 1 / math.log2(3) + 0.5
    assert ndcg_at_k(top, hold, 5)[0] == pytest.approx(dcg / idcg)  # = 1.01778 / 2.13093 = 0.477624
    assert ndcg_at_k(top, hold, 5)[0] == pytest.approx(0.477624, abs=1e-6)
    # NDCG@1: no hit at rank 1 -> 0; IDCG truncated at 1 item
    assert ndcg_at_k(top, hold, 1)[0] == 0.0
    # perfect ranking -> 1
    assert ndcg_at_k(np.array([[1, 4, 7, 0]]), hold, 3)[0] == pytest.approx(1.0)


def test_empty_rows_give_nan_not_zero():
    top = np.array([[0, 1, 2]])
    empty = csr([[0, 0, 0]])
    assert np.isnan(recall_at_k(top, empty, 2)[0])
    assert np.isnan(ndcg_at_k(top, empty, 2)[0])


def test_fold_in_items_are_masked_not_zeroed():
    # item 0 has the top score but is in the fold-in: it must not take a rank.
    scores = np.array([[9.0, -1.0, -2.0, -3.0]], dtype=np.float32)
    fold = csr([[1, 0, 0, 0]])
    hold = csr([[0, 0, 0, 1]])
    m = compute_metrics(scores, fold, hold, ["recall@3", "ndcg@3"])
    # ranking without item 0: [1, 2, 3] -> the held-out item 3 is at rank 3
    assert m["recall@3"][0] == pytest.approx(1.0)
    assert m["ndcg@3"][0] == pytest.approx(1 / math.log2(4))
    # with negative scores, zeroing (instead of -inf) would rank item 0 first: we don't.
    assert compute_metrics(scores, fold, hold, ["recall@1"])["recall@1"][0] == 0.0


def test_nan_scores_rank_last():
    scores = np.array([[np.nan, 0.1, 0.2]], dtype=np.float32)
    m = compute_metrics(scores, csr([[0, 0, 0]]), csr([[1, 0, 0]]), ["recall@2"])
    assert m["recall@2"][0] == 0.0


def test_evaluate_excludes_and_counts_users_without_holdout():
    fold = csr([[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0]])
    hold = csr([[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]])
    ho = HeldOut(fold, hold)
    pop = np.array([0.1, 0.3, 0.2, 0.0], dtype=np.float32)

    def score(f):
        return np.tile(pop, (f.shape[0], 1))

    res = evaluate(score, ho, metrics=("recall@1", "ndcg@100"), batch_size=1)
    assert res.n_excluded == 1
    assert res.users.tolist() == [0, 2]
    # user 0: ranking without item 0 -> [1, 2, 3]: item 1 at rank 1 -> recall@1 = 1
    # user 2: ranking without 0,1 -> [2, 3]: item 2 at rank 1 -> recall@1 = 1
    assert res.per_user["recall@1"].tolist() == [1.0, 1.0]
    assert res.fold_in_size.tolist() == [1, 2]
    assert res.mean()["ndcg@100"] == pytest.approx(1.0)
    assert res.sem()["ndcg@100"] == pytest.approx(0.0)


def test_evaluate_batching_does_not_change_results():
    rng = np.random.default_rng(0)
    fold = sp.random(57, 30, density=0.2, random_state=1, format="csr")
    fold.data[:] = 1
    hold = sp.random(57, 30, density=0.1, random_state=2, format="csr")
    hold.data[:] = 1
    hold = hold - hold.multiply(fold)
    ho = HeldOut(fold, hold)
    w = rng.normal(size=(30, 30)).astype(np.float32)

    def score(f):
        return np.asarray(f @ w, dtype=np.float32)

    a = evaluate(score, ho, batch_size=5)
    b = evaluate(score, ho, batch_size=1000)
    for m in a.per_user:
        np.testing.assert_array_equal(a.per_user[m], b.per_user[m])


def test_sem_is_population_std_over_sqrt_n():
    fold = csr([[0, 0, 0, 0]] * 2)
    hold = csr([[1, 0, 0, 0], [0, 0, 0, 1]])
    res = evaluate(lambda f: np.tile([4.0, 3, 2, 1], (f.shape[0], 1)), HeldOut(fold, hold),
                   metrics=("recall@1",))
    # per-user recall@1: [1, 0] -> mean 0.5, std 0.5, sem 0.5 / sqrt(2)
    assert res.mean()["recall@1"] == 0.5
    assert res.sem()["recall@1"] == pytest.approx(0.5 / math.sqrt(2))


def test_parse_metric_rejects_unknown():
    assert parse_metric("ndcg@100") == ("ndcg", 100)
    assert parse_metric("MAP@10") == ("map", 10)
    for bad in ("f1@10", "ndcg@0", "ndcg", "recall@x"):
        with pytest.raises(ValueError, match="use KIND@K"):
            parse_metric(bad)


def test_fast_topk_equals_a_full_stable_sort_with_and_without_ties():
    from benchmark.evaluate import _topk_exact

    rng = np.random.default_rng(3)
    cont = rng.standard_normal((50, 300)).astype(np.float32)
    counts = rng.integers(0, 6, (50, 300)).astype(np.float32)  # many ties, like popularity
    counts[:, :40] = -np.inf  # masked fold-in items
    for s in (cont, counts):
        full = np.argsort(-s, axis=1, kind="stable")  # the definition: by score, then index
        for k in (1, 20, 100, 299, 300, 500):
            np.testing.assert_array_equal(topk_indices(s, k), full[:, :k])
            np.testing.assert_array_equal(_topk_exact(s, min(k, 300)), full[:, :k])


# --- the opt-in metrics, by hand ---------------------------------------------------------------
def test_opt_in_metrics_by_hand():
    from benchmark.evaluate import evaluate as run_eval
    from benchmark.protocol import HeldOut

    # 3 users x 6 items; fold-in items are ranked last (-inf)
    #   A: fold-in {0}, holdout {1, 3}, scores 9 8 7 6 5 4 -> ranking 1 2 3 4 5 (0)
    #      top-3 = 1 2 3: hits at ranks 1 and 3
    #      precision@3 = 2/3, hitrate@3 = 1, mrr@3 = 1/1,
    #      map@3 = (P@1 * 1 + P@3 * 1) / min(3, 2) = (1 + 2/3) / 2 = 5/6
    #   B: fold-in {2}, holdout {3}, scores 1..6 -> ranking 5 4 3 1 0 (2); hit at rank 3
    #      precision@3 = 1/3, hitrate@3 = 1, mrr@3 = 1/3, map@3 = (P@3 * 1) / 1 = 1/3
    #   C: fold-in {}, holdout {0}, scores 0..5 -> top-3 = 5 4 3; no hit: all 0
    #   coverage@3: items in some top-3 = {1, 2, 3, 4, 5} -> 5/6
    fold = sp.csr_matrix(np.array([[1, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]], np.float32))
    hold = sp.csr_matrix(np.array([[0, 1, 0, 1, 0, 0], [0, 0, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0]], np.float32))
    scores = np.array([[9, 8, 7, 6, 5, 4], [1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5]], np.float32)
    res = run_eval(lambda f: scores[: f.shape[0]], HeldOut(fold, hold),
                   metrics=("precision@3", "hitrate@3", "mrr@3", "map@3", "coverage@3"))
    np.testing.assert_allclose(res.per_user["precision@3"], [2 / 3, 1 / 3, 0])
    np.testing.assert_allclose(res.per_user["hitrate@3"], [1, 1, 0])
    np.testing.assert_allclose(res.per_user["mrr@3"], [1, 1 / 3, 0])
    np.testing.assert_allclose(res.per_user["map@3"], [5 / 6, 1 / 3, 0])
    assert res.mean()["coverage@3"] == pytest.approx(5 / 6)
    assert "coverage@3" not in res.per_user  # one number for all users, not per user
    with pytest.raises(ValueError, match="KIND@K with KIND one of recall, ndcg, precision"):
        run_eval(lambda f: scores, HeldOut(fold, hold), metrics=("f1@3",))
