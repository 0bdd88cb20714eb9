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

__all__ = ["Recommendations", "recommend", "recommend_ids", "UnknownItemsError", "NoItemIdsError"]


class UnknownItemsError(ValueError):
    """Item ids the model was not fitted with (named, never dropped silently)."""


class NoItemIdsError(ValueError):
    """A model without recorded item ids asked for ids: its columns are only positions."""


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
            model was fitted with (``item_ids_``, set by ``run`` and ``run_experiment``).
            A model fitted directly (``model.fit``) has none: pass ``items`` (positions:
            ``items=np.arange(n_items)``), else :class:`NoItemIdsError` (column positions
            are never passed off as item ids).
        batch_size: rows scored at once (bounds memory).
    """
    fold_in = sp.csr_matrix(fold_in)
    n_rows, n_items = fold_in.shape
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    recorded = items is None
    if items is None:
        items = getattr(model, "item_ids_", None)
    if items is None:
        raise NoItemIdsError(
            "this model has no recorded item ids (it was fitted with model.fit, not by run or "
            "run_experiment): pass items=split.items, or items=numpy.arange(n_items) for "
            "column positions")
    ids_all = np.asarray(items)
    if len(ids_all) != n_items and recorded:
        raise ValueError(f"fold_in has {n_items:,} columns, but the model was fitted on "
                         f"{len(ids_all):,} items: give one column per item, in the order of "
                         "model.item_ids_ (or pass users as item ids: model.recommend_ids)")
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


def recommend_ids(model: Recommender, histories: Any, k: int = 10) -> Recommendations:
    """Top-``k`` items for users given by their histories in the data's own item ids.

    Args:
        model: a fitted model with recorded item ids (fitted by ``run`` or
            ``run_experiment``, or loaded from their ``--save-models`` folder).
        histories: one history (a sequence of item ids) or a list of them; ids compare as
            text, so ``"7"`` and ``7`` name the same item of an integer-id dataset.
        k: items per user.

    Raises:
        NoItemIdsError: the model has no recorded item ids.
        UnknownItemsError: some ids are not items the model was fitted with (all named).
    """
    ids = getattr(model, "item_ids_", None)
    if ids is None:
        raise NoItemIdsError("this model has no recorded item ids (it was fitted with "
                             "model.fit, not by run or run_experiment): use recommend(fold_in, "
                             "items=...) with column positions instead")
    ids = np.asarray(ids)
    if isinstance(histories, (str, bytes)) or not len(histories) or not all(
            isinstance(h, (list, tuple, np.ndarray)) for h in histories):
        histories = [histories]
    column = {str(x.item() if isinstance(x, np.generic) else x): j for j, x in enumerate(ids)}
    unknown: list[str] = []
    rows, cols = [], []
    for u, history in enumerate(histories):
        for item in history:
            j = column.get(str(item.item() if isinstance(item, np.generic) else item))
            if j is None:
                unknown.append(str(item))
            else:
                rows.append(u)
                cols.append(j)
    if unknown:
        shown = ", ".join(sorted(set(unknown))[:10])
        more = len(set(unknown)) - 10
        raise UnknownItemsError(
            f"{len(set(unknown))} item id(s) the model was not fitted with: {shown}"
            + (f" and {more} more" if more > 0 else "")
            + f" (it knows {len(ids):,} items; ids are compared as text)")
    fold = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                         shape=(len(histories), len(ids)))
    fold.sum_duplicates()
    fold.data[:] = 1.0
    return recommend(model, fold, k, items=ids)
