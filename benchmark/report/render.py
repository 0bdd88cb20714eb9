"""Markdown and LaTeX (booktabs) renderings of the report's tables (HTML: ``html``).

Rendering is a pure function of the results: no dates, paths or dictionary-order effects,
so the same results give byte-identical ``tables.md``/``tables.tex``.
"""

from __future__ import annotations

import re
from typing import Any

from .cells import DASH, Cell, Table, _cell
from .load import RESULTS_FILE, ReportData
from .stats import MARK_DOWN, MARK_T, MARK_UP, MARK_W
from .tables import sources_list


def summary_lines(data: ReportData) -> list[str]:
    """What the report is made of (rows read, shown, superseded)."""
    lines = [
        f"Read {data.n_lines} result rows from {RESULTS_FILE}. Shown: for each dataset and "
        f"model, its latest configuration (the last row written; a run capped by --epochs, or "
        f"on another split, apart), averaged over its seeds: {len(data.rows)} table entries "
        f"(validation and test counted apart)."
    ]
    if data.scope:
        lines.append(f"Restricted to {data.scope}: {data.left_out} further entries were read and "
                     "are not shown.")
    if data.superseded:
        old = sorted(
            f"{r['model']} on {r['dataset']} ({r['part']}, seed {r.get('seed', '?')}, line {r['_line']})"
            for r in data.superseded
        )
        lines.append(
            f"{len(data.superseded)} older rows were superseded by a later row of the same key "
            f"(another configuration, or a rerun of the same seed) and are not shown: "
            + "; ".join(old) + "."
        )
    for d in data.datasets():
        hashes = data.split_hashes(d) or data.split_hashes(d, "valid")
        if len(hashes) > 1:
            lines.append(
                f"{d} has rows on {len(hashes)} different splits ({', '.join(h[:8] for h in hashes)}); "
                f"they are labelled with their split and only rows of the same split are paired; "
                f"figures use the split with the most models ({hashes[0][:8]})."
            )
        if not data.part_rows(d, "test"):
            lines.append(f"{d} has validation rows only (no test row yet).")
    return lines


# --- Markdown -----------------------------------------------------------------------------------
def _md_text(s: str, code: bool = False) -> str:
    """Text safe in a Markdown table cell or heading: no line break (it would end the row),
    ``|`` escaped, and outside code spans no raw HTML (a name with ``<script>`` stays text)."""
    import html

    s = " ".join(str(s).splitlines())
    return (s if code else html.escape(s, quote=False)).replace("|", "\\|")


def _md_cell(c: Cell) -> str:
    text = _md_text(c.text, code=c.code)
    if c.code and text != DASH:
        text = f"`{text}`"
    if c.bold:
        text = f"**{text}**"
    text += c.marks
    if c.sub:
        text += f" {_md_text(c.sub)}"
    return text


def table_markdown(t: Table) -> str:
    out = [f"### {_md_text(t.title)}", ""]
    if t.caption:
        out += [t.caption, ""]
    header = t.header if any(t.header) else [" "] * len(t.header)
    out.append("| " + " | ".join(_md_text(h) for h in header) + " |")
    spec = {"l": ":---", "r": "---:", "c": ":---:"}
    out.append("|" + "|".join(spec[a] for a in t.align) + "|")
    for r in t.rows:
        if r.section:
            out.append("| *" + _md_text(r.section) + "*" + " |" * len(t.header))
        else:
            cells = [_md_cell(_cell(c)) for c in r.cells]
            if r.muted:
                cells[0] = f"*{cells[0]}*"
            out.append("| " + " | ".join(cells) + " |")
    out.append("")
    for n in t.notes:
        out += [n, ""]
    return "\n".join(out)


def render_markdown(data: ReportData, tables: list[Table], warnings: list[str], figures: list[Any] | None = None) -> str:
    out = ["# Benchmark report", ""]
    out += [line + "\n" for line in summary_lines(data)]
    if warnings:
        out += ["## Warnings", ""]
        out += [f"- {_md_text(w)}" for w in warnings]
        out.append("")
    if not data.rows:
        out += ["No results to report.", ""]
    results = [t for t in tables if t.latex and not t.group]
    if results:
        out += ["## Results", ""] + [table_markdown(t) for t in results]
    for group in dict.fromkeys(t.group for t in tables if t.group):  # e.g. ranking across protocols
        out += [f"## {group}", ""] + [table_markdown(t) for t in tables if t.group == group]
    if figures:
        out += ["## Figures", ""]
        for f in figures:
            out += [f"![{f.title}](figures/{f.png})", "", f"*{f.title}.* {f.caption}", ""]
    prov = [t for t in tables if not t.latex]
    if prov:
        out += ["## Provenance", ""] + [table_markdown(t) for t in prov]
    srcs = sources_list(data)
    if srcs:
        out += ["## Sources of the published numbers", ""]
        out += [f"- {s}" for s in srcs]
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


# --- LaTeX --------------------------------------------------------------------------------------
_TEX_SPECIAL = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
    MARK_T: r"\textsuperscript{\dag}",
    MARK_W: r"\textsuperscript{\ddag}",
    MARK_UP: r"\ensuremath{\blacktriangle}",
    MARK_DOWN: r"\ensuremath{\blacktriangledown}",
    "Δ": r"\ensuremath{\Delta}",
    "±": r"\ensuremath{\pm}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}


def tex(s: str) -> str:
    """Escape text for LaTeX; ``Name^XY`` becomes ``Name\\textsuperscript{XY}``."""
    parts = re.split(r"\^([A-Za-z]+)", str(s))
    out = []
    for i, p in enumerate(parts):
        if i % 2:
            out.append(r"\textsuperscript{" + p + "}")
        else:
            out.append("".join(_TEX_SPECIAL.get(ch, ch) for ch in p))
    # a minus sign before a number (not the hyphen of "ml-20m")
    return re.sub(r"(?<![\w.])-(?=\d)", r"\\ensuremath{-}", "".join(out))


def _tex_cell(c: Cell) -> str:
    text = tex(c.text)
    if c.code and c.text != DASH:
        text = r"\texttt{" + text + "}"
    if c.bold:
        text = r"\textbf{" + text + "}"
    if c.marks:
        text += r"\textsuperscript{" + (
            c.marks.replace(MARK_T, r"\dag").replace(MARK_W, r"\ddag")
            .replace(MARK_UP, r"\ensuremath{\blacktriangle}")
            .replace(MARK_DOWN, r"\ensuremath{\blacktriangledown}")
        ) + "}"
    if c.sub:
        text += r" {\scriptsize " + tex(c.sub) + "}"
    return text


def table_latex(t: Table) -> str:
    n = len(t.header)
    import re

    # LaTeX numbers its own tables: "Table 2: ml-20m" would print "Table 1: Table 2: ml-20m"
    m = re.match(r"Table (\d+): (.*)", t.title)
    title = f"{m.group(2)} (as in Table {m.group(1)} of Liang et al. 2018)" if m else t.title
    cap = tex(title) + (". " + tex(t.caption) if t.caption else "")
    out = [
        r"\begin{table}[htbp]",
        r"\centering",
        r"\small",
        r"\caption{" + cap + "}",
        r"\label{tab:" + t.key + "}",
        r"\begin{tabular}{" + t.align + "}",
        r"\toprule",
        " & ".join(tex(h) for h in t.header) + r" \\",
        r"\midrule",
    ]
    for r in t.rows:
        if r.section:
            out.append(r"\midrule")
            out.append(r"\multicolumn{" + str(n) + "}{l}{\\emph{" + tex(r.section) + r"}} \\")
        else:
            cells = [_tex_cell(_cell(c)) for c in r.cells]
            if r.muted:
                cells[0] = r"\emph{" + cells[0] + "}"
            out.append(" & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    if t.notes:
        out += [r"\par\smallskip", r"\parbox{\linewidth}{\footnotesize " + " ".join(tex(x) for x in t.notes) + "}"]
    out += [r"\end{table}", ""]
    return "\n".join(out)


def render_latex(data: ReportData, tables: list[Table], warnings: list[str]) -> str:
    out = [
        "% Benchmark report tables, generated by `python -m benchmark report`.",
        "% Needs \\usepackage{booktabs} and \\usepackage{amssymb} in the preamble.",
    ]
    out += ["% " + line for line in summary_lines(data)]
    for w in warnings:
        out.append("% WARNING: " + w.replace("\n", " "))
    srcs = sources_list(data)
    if srcs:
        out.append("% Sources of the published numbers:")
        out += ["%   " + s for s in srcs]
    out.append("")
    shown = [t for t in tables if t.latex]
    if not shown:
        out.append("% No results to report.")
    group = ""
    for t in shown:
        if t.group and t.group != group:
            out += [f"% {t.group}", ""]
        group = t.group
        out.append(table_latex(t))
    return "\n".join(out).rstrip("\n") + "\n"
