"""The one formatter for durations and the one for byte counts, and the byte-size parser.

Every message, plan, log line and report cell that shows seconds or bytes goes through
:func:`fmt_seconds` / :func:`fmt_bytes`, so one figure reads the same everywhere.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["fmt_seconds", "fmt_bytes", "parse_bytes"]

_BYTE_UNITS = (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))


def _number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def fmt_seconds(s: Any, *, unit: bool = True, missing: str = "-") -> str:
    """A duration for people.

    Args:
        s: seconds (None, NaN or a non-number: ``missing``).
        unit: True: the unit chosen by size ("12.3 s", "4.5 min", "2.1 h"); False: plain
            seconds for a column whose header names the unit ("0.12", "12.3", "1,234").
        missing: what a missing value shows.
    """
    v = _number(s)
    if v is None:
        return missing
    if not unit:
        return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:,.0f}"
    if v < 120:
        return f"{v:.1f} s"
    if v < 7200:
        return f"{v / 60:.1f} min"
    return f"{v / 3600:.1f} h"


def fmt_bytes(n: Any, *, missing: str = "-") -> str:
    """A byte count for people: "1.5 GiB", "512.0 MiB", "980 B"."""
    v = _number(n)
    if v is None:
        return missing
    for name, size in _BYTE_UNITS:
        if v >= size:
            return f"{v / size:.1f} {name}"
    return f"{int(v)} B"


def parse_bytes(text: str) -> int:
    """'123', '512M', '2G', '1.5GB', '16GiB' -> bytes.

    Raises:
        ValueError: naming what is accepted.
    """
    t = str(text).strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    factor = 1
    if t and t[-1] in mult:
        factor, t = mult[t[-1]], t[:-1]
    try:
        value = float(t) * factor
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{text!r} is not a size: give bytes or a number with K, M, G or T "
                         "(e.g. 16G, 512M, 1073741824)")
    return int(value)
