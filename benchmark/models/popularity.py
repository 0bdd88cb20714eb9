"""Popularity: every user gets the training item counts. The floor every model must beat."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..model import FitOptions, Recommender
from ..protocol import HeldOut
from ..registry import register


@register("popularity", display_name="Popularity", fit_uses_seed=False)
class Popularity(Recommender):
    """Most popular items: scores are the training users' click counts per item."""

    def __init__(self) -> None:
        pass

    def _fit(self, train: sp.csr_matrix, valid: HeldOut | None, options: FitOptions) -> None:
        self.counts_ = np.asarray(train.sum(axis=0), dtype=np.float32).ravel()

    def _score(self, fold_in: sp.csr_matrix) -> np.ndarray:
        return np.broadcast_to(self.counts_, (fold_in.shape[0], len(self.counts_))).copy()
