"""What every figure module of the report shares: the figure record, the style, a new
figure, saving it (deterministic PNG, SVG and PDF), the fixed colour and marker of each
model, display names, a legend outside the axes, and the rows a figure of a dataset shows.

The palette is keyed by registry id and never depends on which models a report holds:
families in related hues from colour-blind-safe sets (Okabe & Ito 2008, Tol 2021), a
distinct marker per built-in model; unknown ids (plugins) come after, from their sorted
ids, so adding a plugin never changes a built-in's colour.

Private to the report: :mod:`.figures`, :mod:`.paired_figures` and :mod:`.tuning_figures`
import it, it imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..results import row_label
from .load import ReportData, number
from .ranks import model_entries

DPI = 100
RC = {
    "svg.hashsalt": "cf-benchmark",
    "svg.fonttype": "path",
    "pdf.fonttype": 42,  # TrueType, not Type 3: accepted by journals' PDF checks
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
#: Every figure is written in these formats: PNG for the web page and Markdown, SVG, and
#: PDF (vector) for LaTeX's ``\includegraphics``.
FORMATS = ("png", "svg", "pdf")

#: Families of the built-in models, in legend order (the quintile figure shows the best
#: of each). Hues: VAEs blue, DAEs orange-red, linear item-item green, factorisation
#: purple-pink, popularity grey.
FAMILIES: dict[str, tuple[str, ...]] = {
    "VAE": ("multvae", "gaussian-vae", "logistic-vae", "recvae"),
    "DAE": ("multdae", "gaussian-dae", "logistic-dae"),
    "linear item-item": ("ease", "edlae", "dlae", "slim", "itemknn"),
    "factorisation": ("wmf", "ials", "lightfm"),
    "popularity": ("popularity",),
}
#: id -> (colour, marker) of every built-in model; fixed, whatever a report holds.
BUILTIN_STYLES: dict[str, tuple[str, str]] = {
    "multvae": ("#0072B2", "o"),        # Okabe-Ito blue
    "gaussian-vae": ("#56B4E9", "p"),   # Okabe-Ito sky blue
    "logistic-vae": ("#003C5F", "h"),   # dark blue
    "recvae": ("#332288", "*"),         # Tol indigo
    "multdae": ("#D55E00", "s"),        # Okabe-Ito vermillion
    "gaussian-dae": ("#E69F00", "D"),   # Okabe-Ito orange
    "logistic-dae": ("#8A3B00", "d"),   # dark vermillion
    "ease": ("#009E73", "^"),           # Okabe-Ito bluish green
    "edlae": ("#117733", "v"),          # Tol green
    "dlae": ("#44AA99", "<"),           # Tol teal
    "slim": ("#999933", ">"),           # Tol olive
    "itemknn": ("#00523B", "8"),        # dark green
    "wmf": ("#CC79A7", "X"),            # Okabe-Ito reddish purple
    "ials": ("#AA4499", "P"),           # Tol purple
    "lightfm": ("#882255", "H"),        # Tol wine
    "popularity": ("#666666", "x"),     # grey
}
#: Plugins: (colour, marker) pairs in turn, hues apart from the families' where possible.
PLUGIN_COLORS = ("#B59B00", "#7F3C8D", "#A6761D", "#222222", "#E7298A", "#66A61E")
PLUGIN_MARKERS = ("o", "s", "^", "D", "v", "P", "*")
#: The unit of one pass of each iterative built-in (the epochs figure's x axis).
UNITS = {"wmf": "ALS sweep", "ials": "ALS sweep"}


@dataclass(frozen=True)
class Style:
    """How one model is drawn in every figure."""

    color: str
    marker: str
    family: str | None  # None: a plugin


def family_of(model: str) -> str | None:
    return next((f for f, ms in FAMILIES.items() if model in ms), None)


def model_styles(models: list[str]) -> dict[str, Style]:
    """The style of each model: the fixed one of a built-in; plugins by sorted id."""
    out = {m: Style(c, mk, family_of(m)) for m, (c, mk) in BUILTIN_STYLES.items()}
    plugins = sorted(set(models) - set(BUILTIN_STYLES))
    for i, m in enumerate(plugins):
        out[m] = Style(PLUGIN_COLORS[i % len(PLUGIN_COLORS)], PLUGIN_MARKERS[i % len(PLUGIN_MARKERS)], None)
    return out


def palette_order(model: str) -> tuple[int, str]:
    """Legend order: built-ins family by family, then plugins by id."""
    order = list(BUILTIN_STYLES)
    return (order.index(model), "") if model in order else (len(order), model)


@dataclass
class Look:
    """Styles and names shared by all figures of one report."""

    styles: dict[str, Style]
    names: dict[str, str] = field(default_factory=dict)  # --names over the recorded ones
    recorded: dict[str, str] = field(default_factory=dict)  # display names of the rows

    @classmethod
    def of(cls, data: ReportData) -> Look:
        recorded = {r["model"]: str(r["display_name"]) for r in data.rows if r.get("display_name")}
        return cls(model_styles([r["model"] for r in data.rows]), dict(data.names), recorded)

    def style(self, model: str) -> Style:
        if model not in self.styles:  # a model not in the rows given: after the others
            self.styles.update(model_styles([*self.styles, model]))
        return self.styles[model]

    def color(self, model: str) -> str:
        return self.style(model).color

    def marker(self, model: str) -> str:
        return self.style(model).marker

    def model_name(self, model: str) -> str:
        return self.names.get(model) or self.recorded.get(model) or model

    def label(self, row: dict[str, Any]) -> str:
        """The display name (``--names``, else the one recorded at the fit, else the id)."""
        return row_label(row, self.names)


def new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def legend_outside(fig, ax, ncols: int = 1, title: str | None = None) -> None:
    """The axes' legend to the right of the figure, outside every axes."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right upper", frameon=False, fontsize=7,
                   ncols=ncols, title=title, title_fontsize=7)


def save_figure(fig, out: Path, name: str) -> tuple[str, str, str]:
    """Write ``name``.png, .svg and .pdf (deterministic: no dates, fixed hash salt)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with matplotlib.rc_context({k: RC[k] for k in ("svg.hashsalt", "svg.fonttype", "pdf.fonttype")}):
        fig.savefig(out / f"{name}.png", dpi=DPI, metadata={"Software": None})
        fig.savefig(out / f"{name}.svg", metadata={"Date": None, "Creator": None})
        fig.savefig(out / f"{name}.pdf", metadata={"Creator": None, "Producer": None, "CreationDate": None})
    return f"{name}.png", f"{name}.svg", f"{name}.pdf"


@dataclass
class FigureInfo:
    """One figure of the report: files (relative to ``figures/``) and text."""

    key: str
    title: str
    caption: str
    png: str
    svg: str
    dataset: str
    pdf: str = ""

    @classmethod
    def saved(cls, fig, out: Path, name: str, title: str, caption: str, dataset: str) -> FigureInfo:
        png, svg, pdf = save_figure(fig, out, name)
        return cls(name, title, caption, png, svg, dataset, pdf)


def main_rows(data: ReportData, dataset: str, part: str = "test") -> list[dict[str, Any]]:
    """The rows of the dataset's main split, best test NDCG@100 first."""
    rows = list(model_entries(data, dataset, part).values())

    def key(r: dict[str, Any]) -> tuple:
        v = number(r["metrics"].get("ndcg@100"))
        return (v is None, -(v or 0.0), r["model"])

    return sorted(rows, key=key)
