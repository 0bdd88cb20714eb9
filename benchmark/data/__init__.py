"""Datasets: a registry of specs, and the cached strong-generalisation split of each.

``load_split("ml-100k")`` finds (or downloads) the raw files, preprocesses them as the
paper does, splits them and caches the split (see :mod:`benchmark.data.cache`). This
package only re-exports; the code is in its modules, none of which imports this one:

- :mod:`.errors`: :class:`DatasetError` and its kinds;
- :mod:`.spec`: :class:`DatasetSpec` and ``register_dataset`` (the dataset table);
- :mod:`.catalog`: ``get_dataset`` / ``dataset_names`` (built-in datasets and ``file:PATH``);
- :mod:`.cache`: ``load_split``, the cache key and the checks of a cache entry;
- :mod:`.preprocess`: filters, binarisation and the split itself;
- :mod:`.builtin` and the dataset modules (:mod:`.movielens`, :mod:`.netflix`, ...).
"""

from __future__ import annotations

from .cache import (  # noqa: F401  (the helpers stay importable from here, as before)
    HASHES_FILE,
    META_KEYS,
    cache_key,
    cache_problem,
    content_hash,
    dataset_dir,
    default_data_dir,
    load_split,
)
from .catalog import _import_builtin, dataset_names, get_dataset  # noqa: F401
from .errors import DatasetError, MissingRawData, UnknownDataset
from .preprocess import PREPROCESS_VERSION, REFERENCE_SEED, SplitConfig, make_split  # noqa: F401
from .spec import _DATASETS, DatasetSpec, register_dataset  # noqa: F401

__all__ = [
    "DatasetError",
    "DatasetSpec",
    "MissingRawData",
    "SplitConfig",
    "REFERENCE_SEED",
    "UnknownDataset",
    "dataset_dir",
    "dataset_names",
    "get_dataset",
    "load_split",
    "register_dataset",
]
