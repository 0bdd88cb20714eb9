"""Beyond-accuracy metrics (arp, aplt, gini, novelty) against values worked out by hand.

The example: 5 training users x 6 items, training popularity pop = [5, 4, 3, 2, 1, 0]
(15 clicks; item 5 has none), and 3 test users whose top 2 are fixed by their scores:

    user  scores                          fold-in  holdout  ranking (fold-in last)  top 2
    A     [.9, .8, .7, .6, .5, .4]        {0}      {3}      1 2 3 4 5 0             [1, 2]
    B     [.1, .2, .3, .4, .5, .6]        {5}      {0}      4 3 2 1 0 5             [4, 3]
    C     [0, 0, 0, 0, 0, 0] (ties)       {1}      {2}      0 2 3 4 5 1             [0, 2]

Long tail: ascending by clicks 5(0), 4(1), 3(2), 2(3), ...; cumulative 0, 1, 3, 6: at most
20% of 15 = 3 clicks -> tail = {3, 4, 5} (the boundary, exactly 3, is inside).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.sparse as sp
from test_cli import cli

from benchmark.beyond import ItemPopularity, gini_index, long_tail
from benchmark.evaluate import DEFAULT_METRICS, compute_metrics, evaluate, parse_metric
from benchmark.protocol import HeldOut

TRAIN = np.array([
    [1, 1, 1, 1, 1, 0],
    [1, 1, 1, 1, 0, 0],
    [1, 1, 1, 0, 0, 0],
    [1, 1, 0, 0, 0, 0],
    [1, 0, 0, 0, 0, 0],
], dtype=np.float32)  # column sums 5, 4, 3, 2, 1, 0
SCORES = np.array([
    [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
    [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
])
FOLD = [[0], [5], [1]]
HOLD = [[3], [0], [2]]
METRICS = ["arp@2", "aplt@2", "gini@2", "novelty@2"]

# arp@2: A (4 + 3) / 2 = 3.5, B (1 + 2) / 2 = 1.5, C (5 + 3) / 2 = 4.0; mean 9 / 3 = 3.0
ARP_2 = [3.5, 1.5, 4.0]
# aplt@2 with tail {3, 4, 5}: A [1, 2] 0/2, B [4, 3] 2/2, C [0, 2] 0/2; mean 1/3
APLT_2 = [0.0, 1.0, 0.0]
# novelty: -log2(pop / 5): item 0 -> 0, 1 -> log2(5/4), 2 -> log2(5/3), 3 -> log2(5/2), 4 -> log2 5
#   A (log2(5/4) + log2(5/3)) / 2 = log2(25/12) / 2, B (log2 5 + log2(5/2)) / 2 = log2(25/2) / 2,
#   C (0 + log2(5/3)) / 2; mean = log2(25/12 * 25/2 * 5/3) / 6 = log2(3125/72) / 6
NOVELTY_2 = [math.log2(25 / 12) / 2, math.log2(25 / 2) / 2, math.log2(5 / 3) / 2]
NOVELTY_2_MEAN = math.log2(3125 / 72) / 6
# gini@2: exposure over the three top 2s: item 0: 1 (C), 1: 1 (A), 2: 2 (A, C), 3: 1 (B),
#   4: 1 (B), 5: 0; sorted 0 1 1 1 1 2 (n = 6, sum 6), weights 2i - n - 1 = -5 -3 -1 1 3 5:
#   0 - 3 - 1 + 1 + 3 + 10 = 10 -> G = 10 / (6 * 6) = 5/18
GINI_2 = 5 / 18


def rows(lists, n=6):
    m = np.zeros((len(lists), n), dtype=np.float32)
    for r, cols in enumerate(lists):
        m[r, cols] = 1
    return sp.csr_matrix(m)


def popularity():
    return ItemPopularity.of(sp.csr_matrix(TRAIN))


def test_popularity_from_the_training_matrix():
    pop = popularity()
    assert pop.counts.tolist() == [5, 4, 3, 2, 1, 0] and pop.n_users == 5
    assert np.flatnonzero(pop.tail).tolist() == [3, 4, 5]
    # the item nobody clicked counts as clicked once: -log2(1/5) = log2 5, same as item 4
    assert pop.self_information[5] == pytest.approx(math.log2(5))
    assert pop.self_information[0] == 0.0


def test_per_user_values_by_hand():
    m = compute_metrics(SCORES, rows(FOLD), rows(HOLD), METRICS, popularity())
    assert m["arp@2"].tolist() == ARP_2
    assert m["aplt@2"].tolist() == APLT_2
    assert m["novelty@2"] == pytest.approx(NOVELTY_2)
    # gini is an aggregate: compute_metrics hands back the batch's top 2 for evaluate
    assert m["gini@2"].tolist() == [[1, 2], [4, 3], [0, 2]]


def test_empty_holdout_rows_are_nan():
    m = compute_metrics(SCORES, rows(FOLD), rows([[3], [], [2]]), ["arp@2", "novelty@2"],
                        popularity())
    assert np.isnan(m["arp@2"][1]) and m["arp@2"][0] == 3.5
    assert np.isnan(m["novelty@2"][1])


def _score_fn():
    """Scores by fold-in (users A, B, C as above; D, fold-in {4}, scores all 0)."""
    by_fold = {(0,): SCORES[0], (5,): SCORES[1], (1,): SCORES[2], (4,): np.zeros(6)}
    return lambda fold: np.stack([by_fold[tuple(fold[r].indices)] for r in range(fold.shape[0])])


def _heldout():
    # D (row 1) has no held-out item: excluded; counted, its top 2 [0, 1] would change gini
    return HeldOut(rows([FOLD[0], [4], FOLD[1], FOLD[2]]), rows([HOLD[0], [], HOLD[1], HOLD[2]]))


@pytest.mark.parametrize("batch_size", [1, 2, 1000])
def test_through_evaluate_in_batches(batch_size):
    res = evaluate(_score_fn(), _heldout(), metrics=METRICS + ["coverage@2"],
                   batch_size=batch_size, popularity=popularity())
    assert res.n_users == 3 and res.n_excluded == 1
    mean = res.mean()
    assert mean["arp@2"] == pytest.approx(3.0)
    assert mean["aplt@2"] == pytest.approx(1 / 3)
    assert mean["novelty@2"] == pytest.approx(NOVELTY_2_MEAN)
    assert mean["gini@2"] == pytest.approx(GINI_2)
    assert mean["coverage@2"] == pytest.approx(5 / 6)  # items 0..4, not 5
    assert res.per_user["arp@2"].tolist() == ARP_2
    assert set(res.aggregate) == {"gini@2", "coverage@2"}
    assert "gini@2" not in res.sem() and "arp@2" in res.sem()


def test_k_past_the_catalogue_is_the_catalogue():
    # K = 10 > 6 items: every top 6 is the whole catalogue, so per user
    # arp = 15 / 6 = 2.5, aplt = 3 / 6 = 0.5, novelty = (0 + log2(5/4) + log2(5/3) + log2(5/2)
    # + log2 5 + log2 5 [item 5, clicked by nobody, counts as once]) / 6 = log2(5^5 / 24) / 6,
    # and every item is shown 3 times: gini = 0
    res = evaluate(_score_fn(), _heldout(), metrics=["arp@10", "aplt@10", "gini@10", "novelty@10"],
                   batch_size=2, popularity=popularity())
    mean = res.mean()
    assert mean["arp@10"] == pytest.approx(2.5)
    assert mean["aplt@10"] == pytest.approx(0.5)
    assert mean["novelty@10"] == pytest.approx(math.log2(3125 / 24) / 6)
    assert mean["gini@10"] == pytest.approx(0.0, abs=1e-12)
    assert res.extra["k_clipped"] == {m: 6 for m in ["arp@10", "aplt@10", "gini@10", "novelty@10"]}


def test_long_tail_rule_by_hand():
    # 10 clicks, 20% = 2; ascending, ties by lower index: 1 (1), 2 (1), 3 (1), 0 (2), 4 (5);
    # cumulative 1, 2, 3: items 1 and 2 are the tail, item 3 (same count as 2) is not
    assert np.flatnonzero(long_tail(np.array([2, 1, 1, 1, 5]))).tolist() == [1, 2]
    # the least clicked item alone is 3 of 9 clicks > 20%: no tail
    assert not long_tail(np.array([3, 3, 3])).any()
    # unclicked items are always in it (cumulative 0)
    assert np.flatnonzero(long_tail(np.array([0, 10, 0, 10]))).tolist() == [0, 2]


def test_gini_extremes_and_a_hand_value():
    assert gini_index(np.full(7, 4)) == pytest.approx(0.0, abs=1e-12)
    assert gini_index(np.array([0, 0, 9, 0, 0])) == pytest.approx(4 / 5)  # (n - 1) / n
    # [3, 0, 1, 0] sorted 0 0 1 3, weights -3 -1 1 3: (1 + 9) / (4 * 4) = 0.625
    assert gini_index(np.array([3, 0, 1, 0])) == pytest.approx(0.625)
    assert math.isnan(gini_index(np.zeros(3)))


def test_opt_in_and_needs_popularity():
    beyond = ("arp", "aplt", "gini", "novelty")
    assert not any(parse_metric(m)[0] in beyond for m in DEFAULT_METRICS)
    assert parse_metric("ARP@10") == ("arp", 10) and parse_metric("novelty@5") == ("novelty", 5)
    with pytest.raises(ValueError, match="unknown metric"):
        parse_metric("gini@0")
    with pytest.raises(ValueError, match="arp@K, gini@K need the training item popularity"):
        evaluate(_score_fn(), _heldout(), metrics=["gini@2", "arp@2", "recall@2"])
    with pytest.raises(ValueError, match="popularity"):
        compute_metrics(SCORES, rows(FOLD), rows(HOLD), ["novelty@2"])
    with pytest.raises(ValueError, match="has 5 items"):
        compute_metrics(SCORES, rows(FOLD), rows(HOLD), ["arp@2"],
                        ItemPopularity(np.ones(5), n_users=3))
    # the accuracy metrics alone need no popularity
    assert "recall@2" in evaluate(_score_fn(), _heldout(), metrics=["recall@2"]).mean()


def test_cli_run_records_the_four(tmp_path):
    p = cli("run", "--models", "popularity", "--dataset", "synthetic", "--metrics",
            "arp@10,aplt@10,gini@10,novelty@10", "--data-dir", str(tmp_path / "d"),
            "--results-dir", str(tmp_path / "r"), "--no-report", "--no-progress", cwd=tmp_path)
    assert p.returncode == 0
    rows_ = [json.loads(x) for x in (tmp_path / "r" / "results.jsonl").read_text().splitlines()]
    assert {r["part"] for r in rows_} == {"valid", "test"}
    for r in rows_:
        for m in ("arp@10", "aplt@10", "gini@10", "novelty@10", "ndcg@100"):
            assert math.isfinite(r["metrics"][m]), (m, r["metrics"])
        assert 0 <= r["metrics"]["aplt@10"] <= 1 and 0 <= r["metrics"]["gini@10"] < 1
