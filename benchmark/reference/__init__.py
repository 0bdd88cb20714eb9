"""Published numbers on the paper's protocol, kept as package data with their sources.

``published.json`` transcribes ``reference/published.md`` of the project: Liang et al.
(2018) Table 2 and Table 3, the authors' notebook printout, and later work on the same
protocol and metric code (EASE^R, iALS, RecVAE, RaCT, ...). Every entry names its source
and a tag: ``V`` (checked against a printed result of the authors' code) or ``P`` (as
printed in the paper).

Example::

    >>> from benchmark.reference import published_for
    >>> [e["method"] for e in published_for("ml-20m") if e["model"] == "multvae"]
    ['Mult-VAE^PR', 'Mult-VAE^PR']
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from importlib import resources
from typing import Any

__all__ = [
    "MODEL_TO_METHOD",
    "canonical_dataset",
    "load_published",
    "published_for",
    "source_label",
]

#: Registry name of our model -> method name in the published tables.
MODEL_TO_METHOD: dict[str, str] = {
    "multvae": "Mult-VAE^PR",
    "multdae": "Mult-DAE",
    "recvae": "RecVAE",
    "wmf": "WMF",
    "slim": "SLIM",
    "ease": "EASE^R",
    "edlae": "EDLAE (full rank)",
    "ials": "iALS (tuned)",
    "popularity": "Popularity",
    "gaussian-vae": "Gaussian-VAE",
    "logistic-vae": "Logistic-VAE",
    "gaussian-dae": "Gaussian-DAE",
    "logistic-dae": "Logistic-DAE",
}

_DATASET_ALIASES: dict[str, str] = {
    "ml-20m": "ml-20m",
    "ml20m": "ml-20m",
    "movielens-20m": "ml-20m",
    "netflix": "netflix",
    "netflix-prize": "netflix",
    "msd": "msd",
    "msd-taste-profile": "msd",
    "million-song-dataset": "msd",
}


@lru_cache(maxsize=1)
def _load() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("published.json").read_text(encoding="utf-8")
    return json.loads(text)


def load_published() -> dict[str, Any]:
    """The whole reference file (a fresh copy): ``about``, ``sources``, ``datasets``, ``entries``."""
    return copy.deepcopy(_load())


def canonical_dataset(name: str | None) -> str | None:
    """``ml-20m``, ``netflix`` or ``msd`` for a dataset with published numbers, else None.

    Excerpts and other data sets (``ml-20m-excerpt``, ``ml-100k``) are deliberately not
    mapped: their numbers are not comparable with the full data sets'.
    """
    if not name:
        return None
    return _DATASET_ALIASES.get(str(name).strip().lower())


def published_for(dataset: str | None) -> list[dict[str, Any]]:
    """Published entries for one of our dataset names (empty when none apply)."""
    key = canonical_dataset(dataset)
    if key is None:
        return []
    return [copy.deepcopy(e) for e in _load()["entries"] if e["dataset"] == key]


def source_label(entry: dict[str, Any]) -> str:
    """Short citation plus tag, e.g. ``Liang et al. 2018 [V]``."""
    src = _load()["sources"].get(entry.get("source"), {})
    tag = entry.get("tag", "")
    if entry.get("confidence") == "low":
        tag = f"{tag}, low confidence" if tag else "low confidence"
    short = src.get("short", entry.get("source", "?"))
    return f"{short} [{tag}]" if tag else short
