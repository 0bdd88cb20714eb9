"""Rehearsal data at a full paper shape (``synthetic:msd`` ...), checked at a small shape:
exact users and items, clicks within 2%, the filters remove nothing, deterministic whatever
the threads, and structure a model finds (EASE beats popularity)."""

from __future__ import annotations

import numpy as np

from benchmark.data import dataset_names, get_dataset
from benchmark.data.preprocess import SplitConfig, make_split
from benchmark.data.rehearsal import SHAPES, generate_at_shape
from benchmark.evaluate import evaluate
from benchmark.model import FitOptions
from benchmark.models.ease import EASE
from benchmark.models.popularity import Popularity

SMALL = dict(users=12_000, items=2_500, clicks=420_000, min_user_items=20, min_item_users=40)


def _small(**kw):
    a = {**SMALL, **kw}
    return generate_at_shape(a["users"], a["items"], a["clicks"], min_user_items=a["min_user_items"],
                             min_item_users=a["min_item_users"], seed=a.get("seed", 0),
                             threads=a.get("threads"))


def test_exact_users_and_items_clicks_within_2_percent_and_above_the_filters():
    df = _small()
    assert df["user"].nunique() == SMALL["users"] and df["item"].nunique() == SMALL["items"]
    assert abs(len(df) / SMALL["clicks"] - 1) <= 0.02
    assert not df.duplicated(["user", "item"]).any()
    assert df.groupby("user").size().min() >= SMALL["min_user_items"]
    assert df.groupby("item").size().min() >= SMALL["min_item_users"]


def test_the_same_table_whatever_the_threads_and_another_with_another_seed():
    a, b = _small(threads=1), _small(threads=2)
    assert a.equals(b)
    assert not a.equals(_small(seed=1))


def test_the_filters_remove_nothing_and_a_model_beats_popularity():
    df = _small()
    protocol = SplitConfig(min_rating=None, min_item_users=SMALL["min_item_users"],
                           min_user_items=SMALL["min_user_items"], n_heldout=1000)
    split = make_split(df, protocol, dataset="rehearsal")
    stats = split.stats()
    assert stats["users"] == SMALL["users"] and split.n_items == SMALL["items"]
    assert stats["interactions"] == len(df)  # the filters removed nothing
    options = FitOptions(device="cpu", progress=False)
    ease = EASE(l2=100.0).fit(split.train, options=options)
    pop = Popularity().fit(split.train, options=options)
    ndcg = {name: evaluate(m.score, split.test, progress=False).mean()["ndcg@100"]
            for name, m in (("ease", ease), ("pop", pop))}
    assert ndcg["ease"] > ndcg["pop"] + 0.02, ndcg


def test_the_three_rehearsal_datasets_are_listed_with_the_papers_shapes():
    names = dataset_names()
    for name, (users, items, _, min_user, min_item, heldout) in SHAPES.items():
        assert f"synthetic:{name}" in names
        spec = get_dataset(f"synthetic:{name}")
        assert spec.generated and spec.protocol.n_heldout == heldout
        assert (spec.protocol.min_user_items, spec.protocol.min_item_users) == (min_user, min_item)
        pub = get_dataset(name).published
        assert (pub.users, pub.items) == (users, items)
    assert np.isclose(SHAPES["msd"][2], 33_633_450)
