"""``compare``: one HTML page that puts several selections from one pool side by side.

>>> from sftselect import LengthSelector, RandomSelector, load_sample
>>> from sftselect.report import compare
>>> pool = load_sample()
>>> report = compare(pool, {
...     "longest": LengthSelector(k=100, unit="words").run(pool),
...     "random": RandomSelector(k=100, random_state=0).run(pool),
... })
>>> report.overlaps.counts["longest", "random"] <= 100
True
>>> report.save("report.html")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._version import __version__
from ..core.atomic import atomic_file
from ..core.validation import check_positive_int, param_error
from ..exceptions import InvalidParameterError
from . import figures, page
from .inputs import PoolIdentity, Strategy, to_strategy
from .measures import (
    Overlaps,
    category_shares,
    detect_category_columns,
    histogram_shares,
    overlaps,
    project_2d,
    row_texts,
    sample_positions,
)

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["Report", "compare"]

_OWNER = "compare"


@dataclass(frozen=True)
class Report:
    """A built comparison: the page (``html``) and the numbers it shows.

    ``save(path)`` writes the page (atomically); in Jupyter the report shows inline
    (``_repr_html_``: the page in an ``iframe``, so its styles and script stay its own).
    """

    html: str
    strategies: list[Strategy]
    overlaps: Overlaps
    charts: int
    seconds: float

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the page to ``path`` (through a temporary file, then a rename)."""
        path = Path(path)
        with atomic_file(path, "w") as fh:
            fh.write(self.html)
        return path

    def _repr_html_(self) -> str:
        return (
            f'<iframe srcdoc="{escape(self.html, quote=True)}" style="width:100%;height:720px;'
            'border:1px solid #ddd" sandbox="allow-scripts"></iframe>'
        )

    def __repr__(self) -> str:
        names = ", ".join(s.name for s in self.strategies)
        return f"<Report of {len(self.strategies)} selections ({names}), {len(self.html):,} bytes>"


def _embeddings(
    embeddings: Any, dataset: Dataset, embed_text: str, fmt: Any, cache: Any
) -> np.ndarray | None:
    if embeddings is None:
        return None
    if isinstance(embeddings, np.ndarray):
        X = embeddings
    else:
        from ..embedding import embed_dataset

        X = embed_dataset(
            embeddings, dataset, text=embed_text, format=fmt, cache_dir=cache, owner=_OWNER
        )
    if X.ndim != 2 or X.shape[0] != len(dataset):
        raise param_error(
            _OWNER,
            "embeddings",
            f"a 2-D array with one row per pool row ({len(dataset):,})",
            f"an array of shape {X.shape}",
        )
    if not np.isfinite(X).all():
        bad = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise InvalidParameterError(
            f"The 'embeddings' parameter of compare must be finite. Row {bad} holds NaN or inf."
        )
    return X


def _length_section(lengths: np.ndarray, unit: str, strategies, colors) -> str:
    edges, pool, subsets, log_x = histogram_shares(lengths, strategies)
    unscored = int(np.count_nonzero(~np.isfinite(lengths)))
    finite = lengths[np.isfinite(lengths)]
    figs = []
    for s in strategies:
        sub = lengths[s.indices]
        sub = sub[np.isfinite(sub)]
        chart = figures.histogram_chart(
            edges,
            pool,
            subsets[s.name],
            color=colors[s.name],
            name=s.name,
            xlabel=f"response length ({unit})",
            log_x=log_x,
        )
        med = f"median {np.median(sub):,.0f}" if sub.size else "no measurable response"
        pool_med = f"{np.median(finite):,.0f}" if finite.size else "—"
        figs.append(page.figure(chart, f"<b>{escape(s.name)}</b>: {med} (pool {pool_med})"))
    note = (
        f'<p class="note">{unscored:,} pool rows have no measurable response.</p>'
        if unscored
        else ""
    )
    return f'<div class="grid">{"".join(figs)}</div>{note}'


def _score_section(strategies, colors) -> str:
    figs = []
    for s in strategies:
        if s.scores is not None:
            edges, pool, subsets, log_x = histogram_shares(s.scores, [s])
            chart = figures.histogram_chart(
                edges,
                pool,
                subsets[s.name],
                color=colors[s.name],
                name=s.name,
                xlabel=f"{s.selector} score",
                log_x=log_x,
            )
            nan = int(np.count_nonzero(np.isnan(s.scores)))
            figs.append(
                page.figure(
                    chart,
                    f"<b>{escape(s.name)}</b>: every pool row's score "
                    f"(grey) and the selected rows' ({nan:,} NaN, not drawn)",
                )
            )
        elif s.score_summary is not None:
            chart = figures.box_chart(
                s.score_summary, color=colors[s.name], name=s.name, xlabel=f"{s.selector} score"
            )
            figs.append(
                page.figure(
                    chart,
                    f"<b>{escape(s.name)}</b>: the provenance's score "
                    "summary (quartiles; the dot is the mean)",
                )
            )
    if not figs:
        return '<p class="note">No selector here scored rows.</p>'
    return f'<div class="grid">{"".join(figs)}</div>'


def _category_section(dataset, columns, strategies, colors) -> str:
    if not columns:
        return (
            '<p class="note">No source or category column (a column with 2 to 30 distinct '
            "values); name one with columns=[...] / --column.</p>"
        )
    out = []
    for column in columns:
        shares = category_shares(dataset, column, strategies)
        chart = figures.share_chart(shares.categories, shares.pool, shares.subsets, colors, column)
        more = " (the rest as “(other)”)" if "(other)" in shares.categories else ""
        out.append(
            page.figure(
                chart,
                f"<b>{escape(column)}</b>: {shares.distinct} values"
                f"{more}; the share of each in the pool and in each subset",
            )
        )
    return f'<div class="grid">{"".join(out)}</div>'


def _map_section(X, strategies, colors, max_points, seed) -> tuple[str, str]:
    if X is None:
        return (
            '<p class="note">No embeddings given: pass embeddings= (an array or an embedder) '
            "to compare, or --embed-model / --embed-column to sftselect compare.</p>",
            "",
        )
    m = project_2d(X, strategies, max_points=max_points, random_state=seed)
    figs = []
    for s in strategies:
        chart = figures.map_chart(
            m.points[s.name],
            color=colors[s.name],
            name=s.name,
            shown=m.drawn[s.name],
            total=int(s.indices.size),
        )
        cap = f"<b>{escape(s.name)}</b>: {int(s.indices.size):,} rows"
        if m.drawn[s.name] < s.indices.size:
            cap += f" ({m.drawn[s.name]:,} drawn, a seeded sample)"
        figs.append(page.figure(chart, cap))
    intro = (
        f'<p class="meta">PCA of the embeddings ({X.shape[1]} dimensions), fitted once on '
        f"{m.fit_rows:,} rows; the axes explain {m.explained[0] * 100:.1f}% and "
        f"{m.explained[1] * 100:.1f}% of the variance. Grey: the pool's density (log scale).</p>"
    )
    return intro + f'<div class="grid">{"".join(figs)}</div>', figures.density_defs(m.density)


def _contains(sorted_positions: np.ndarray, p: int) -> bool:
    i = int(np.searchsorted(sorted_positions, p))
    return i < sorted_positions.size and int(sorted_positions[i]) == p


def _sample_section(dataset, strategies, colors, ov, lengths, unit, size, seed) -> str:
    rng = np.random.default_rng(seed)
    members = {s.name: s.indices for s in strategies}
    picked = [(s, sample_positions(s, size, rng)) for s in strategies]
    wanted = np.unique(np.concatenate([p for _, p in picked] or [np.zeros(0, np.int64)]))
    rows = dict(zip(wanted.tolist(), dataset.select(wanted).to_list())) if wanted.size else {}
    out = [page.sample_controls([s.name for s in strategies])]
    for s, positions in picked:
        for p in positions.tolist():
            also = [n for n, ix in members.items() if n != s.name and _contains(ix, p)]
            length = lengths[p]
            facts = [f"{length:,.0f} {unit}" if np.isfinite(length) else f"no {unit}"]
            if s.scores is not None:
                facts.append(f"score {s.scores[p]:.4g}")
            out.append(
                page.sample_row(
                    name=s.name,
                    color=colors[s.name],
                    position=p,
                    fields=row_texts(rows[p]),
                    facts=facts,
                    also=also,
                )
            )
    return "".join(out)


def compare(
    dataset: Dataset,
    selections: Mapping[str, Any],
    *,
    embeddings: Any = None,
    embed_text: str = "instruction_input",
    embed_cache: str | os.PathLike[str] | None = None,
    unit: Any = "words",
    format: Any = None,
    columns: Sequence[str] | None = None,
    sample_size: int = 20,
    max_points: int = 2000,
    random_state: int = 0,
    title: str | None = None,
) -> Report:
    """Compare selections from one pool in a self-contained HTML report.

    ``selections`` maps a name to a ``Selection`` (``Selector.run``), a provenance
    record (dict or ``.provenance.json`` path), a selection's output file (its
    provenance beside it) or row positions; each is checked against ``dataset`` (a
    one-line error naming the file when it was made from another pool or lists a
    position outside it). ``embeddings`` (an ``[n, d]`` array, an embedder, or
    ``PrecomputedEmbeddings``; embedded once, through ``embed_cache``) adds the map.
    ``columns`` names the source/category columns (default: every column with 2 to
    30 distinct values). ``unit`` and ``format`` measure response lengths as
    ``LengthSelector`` does. ``sample_size`` rows per strategy are shown, drawn with
    ``random_state``.
    """
    from ..core.validation import check_dataset
    from ..selectors import LengthSelector

    t0 = time.perf_counter()
    check_dataset(dataset, _OWNER)
    if not isinstance(selections, Mapping) or not selections:
        raise param_error(
            _OWNER, "selections", "a non-empty mapping of names to selections", selections
        )
    sample_size = check_positive_int(sample_size, "sample_size", _OWNER)
    max_points = check_positive_int(max_points, "max_points", _OWNER)
    pool_id = PoolIdentity(dataset)
    strategies = [to_strategy(name, value, pool_id) for name, value in selections.items()]
    colors = {s.name: figures.PALETTE[i % len(figures.PALETTE)] for i, s in enumerate(strategies)}
    length_selector = LengthSelector(k=None, unit=unit, format=format, drop_empty=False)
    lengths = length_selector.score(dataset)
    unit_name = unit if isinstance(unit, str) else repr(unit)
    if columns is None:
        from ..data.formats import resolve_format

        fmt = resolve_format(dataset, format, _OWNER)
        text_fields = (fmt.instruction, fmt.input, fmt.response, fmt.messages)
        columns = detect_category_columns(dataset, skip=[c for c in text_fields if c])
    else:
        from ..core.validation import check_columns

        check_columns(dataset.column_names, columns, _OWNER)
    X = _embeddings(embeddings, dataset, embed_text, format, embed_cache)
    ov = overlaps(strategies, len(dataset))
    map_html, defs = _map_section(X, strategies, colors, max_points, random_state)
    sections = [
        (
            "strategies",
            "Strategies",
            page.strategy_table(
                [
                    {
                        "name": s.name,
                        "color": colors[s.name],
                        "selector": s.selector,
                        "rows": int(s.indices.size),
                        "k": s.k,
                        "seed": s.seed,
                        "params": dict(s.params),
                        "source": s.source,
                    }
                    for s in strategies
                ]
            ),
        ),
        (
            "lengths",
            "Response length: each subset over the pool",
            _length_section(lengths, unit_name, strategies, colors),
        ),
        ("scores", "Scores, where the selector scored", _score_section(strategies, colors)),
        (
            "overlap",
            "Overlap between subsets",
            '<p class="meta">Rows in both subsets of each pair (the diagonal: the subset\'s size) '
            "and the Jaccard index (rows in both / rows in either).</p>"
            + page.overlap_table(ov.names, colors, ov.sizes, ov.counts, ov.jaccard, ov.exclusive),
        ),
        (
            "categories",
            "Sources and categories",
            _category_section(dataset, columns, strategies, colors),
        ),
        ("map", "Map of the pool", map_html),
        (
            "samples",
            f"Sampled rows ({sample_size} per strategy)",
            _sample_section(
                dataset, strategies, colors, ov, lengths, unit_name, sample_size, random_state
            ),
        ),
    ]
    html = page.page(
        title or f"Comparison of {len(strategies)} selections",
        f"pool: {len(dataset):,} rows · response length in {escape(unit_name)} · "
        f"sftselect {escape(__version__)}",
        sections,
        defs,
    )
    charts = html.count('<svg class="chart"')
    return Report(
        html=html,
        strategies=strategies,
        overlaps=ov,
        charts=charts,
        seconds=time.perf_counter() - t0,
    )
