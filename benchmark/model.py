"""The model contract: ``Recommender`` (template methods), ``IterativeRecommender``, options.

A model is a few methods::

    class MyModel(Recommender):                  # closed form, one shot
        def __init__(self, l2: float = 1.0):     # hyperparameters: keywords, stored as is
            self.l2 = l2
        def _fit(self, train, valid, options):   # train: (users, items) float32 CSR
            self.weights_ = ...                  # fitted state ends in "_"
        def _score(self, fold_in):               # fold_in: (n, items) float32 CSR
            return ...                           # (n, items) float32

    class MyIterative(IterativeRecommender):     # trained by epochs
        def __init__(self, epochs: int = 50, lr: float = 1e-3): ...
        def _start(self, train, options): ...    # initial state
        def _train_epoch(self, epoch): ...       # one pass; returns the loss (or None)
        def _get_state(self): ...                # a copy of the weights
        def _set_state(self, state): ...         # put a copy back (best epoch)
        def _score(self, fold_in): ...

``fit`` (normalise the options, check the parameters, coerce the input, call ``_fit``,
record ``n_items_``) and ``score`` (fitted? right width? then ``_score``) are the base's, so
every model gives the same errors. ``IterativeRecommender._fit`` runs the one epoch loop of
:func:`benchmark.training.run_epochs`: validation NDCG@100, best epoch, patience, time
budget, pruning callbacks, divergence, progress and history, the same for every model.
A model may still override ``fit``/``score`` itself (older plugins do).
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.sparse as sp

from .options import EpochReport, FitOptions
from .resources import available_cpus

if TYPE_CHECKING:  # pragma: no cover
    from .cost import DataShape, Estimate
    from .protocol import HeldOut

__all__ = ["EpochReport", "FitOptions", "Recommender", "IterativeRecommender",
           "ItemItemRecommender", "NotFittedError", "available_cpus", "seed_streams"]


class NotFittedError(RuntimeError):
    """``score`` (or ``recommend``, ``save``) called before ``fit``."""


def _as_matrix(m: Any, what: str) -> sp.csr_matrix:
    """A float32 CSR matrix (no copy when it already is one)."""
    if sp.issparse(m):
        if m.format == "csr" and m.dtype == np.float32:
            return m
        return sp.csr_matrix(m, dtype=np.float32)
    arr = np.asarray(m)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-d (users x items) matrix, not shape {arr.shape}")
    return sp.csr_matrix(arr, dtype=np.float32)


def seed_streams(seed: int, *names: str) -> dict[str, int]:
    """Independent seeds for the named random streams of one fit.

    One ``numpy.random.SeedSequence(seed)`` spawned into ``len(names)`` children, each
    reduced to a 63-bit integer (for ``torch.Generator.manual_seed`` or
    ``numpy.random.default_rng``): streams never overlap and adding a stream at the end
    leaves the others unchanged (no ``seed + 1``, no global seeding).
    """
    children = np.random.SeedSequence(int(seed)).spawn(len(names))
    return {n: int(c.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
            for n, c in zip(names, children, strict=True)}


class Recommender:
    """Base class of every model (scikit-learn conventions).

    Subclasses declare every hyperparameter as an explicit keyword of ``__init__``, which
    only stores it under the same name; fitted state ends in ``_``.

    Lifecycle::

        model = Model(**params)                          # stores hyperparameters only
        model.fit(split.train, split.valid, options=FitOptions(seed=0))
        scores = model.score(split.test.fold_in)         # (n_users, n_items) float32

    Class attributes:
        name: registry name (set by ``@register``).
        description: one line shown by ``python -m benchmark models``.
        iterative: True for models trained by epochs (they report validation NDCG@100).
        epochs_param: the parameter ``--epochs`` caps (default ``epochs``).
        display_name: how reports and papers name the model ("Mult-VAE", "EASE"); empty:
            the registry name (:meth:`label_for_reports`).
        fit_uses_seed: False for a model whose fit has no randomness given the split
            (popularity, EASE, EDLAE, DLAE, SLIM): ``--seeds`` fits it once and the other
            seeds' rows reuse that fit (``same_fit_as``). Not a hyperparameter.

    Hooks a model may override, each with a default: :meth:`default_params`,
    :meth:`search_space`, :meth:`param_problems`, :meth:`skip_reason`,
    :meth:`estimate_cost` (the run plan), :meth:`conformance_params` (cheap settings for
    :mod:`benchmark.testing`), :meth:`results_extra`.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    iterative: ClassVar[bool] = False
    fit_uses_seed: ClassVar[bool] = True
    #: The constructor parameter that ``--epochs`` caps (None: ``epochs`` when the model
    #: has one). Results fitted below it are labelled "capped".
    epochs_param: ClassVar[str | None] = None

    # --- hyperparameters ------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyperparameters by name (scikit-learn's convention; ``deep`` is accepted for
        ``sklearn.base.clone`` and has nothing to descend into here)."""
        del deep
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params: Any) -> Recommender:
        valid = set(self._param_names())
        for k, v in params.items():
            if k not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {k!r}; it has {sorted(valid)}")
            setattr(self, k, v)
        return self

    @classmethod
    def default_params(cls, dataset: str | None = None) -> dict[str, Any]:
        """The paper's defaults, possibly per dataset (override for e.g. EASE lambda)."""
        sig = inspect.signature(cls.__init__)
        return {
            p.name: p.default
            for p in sig.parameters.values()
            if p.name != "self" and p.default is not inspect.Parameter.empty
        }

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        """Optuna search space: ``trial.suggest_*`` calls returning constructor params."""
        return {}

    @classmethod
    def trial_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """The search space's own names and values that give ``params`` (what tuning
        enqueues as trial 0, the defaults). By default the same names; a model whose
        ``search_space`` names a parameter otherwise (iALS: ``regularization_nu1``) maps it.
        The conformance kit checks that trial 0 gives ``default_params`` back."""
        return dict(params)

    def param_problems(self) -> list[str]:
        """What is wrong with the hyperparameters, one line each (empty: nothing).

        Override to state a model's ranges; :meth:`check_params` (called by ``fit``) and
        the command line's checks before any fit both use it.
        """
        return []

    def check_params(self) -> None:
        """Raise ``ValueError`` naming every problem of :meth:`param_problems` at once."""
        problems = self.param_problems()
        if problems:
            name = self.name or type(self).__name__
            raise ValueError(f"{name}: invalid parameters: " + "; ".join(problems))

    @classmethod
    def skip_reason(cls, stats: dict[str, Any], *, explicit: bool) -> str | None:
        """A reason not to run on a dataset of this size when not asked for by name."""
        return None

    @classmethod
    def estimate_cost(cls, shape: DataShape, params: dict[str, Any], options: FitOptions) -> Estimate | None:
        """The fit's time and peak memory on data of ``shape``, before any fit (the run plan).

        Args:
            shape: the data's counts (:class:`benchmark.cost.DataShape`); its
                ``train_matrix()`` / ``valid_part()`` are the real matrices when read, else
                synthetic ones of that shape, so an estimate may time the model's own
                kernel on them (briefly: a plan times every model).
            params: the hyperparameters the fit will get (defaults filled in).
            options: the run's options (device, threads, the epochs cap).

        Returns:
            An :class:`benchmark.cost.Estimate` (seconds with validation passes, peak bytes
            on the device with the data, and how they were found), or None: "no estimate"
            (the default).
        """
        return None

    @classmethod
    def conformance_params(cls) -> dict[str, Any]:
        """Constructor parameters that make a fit cheap (seconds on the small planted data of
        :mod:`benchmark.testing`) while the model still learns, e.g. ``{"epochs": 40}``.

        Only the conformance checks use them; default: no overrides.
        """
        return {}

    @classmethod
    def label_for_reports(cls) -> str:
        """``display_name``, else the registry name, else the class name."""
        return cls.display_name or cls.name or cls.__name__

    # --- training and inference (template methods) ---------------------------------------
    def fit(
        self,
        train: sp.csr_matrix,
        valid: HeldOut | None = None,
        *,
        options: FitOptions | None = None,
    ) -> Recommender:
        """Fit on the training users; ``valid`` users only select (best epoch, early stop).

        The template: options default to ``FitOptions()``, the parameters are checked
        (:meth:`check_params`), ``train`` becomes a float32 CSR matrix, then ``_fit`` runs
        and ``n_items_`` is recorded. Returns ``self``.
        """
        if type(self)._fit is Recommender._fit:
            raise NotImplementedError(f"{type(self).__name__} defines neither _fit nor fit")
        options = options if options is not None else FitOptions()
        self.check_params()
        train = _as_matrix(train, "train")
        if train.shape[0] == 0 or train.shape[1] == 0:
            raise ValueError(f"{self._label()}: the training matrix is empty ({train.shape})")
        if valid is not None and valid.fold_in.shape[1] != train.shape[1]:
            raise ValueError(f"{self._label()}: validation users have {valid.fold_in.shape[1]} "
                             f"items, the training users {train.shape[1]}")
        self._fit(train, valid, options)
        self.n_items_ = int(train.shape[1])
        return self

    def score(self, fold_in: sp.csr_matrix) -> np.ndarray:
        """Scores (n_rows, n_items) float32 for users given only their fold-in rows.

        The template: refuses an unfitted model and a matrix of the wrong width, then calls
        ``_score`` with a float32 CSR matrix.
        """
        if type(self)._score is Recommender._score:
            raise NotImplementedError(f"{type(self).__name__} defines neither _score nor score")
        n = getattr(self, "n_items_", None)
        if n is None:
            raise NotFittedError(f"{self._label()} is not fitted: call fit(train) first (or load "
                                 "a saved model)")
        fold_in = _as_matrix(fold_in, "fold_in")
        if fold_in.shape[1] != n:
            raise ValueError(f"{self._label()}: fold_in has {fold_in.shape[1]} items, the model was "
                             f"trained on {n}")
        return self._score(fold_in)

    def _fit(self, train: sp.csr_matrix, valid: HeldOut | None, options: FitOptions) -> None:
        """Fit the model (write the fitted state, names ending in ``_``)."""
        raise NotImplementedError

    def _score(self, fold_in: sp.csr_matrix) -> np.ndarray:
        """(n_rows, n_items) float32 scores of a float32 CSR matrix of fold-in rows."""
        raise NotImplementedError

    def _label(self) -> str:
        return self.name or type(self).__name__

    # --- recommendations and persistence (benchmark.recommend, benchmark.persist) ---------
    def recommend(self, fold_in: sp.csr_matrix, k: int = 10, *, items: Any = None) -> Any:
        """Top-``k`` original item ids and scores per row, the row's fold-in items excluded.

        ``items`` are the ids of the columns (``split.items``); default the ids the model was
        fitted with by ``run``/``run_experiment`` (``item_ids_``); a model without them
        raises (column positions are never passed off as ids: ``items=np.arange(n)``). Ties
        are ordered as the evaluator orders them (:func:`benchmark.evaluate.topk_indices`).
        Returns a :class:`benchmark.recommend.Recommendations` (``ids``, ``scores``, ``valid``).
        """
        from .recommend import recommend

        return recommend(self, fold_in, k, items=items)

    def recommend_ids(self, histories: Any, k: int = 10) -> Any:
        """Top-``k`` items for users given as lists of the data's own item ids (one list,
        or a list of lists); unknown ids raise, naming them
        (:func:`benchmark.recommend.recommend_ids`)."""
        from .recommend import recommend_ids

        return recommend_ids(self, histories, k)

    def save(self, path: str | os.PathLike) -> Path:
        """Save the fitted state to the folder ``path`` (no pickled code; see benchmark.persist)."""
        from .persist import save_model

        return save_model(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | None = None) -> Recommender:
        """A model saved by :meth:`save`; it scores identically. On a base class
        (``Recommender.load``) the class is found in the model registry by the saved name."""
        import benchmark.registry as registry

        from .persist import load_model, saved_model_name

        if cls in (Recommender, IterativeRecommender, ItemItemRecommender):
            cls = registry.get(saved_model_name(path))
        return load_model(path, cls, device=device)

    def _empty_module(self, name: str) -> Any:
        """A freshly built torch module for the fitted attribute ``name`` (loading fills it)."""
        raise NotImplementedError(
            f"{type(self).__name__} holds a torch module in {name!r}: define _empty_module to load it"
        )

    def _after_load(self) -> None:
        """Rebuild fitted attributes that are not saved (caches derived from saved ones)."""

    def results_extra(self) -> dict[str, Any]:
        """Extra facts for the result row (e.g. the per-epoch history, beta curve)."""
        extra: dict[str, Any] = {}
        hist = getattr(self, "history_", None)
        if hist:
            extra["history"] = [h.as_dict() if isinstance(h, EpochReport) else h for h in hist]
        training = getattr(self, "training_", None)
        if isinstance(training, dict):  # best epoch, stop reason, seconds (IterativeRecommender)
            extra["training"] = dict(training)
        return extra

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class IterativeRecommender(Recommender):
    """A model trained by epochs; the base owns the loop (:func:`benchmark.training.run_epochs`).

    A subclass writes :meth:`_start`, :meth:`_train_epoch`, :meth:`_get_state`,
    :meth:`_set_state` and :meth:`_score`. Its ``epochs`` parameter (or the one named by
    ``epochs_param``) is capped by ``FitOptions.epochs``; a ``patience`` parameter stops
    early, a ``validate_every`` parameter thins validation. After ``fit``: ``history_``
    (one :class:`EpochReport` per epoch), ``best_epoch_``, ``training_`` (the outcome), and
    the best validated epoch's weights.
    """

    iterative: ClassVar[bool] = True

    def _start(self, train: sp.csr_matrix, options: FitOptions) -> None:
        """Set up the initial state (seeded from ``options.seed``)."""
        raise NotImplementedError

    def _train_epoch(self, epoch: int) -> Any:
        """One pass over the training users (``epoch`` counts from 1); returns the mean
        loss, ``None`` when the model computes none (recorded as such, never as 0), or an
        :class:`EpochReport` (loss, beta, extra)."""
        raise NotImplementedError

    def _get_state(self) -> Any:
        """A copy of the current weights (kept for the best epoch)."""
        raise NotImplementedError

    def _set_state(self, state: Any) -> None:
        """Restore weights returned by :meth:`_get_state`."""
        raise NotImplementedError

    def _end(self, options: FitOptions) -> None:
        """After the loop, with the best epoch's weights in place (e.g. build caches)."""

    def _fit(self, train: sp.csr_matrix, valid: HeldOut | None, options: FitOptions) -> None:
        from .training import resolve_epochs, run_epochs

        param = self.epochs_param or "epochs"
        epochs = resolve_epochs(getattr(self, param), options)
        self._start(train, options)

        def train_epoch(epoch: int) -> EpochReport:
            out = self._train_epoch(epoch)
            return out if isinstance(out, EpochReport) else EpochReport(loss=None if out is None else float(out))

        outcome = run_epochs(
            name=self._label(), params=self.get_params(), train_epoch=train_epoch,
            score=self._score, snapshot=self._get_state, restore=self._set_state, valid=valid,
            options=options, epochs=epochs, patience=getattr(self, "patience", None),
            validate_every=int(getattr(self, "validate_every", 1) or 1),
        )
        self.history_ = outcome.history
        self.best_epoch_ = outcome.best_epoch
        self.training_ = outcome.as_dict()
        self._end(options)


class ItemItemRecommender(Recommender):
    """A model whose scores are ``fold_in @ weights_`` (EASE, EDLAE, SLIM, item kNN).

    ``weights_`` is an (n_items, n_items) NumPy array, SciPy sparse matrix or torch tensor
    (on the device it was fitted on); :meth:`_score` handles all three.
    """

    def _score(self, fold_in: sp.csr_matrix) -> np.ndarray:
        w = self.weights_
        if sp.issparse(w):
            return np.asarray((fold_in @ w).toarray(), dtype=np.float32)
        if isinstance(w, np.ndarray):
            return np.asarray(fold_in.astype(w.dtype) @ w, dtype=np.float32)
        import torch

        from .torch_parts import dense_on_device  # a torch tensor

        with torch.no_grad():
            return (dense_on_device(fold_in, w.dtype, str(w.device)) @ w).float().cpu().numpy()
