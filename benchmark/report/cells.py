"""Table cells and number formats shared by the report's tables and renderings.

Durations and byte counts are not formatted here: the report uses :mod:`benchmark.units`
(``fmt_seconds(x, unit=False, missing=DASH)`` for a column of seconds), as the rest of the
suite does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .load import number

DASH = "-"


# --- value formatting -------------------------------------------------------------------------
def fmt(x: Any, digits: int = 4) -> str:
    v = number(x)
    return DASH if v is None else f"{v:.{digits}f}"


def fmt_diff(x: float | None, digits: int = 4) -> str:
    if x is None:
        return DASH
    s = f"{x:+.{digits}f}"
    return "+" + s[1:] if float(s) == 0 else s  # never "-0.0000"


def fmt_p(p: float | None) -> str:
    v = number(p)
    if v is None:
        return "n/a"
    return f"{v:.1e}" if v < 1e-4 else f"{v:.4f}"


def fmt_pub(x: Any) -> str:
    """A published number with the digits it was printed with (at least three decimals)."""
    v = number(x)
    if v is None:
        return DASH
    return f"{v:.3f}" if round(v, 3) == v else f"{v:g}"


def fmt_int(x: Any) -> str:
    v = number(x)
    return DASH if v is None else f"{int(v):,}"


def compact_json(x: Any, digits: int | None = None) -> str:
    """JSON on one line; with ``digits``, floats to that many significant digits (a tuned
    ``l2: 400.52211200887353`` reads ``l2: 400.5``)."""
    if digits is not None:
        x = _round_floats(x, digits)
    return json.dumps(x, sort_keys=True, separators=(", ", ": "), default=str)


def _round_floats(x: Any, digits: int) -> Any:
    if isinstance(x, float):
        return float(f"{x:.{digits}g}")
    if isinstance(x, dict):
        return {k: _round_floats(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_round_floats(v, digits) for v in x]
    return x


# --- table model ------------------------------------------------------------------------------
@dataclass
class Cell:
    """One table cell: main text, an optional smaller second part, bold, marks."""

    text: str
    sub: str = ""
    bold: bool = False
    marks: str = ""
    code: bool = False


@dataclass
class Row:
    cells: list[Cell]
    section: str = ""  # when set: a full-width section label row (cells ignored)
    muted: bool = False  # reference rows (published numbers)


@dataclass
class Table:
    """A rendered-agnostic table. ``key`` is its id in the HTML page and in ``report.json``."""

    key: str
    title: str
    header: list[str]
    rows: list[Row]
    caption: str = ""
    align: str = ""  # one letter per column: l / r / c
    notes: list[str] = field(default_factory=list)
    latex: bool = True  # also in tables.tex
    group: str = ""  # a section of its own after the results ("": Results or Provenance)

    def __post_init__(self) -> None:
        if not self.align:
            self.align = "l" + "r" * (len(self.header) - 1)


def _cell(x: Any) -> Cell:
    return x if isinstance(x, Cell) else Cell(str(x))


# --- builders ---------------------------------------------------------------------------------


def slug(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(name)).strip("-.")
    return s or "dataset"
