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

The checks themselves are :mod:`benchmark.testing` (importable, so a package that registers
models runs them in its own CI). Models train with cheap settings: ``CHEAP`` below for the
built-ins, the classmethod ``conformance_params()`` (a dict of constructor params) for a
plugin that needs one, and a cap of 200 epochs (``FitOptions.epochs``) for the rest.
"""

from __future__ import annotations

import pytest

from benchmark import registry, testing
from benchmark.model import Recommender

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

_FITTED: dict[tuple[str, int], Recommender] = {}


def cheap(name: str) -> dict:
    return CHEAP.get(name, ({}, {}))[0]


def fitted(name: str, split, seed: int = 0) -> Recommender:
    """One fit per (model, seed) for the whole module."""
    key = (name, seed)
    if key not in _FITTED:
        _FITTED[key] = testing.fit_model(name, split, cheap(name), seed=seed)
    return _FITTED[key]


def test_registry_has_the_baselines():
    for name in ("popularity", "ease", "wmf", "slim", "lightfm"):
        assert name in MODELS


@pytest.mark.parametrize("name", MODELS)
def test_params_are_keywords_and_search_space_builds_the_model(name):
    testing.check_params(name)


@pytest.mark.parametrize("check", sorted(testing.CHECKS))
@pytest.mark.parametrize("name", MODELS)
def test_fitted_model_conforms(name, check, planted_split):
    """Shapes and dtype; fold-in rows alone; fold-in items never ranked; save/load; recommend."""
    testing.CHECKS[check](fitted(name, planted_split), planted_split)


@pytest.mark.parametrize("name", MODELS)
def test_fit_sees_only_training_users_and_same_seed_gives_same_scores(name, planted_split):
    testing.check_inputs_unchanged_and_seeded(name, fitted(name, planted_split), planted_split, cheap(name))


@pytest.mark.parametrize("name", [m for m in MODELS if m != "popularity"])
def test_beats_popularity_on_planted_structure(name, planted_split):
    testing.check_beats_popularity(fitted(name, planted_split), planted_split)


def test_check_model_passes_a_plugin_and_names_what_a_broken_one_breaks():
    import numpy as np

    from benchmark.model import ItemItemRecommender

    class Cooccurrence(ItemItemRecommender):
        def __init__(self, shrink: float = 1.0) -> None:
            self.shrink = shrink

        def _fit(self, train, valid, options) -> None:
            c = (train.T @ train).toarray()
            np.fill_diagonal(c, 0.0)
            self.weights_ = c / (1.0 + self.shrink)

    out = testing.check_model(Cooccurrence)
    assert out["ndcg@100"] > 0.3

    class PeeksAtTheBatch(Cooccurrence):  # scores depend on the other users of the batch
        def _score(self, fold_in):
            s = super()._score(fold_in)
            return s + np.float32(fold_in.shape[0])

    with pytest.raises(AssertionError, match="fold_in_only"):
        testing.check_model(PeeksAtTheBatch)
