"""The dataset errors a user can fix; the CLI turns them into exit code 2."""

from __future__ import annotations


class DatasetError(Exception):
    """A problem with a dataset a user can fix (message says how); CLI exit code 2."""


class MissingRawData(DatasetError):
    pass


class UnknownDataset(DatasetError):
    pass


__all__ = ["DatasetError", "MissingRawData", "UnknownDataset"]
