"""LightFM (Kula 2015) with users represented by their items, so held-out users need no
retraining.

Every user is described by user features only: the row-normalised interaction row
``f_u = x_u / |x_u|`` (n_items features, no per-user identity feature); items keep
LightFM's identity features. LightFM then learns one embedding e_i and bias per item
*feature* (the user side) and per item (the item side), and::

    score(u, i) = (f_u @ E_user) . e_item_i + b_item_i  (+ a per-user constant, dropped)

A held-out user's scores come from their fold-in row alone, vectorised over the batch::

    scores = (normalise(fold_in) @ user_embeddings) @ item_embeddings.T + item_biases

Training is WARP by default (``loss="bpr"`` for BPR), one LightFM epoch at a time in the
shared epoch loop (``benchmark.training.run_epochs``): validation NDCG@100 every epoch, the
best epoch kept, the epoch cap, the time budget and pruning work as for the VAE family.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..cost import DataShape, Estimate, user_sample, validation_seconds
from ..model import EpochReport, FitOptions, IterativeRecommender, available_cpus
from ..registry import register
from ..training import resolve_epochs

__all__ = ["LightFMRecommender", "user_features"]


def user_features(x: sp.csr_matrix) -> sp.csr_matrix:
    """Row-normalised (each row sums to 1) float32 CSR of the interaction rows; empty rows
    stay empty."""
    x = sp.csr_matrix(x, dtype=np.float32)
    sums = np.asarray(x.sum(axis=1)).ravel()
    inv = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0).astype(np.float32)
    return sp.csr_matrix(sp.diags(inv) @ x, dtype=np.float32)


#: Interactions the plan times one LightFM epoch on (a user sample of about this size).
TIMING_CLICKS = 200_000


@register("lightfm", iterative=True, display_name="LightFM")
class LightFMRecommender(IterativeRecommender):
    """LightFM (WARP/BPR) with users as the sum of their items' feature embeddings."""

    def __init__(
        self,
        no_components: int = 100,
        learning_rate: float = 0.05,
        loss: str = "warp",
        epochs: int = 30,
        item_alpha: float = 0.0,
        user_alpha: float = 0.0,
        max_sampled: int = 10,
        learning_schedule: str = "adagrad",
        patience: int | None = None,
        deterministic: bool = False,
    ) -> None:
        """
        Args:
            no_components: embedding dimension.
            learning_rate: initial learning rate of the adagrad (or adadelta) schedule.
            loss: "warp" (default) or "bpr".
            epochs: passes over the training interactions (capped by ``FitOptions.epochs``).
            item_alpha: L2 penalty on the item embeddings (per sample, LightFM's scale).
            user_alpha: L2 penalty on the user-feature (item-as-feature) embeddings.
            max_sampled: WARP's most negative samples per positive.
            learning_schedule: "adagrad" or "adadelta".
            patience: stop after this many epochs without a better validation NDCG@100
                (None: run all epochs). The best validated epoch is kept either way.
            deterministic: False (default): LightFM's Hogwild SGD on every available core
                (``FitOptions.threads`` caps it), fast but not bit-reproducible under a
                seed; True: one thread, the same weights for the same seed. Recorded with
                the parameters in every result row.
        """
        self.no_components = no_components
        self.learning_rate = learning_rate
        self.loss = loss
        self.epochs = epochs
        self.item_alpha = item_alpha
        self.user_alpha = user_alpha
        self.max_sampled = max_sampled
        self.learning_schedule = learning_schedule
        self.patience = patience
        self.deterministic = deterministic

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            "no_components": trial.suggest_int("no_components", 16, 512, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.3, log=True),
            "epochs": trial.suggest_int("epochs", 5, 100, log=True),
            "item_alpha": trial.suggest_float("item_alpha", 1e-10, 1e-4, log=True),
            "user_alpha": trial.suggest_float("user_alpha", 1e-10, 1e-4, log=True),
        }

    @classmethod
    def estimate_cost(cls, shape: DataShape, params: dict[str, Any], options: FitOptions) -> Estimate:
        """Epochs x (one epoch timed on a user sample, scaled by interactions, + a validation
        pass). The sample is 5% of the users, at most about :data:`TIMING_CLICKS`
        interactions (WARP's cost is per interaction; at MSD shape 5% took 85 s to time)."""
        import time as _time

        x = shape.train_matrix()
        sample = user_sample(x, min(0.05, TIMING_CLICKS / max(1, x.nnz)), 1000)
        probe = cls(**{**params, "epochs": 1, "patience": None})
        t = _time.perf_counter()
        probe.fit(sample, options=FitOptions(seed=0, progress=False, threads=options.threads, epochs=1))
        per_epoch = (_time.perf_counter() - t) * x.nnz / max(1, sample.nnz)
        epochs = resolve_epochs(int(params.get("epochs", 30)), options)
        validate = validation_seconds(probe, shape)
        k = int(params.get("no_components", 100))
        peak = 2 * x.shape[1] * k * 4 * 3 + x.nnz * 24
        return Estimate(epochs * (per_epoch + validate), int(peak),
                        f"{epochs} epochs x one epoch timed on {sample.shape[0]:,} users")

    def param_problems(self) -> list[str]:
        problems = []
        if self.loss not in ("warp", "bpr"):
            problems.append(f"loss={self.loss!r} (use 'warp' or 'bpr')")
        if self.learning_schedule not in ("adagrad", "adadelta"):
            problems.append(f"learning_schedule={self.learning_schedule!r} (use 'adagrad' or 'adadelta')")
        for k in ("no_components", "epochs", "max_sampled"):
            v = getattr(self, k)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                problems.append(f"{k}={v!r} (an integer >= 1)")
        if not (isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate < float("inf")):
            problems.append(f"learning_rate={self.learning_rate!r} (a finite number > 0)")
        for k in ("item_alpha", "user_alpha"):
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and 0 <= v < float("inf")):
                problems.append(f"{k}={v!r} (a finite number >= 0)")
        if not isinstance(self.deterministic, bool):
            problems.append(f"deterministic={self.deterministic!r} (true or false)")
        if self.patience is not None and not (isinstance(self.patience, int) and self.patience >= 0):
            problems.append(f"patience={self.patience!r} (an integer >= 0, or None)")
        return problems

    def _start(self, train: sp.csr_matrix, options: FitOptions) -> None:
        """A fresh LightFM on the training users' interactions, their rows as user features.

        ``options``: seed, threads (default: all available cores, Hogwild; one with
        ``deterministic=True``). The epoch loop (validation NDCG@100 after every epoch, best
        epoch kept, epochs cap, time budget, on_epoch) is the base's.
        """
        from lightfm import LightFM

        self._interactions = sp.coo_matrix(train, dtype=np.float32)
        self._features = user_features(train)
        self._model = LightFM(
            no_components=int(self.no_components),
            learning_rate=float(self.learning_rate),
            loss=self.loss,
            item_alpha=float(self.item_alpha),
            user_alpha=float(self.user_alpha),
            max_sampled=int(self.max_sampled),
            learning_schedule=self.learning_schedule,
            random_state=np.random.RandomState(options.seed),
        )
        self.threads_ = 1 if self.deterministic else int(options.threads or available_cpus())
        self._set_model_state(self._model)

    def _train_epoch(self, epoch: int) -> EpochReport:
        self._model.fit_partial(self._interactions, user_features=self._features, epochs=1,
                                num_threads=self.threads_)
        self._set_model_state(self._model)
        # LightFM computes no loss: none is recorded; divergence shows as non-finite weights.
        finite = all(np.isfinite(a).all() for a in self._state())
        return EpochReport(loss=None if finite else float("inf"))

    def _get_state(self) -> list[np.ndarray]:
        return [a.copy() for a in self._state()]

    def _set_state(self, state: list[np.ndarray]) -> None:
        self._restore(state)

    def _end(self, options: FitOptions) -> None:
        del self._model, self._interactions, self._features  # the embeddings are the model

    def _state(self) -> list[np.ndarray]:
        return [self.feature_embeddings_, self.item_embeddings_, self.item_biases_]

    def _restore(self, state: list[np.ndarray]) -> None:
        self.feature_embeddings_, self.item_embeddings_, self.item_biases_ = state

    def _set_model_state(self, model: Any) -> None:
        # copies: LightFM keeps updating its own arrays in place
        self.feature_embeddings_ = np.array(model.user_embeddings, dtype=np.float32)
        self.item_embeddings_ = np.array(model.item_embeddings, dtype=np.float32)
        self.item_biases_ = np.array(model.item_biases, dtype=np.float32)

    def user_representations(self, fold_in: sp.csr_matrix) -> np.ndarray:
        """(n_users, no_components) user embeddings from fold-in rows (no retraining)."""
        return np.asarray(user_features(fold_in) @ self.feature_embeddings_, dtype=np.float32)

    def _score(self, fold_in: sp.csr_matrix) -> np.ndarray:
        """(n_users, n_items) float32 scores from the fold-in rows alone."""
        u = self.user_representations(fold_in)
        return u @ self.item_embeddings_.T + self.item_biases_[None, :]

    def results_extra(self) -> dict[str, Any]:
        extra = super().results_extra()
        if hasattr(self, "training_"):
            extra.update(self.training_)
            extra["threads"] = self.threads_
        return extra
