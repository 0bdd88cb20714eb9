"""The one epoch loop shared by every iterative model (the VAE family and others).

A model supplies one epoch of training and a way to copy and restore its weights; the loop
owns everything else::

    for epoch in 1..epochs:
        stats = train_epoch(epoch)                 # loss (and beta) of this epoch
        NaN / inf loss  -> raise TrainingDiverged  # names model, epoch, params
        every `validate_every` epochs (and on the last one):
            ndcg = validation NDCG@100 of `score` on valid.fold_in -> valid.holdout
            better than the best so far -> keep a copy of the weights
            options.on_epoch(report)               # may raise, e.g. optuna.TrialPruned
            no improvement for `patience` epochs -> stop
        time budget spent -> stop
    restore the best epoch's weights

The per-epoch history (:class:`~benchmark.model.EpochReport`: loss, beta, validation
NDCG@100, seconds) is returned for the model to keep in ``history_``, which
:meth:`Recommender.results_extra` writes into the result row.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from .evaluate import validation_ndcg
from .options import EpochReport, FitOptions
from .protocol import HeldOut

__all__ = ["TrainingDiverged", "TrainingOutcome", "run_epochs", "resolve_epochs"]


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite; the fit stops, the rest of a run goes on."""

    def __init__(self, model: str, epoch: int, loss: float, params: dict[str, Any]) -> None:
        self.model = model
        self.epoch = epoch
        self.loss = loss
        self.params = params
        super().__init__(
            f"{model}: training diverged at epoch {epoch} (loss = {loss}) with params "
            f"{params}; lower the learning rate (lr), raise the batch size or check the input "
            f"data for empty or NaN rows"
        )


@dataclass
class TrainingOutcome:
    """Result of :func:`run_epochs`.

    Attributes:
        history: one report per epoch run (``ndcg100`` None on unvalidated epochs).
        best_epoch: the epoch whose weights the model holds now (1-based).
        best_ndcg: its validation NDCG@100 (None without validation users).
        stop_reason: "epochs", "patience" or "time_budget".
        seconds: wall time of the whole loop.
    """

    history: list[EpochReport]
    best_epoch: int
    best_ndcg: float | None
    stop_reason: str
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "best_epoch": self.best_epoch,
            "best_ndcg@100": self.best_ndcg,
            "epochs_run": len(self.history),
            "stop_reason": self.stop_reason,
            "train_seconds": self.seconds,
        }


def resolve_epochs(model_epochs: int, options: FitOptions) -> int:
    """The model's own epoch count, capped by ``options.epochs`` (the CLI's ``--epochs``)."""
    epochs = int(model_epochs)
    if options.epochs is not None:
        epochs = min(epochs, int(options.epochs))
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs} (model {model_epochs}, "
                         f"--epochs {options.epochs})")
    return epochs


def run_epochs(
    *,
    name: str,
    params: dict[str, Any],
    train_epoch: Callable[[int], EpochReport],
    score: Callable[[sp.csr_matrix], np.ndarray],
    snapshot: Callable[[], Any],
    restore: Callable[[Any], None],
    valid: HeldOut | None,
    options: FitOptions,
    epochs: int,
    patience: int | None = None,
    validate_every: int = 1,
    deadline: float | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
    desc: str | None = None,
) -> TrainingOutcome:
    """Train for up to ``epochs`` epochs, keep the best validated weights, return the history.

    Args:
        name: the model's name (for error messages and the progress bar).
        params: the model's hyperparameters (named in a divergence error).
        train_epoch: runs epoch ``e`` (1-based) over the training users; returns its stats.
        score: fold-in rows (b, n_items) CSR -> scores (b, n_items), in inference mode.
        snapshot: returns a copy of the current weights (called on each new best epoch).
        restore: loads weights returned by ``snapshot``.
        valid: validation users; None trains all epochs and keeps the last weights.
        options: run options (progress bar, time budget).
        epochs: most epochs to run (already capped, see :func:`resolve_epochs`).
        patience: stop when this many epochs pass without a better validation NDCG@100
            (None or 0: never stop early).
        validate_every: validate every n-th epoch (and always on the last one run).
        deadline: ``time.perf_counter()`` value after which no new epoch starts
            (default: now + ``options.time_budget``).
        on_epoch: called with the report of each validated epoch; exceptions propagate
            (default: ``options.on_epoch``).
        desc: progress bar label (default: ``name``).

    Returns:
        The outcome; the model holds the best epoch's weights when it returns.

    Raises:
        TrainingDiverged: the loss of an epoch is NaN or infinite.
    """
    if validate_every < 1:
        raise ValueError(f"validate_every must be at least 1, got {validate_every}")
    t_start = time.perf_counter()
    if deadline is None and options.time_budget is not None:
        deadline = t_start + float(options.time_budget)
    if on_epoch is None:
        on_epoch = options.on_epoch
    has_valid = valid is not None and valid.n_users > 0 and valid.holdout.nnz > 0

    bar = None
    if options.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc=desc or name, unit="epoch", leave=False)

    history: list[EpochReport] = []
    best_epoch, best_ndcg, best_state = 0, -math.inf, None
    stop_reason = "epochs"
    try:
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            stats = train_epoch(epoch)
            seconds = time.perf_counter() - t0
            loss = None if stats.loss is None else float(stats.loss)
            if loss is not None and not math.isfinite(loss):
                raise TrainingDiverged(name, epoch, loss, params)
            out_of_time = deadline is not None and time.perf_counter() >= deadline
            last = epoch == epochs or out_of_time
            report = EpochReport(
                epoch=epoch, loss=loss, seconds=seconds, beta=stats.beta, extra=dict(stats.extra)
            )
            history.append(report)
            stop_early = False
            if has_valid and (epoch % validate_every == 0 or last):
                tv = time.perf_counter()
                ndcg = float(validation_ndcg(score, valid))
                report.ndcg100 = ndcg
                report.extra["valid_seconds"] = time.perf_counter() - tv
                if ndcg > best_ndcg:
                    best_epoch, best_ndcg, best_state = epoch, ndcg, snapshot()
                if on_epoch is not None:
                    on_epoch(report)
                if patience and epoch - best_epoch >= patience:
                    stop_early = True
            if bar is not None:
                post = {"s/ep": f"{seconds:.1f}"} if loss is None else {"loss": f"{loss:.4g}", "s/ep": f"{seconds:.1f}"}
                if stats.beta is not None:
                    post["beta"] = f"{stats.beta:.3f}"
                if report.ndcg100 is not None:
                    post["ndcg@100"] = f"{report.ndcg100:.4f}"
                bar.set_postfix(post, refresh=False)
                bar.update(1)
            if stop_early:
                stop_reason = "patience"
                break
            if out_of_time and epoch < epochs:
                stop_reason = "time_budget"
                break
    finally:
        if bar is not None:
            bar.close()

    if best_state is not None:
        restore(best_state)
    else:  # no validation: the last epoch's weights are the model
        best_epoch = len(history)
    return TrainingOutcome(
        history=history,
        best_epoch=best_epoch,
        best_ndcg=best_ndcg if best_state is not None else None,
        stop_reason=stop_reason,
        seconds=time.perf_counter() - t_start,
    )
