"""The report's charts as inline SVG, drawn here from binned numbers (no plotting library,
no script: the page opens offline and its size does not grow with the pool).

Every drawn mark carries ``class="mark"`` and a ``<title>`` (the browser's tooltip);
every chart is an ``<svg class="chart">``, which the page's check counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

import numpy as np

__all__ = [
    "PALETTE",
    "POOL_COLOR",
    "box_chart",
    "density_defs",
    "histogram_chart",
    "map_chart",
    "share_chart",
]

#: Strategy colours (Tableau 10), in the order the strategies are given.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
POOL_COLOR = "#9aa3ad"

_W, _H = 440, 210
_LEFT, _RIGHT, _TOP, _BOTTOM = 46, 12, 10, 38


def _fmt(value: float) -> str:
    """A tick or tooltip number: 1,234 / 12.5 / 0.125."""
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _svg(body: list[str], label: str, width: int = _W, height: int = _H) -> str:
    return (
        f'<svg class="chart" role="img" aria-label="{escape(label)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        + "".join(body)
        + "</svg>"
    )


def _axes(
    xticks: Sequence[tuple[float, str]],
    yticks: Sequence[tuple[float, str]],
    xlabel: str,
    ylabel: str,
) -> list[str]:
    """Axis lines, ticks and labels; tick positions are already in pixels."""
    x0, x1, y0, y1 = _LEFT, _W - _RIGHT, _H - _BOTTOM, _TOP
    out = [
        f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#555"/>',
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#555"/>',
    ]
    for px, text in xticks:
        out.append(f'<line x1="{px:.1f}" y1="{y0}" x2="{px:.1f}" y2="{y0 + 4}" stroke="#555"/>')
        out.append(
            f'<text x="{px:.1f}" y="{y0 + 15}" font-size="10" text-anchor="middle">'
            f"{escape(text)}</text>"
        )
    for py, text in yticks:
        out.append(f'<line x1="{x0 - 4}" y1="{py:.1f}" x2="{x0}" y2="{py:.1f}" stroke="#555"/>')
        out.append(
            f'<text x="{x0 - 6}" y="{py + 3:.1f}" font-size="10" text-anchor="end">'
            f"{escape(text)}</text>"
        )
    out.append(
        f'<text x="{(x0 + x1) / 2:.1f}" y="{_H - 6}" font-size="11" text-anchor="middle">'
        f"{escape(xlabel)}</text>"
    )
    out.append(
        f'<text x="11" y="{(y0 + y1) / 2:.1f}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 11 {(y0 + y1) / 2:.1f})">{escape(ylabel)}</text>'
    )
    return out


def histogram_chart(
    edges: np.ndarray,
    pool: np.ndarray,
    subset: np.ndarray,
    *,
    color: str,
    name: str,
    xlabel: str,
    log_x: bool,
) -> str:
    """Share of rows per bin: the pool's as grey bars, the subset's as a coloured outline.

    ``pool`` and ``subset`` are fractions per bin (each sums to 1, or is all zero).
    With ``log_x``, the bins are spaced on log(1 + x) and the axis says so.
    """
    pos = np.log1p(edges) if log_x else edges.astype(np.float64)
    lo, hi = float(pos[0]), float(pos[-1])
    span = (hi - lo) or 1.0
    top = max(float(pool.max(initial=0)), float(subset.max(initial=0)), 1e-9) * 1.08
    x0, x1, y0, y1 = _LEFT, _W - _RIGHT, _H - _BOTTOM, _TOP

    def px(v: float) -> float:
        return x0 + (v - lo) / span * (x1 - x0)

    def py(f: float) -> float:
        return y0 - f / top * (y0 - y1)

    body: list[str] = []
    for i in range(edges.size - 1):
        a, b = px(pos[i]), px(pos[i + 1])
        tip = (
            f"{_fmt(edges[i])} to {_fmt(edges[i + 1])}: pool {pool[i] * 100:.1f}%, "
            f"{name} {subset[i] * 100:.1f}%"
        )
        if pool[i] > 0:
            body.append(
                f'<rect class="mark" x="{a:.1f}" y="{py(pool[i]):.1f}" width="{max(b - a, 0.5):.1f}" '
                f'height="{y0 - py(pool[i]):.1f}" fill="{POOL_COLOR}" fill-opacity="0.55">'
                f"<title>{escape(tip)}</title></rect>"
            )
    path = [f"M{px(pos[0]):.1f},{y0}"]
    for i in range(edges.size - 1):
        path.append(
            f"L{px(pos[i]):.1f},{py(subset[i]):.1f}L{px(pos[i + 1]):.1f},{py(subset[i]):.1f}"
        )
    path.append(f"L{px(pos[-1]):.1f},{y0}")
    body.append(
        f'<path class="mark" d="{"".join(path)}" fill="{color}" fill-opacity="0.18" '
        f'stroke="{color}" stroke-width="1.6"><title>{escape(name)}</title></path>'
    )
    if log_x:
        candidates = [0, 1, 3, 10, 30, 100, 300, 1000, 3000, 10000, 30000, 100000]
        ticks = [(px(math.log1p(v)), _fmt(v)) for v in candidates if lo <= math.log1p(v) <= hi]
    else:
        ticks = [(px(v), _fmt(v)) for v in _nice_ticks(lo, hi)]
    yt = [(py(v), f"{v * 100:.0f}%") for v in _nice_ticks(0, top, 4)]
    axes = _axes(ticks, yt, xlabel + (" (log scale)" if log_x else ""), "share of rows")
    return _svg(axes + body, f"{name}: {xlabel} of the subset over the pool's")


def box_chart(summary: Mapping[str, Any], *, color: str, name: str, xlabel: str) -> str:
    """Two horizontal boxes (min, quartiles, max; the mean as a dot): every row and the
    selected rows, from a provenance record's score summary."""
    rows = [
        ("pool", summary.get("all") or {}, POOL_COLOR),
        (name, summary.get("selected") or {}, color),
    ]
    values = [r[k] for _, r, _ in rows for k in ("min", "max") if k in r]
    height = 130
    if not values:
        return _svg(
            ['<text class="mark" x="20" y="60" font-size="12">no finite score</text>'],
            f"{name}: scores",
            height=height,
        )
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    x0, x1 = 70, _W - _RIGHT

    def px(v: float) -> float:
        return x0 + (v - lo) / span * (x1 - x0)

    body: list[str] = []
    for i, (label, r, col) in enumerate(rows):
        y = 22 + i * 40
        body.append(
            f'<text x="{x0 - 6}" y="{y + 4}" font-size="11" text-anchor="end">{escape(label)}</text>'
        )
        if "min" not in r:
            body.append(f'<text x="{x0}" y="{y + 4}" font-size="11">no finite score</text>')
            continue
        tip = (
            f"{label}: {r.get('count', '?')} rows ({r.get('nan', 0)} NaN); min {_fmt(r['min'])}, "
            f"quartiles {_fmt(r['p25'])} / {_fmt(r['median'])} / {_fmt(r['p75'])}, max "
            f"{_fmt(r['max'])}, mean {_fmt(r['mean'])}"
        )
        body.append(
            f'<g class="mark"><title>{escape(tip)}</title>'
            f'<line x1="{px(r["min"]):.1f}" y1="{y}" x2="{px(r["max"]):.1f}" y2="{y}" stroke="{col}"/>'
            f'<rect x="{px(r["p25"]):.1f}" y="{y - 10}" width="{max(px(r["p75"]) - px(r["p25"]), 1):.1f}" '
            f'height="20" fill="{col}" fill-opacity="0.35" stroke="{col}"/>'
            f'<line x1="{px(r["median"]):.1f}" y1="{y - 10}" x2="{px(r["median"]):.1f}" y2="{y + 10}" '
            f'stroke="{col}" stroke-width="2"/>'
            f'<circle cx="{px(r["mean"]):.1f}" cy="{y}" r="3" fill="#222"/></g>'
        )
    base = height - 34
    body.append(f'<line x1="{x0}" y1="{base}" x2="{x1}" y2="{base}" stroke="#555"/>')
    for v in _nice_ticks(lo, hi):
        body.append(
            f'<text x="{px(v):.1f}" y="{base + 13}" font-size="10" text-anchor="middle">{_fmt(v)}</text>'
        )
    body.append(
        f'<text x="{(x0 + x1) / 2:.1f}" y="{height - 4}" font-size="11" text-anchor="middle">'
        f"{escape(xlabel)}</text>"
    )
    return _svg(body, f"{name}: scores", height=height)


def share_chart(
    categories: Sequence[str],
    pool: np.ndarray,
    subsets: Mapping[str, np.ndarray],
    colors: Mapping[str, str],
    column: str,
) -> str:
    """Grouped horizontal bars: each category's share of the pool and of every subset."""
    groups = 1 + len(subsets)
    bar = 7 if groups > 4 else 9
    block = groups * bar + 8
    left = 130
    width = _W + 160
    height = 30 + block * len(categories) + 24
    top = max(
        float(pool.max(initial=0)), *(float(s.max(initial=0)) for s in subsets.values()), 1e-9
    )
    x1 = width - 60

    def px(f: float) -> float:
        return left + f / top * (x1 - left)

    body: list[str] = []
    for c, cat in enumerate(categories):
        y = 20 + c * block
        label = cat if len(cat) <= 20 else cat[:19] + "…"
        body.append(
            f'<text x="{left - 6}" y="{y + groups * bar / 2 + 4:.1f}" font-size="11" '
            f'text-anchor="end"><title>{escape(cat)}</title>{escape(label)}</text>'
        )
        series = [("pool", pool, POOL_COLOR)] + [(n, s, colors[n]) for n, s in subsets.items()]
        for g, (name, shares, col) in enumerate(series):
            f = float(shares[c])
            body.append(
                f'<rect class="mark" x="{left}" y="{y + g * bar}" width="{max(px(f) - left, 0.5):.1f}" '
                f'height="{bar - 1}" fill="{col}"><title>{escape(f"{name}, {column} = {cat}: {f * 100:.1f}%")}'
                f"</title></rect>"
            )
            if f > 0:
                body.append(
                    f'<text x="{px(f) + 3:.1f}" y="{y + g * bar + bar - 2}" font-size="8">'
                    f"{f * 100:.1f}%</text>"
                )
    legend_y = height - 10
    series_names = [("pool", POOL_COLOR)] + [(n, colors[n]) for n in subsets]
    x = left
    for name, col in series_names:
        body.append(f'<rect x="{x}" y="{legend_y - 8}" width="10" height="10" fill="{col}"/>')
        body.append(f'<text x="{x + 14}" y="{legend_y + 1}" font-size="11">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    return _svg(body, f"share of each {column} value", width=width, height=height)


_MAP = 300


def density_defs(counts: np.ndarray) -> str:
    """The pool's 2-D histogram as one SVG group (``#pool-density``), drawn once and
    reused by every map panel (``<use>``); darker cells hold more rows (log scale)."""
    nx, ny = counts.shape
    cw, ch = _MAP / nx, _MAP / ny
    peak = math.log1p(float(counts.max(initial=0))) or 1.0
    cells = []
    for i, j in zip(*np.nonzero(counts)):
        shade = 0.12 + 0.75 * math.log1p(float(counts[i, j])) / peak
        cells.append(
            f'<rect x="{i * cw:.1f}" y="{_MAP - (j + 1) * ch:.1f}" width="{cw + 0.05:.2f}" '
            f'height="{ch + 0.05:.2f}" fill-opacity="{shade:.2f}"/>'
        )
    return (
        '<svg width="0" height="0" style="position:absolute" aria-hidden="true">'
        f'<defs><g id="pool-density" fill="{POOL_COLOR}">{"".join(cells)}</g></defs></svg>'
    )


def map_chart(points: np.ndarray, *, color: str, name: str, shown: int, total: int) -> str:
    """A map panel: the pool's density (``#pool-density``) and the subset's rows as dots.

    ``points`` are already scaled to ``[0, 1]^2`` (the pool's bounding box)."""
    pad = 8
    size = _MAP + 2 * pad
    body = [
        f'<rect x="{pad}" y="{pad}" width="{_MAP}" height="{_MAP}" fill="none" stroke="#ccc"/>',
        f'<use class="mark" href="#pool-density" x="{pad}" y="{pad}"><title>pool</title></use>',
    ]
    dots = [
        f'<circle cx="{pad + x * _MAP:.1f}" cy="{pad + (1 - y) * _MAP:.1f}" r="2"/>'
        for x, y in points
    ]
    caption = f"{name}: {shown:,} rows" + (f" of {total:,} drawn" if shown < total else "")
    body.append(
        f'<g class="mark" fill="{color}" fill-opacity="0.8" stroke="#fff" stroke-width="0.3">'
        f"<title>{escape(caption)}</title>{''.join(dots)}</g>"
    )
    return _svg(body, f"{name}: its rows on the map of the pool", width=size, height=size)
