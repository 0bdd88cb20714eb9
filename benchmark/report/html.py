"""One self-contained web page: tables, figures (base64 PNG) and provenance, no external loads.

The page has no scripts, fonts or links it must fetch: it opens from disk (``file://``) and
can be mailed as one file. Links to the SVG and PDF files next to it are plain links.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from .cells import Cell, Table, _cell, slug
from .figures import FigureInfo
from .load import ReportData
from .render import summary_lines
from .tables import sources_list

CSS = """
:root { --fg:#1d232a; --muted:#5b6570; --line:#d5dbe1; --bg:#fff; --accent:#2a6fb0; --warn:#8a5a00; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif; color:var(--fg); background:var(--bg); }
main { max-width: 1100px; margin: 0 auto; padding: 24px 20px 60px; }
h1 { font-size: 24px; margin: 0 0 6px; }
h2 { font-size: 19px; margin: 34px 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 22px 0 6px; }
p.summary, p.caption, p.note, figcaption { color: var(--muted); }
p.caption { margin: 0 0 6px; }
p.note { font-size: 12.5px; margin: 4px 0; }
nav { font-size: 13px; margin: 8px 0 0; }
nav a { margin-right: 12px; color: var(--accent); text-decoration: none; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 6px 0; font-variant-numeric: tabular-nums; }
thead th { border-top: 2px solid var(--fg); border-bottom: 1px solid var(--fg); }
tbody tr:last-child td { border-bottom: 2px solid var(--fg); }
th, td { padding: 3px 10px; white-space: nowrap; }
td.l, th.l { text-align: left; } td.r, th.r { text-align: right; } td.c, th.c { text-align: center; }
tr.section td { border-top: 1px solid var(--line); padding-top: 6px; color: var(--muted); font-style: italic; }
tr.ref td { color: var(--muted); }
tr.ref td:first-child { font-style: italic; }
span.se { color: var(--muted); font-size: 12px; }
sup { line-height: 0; }
sup.mark { color: var(--accent); }
td code { font-size: 12px; white-space: normal; word-break: break-word; }
td.wrap { white-space: normal; max-width: 560px; }
section.warnings { border-left: 4px solid var(--warn); background: #fff8e6; padding: 8px 14px; margin: 18px 0; }
section.warnings h2 { border: none; margin: 4px 0; color: var(--warn); }
figure.plot { margin: 18px 0 26px; }
figure.plot img { max-width: 100%; height: auto; border: 1px solid var(--line); }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
"""


def _text(s: str) -> str:
    esc = html.escape(str(s), quote=True)
    return re.sub(r"\^([A-Za-z]+)", r"<sup>\1</sup>", esc)


def _cell_html(c: Cell) -> str:
    text = html.escape(c.text) if c.code else _text(c.text)
    if c.code and c.text != "-":
        text = f"<code>{text}</code>"
    if c.bold:
        text = f"<strong>{text}</strong>"
    if c.marks:
        text += f'<sup class="mark">{html.escape(c.marks)}</sup>'
    if c.sub:
        text += f' <span class="se">{_text(c.sub)}</span>'
    return text


def table_html(t: Table) -> str:
    n = len(t.header)
    out = [f'<div class="table-block" id="{html.escape(t.key)}">', f"<h3>{_text(t.title)}</h3>"]
    if t.caption:
        out.append(f'<p class="caption">{_text(t.caption)}</p>')
    out.append(f'<div class="scroll"><table class="report-table" data-table="{html.escape(t.key)}">')
    if any(t.header):
        out.append(
            "<thead><tr>"
            + "".join(f'<th class="{a}">{_text(h)}</th>' for h, a in zip(t.header, t.align, strict=False))
            + "</tr></thead>"
        )
    out.append("<tbody>")
    for r in t.rows:
        if r.section:
            out.append(f'<tr class="section"><td colspan="{n}">{_text(r.section)}</td></tr>')
            continue
        cls = ' class="ref"' if r.muted else ""
        cells = []
        for c, a in zip(r.cells, t.align, strict=False):
            c = _cell(c)
            wrap = " wrap" if c.code or len(c.text) > 80 else ""
            cells.append(f'<td class="{a}{wrap}">{_cell_html(c)}</td>')
        out.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    for note in t.notes:
        out.append(f'<p class="note">{_text(note)}</p>')
    out.append("</div>")
    return "\n".join(out)


def figure_html(f: FigureInfo, fig_dir: Path) -> str:
    data = base64.b64encode((fig_dir / f.png).read_bytes()).decode("ascii")
    w, h = _png_size(fig_dir / f.png)
    return (
        f'<figure class="plot" id="{html.escape(f.key)}">'
        f'<img src="data:image/png;base64,{data}" width="{w}" height="{h}" alt="{html.escape(f.title)}">'
        f"<figcaption><strong>{_text(f.title)}.</strong> {_text(f.caption)} "
        f'<a href="figures/{html.escape(f.svg)}">SVG</a> '
        f'<a href="figures/{html.escape(f.pdf)}">PDF</a></figcaption></figure>'
    )


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def render_html(
    data: ReportData,
    tables: list[Table],
    figures: list[FigureInfo],
    warnings: list[str],
    fig_dir: Path,
) -> str:
    results = [t for t in tables if t.latex and not t.group]
    prov = [t for t in tables if not t.latex]
    groups = list(dict.fromkeys(t.group for t in tables if t.group))  # own sections
    nav = []
    if warnings:
        nav.append('<a href="#warnings">Warnings</a>')
    if results:
        nav.append('<a href="#results">Tables</a>')
    nav += [f'<a href="#{slug(g)}">{_text(g)}</a>' for g in groups]
    if figures:
        nav.append('<a href="#figures">Figures</a>')
    if prov:
        nav.append('<a href="#provenance">Provenance</a>')
    body = [
        "<h1>Benchmark report</h1>",
        *[f'<p class="summary">{_text(s)}</p>' for s in summary_lines(data)],
        "<nav>" + "".join(nav) + "</nav>",
    ]
    if warnings:
        body.append('<section class="warnings" id="warnings"><h2>Warnings</h2><ul>')
        body += [f"<li>{_text(w)}</li>" for w in warnings]
        body.append("</ul></section>")
    if not data.rows:
        body.append('<p class="empty">No results to report.</p>')
    if results:
        body.append('<section id="results"><h2>Results</h2>')
        body += [table_html(t) for t in results]
        body.append("</section>")
    for g in groups:
        body.append(f'<section id="{slug(g)}"><h2>{_text(g)}</h2>')
        body += [table_html(t) for t in tables if t.group == g]
        body.append("</section>")
    if figures:
        body.append('<section id="figures"><h2>Figures</h2>')
        body += [figure_html(f, fig_dir) for f in figures]
        body.append("</section>")
    if prov:
        body.append('<section id="provenance"><h2>Provenance</h2>')
        body += [table_html(t) for t in prov]
        body.append("</section>")
    srcs = sources_list(data)
    if srcs:
        body.append('<section id="sources"><h2>Sources of the published numbers</h2><ul>')
        body += [f"<li>{_text(s)}</li>" for s in srcs]
        body.append("</ul></section>")
    body.append(
        "<footer>Made by <code>python -m benchmark report</code> from results.jsonl; "
        "the same tables are in tables.md and tables.tex beside this page.</footer>"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>Benchmark report</title>\n"
        '<link rel="icon" href="data:,">\n'
        f"<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(body)
        + "\n</main>\n</body>\n</html>\n"
    )
