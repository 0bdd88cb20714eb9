"""Run options and the per-epoch report: the lowest part of the model contract.

Import them from :mod:`benchmark.model` (or ``benchmark``), which re-exports both; they live
here so that the epoch loop (:mod:`benchmark.training`), which :mod:`benchmark.model` uses,
can take them without importing the model contract back (no import circle).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EpochReport", "FitOptions"]


@dataclass
class EpochReport:
    """One epoch of an iterative model: what the model says, then what the loop adds.

    A model's ``_train_epoch`` returns one with the fields it knows (``loss``, and ``beta``
    or ``extra`` where it has them), or just the loss as a number, or None; the epoch loop
    (:func:`benchmark.training.run_epochs`) fills ``epoch``, ``seconds`` and ``ndcg100``
    and keeps it in the model's ``history_`` (written to the result row).

    Attributes:
        loss: mean training loss over the epoch's minibatches; None for a model that
            computes none (recorded as missing, never as a made-up 0).
        beta: KL weight at the end of the epoch (VAEs), else None.
        extra: further per-epoch facts (kept in the history).
        epoch: 1-based epoch number (set by the loop).
        seconds: wall time of the epoch's training, validation excluded (set by the loop).
        ndcg100: validation NDCG@100 after the epoch; None on unvalidated epochs (set by
            the loop).
    """

    loss: float | None = None
    beta: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    seconds: float = 0.0
    ndcg100: float | None = None

    def as_dict(self) -> dict[str, Any]:
        d = {
            "epoch": self.epoch,
            "loss": self.loss,
            "seconds": self.seconds,
            "ndcg@100": self.ndcg100,
        }
        if self.beta is not None:
            d["beta"] = self.beta
        d.update(self.extra)
        return d


@dataclass
class FitOptions:
    """Run options (never hyperparameters): seed, device, time budget, callbacks.

    Attributes:
        seed: seed for every random number generator the model uses.
        device: "auto", "cpu" or "cuda" ("auto" picks CUDA when available).
        epochs: cap on epochs for iterative models (None: the model's own default).
        time_budget: seconds after which an iterative model stops after the current epoch.
        on_epoch: called with an :class:`EpochReport` after every validated epoch; may raise
            (e.g. ``optuna.TrialPruned``) to stop the fit.
        progress: show progress bars.
        threads: CPU threads (None: all cores available).
        dataset: the dataset name, for dataset-specific defaults (e.g. EASE lambda).
    """

    seed: int = 0
    device: str = "auto"
    epochs: int | None = None
    time_budget: float | None = None
    on_epoch: Callable[[EpochReport], None] | None = None
    progress: bool = True
    threads: int | None = None
    dataset: str | None = None

    def resolve_device(self) -> str:
        if self.device == "auto":
            try:
                import torch

                return "cuda" if torch.cuda.is_available() else "cpu"
            except ImportError:  # pragma: no cover
                return "cpu"
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, not {self.device!r}")
        if self.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise RuntimeError(
                    "--device cuda was asked for but torch sees no CUDA device; "
                    "use --device cpu, or install a CUDA build of torch (make install TORCH=torch)"
                )
        return self.device
