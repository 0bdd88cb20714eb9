"""Search spaces: probing a model's ``search_space``, fixed parameters, the defaults trial."""

from __future__ import annotations

import warnings
from typing import Any

import optuna

from .policy import _quiet_optuna


def _probe_trial(cls: type) -> optuna.Trial:
    """A trial after one random draw of ``cls.search_space`` (its names and distributions)."""
    _quiet_optuna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        trial = probe.ask()
        cls.search_space(trial)
    return trial


def probe_space(cls: type) -> list[str]:
    """Names of the Optuna parameters ``cls.search_space`` suggests (one random draw)."""
    return list(_probe_trial(cls).params)


def sampler_fixed(cls: type, fixed_params: dict[str, Any]) -> dict[str, Any]:
    """The overrides that name a parameter of the search space with a value it can take
    (those are pinned in the sampler; the others are set on the model after sampling)."""
    if not fixed_params:
        return {}
    trial = _probe_trial(cls)
    out = {}
    for k, v in fixed_params.items():
        dist = trial.distributions.get(k)
        if dist is None:
            continue
        try:
            if dist._contains(dist.to_internal_repr(v)):
                out[k] = v
        except (TypeError, ValueError):
            pass
    return out


def probe_distributions(cls: type) -> dict[str, str]:
    """Each parameter of ``cls.search_space`` and its Optuna distribution, in words."""
    trial = _probe_trial(cls)
    out = {}
    for k, d in trial.distributions.items():
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            out[k] = "one of " + ", ".join(map(str, d.choices))
        else:
            log_ = " (log)" if getattr(d, "log", False) else ""
            out[k] = f"{d.low:g} .. {d.high:g}{log_}"
    return out


def enqueued_defaults(
    cls: type, dataset: str | None, names: list[str], fixed_params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The paper defaults (with the overrides) for the suggested names (JSON scalars only),
    under the search space's names (:meth:`benchmark.model.Recommender.trial_params`; a
    renamed one is kept though the probe's branch may not suggest it). A default that is not
    among a categorical's choices (iALS's 8,192 factors on MSD) is left for the sampler:
    trial 0 still fits the defaults themselves (the objective), only its recorded Optuna
    parameter differs."""
    plain = {**cls.default_params(dataset), **(fixed_params or {})}
    defaults = cls.trial_params(plain)
    dists = _probe_trial(cls).distributions
    out = {}
    for k, v in defaults.items():
        if not (k in names or k not in plain):
            continue
        if not (v is None or isinstance(v, (bool, int, float, str))):
            continue
        d = dists.get(k)
        try:  # Optuna takes a number out of range as it is (LightFM's alpha 0 on a log
            if d is not None:  # scale), but fails a trial over a value not among the choices
                d.to_internal_repr(v)
        except (TypeError, ValueError):
            continue
        out[k] = v
    return out


def params_of(cls: type, trial_params: dict[str, Any]) -> dict[str, Any]:
    """Constructor parameters that ``cls.search_space`` maps a trial's parameters to."""
    return dict(cls.search_space(optuna.trial.FixedTrial(dict(trial_params))))
