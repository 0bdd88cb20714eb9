"""Conformance suite run over every registered model: built-ins and plugins alike.

For each name in ``benchmark.registry.available()`` (the built-ins, entry points and
``models/*.py``), on the ``planted_split`` fixture (600 users, 120 items, 4 taste blocks):

- ``fit``/``score``: scores are (n_users, n_items) float32 without NaN;
- held-out users are represented from their fold-in rows alone: ``fit`` receives the
  training matrix (and validation users) only, never changes them, and the test users'
  scores do not depend on the batch they are scored in (order, size, duplicates), so a
  user the model has never seen, even a made-up one, gets scores;
- fold-in items are never ranked by the evaluator: with the fold-in itself as the
  holdout, every metric is 0;
- the same seed gives the same scores (a second fit, on copies of the inputs);
- every model but popularity beats popularity on test NDCG@100.

Models train with cheap settings: ``CHEAP`` below for the built-ins, a class attribute
``conformance_params`` (a dict of constructor params) for a plugin that needs one, and a
cap of ``EPOCHS`` epochs (``FitOptions.epochs``) for the rest.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from benchmark import registry
from benchmark.evaluate import evaluate
from benchmark.protocol import FitOptions, HeldOut, Recommender

EPOCHS = 200
#: name -> (constructor params, FitOptions fields): small, fast, still better than popularity.
CHEAP: dict[str, tuple[dict, dict]] = {
    "ease": ({"l2": 10.0}, {}),
    "edlae": ({"dropout": 0.25, "l2": 10.0}, {}),
    "dlae": ({"dropout": 0.5, "l2": 10.0}, {}),
    "ials": ({"factors": 16, "epochs": 8, "regularization": 0.01, "unobserved_weight": 0.1}, {}),
    "wmf": ({"factors": 16, "iterations": 8, "alpha": 10.0, "regularization": 1.0}, {}),
    "slim": ({"l1": 0.5, "l2": 1.0}, {}),
    "lightfm": ({"no_components": 16, "epochs": 10}, {}),
    # VAE family: tiny nets, short annealing, one validation at the end
    **{
        name: ({"hidden_dims": (), "latent_dim": 32, "batch_size": 100, "total_anneal_steps": 200,
                "epochs": 150, "patience": None, "validate_every": 150, "anneal_cap": 0.2}, {})
        for name in ("multvae", "gaussian-vae", "logistic-vae")
    },
    **{
        name: ({"latent_dim": 32, "batch_size": 100, "epochs": 150, "patience": None,
                "validate_every": 150}, {})
        for name in ("multdae", "gaussian-dae", "logistic-dae")
    },
    # RecVAE: a narrow net, 10 alternating epochs (about a second on one thread)
    "recvae": ({"hidden_dim": 32, "latent_dim": 16, "batch_size": 100, "epochs": 10, "lr": 3e-3}, {}),
}

MODELS = registry.available()


def _setup(name: str, seed: int = 0) -> tuple[type[Recommender], dict, FitOptions]:
    cls = registry.get(name)
    params = dict(cls.default_params("planted"))
    cheap, opts = CHEAP.get(name, ({}, {}))
    extra = dict(getattr(cls, "conformance_params", {}) or {})
    names = set(cls._param_names())
    params.update({k: v for k, v in {**extra, **cheap}.items() if k in names})
    # one thread: tiny problems, and no thread pools fighting over shared cores
    options = dict(seed=seed, device="cpu", epochs=EPOCHS, progress=False, threads=1)
    options.update(opts)
    return cls, params, FitOptions(**options)


_FITTED: dict[tuple[str, int], Recommender] = {}


def fitted(name: str, split, seed: int = 0) -> Recommender:
    """One fit per (model, seed) for the whole module."""
    key = (name, seed)
    if key not in _FITTED:
        cls, params, options = _setup(name, seed)
        _FITTED[key] = cls(**params).fit(split.train, split.valid, options=options)
    return _FITTED[key]


def _copy(m: sp.csr_matrix) -> sp.csr_matrix:
    return sp.csr_matrix(m, copy=True)


def _same(a: sp.csr_matrix, b: sp.csr_matrix) -> bool:
    return (
        a.shape == b.shape
        and np.array_equal(a.indptr, b.indptr)
        and np.array_equal(a.indices, b.indices)
        and np.array_equal(a.data, b.data)
    )


def test_registry_has_the_baselines():
    for name in ("popularity", "ease", "wmf", "slim", "lightfm"):
        assert name in MODELS


@pytest.mark.parametrize("name", MODELS)
def test_params_are_keywords_and_search_space_builds_the_model(name):
    import optuna

    cls = registry.get(name)
    params = cls.default_params("planted")
    model = cls(**params)
    assert model.get_params() == params  # __init__ only stores its keywords
    assert not [k for k in vars(model) if k.endswith("_") and not k.startswith("_")], (
        "__init__ must not set fitted state"
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    space = cls.search_space(trial)
    unknown = set(space) - set(cls._param_names())
    assert not unknown, f"search_space of {name} suggests non-parameters {unknown}"
    cls(**{**params, **space})


@pytest.mark.parametrize("name", MODELS)
def test_fit_and_score_shapes_and_dtype(name, planted_split):
    model = fitted(name, planted_split)
    fold = planted_split.test.fold_in
    scores = model.score(fold)
    assert isinstance(scores, np.ndarray)
    assert scores.shape == fold.shape
    assert scores.dtype == np.float32
    assert not np.isnan(scores).any()
    one = model.score(fold[:1])
    assert one.shape == (1, fold.shape[1]) and one.dtype == np.float32


@pytest.mark.parametrize("name", MODELS)
def test_users_are_represented_by_their_fold_in_rows_alone(name, planted_split):
    """Test users were never in fit; their scores may depend on nothing but their own row."""
    model = fitted(name, planted_split)
    fold = planted_split.test.fold_in
    full = model.score(fold)
    scale = max(1e-6, float(np.abs(full).max()))
    tol = dict(rtol=1e-4, atol=1e-5 * scale)
    perm = np.random.default_rng(0).permutation(fold.shape[0])
    np.testing.assert_allclose(model.score(fold[perm]), full[perm], **tol)
    np.testing.assert_allclose(model.score(fold[:7]), full[:7], **tol)
    twice = model.score(sp.vstack([fold[:5], fold[:5]]).tocsr())
    np.testing.assert_allclose(twice[:5], twice[5:], **tol)
    # a made-up user, in no matrix the model has seen
    items = np.array([0, 1, 2, 3, 4, 5, 40, 41])
    new = sp.csr_matrix((np.ones(len(items), np.float32), (np.zeros(len(items), int), items)), shape=(1, fold.shape[1]))
    s = model.score(new)
    assert s.shape == (1, fold.shape[1]) and np.isfinite(s).any()


@pytest.mark.parametrize("name", MODELS)
def test_fold_in_items_are_never_ranked(name, planted_split):
    model = fitted(name, planted_split)
    fold = planted_split.test.fold_in
    # With the fold-in itself as the "holdout", any fold-in item in a top-k would be a hit.
    res = evaluate(model.score, HeldOut(fold, fold), metrics=("recall@20", "ndcg@100"))
    assert res.n_users > 0
    for metric, values in res.per_user.items():
        assert np.all(values == 0.0), f"{name}: a fold-in item was ranked ({metric})"


@pytest.mark.parametrize("name", MODELS)
def test_fit_sees_only_training_users_and_same_seed_gives_same_scores(name, planted_split):
    """A second fit, on copies of the training and validation matrices: the inputs are left
    unchanged, the test users' fold-in rows are only ever given to score(), and the scores
    equal those of the first fit with the same seed."""
    split = planted_split
    first = fitted(name, split).score(split.test.fold_in)
    train, vf, vh = _copy(split.train), _copy(split.valid.fold_in), _copy(split.valid.holdout)
    cls, params, options = _setup(name)
    model = cls(**params).fit(train, HeldOut(vf, vh), options=options)
    assert _same(train, split.train) and _same(vf, split.valid.fold_in), f"{name}.fit changed its input"
    assert _same(vh, split.valid.holdout), f"{name}.fit changed the validation holdout"
    fold = _copy(split.test.fold_in)
    second = model.score(fold)
    assert _same(fold, split.test.fold_in), f"{name}.score changed the fold-in matrix"
    scale = max(1.0, float(np.abs(first).max()))
    np.testing.assert_allclose(second, first, rtol=1e-5, atol=1e-6 * scale)


@pytest.mark.parametrize("name", [m for m in MODELS if m != "popularity"])
def test_beats_popularity_on_planted_structure(name, planted_split):
    pop = fitted("popularity", planted_split)
    model = fitted(name, planted_split)
    p = evaluate(pop.score, planted_split.test).mean()["ndcg@100"]
    m = evaluate(model.score, planted_split.test).mean()["ndcg@100"]
    assert m > p + 0.02, f"{name} NDCG@100 {m:.4f} does not beat popularity {p:.4f}"


@pytest.mark.parametrize("name", MODELS)
def test_save_and_load_score_identically(name, planted_split, tmp_path):
    """A saved model, loaded by its own class and by the registry name, scores identically."""
    model = fitted(name, planted_split)
    fold = planted_split.test.fold_in
    before = model.score(fold)
    path = model.save(tmp_path / name)
    assert (path / "model.json").is_file()
    again = type(model).load(path)
    assert type(again) is type(model)
    assert again.get_params() == model.get_params()
    np.testing.assert_array_equal(again.score(fold), before)
    by_name = Recommender.load(path)
    np.testing.assert_array_equal(by_name.score(fold), before)


@pytest.mark.parametrize("name", MODELS)
def test_recommend_gives_top_k_original_ids_without_fold_in_items(name, planted_split):
    model = fitted(name, planted_split)
    fold = planted_split.test.fold_in
    ids = np.array([f"item-{j}" for j in range(fold.shape[1])])
    recs = model.recommend(fold, k=10, items=ids)
    scores = model.score(fold)
    assert recs.ids.shape == recs.scores.shape == (fold.shape[0], 10)
    for u in range(fold.shape[0]):
        seen = set(ids[fold[u].indices])
        assert not seen & set(recs.ids[u][recs.valid[u]]), f"{name}: a fold-in item was recommended"
        cols = [int(i.split("-")[1]) for i in recs.ids[u]]
        np.testing.assert_array_equal(recs.scores[u], scores[u, cols])
        assert np.all(np.diff(recs.scores[u]) <= 0), "best first"
        rest = np.delete(scores[u], np.r_[fold[u].indices, cols])
        assert rest.size == 0 or rest.max() <= recs.scores[u].min()
