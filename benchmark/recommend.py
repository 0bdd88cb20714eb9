"""Recommendations from a fitted model: the top-``k`` items per user, in the data's own ids.

The ranking is :func:`benchmark.evaluate.topk_indices`, the one top-k of the suite: the
evaluator and ``recommend`` order equal scores the same way (lower column first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from .evaluate import check_scores, topk_indices

if TYPE_CHECKING:  # pragma: no cover
    from .model import Recommender

__all__ = ["Recommendations", "recommend"]


@dataclass(frozen=True)
class Recommendations:
    """Top-k recommendations per input row.

    Attributes:
        ids: (n_rows, k) original item ids, best first.
        scores: (n_rows, k) float32 scores of those items. A row with fewer than ``k``
            items left after excluding its fold-in items is padded with score ``-inf``
            (the ``ids`` there are meaningless; ``valid`` is False).
        valid: (n_rows, k) False where a row was padded.
    """

    ids: np.ndarray
    scores: np.ndarray
    valid: np.ndarray

    def as_lists(self) -> list[list[tuple[Any, float]]]:
        """Per row, the (item id, score) pairs without padding."""
        return [
            [(i.item() if isinstance(i, np.generic) else i, float(s))
             for i, s, ok in zip(ids, sc, va, strict=True) if ok]
            for ids, sc, va in zip(self.ids, self.scores, self.valid, strict=True)
        ]


def recommend(model: Recommender, fold_in: sp.csr_matrix, k: int = 10, *, items: Any = None,
              batch_size: int = 4096) -> Recommendations:
    """Top-``k`` items per row of ``fold_in``, the row's own (fold-in) items excluded.

    Args:
        model: a fitted model.
        fold_in: (n_rows, n_items) binary CSR of the users' known items.
        k: how many items per row.
        items: the original item ids of the columns (``Split.items``); default the ids the
            model was fitted with (``item_ids_``, set by ``run`` and ``run_experiment``), else
            the column numbers.
        batch_size: rows scored at once (bounds memory).
    """
    fold_in = sp.csr_matrix(fold_in)
    n_rows, n_items = fold_in.shape
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if items is None:
        items = getattr(model, "item_ids_", None)
    ids_all = np.arange(n_items) if items is None else np.asarray(items)
    if len(ids_all) != n_items:
        raise ValueError(f"items has {len(ids_all)} ids but fold_in has {n_items} columns")
    k = min(int(k), n_items)
    out_ids = np.empty((n_rows, k), dtype=ids_all.dtype)
    out_scores = np.empty((n_rows, k), dtype=np.float32)
    out_valid = np.empty((n_rows, k), dtype=bool)
    name = getattr(model, "name", "") or type(model).__name__
    for start in range(0, n_rows, batch_size):
        rows = fold_in[start:start + batch_size]
        s = np.array(model.score(rows), dtype=np.float32, copy=True)
        try:
            check_scores(s, rows.shape)
        except ValueError as exc:
            raise type(exc)(f"{name}: {exc}") from None
        known = rows.nonzero()
        s[known] = -np.inf
        top = topk_indices(s, k)
        top_s = np.take_along_axis(s, top, axis=1)
        stop = start + len(s)
        out_ids[start:stop] = ids_all[top]
        out_scores[start:stop] = top_s
        out_valid[start:stop] = top_s > -np.inf
    return Recommendations(out_ids, out_scores, out_valid)
