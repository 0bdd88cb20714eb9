"""SLIM with one BLAS thread per regression (the thread pool is the parallelism) gives the
very weights of the former default (BLAS threads inside every coordinate-descent step)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import threadpoolctl

from benchmark.evaluate import evaluate
from benchmark.model import FitOptions
from benchmark.models.slim import SLIM


def _fit(split, *, limit_blas: bool, monkeypatch) -> SLIM:
    with monkeypatch.context() as m:
        if not limit_blas:  # the former behaviour: no limit on BLAS threads
            m.setattr(threadpoolctl, "threadpool_limits", lambda *a, **k: contextlib.nullcontext())
        return SLIM(l1=0.5, l2=1.0).fit(split.train, options=FitOptions(progress=False, threads=2))


@pytest.mark.parametrize("which", ["planted", "ml-100k"])
def test_one_blas_thread_gives_the_same_weights_and_metrics(which, planted_split, ml100k_split, monkeypatch):
    split = planted_split if which == "planted" else ml100k_split
    new = _fit(split, limit_blas=True, monkeypatch=monkeypatch)
    old = _fit(split, limit_blas=False, monkeypatch=monkeypatch)
    assert (new.weights_ != old.weights_).nnz == 0
    a = evaluate(new.score, split.test).mean()
    b = evaluate(old.score, split.test).mean()
    for metric in ("recall@20", "recall@50", "ndcg@100"):
        assert a[metric] == pytest.approx(b[metric], abs=1e-12)
    assert np.all(new.weights_.data > 0)
