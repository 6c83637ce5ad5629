"""The report's HTML: one self-contained page (inline CSS, SVG and a small script; nothing
fetched), assembled from the sections :mod:`sftselect.report.build` computes.

The script does two things, and the page reads fully without it: it filters the row
samples (search box, strategy, "picked by this strategy alone"; ``report.html#q=WORD``
opens the page with WORD searched), and on load it checks
that every chart drew (each ``svg.chart`` has a size and visible marks), recording the
counts on ``<body data-charts data-charts-drawn>`` and any script error on
``data-script-errors``, so a headless browser can verify the page as a reader sees it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["fold", "overlap_table", "page", "sample_row", "strategy_table"]

#: Texts longer than this are folded (a summary line, the rest on click).
FOLD_AT = 240
#: Texts longer than this are cut in the sample (the page says how much was cut).
CUT_AT = 4000

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
main{max-width:1400px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;font-size:13px}
table{border-collapse:collapse;background:#fff}th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
.sw{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.grid{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;background:#fff;border:1px solid #e2e2e2;border-radius:4px;padding:6px 8px}
figcaption{font-size:12.5px;color:#444;max-width:440px}
td.ov small{color:#666}
.note{color:#666;font-style:italic}
.controls{display:flex;gap:12px;align-items:center;margin:8px 0;flex-wrap:wrap;position:sticky;top:0;background:#fafafa;padding:6px 0}
.controls input[type=search]{width:320px;padding:4px 6px}
article.row{background:#fff;border:1px solid #e2e2e2;border-left:4px solid var(--c);border-radius:4px;margin:6px 0;padding:6px 10px}
article.row header{font-size:12.5px;color:#555;margin-bottom:4px}
.field{margin:2px 0;white-space:pre-wrap;word-break:break-word}
.field b{color:#333;margin-right:6px}
details.field summary{cursor:pointer}
details.params summary{cursor:pointer;color:#345}
pre{margin:4px 0;font-size:12px;white-space:pre-wrap}
.tag{display:inline-block;font-size:11px;padding:0 5px;border-radius:8px;background:#eee;margin-left:4px}
.tag.only{background:#ffe9b3}
"""

_JS = """
(function(){
  var errors = 0;
  window.addEventListener('error', function(){ errors++; document.body.setAttribute('data-script-errors', String(errors)); });
  function checkCharts(){
    var charts = document.querySelectorAll('svg.chart'), drawn = 0;
    for (var i = 0; i < charts.length; i++){
      var svg = charts[i], box = svg.getBoundingClientRect(), marks = svg.querySelectorAll('.mark'), seen = 0;
      for (var j = 0; j < marks.length; j++){ var b = marks[j].getBBox(); if (b.width > 0 || b.height > 0) seen++; }
      var ok = box.width > 0 && box.height > 0 && seen > 0;
      svg.setAttribute('data-drawn', ok ? 'yes' : 'no');
      if (ok) drawn++;
    }
    document.body.setAttribute('data-charts', String(charts.length));
    document.body.setAttribute('data-charts-drawn', String(drawn));
  }
  function filterRows(){
    var q = document.getElementById('q').value.toLowerCase().trim();
    var who = document.getElementById('who').value;
    var only = document.getElementById('only').checked;
    var rows = document.querySelectorAll('article.row'), shown = 0;
    for (var i = 0; i < rows.length; i++){
      var r = rows[i];
      var ok = (!who || r.getAttribute('data-strategy') === who) && (!only || r.getAttribute('data-only') === '1')
        && (!q || r.textContent.toLowerCase().indexOf(q) >= 0);
      r.style.display = ok ? '' : 'none';
      if (ok) shown++;
    }
    document.getElementById('shown').textContent = shown + ' of ' + rows.length + ' rows shown';
  }
  document.addEventListener('DOMContentLoaded', function(){
    checkCharts();
    var q = document.getElementById('q');
    if (q){
      // A link may carry a search: report.html#q=word
      if (location.hash.indexOf('#q=') === 0) q.value = decodeURIComponent(location.hash.slice(3));
      q.addEventListener('input', filterRows);
      document.getElementById('who').addEventListener('change', filterRows);
      document.getElementById('only').addEventListener('change', filterRows);
      filterRows();
    }
    document.body.setAttribute('data-ready', 'yes');
  });
})();
"""


def fold(text: str) -> tuple[str, bool]:
    """A text as HTML: escaped, cut past ``CUT_AT`` characters (saying how many were cut);
    whether it is long enough to fold."""
    shown = text if len(text) <= CUT_AT else text[:CUT_AT]
    html = escape(shown)
    if len(text) > CUT_AT:
        html += f' <span class="note">[{len(text) - CUT_AT:,} more characters not shown]</span>'
    return html, len(text) > FOLD_AT


def swatch(color: str) -> str:
    return f'<span class="sw" style="background:{color}"></span>'


def strategy_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The strategies: name, selector, rows, k, seed, parameters (folded JSON), source."""
    head = "<tr><th>strategy</th><th>selector</th><th>rows</th><th>k</th><th>seed</th><th>parameters</th><th>from</th></tr>"
    body = []
    for r in rows:
        params = r["params"]
        if params:
            text = json.dumps(params, indent=1, ensure_ascii=False, default=str)
            brief = ", ".join(
                f"{k}={json.dumps(v, default=str)}" for k, v in list(params.items())[:3]
            )
            cell = (
                f'<details class="params"><summary>{escape(brief[:90])}'
                f"{'…' if len(params) > 3 or len(brief) > 90 else ''}</summary>"
                f"<pre>{escape(text)}</pre></details>"
            )
        else:
            cell = '<span class="note">not recorded</span>'
        body.append(
            f'<tr data-strategy="{escape(r["name"])}"><td>{swatch(r["color"])}<b>{escape(r["name"])}</b></td>'
            f"<td>{escape(str(r['selector'] or '—'))}</td>"
            f'<td class="num" data-rows="{r["rows"]}">{r["rows"]:,}</td>'
            f"<td>{escape(json.dumps(r['k']) if r['k'] is not None else '—')}</td>"
            f"<td>{escape(json.dumps(r['seed'], default=str) if r['seed'] is not None else '—')}</td>"
            f"<td>{cell}</td><td>{escape(r['source'] or '(in memory)')}</td></tr>"
        )
    return f'<table id="strategies">{head}{"".join(body)}</table>'


def overlap_table(
    names: Sequence[str],
    colors: Mapping[str, str],
    sizes: Mapping[str, int],
    counts: Mapping[tuple[str, str], int],
    jaccard: Mapping[tuple[str, str], float],
    exclusive: Mapping[str, int],
) -> str:
    """Rows in both of every pair (the diagonal: the subset's size), the Jaccard index, and
    a last row with the rows each strategy alone picked."""
    head = (
        "<tr><th></th>"
        + "".join(f"<th>{swatch(colors[n])}{escape(n)}</th>" for n in names)
        + "</tr>"
    )
    body = []
    for a in names:
        cells = []
        for b in names:
            j = jaccard[a, b]
            shade = 0.0 if j != j else j  # NaN (two empty subsets) is unshaded
            cells.append(
                f'<td class="ov num" data-a="{escape(a)}" data-b="{escape(b)}" '
                f'data-count="{counts[a, b]}" data-jaccard="{j:.6f}" '
                f'style="background:rgba(78,121,167,{0.08 + 0.6 * shade:.2f})">'
                f'<span class="count">{counts[a, b]:,}</span><br><small>J = {j:.3f}</small></td>'
            )
        body.append(f"<tr><th>{swatch(colors[a])}{escape(a)}</th>{''.join(cells)}</tr>")
    only = "".join(
        f'<td class="only num" data-name="{escape(n)}" data-count="{exclusive[n]}">{exclusive[n]:,}'
        f"<br><small>{exclusive[n] / sizes[n] * 100 if sizes[n] else 0:.1f}% of its rows</small></td>"
        for n in names
    )
    body.append(f"<tr><th>picked by no other strategy</th>{only}</tr>")
    return f'<table id="overlap">{head}{"".join(body)}</table>'


def sample_row(
    *,
    name: str,
    color: str,
    position: int,
    fields: Sequence[tuple[str, str]],
    facts: Sequence[str],
    also: Sequence[str],
) -> str:
    """One sampled row: who picked it, its position, length and score, its columns folded."""
    only = not also
    tags = (
        '<span class="tag only">only here</span>'
        if only
        else "".join(f'<span class="tag">also {escape(o)}</span>' for o in also)
    )
    parts = []
    for key, text in fields:
        html, long = fold(text)
        if not text:
            parts.append(
                f'<div class="field"><b>{escape(key)}</b><span class="note">(empty)</span></div>'
            )
        elif long:
            parts.append(
                f'<details class="field"><summary><b>{escape(key)}</b>{escape(" ".join(text[:160].split()))}…</summary>'
                f"{html}</details>"
            )
        else:
            parts.append(f'<div class="field"><b>{escape(key)}</b>{html}</div>')
    return (
        f'<article class="row" data-strategy="{escape(name)}" data-only="{int(only)}" '
        f'data-position="{position}" style="--c:{color}"><header>{swatch(color)}<b>{escape(name)}</b>'
        f" · row {position:,} · {escape(' · '.join(facts))}{tags}</header>{''.join(parts)}</article>"
    )


def sample_controls(names: Sequence[str]) -> str:
    options = "".join(f'<option value="{escape(n)}">{escape(n)}</option>' for n in names)
    return (
        '<div class="controls"><input type="search" id="q" placeholder="search the sampled rows">'
        f'<select id="who"><option value="">every strategy</option>{options}</select>'
        '<label><input type="checkbox" id="only"> picked by this strategy alone</label>'
        '<span id="shown" class="meta"></span></div>'
    )


def figure(chart: str, caption: str) -> str:
    return f"<figure>{chart}<figcaption>{caption}</figcaption></figure>"


def page(title: str, meta: str, sections: Sequence[tuple[str, str, str]], defs: str = "") -> str:
    """The whole document; ``sections`` are (id, heading, inner HTML)."""
    body = "".join(
        f'<section id="{sid}"><h2>{escape(heading)}</h2>{inner}</section>'
        for sid, heading, inner in sections
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style><script>{_JS}</script></head>"
        f'<body>{defs}<main><h1>{escape(title)}</h1><p class="meta">{meta}</p>{body}</main>'
        "</body></html>\n"
    )
