"""File-system helpers: modes that follow the umask, atomic folder swaps."""

from __future__ import annotations

import os
from pathlib import Path


def umask() -> int:
    """The process umask (read without changing it for good)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: str | os.PathLike, *, directory: bool = False) -> None:
    """Give a file made by ``mkstemp`` (0600) or a folder made by ``mkdtemp`` (0700) the
    mode a plain ``open`` / ``mkdir`` would have given it, so a shared data or results
    folder stays readable to the group the umask allows."""
    base = 0o777 if directory else 0o666
    os.chmod(path, base & ~umask())


def is_split_dir(path: Path) -> bool:
    return (path / "meta.json").is_file() and (path / "split.npz").is_file()
