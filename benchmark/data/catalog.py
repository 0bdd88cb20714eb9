"""Looking datasets up by name: the built-in ones (registered on first use) and ``file:PATH``.

This module sits above the dataset modules: it imports :mod:`.builtin` and :mod:`.files`
(when first asked), and they import only :mod:`.spec`, never this module.
"""

from __future__ import annotations

from typing import Any

from .errors import UnknownDataset
from .spec import _DATASETS, DatasetSpec


def _import_builtin() -> None:
    from .builtin import synthetic  # noqa: F401  (registers the built-in datasets)


def dataset_names() -> list[str]:
    _import_builtin()
    return list(_DATASETS)


def get_dataset(name: str, **file_options: Any) -> DatasetSpec:
    """The spec for ``name``; ``file:PATH`` reads a user's own CSV/TSV/Parquet file."""
    _import_builtin()
    if name.startswith("file:"):
        from .files import file_dataset

        return file_dataset(name[len("file:") :], **file_options)
    if name not in _DATASETS:
        raise UnknownDataset(
            f"unknown dataset {name!r}; available: {', '.join(_DATASETS)}, "
            f"or file:PATH for your own CSV/TSV/Parquet file"
        )
    return _DATASETS[name]()


__all__ = ["dataset_names", "get_dataset"]
