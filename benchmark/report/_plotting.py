"""What every figure module of the report shares: the figure record, the style, a new
figure, saving it (deterministic PNG and SVG), the colour of each model, and the rows a
figure of a dataset shows.

Private to the report: :mod:`.figures` and :mod:`.tuning_figures` import it, it imports
neither of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .load import ReportData, number
from .ranks import model_entries

DPI = 100
RC = {
    "svg.hashsalt": "cf-benchmark",
    "svg.fonttype": "path",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


@dataclass
class FigureInfo:
    """One figure of the report: files (relative to ``figures/``) and text."""

    key: str
    title: str
    caption: str
    png: str
    svg: str
    dataset: str


def new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save_figure(fig, out: Path, name: str) -> tuple[str, str]:
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with matplotlib.rc_context({"svg.hashsalt": RC["svg.hashsalt"], "svg.fonttype": "path"}):
        fig.savefig(out / f"{name}.png", dpi=DPI, metadata={"Software": None})
        fig.savefig(out / f"{name}.svg", metadata={"Date": None, "Creator": None})
    return f"{name}.png", f"{name}.svg"


def model_colors(models: list[str]) -> dict[str, Any]:
    """A fixed colour per model name (sorted names, tab10 then tab20)."""
    from matplotlib import colormaps

    names = sorted(set(models))
    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {m: cmap(i % cmap.N) for i, m in enumerate(names)}


def main_rows(data: ReportData, dataset: str, part: str = "test") -> list[dict[str, Any]]:
    """The rows of the dataset's main split, best test NDCG@100 first."""
    rows = list(model_entries(data, dataset, part).values())

    def key(r: dict[str, Any]) -> tuple:
        v = number(r["metrics"].get("ndcg@100"))
        return (v is None, -(v or 0.0), r["model"])

    return sorted(rows, key=key)
