"""File-system helpers: modes that follow the umask, split folders, writable-folder checks."""

from __future__ import annotations

import os
import tempfile
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


def check_writable_dir(path: str | os.PathLike, option: str) -> str | None:
    """A problem line unless ``path`` is a folder we can write to, or can be created as one.

    Creates nothing: it probes writing with a temporary file in the folder, or in its
    nearest existing ancestor when it does not exist yet, so read-only mounts and
    permissions are found whoever runs it (root included).
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        return f"{option} {p}: is a file, not a folder; pass a folder (it is created if missing)"
    probe = p.absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        return f"{option} {p}: {probe} is a file, so the folder cannot be created there"
    try:
        fd, tmp = tempfile.mkstemp(prefix=".write-check-", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        return (f"{option} {p}: cannot write in {probe} ({exc.strerror or exc}); pass a folder "
                f"you can write to")
    return None
