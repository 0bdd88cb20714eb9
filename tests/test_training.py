"""The shared epoch loop: best-epoch restore, early stopping, callbacks, budget, divergence.

A toy "model" whose validation NDCG@100 is scripted per epoch drives the real evaluator:
user u has fold-in item u and held-out items 100 + u and 200 + u; with quality q the
first round(q * 50) users get their held-out items scored 1 (NDCG@100 = 1), the others
-1 (ranked last of 400 items: NDCG@100 = 0), so validation NDCG@100 equals q exactly
when q is a multiple of 1/50.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import scipy.sparse as sp

from benchmark.model import EpochReport, FitOptions
from benchmark.protocol import HeldOut
from benchmark.training import TrainingDiverged, resolve_epochs, run_epochs

N_USERS, N_ITEMS = 50, 400


def _valid() -> HeldOut:
    u = np.arange(N_USERS)
    fold = sp.csr_matrix((np.ones(N_USERS), (u, u)), shape=(N_USERS, N_ITEMS))
    rows = np.concatenate([u, u])
    cols = np.concatenate([u + 100, u + 200])
    hold = sp.csr_matrix((np.ones(2 * N_USERS), (rows, cols)), shape=(N_USERS, N_ITEMS))
    return HeldOut(fold, hold)


class Toy:
    """Weights = a quality q set by each epoch from a script; scores follow q."""

    def __init__(self, qualities, losses=None, sleep=0.0):
        self.qualities = list(qualities)
        self.losses = losses
        self.sleep = sleep
        self.state = {"q": 0.0}
        self.epochs_trained = 0

    def train_epoch(self, epoch: int) -> EpochReport:
        self.epochs_trained += 1
        self.state["q"] = self.qualities[epoch - 1]
        if self.sleep:
            time.sleep(self.sleep)
        loss = self.losses[epoch - 1] if self.losses else 1.0 / epoch
        return EpochReport(loss=loss, beta=epoch / 10)

    def score(self, fold_in: sp.csr_matrix) -> np.ndarray:
        users = fold_in.indices  # one fold-in item per row: the user's id
        good = users < round(self.state["q"] * N_USERS)
        s = np.zeros(fold_in.shape, dtype=np.float32)
        r = np.arange(fold_in.shape[0])
        s[r, users + 100] = np.where(good, 1.0, -1.0)
        s[r, users + 200] = np.where(good, 1.0, -1.0)
        return s

    def run(self, epochs, valid=None, options=None, **kw):
        return run_epochs(
            name="toy",
            params={"lr": 1.0},
            train_epoch=self.train_epoch,
            score=self.score,
            snapshot=lambda: dict(self.state),
            restore=self.state.update,
            valid=valid if valid is not None else _valid(),
            options=options or FitOptions(progress=False),
            epochs=epochs,
            **kw,
        )


def test_validation_ndcg_follows_the_script():
    toy = Toy([0.2, 0.6, 0.4])
    out = toy.run(3)
    assert [h.ndcg100 for h in out.history] == pytest.approx([0.2, 0.6, 0.4])
    assert [h.epoch for h in out.history] == [1, 2, 3]
    assert [h.loss for h in out.history] == pytest.approx([1.0, 0.5, 1 / 3])
    assert [h.beta for h in out.history] == pytest.approx([0.1, 0.2, 0.3])
    assert all(h.seconds >= 0 and h.extra["valid_seconds"] >= 0 for h in out.history)


def test_best_epoch_weights_are_restored():
    toy = Toy([0.2, 0.8, 0.4, 0.6])
    out = toy.run(4)
    assert out.best_epoch == 2
    assert out.best_ndcg == pytest.approx(0.8)
    assert toy.state["q"] == 0.8  # the model holds epoch 2's weights, not epoch 4's
    assert out.stop_reason == "epochs"


def test_early_stopping_with_patience():
    # best at epoch 2; with patience 3 the loop stops after epoch 5 (3 epochs without gain)
    toy = Toy([0.2, 0.8, 0.4, 0.6, 0.7, 0.9, 1.0])
    out = toy.run(7, patience=3)
    assert toy.epochs_trained == 5
    assert out.stop_reason == "patience"
    assert out.best_epoch == 2 and toy.state["q"] == 0.8
    # patience None runs everything and finds the later best
    toy = Toy([0.2, 0.8, 0.4, 0.6, 0.7, 0.9, 1.0])
    out = toy.run(7, patience=None)
    assert toy.epochs_trained == 7 and out.best_epoch == 7


def test_validate_every_n_and_always_the_last_epoch():
    toy = Toy([0.1, 0.2, 0.3, 0.4, 0.5])
    out = toy.run(5, validate_every=2)
    validated = [h.epoch for h in out.history if h.ndcg100 is not None]
    assert validated == [2, 4, 5]
    assert out.best_epoch == 5
    with pytest.raises(ValueError, match="validate_every"):
        toy.run(2, validate_every=0)


def test_on_epoch_gets_each_validated_report_and_may_stop_the_fit():
    seen: list[EpochReport] = []
    toy = Toy([0.2, 0.4, 0.6])
    toy.run(3, options=FitOptions(progress=False, on_epoch=seen.append))
    assert [r.epoch for r in seen] == [1, 2, 3]
    assert [r.ndcg100 for r in seen] == pytest.approx([0.2, 0.4, 0.6])

    optuna = pytest.importorskip("optuna")

    def prune(report: EpochReport) -> None:
        if report.epoch == 2:
            raise optuna.TrialPruned()

    toy = Toy([0.2, 0.4, 0.6])
    with pytest.raises(optuna.TrialPruned):
        toy.run(3, options=FitOptions(progress=False, on_epoch=prune))
    assert toy.epochs_trained == 2


def test_time_budget_stops_after_the_current_epoch_and_validates_it():
    toy = Toy([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], sleep=0.05)
    out = toy.run(6, options=FitOptions(progress=False, time_budget=0.01))
    assert toy.epochs_trained == 1
    assert out.stop_reason == "time_budget"
    assert out.history[0].ndcg100 == pytest.approx(0.1)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_or_inf_loss_raises_training_diverged(bad):
    toy = Toy([0.2, 0.4, 0.6], losses=[1.0, bad, 1.0])
    with pytest.raises(TrainingDiverged) as err:
        toy.run(3)
    e = err.value
    assert isinstance(e, RuntimeError)
    assert e.model == "toy" and e.epoch == 2
    msg = str(e)
    assert "toy" in msg and "epoch 2" in msg and "'lr': 1.0" in msg and "learning rate" in msg


def test_without_validation_users_the_last_epoch_is_kept():
    toy = Toy([0.2, 0.8, 0.4])
    empty = HeldOut(sp.csr_matrix((0, N_ITEMS)), sp.csr_matrix((0, N_ITEMS)))
    out = toy.run(3, valid=empty)
    assert out.best_epoch == 3 and out.best_ndcg is None
    assert all(h.ndcg100 is None for h in out.history)
    assert toy.state["q"] == 0.4


def test_progress_bar_runs(capsys):
    toy = Toy([0.2, 0.4])
    out = toy.run(2, options=FitOptions(progress=True))
    assert len(out.history) == 2
    assert out.as_dict()["epochs_run"] == 2


def test_resolve_epochs_caps_by_the_run_option():
    assert resolve_epochs(200, FitOptions()) == 200
    assert resolve_epochs(200, FitOptions(epochs=3)) == 3
    assert resolve_epochs(5, FitOptions(epochs=30)) == 5
    with pytest.raises(ValueError, match="at least 1"):
        resolve_epochs(200, FitOptions(epochs=0))
