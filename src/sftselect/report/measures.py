"""What the report shows, computed once from the pool and the strategies' positions:
length and score bins, pairwise overlaps, category shares, the 2-D map, row samples.

Everything here is binned or sampled, so what the page holds does not grow with the
pool: 40 bins per histogram, at most ``max_categories`` values per column, a 48 x 48
density grid for the map and at most ``max_points`` dots per strategy on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from datasets import Dataset

    from .inputs import Strategy

__all__ = [
    "CategoryShares",
    "MapData",
    "Overlaps",
    "category_shares",
    "detect_category_columns",
    "histogram_shares",
    "overlaps",
    "project_2d",
]

HIST_BINS = 40
GRID = 48
#: Rows the 2-D projection (PCA) is fitted on; every row is then projected.
PCA_FIT_ROWS = 10_000


def histogram_shares(
    values: np.ndarray, strategies: Sequence[Strategy], *, log_x: bool | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], bool]:
    """Shared bin edges, the pool's share per bin, each subset's share per bin, and
    whether the bins are log-spaced (lengths spanning more than two decades)."""
    finite = values[np.isfinite(values)]
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 1.0
    if hi <= lo:
        hi = lo + 1.0
    if log_x is None:
        median = float(np.median(finite)) if finite.size else 1.0
        log_x = lo >= 0 and hi > 20 * max(median, 1.0)
    if log_x:
        edges = np.expm1(np.linspace(np.log1p(lo), np.log1p(hi), HIST_BINS + 1))
    else:
        edges = np.linspace(lo, hi, HIST_BINS + 1)

    def shares(v: np.ndarray) -> np.ndarray:
        v = v[np.isfinite(v)]
        counts, _ = np.histogram(v, bins=edges)
        return counts / v.size if v.size else counts.astype(np.float64)

    return edges, shares(values), {s.name: shares(values[s.indices]) for s in strategies}, log_x


@dataclass(frozen=True)
class Overlaps:
    """Pairwise intersections and Jaccard indices, and the rows each strategy alone picked."""

    names: list[str]
    sizes: dict[str, int]
    counts: dict[tuple[str, str], int]
    jaccard: dict[tuple[str, str], float]
    exclusive: dict[str, int]
    picked_by: np.ndarray  # per pool row: how many strategies picked it (int8/int16)


def overlaps(strategies: Sequence[Strategy], n: int) -> Overlaps:
    names = [s.name for s in strategies]
    picked_by = np.zeros(n, dtype=np.int16)
    for s in strategies:
        picked_by[s.indices] += 1
    counts: dict[tuple[str, str], int] = {}
    jaccard: dict[tuple[str, str], float] = {}
    for a in strategies:
        for b in strategies:
            inter = int(np.intersect1d(a.indices, b.indices, assume_unique=True).size)
            union = int(a.indices.size + b.indices.size - inter)
            counts[a.name, b.name] = inter
            jaccard[a.name, b.name] = inter / union if union else float("nan")
    exclusive = {s.name: int(np.count_nonzero(picked_by[s.indices] == 1)) for s in strategies}
    return Overlaps(
        names=names,
        sizes={s.name: int(s.indices.size) for s in strategies},
        counts=counts,
        jaccard=jaccard,
        exclusive=exclusive,
        picked_by=picked_by,
    )


@dataclass(frozen=True)
class CategoryShares:
    """One column's values (most common in the pool first) and their shares."""

    column: str
    categories: list[str]
    pool: np.ndarray
    subsets: dict[str, np.ndarray]
    distinct: int


def detect_category_columns(
    dataset: Dataset, *, max_distinct: int = 30, skip: Sequence[str] = ()
) -> list[str]:
    """String, boolean or integer columns with 2 to ``max_distinct`` distinct values, each
    value held by two rows on average at least (a ``source``, Dolly's ``category``); free
    text and ids have far more and are left out, and so are the ``skip`` columns (the
    format's text fields)."""
    import pyarrow.compute as pc

    from ..data.formats import arrow_column

    found = []
    for name in dataset.column_names:
        if name in skip:
            continue
        ftype = dataset.features[name]
        dtype = str(getattr(ftype, "dtype", ""))
        if type(ftype).__name__ != "ClassLabel" and not (
            dtype in ("string", "large_string", "bool") or dtype.startswith(("int", "uint"))
        ):
            continue
        distinct = pc.count_distinct(arrow_column(dataset, name), mode="all").as_py()
        if 2 <= distinct <= min(max_distinct, len(dataset) // 2):
            found.append(name)
    return found


def category_shares(
    dataset: Dataset, column: str, strategies: Sequence[Strategy], *, max_categories: int = 12
) -> CategoryShares:
    """Each value's share of the pool and of each subset; values past the
    ``max_categories - 1`` most common are pooled as "(other)", nulls are "(missing)".
    A ``ClassLabel`` column's integers are shown by their label names."""
    import pyarrow.compute as pc

    from ..data.formats import arrow_column

    encoded = pc.dictionary_encode(arrow_column(dataset, column))
    feature = dataset.features.get(column)
    names_of = getattr(feature, "names", None)  # a ClassLabel stores integers; show its names
    labels = [
        names_of[v]
        if names_of is not None and isinstance(v, int) and 0 <= v < len(names_of)
        else str(v)
        for v in encoded.dictionary.to_pylist()
    ]
    codes = pc.fill_null(encoded.indices, len(labels)).to_numpy(zero_copy_only=False)
    codes = codes.astype(np.int64)
    labels.append("(missing)")
    pool_counts = np.bincount(codes, minlength=len(labels))
    order = [int(i) for i in np.argsort(-pool_counts, kind="stable") if pool_counts[i] > 0]
    if len(order) > max_categories:
        kept, rest = order[: max_categories - 1], order[max_categories - 1 :]
    else:
        kept, rest = order, []
    remap = np.full(len(labels), len(kept), dtype=np.int64)
    remap[kept] = np.arange(len(kept))
    grouped = remap[codes]
    names = [labels[i] for i in kept] + (["(other)"] if rest else [])
    width = len(names)

    def shares(ix: np.ndarray | None) -> np.ndarray:
        c = np.bincount(grouped if ix is None else grouped[ix], minlength=width)[:width]
        total = c.sum()
        return c / total if total else c.astype(np.float64)

    return CategoryShares(
        column=column,
        categories=names,
        pool=shares(None),
        subsets={s.name: shares(s.indices) for s in strategies},
        distinct=int(np.count_nonzero(pool_counts)),
    )


@dataclass(frozen=True)
class MapData:
    """The pool's 2-D density grid, and each strategy's rows scaled to the unit square."""

    density: np.ndarray
    points: dict[str, np.ndarray]
    drawn: dict[str, int]
    explained: tuple[float, float]
    fit_rows: int


def _top_two_components(
    centred: np.ndarray, rng: np.random.Generator, *, exact_up_to: int = 1024
) -> tuple[np.ndarray, tuple[float, float]]:
    """The two leading principal axes (``[d, 2]``) and the share of variance each explains.

    Up to ``exact_up_to`` dimensions: the eigenvectors of the ``[d, d]`` scatter matrix.
    Above (LLaMA-size vectors, d = 4,096): a randomized range finder with power
    iterations (Halko, Martinsson and Tropp 2011, algorithms 4.4 and 5.1), a few
    products with the ``[n, d]`` rows instead of a ``[d, d]`` decomposition.
    """
    n, d = centred.shape
    total = float((centred**2).sum()) or 1.0
    if d <= exact_up_to:
        values, vectors = np.linalg.eigh(centred.T @ centred)
        order = np.argsort(values)[::-1][:2]
        top, variances = vectors[:, order].T, np.maximum(values[order], 0.0)
    else:
        Y = centred @ rng.normal(size=(d, min(12, n, d)))
        for _ in range(7):
            Q, _ = np.linalg.qr(Y)
            Z, _ = np.linalg.qr(centred.T @ Q)
            Y = centred @ Z
        Q, _ = np.linalg.qr(Y)
        _, sing, top = np.linalg.svd(Q.T @ centred, full_matrices=False)
        top, variances = top[:2], sing[:2] ** 2
    axes = np.zeros((d, 2))
    shares = [0.0, 0.0]
    for i in range(min(2, top.shape[0])):
        v = top[i]
        axes[:, i] = v if v[np.argmax(np.abs(v))] >= 0 else -v  # a fixed sign
        shares[i] = float(variances[i]) / total
    return axes, (shares[0], shares[1])


def project_2d(
    X: np.ndarray, strategies: Sequence[Strategy], *, max_points: int, random_state: int
) -> MapData:
    """PCA to two dimensions, fitted once on at most ``PCA_FIT_ROWS`` rows (a seeded draw)
    and applied to every row; the density grid and dots span the pool's 0.5-99.5th
    percentiles (rows outside are drawn on the border)."""
    rng = np.random.default_rng(random_state)
    n = X.shape[0]
    fit = X if n <= PCA_FIT_ROWS else X[np.sort(rng.choice(n, PCA_FIT_ROWS, replace=False))]
    fit = np.asarray(fit, dtype=np.float64)
    mean = fit.mean(axis=0)
    components, explained = _top_two_components(fit - mean, rng)
    # (X - mean) @ axes without a centred copy of X
    axes32 = components.astype(np.float32)
    xy = np.asarray(X) @ axes32 - (mean @ components).astype(np.float32)
    lo = np.percentile(xy, 0.5, axis=0)
    hi = np.percentile(xy, 99.5, axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    unit = np.clip((xy - lo) / span, 0.0, 1.0)
    density, _, _ = np.histogram2d(
        unit[:, 0], unit[:, 1], bins=GRID, range=[[0.0, 1.0], [0.0, 1.0]]
    )
    points, drawn = {}, {}
    for s in strategies:
        ix = s.indices
        if ix.size > max_points:
            ix = np.sort(rng.choice(ix, max_points, replace=False))
        points[s.name] = unit[ix]
        drawn[s.name] = int(ix.size)
    return MapData(
        density=density,
        points=points,
        drawn=drawn,
        explained=(explained[0], explained[1]),
        fit_rows=int(fit.shape[0]),
    )


def sample_positions(strategy: Strategy, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` of a strategy's rows (all when it has fewer), ascending."""
    if strategy.indices.size <= size:
        return strategy.indices
    return np.sort(rng.choice(strategy.indices, size, replace=False))


def row_texts(row: dict[str, Any]) -> list[tuple[str, str]]:
    """A row's columns as (name, text): strings as they are, a list of numbers (a vector)
    as its length, anything else as JSON."""
    import json

    out = []
    for key, value in row.items():
        if isinstance(value, str):
            out.append((key, value))
        elif (
            isinstance(value, list)
            and len(value) > 8
            and all(isinstance(v, (int, float)) for v in value)
        ):
            out.append((key, f"(a vector of {len(value)} numbers)"))
        else:
            out.append((key, json.dumps(value, ensure_ascii=False, default=str)))
    return out
