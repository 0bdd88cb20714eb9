"""The conformance suite, importable: run it on your own model in your own CI.

    from benchmark.testing import check_model, planted_split

    def test_my_model_conforms():
        check_model("mymodel")                  # or the class; raises AssertionError

Every model the suite ships passes it (``tests/test_conformance.py`` runs these checks over
the whole registry). What it checks, on :func:`planted_split` (600 users, 120 items, four
taste blocks; popularity cannot see the blocks, co-occurrence can):

1. hyperparameters are ``__init__`` keywords stored as is (``get_params`` round-trips; no
   fitted state set by ``__init__``) and ``search_space`` suggests only parameters;
2. ``score`` returns (n_users, n_items) float32 without NaN;
3. held-out users are represented from their fold-in rows alone: their scores do not depend
   on the order, size or duplicates of the batch they are scored in, and a made-up user
   gets scores;
4. ``fit`` never changes its inputs, and the same seed gives the same scores;
5. fold-in items are never ranked (with the fold-in as the holdout every metric is 0);
6. ``save``/``load`` give identical scores; ``recommend`` answers in the given ids, best
   first, without fold-in items;
7. the model beats popularity on test NDCG@100 by ``margin`` (0.02).

Cheap settings: the model's :meth:`~benchmark.model.Recommender.conformance_params`
(constructor parameters that fit in seconds, e.g. fewer epochs) and ``FitOptions.epochs``
capped at ``epochs``.
"""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np
import scipy.sparse as sp

from .model import FitOptions, Recommender
from .protocol import HeldOut, Split

__all__ = ["planted_split", "check_model", "CHECKS"]


def planted_split(seed: int = 7) -> Split:
    """A tiny split with planted block structure (600 users, 120 items, 4 taste groups).

    Users in group g click mostly items of block g, plus a few popular items; a model that
    learns item co-occurrence beats popularity by a wide margin.
    """
    import pandas as pd

    from .data.preprocess import SplitConfig, make_split

    rng = np.random.default_rng(seed)
    n_users, n_items, groups = 600, 120, 4
    block = n_items // groups
    zipf = 1.0 / np.arange(1, n_items + 1)
    zipf /= zipf.sum()
    rows, cols = [], []
    for u in range(n_users):
        g = u % groups
        own = rng.choice(np.arange(g * block, (g + 1) * block), size=rng.integers(8, 16), replace=False)
        pop = rng.choice(np.arange(n_items), size=2, replace=False, p=zipf)
        items = np.unique(np.concatenate([own, pop]))
        rows += [u] * len(items)
        cols += list(items)
    df = pd.DataFrame({"user": rows, "item": cols})
    return make_split(df, SplitConfig(min_rating=None, min_user_items=5, n_heldout=100), seed=1,
                      dataset="planted")


def _resolve(model: str | type[Recommender]) -> type[Recommender]:
    import benchmark.registry as registry

    return registry.get(model) if isinstance(model, str) else model


def setup(model: str | type[Recommender], params: dict[str, Any] | None = None, *, seed: int = 0,
          epochs: int = 200) -> tuple[type[Recommender], dict[str, Any], FitOptions]:
    """The class, cheap parameters (defaults + ``conformance_params`` + ``params``) and options."""
    cls = _resolve(model)
    names = set(cls._param_names())
    merged = dict(cls.default_params("planted"))
    extra = {**cls.conformance_params(), **(params or {})}
    merged.update({k: v for k, v in extra.items() if k in names})
    # one thread: tiny problems, and no thread pools fighting over shared cores
    return cls, merged, FitOptions(seed=seed, device="cpu", epochs=epochs, progress=False, threads=1)


def fit_model(model, split: Split, params: dict[str, Any] | None = None, *, seed: int = 0,
              epochs: int = 200) -> Recommender:
    cls, merged, options = setup(model, params, seed=seed, epochs=epochs)
    return cls(**merged).fit(split.train, split.valid, options=options)


def _copy(m: sp.csr_matrix) -> sp.csr_matrix:
    return sp.csr_matrix(m, copy=True)


def _same(a: sp.csr_matrix, b: sp.csr_matrix) -> bool:
    return (a.shape == b.shape and np.array_equal(a.indptr, b.indptr)
            and np.array_equal(a.indices, b.indices) and np.array_equal(a.data, b.data))


def check_params(model: str | type[Recommender]) -> None:
    import optuna

    cls = _resolve(model)
    params = cls.default_params("planted")
    m = cls(**params)
    assert m.get_params() == params, f"{cls.__name__}: __init__ must store its keywords as they are"
    assert not [k for k in vars(m) if k.endswith("_") and not k.startswith("_")], (
        f"{cls.__name__}: __init__ must not set fitted state")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    space = cls.search_space(trial)
    unknown = set(space) - set(cls._param_names())
    assert not unknown, f"search_space of {cls.__name__} suggests non-parameters {unknown}"
    cls(**{**params, **space})
    check_defaults_trial(cls)


def check_defaults_trial(cls: type[Recommender]) -> None:
    """Tuning's trial 0 is the defaults: enqueued under the search space's names
    (``trial_params``), its suggestions give ``default_params(dataset)`` back on every
    dataset of the paper and the small ones, except a default outside its distribution (left
    to the sampler; trial 0 then still fits the defaults, see ``enqueued_defaults``)."""
    import optuna

    from .tuning.space import enqueued_defaults, probe_space

    names = probe_space(cls)
    for dataset in (None, "ml-100k", "lastfm", "ml-20m", "netflix", "msd"):
        defaults = cls.default_params(dataset)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        study.enqueue_trial(enqueued_defaults(cls, dataset, names))
        trial = study.ask()
        got = cls.search_space(trial)
        mapped = cls.trial_params(defaults)
        outside = {n for n, d in trial.distributions.items() if n in mapped and not _contains(d, mapped[n])}
        for k, v in got.items():
            assert v == defaults.get(k) or k in outside, (
                f"{cls.__name__} on {dataset}: tuning's trial 0 draws {k}={v!r}, not the default "
                f"{defaults.get(k)!r}: its search space names it otherwise; map the names in "
                "trial_params")


def _contains(dist: Any, value: Any) -> bool:
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (TypeError, ValueError):
        return False


def check_scores(fitted: Recommender, split: Split) -> None:
    fold = split.test.fold_in
    scores = fitted.score(fold)
    assert isinstance(scores, np.ndarray) and scores.shape == fold.shape, "score: wrong type or shape"
    assert scores.dtype == np.float32, f"score returned {scores.dtype}, not float32"
    assert not np.isnan(scores).any(), "score returned NaN"
    one = fitted.score(fold[:1])
    assert one.shape == (1, fold.shape[1]) and one.dtype == np.float32


def check_fold_in_only(fitted: Recommender, split: Split) -> None:
    """Test users were never in fit; their scores depend on nothing but their own row."""
    fold = split.test.fold_in
    full = fitted.score(fold)
    tol = dict(rtol=1e-4, atol=1e-5 * max(1e-6, float(np.abs(full).max())))
    perm = np.random.default_rng(0).permutation(fold.shape[0])
    np.testing.assert_allclose(fitted.score(fold[perm]), full[perm], **tol)
    np.testing.assert_allclose(fitted.score(fold[:7]), full[:7], **tol)
    twice = fitted.score(sp.vstack([fold[:5], fold[:5]]).tocsr())
    np.testing.assert_allclose(twice[:5], twice[5:], **tol)
    items = np.array([0, 1, 2, 3, 4, 5, 40, 41])
    new = sp.csr_matrix((np.ones(len(items), np.float32), (np.zeros(len(items), int), items)),
                        shape=(1, fold.shape[1]))
    s = fitted.score(new)
    assert s.shape == (1, fold.shape[1]) and np.isfinite(s).any(), "a made-up user gets no scores"


def check_fold_in_never_ranked(fitted: Recommender, split: Split) -> None:
    from .evaluate import evaluate

    fold = split.test.fold_in
    res = evaluate(fitted.score, HeldOut(fold, fold), metrics=("recall@20", "ndcg@100"))
    assert res.n_users > 0
    for metric, values in res.per_user.items():
        assert np.all(values == 0.0), f"a fold-in item was ranked ({metric})"


def check_inputs_unchanged_and_seeded(model, fitted: Recommender, split: Split,
                                      params: dict[str, Any] | None = None) -> None:
    first = fitted.score(split.test.fold_in)
    train, vf, vh = _copy(split.train), _copy(split.valid.fold_in), _copy(split.valid.holdout)
    cls, merged, options = setup(model, params)
    second_model = cls(**merged).fit(train, HeldOut(vf, vh), options=options)
    assert _same(train, split.train) and _same(vf, split.valid.fold_in), "fit changed its input"
    assert _same(vh, split.valid.holdout), "fit changed the validation holdout"
    fold = _copy(split.test.fold_in)
    second = second_model.score(fold)
    assert _same(fold, split.test.fold_in), "score changed the fold-in matrix"
    scale = max(1.0, float(np.abs(first).max()))
    np.testing.assert_allclose(second, first, rtol=1e-5, atol=1e-6 * scale,
                               err_msg="the same seed gave different scores")
    if not cls.fit_uses_seed:  # it says its fit has no randomness: another seed, same scores
        _, _, other = setup(model, params, seed=1)
        third = cls(**merged).fit(split.train, split.valid, options=other).score(split.test.fold_in)
        np.testing.assert_allclose(third, first, rtol=1e-5, atol=1e-6 * scale,
                                   err_msg="fit_uses_seed is False but seed 1 gave other scores")


def check_save_load(fitted: Recommender, split: Split) -> None:
    fold = split.test.fold_in
    before = fitted.score(fold)
    with tempfile.TemporaryDirectory() as tmp:
        path = fitted.save(f"{tmp}/model")
        again = type(fitted).load(path)
        assert type(again) is type(fitted) and again.get_params() == fitted.get_params()
        np.testing.assert_array_equal(again.score(fold), before, err_msg="scores changed after save/load")


def check_recommend(fitted: Recommender, split: Split) -> None:
    fold = split.test.fold_in
    ids = np.array([f"item-{j}" for j in range(fold.shape[1])])
    recs = fitted.recommend(fold, k=10, items=ids)
    scores = fitted.score(fold)
    assert recs.ids.shape == recs.scores.shape == (fold.shape[0], 10)
    for u in range(fold.shape[0]):
        assert not set(ids[fold[u].indices]) & set(recs.ids[u][recs.valid[u]]), "a fold-in item was recommended"
        cols = [int(i.split("-")[1]) for i in recs.ids[u]]
        np.testing.assert_array_equal(recs.scores[u], scores[u, cols])
        assert np.all(np.diff(recs.scores[u]) <= 0), "recommendations are not best first"
        rest = np.delete(scores[u], np.r_[fold[u].indices, cols])
        assert rest.size == 0 or rest.max() <= recs.scores[u].min(), "a better item was left out"


def check_beats_popularity(fitted: Recommender, split: Split, margin: float = 0.02) -> float:
    import benchmark.registry as registry

    from .evaluate import evaluate

    pop = registry.get("popularity")().fit(split.train)
    p = evaluate(pop.score, split.test).mean()["ndcg@100"]
    m = evaluate(fitted.score, split.test).mean()["ndcg@100"]
    assert m > p + margin, f"NDCG@100 {m:.4f} does not beat popularity {p:.4f} by {margin}"
    return m


#: The checks of a fitted model, in order (name -> function(fitted, split)).
CHECKS = {
    "scores": check_scores,
    "fold_in_only": check_fold_in_only,
    "fold_in_never_ranked": check_fold_in_never_ranked,
    "save_load": check_save_load,
    "recommend": check_recommend,
}


def check_model(model: str | type[Recommender], *, split: Split | None = None,
                params: dict[str, Any] | None = None, beats_popularity: bool = True) -> dict[str, Any]:
    """Run every check on ``model`` (a registered name or a class); raise AssertionError
    naming the first that fails. Returns {"ndcg@100": test NDCG@100 on the planted split}."""
    split = split if split is not None else planted_split()
    name = model if isinstance(model, str) else getattr(model, "name", "") or model.__name__
    check_params(model)
    fitted = fit_model(model, split, params)
    for check, fn in CHECKS.items():
        try:
            fn(fitted, split)
        except AssertionError as exc:
            raise AssertionError(f"{name}: conformance check {check!r} failed: {exc}") from exc
    check_inputs_unchanged_and_seeded(model, fitted, split, params)
    out: dict[str, Any] = {}
    if beats_popularity:
        out["ndcg@100"] = check_beats_popularity(fitted, split)
    return out
