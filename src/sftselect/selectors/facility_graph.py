"""Similarities for facility location: kernels, a dense matrix, a nearest-neighbour graph.

The facility-location objective of a set ``S`` of rows is

    f(S) = sum_i w_i * max(0, max_{j in S} s(i, j))

with ``s(i, j)`` the similarity of row ``i`` to a candidate ``j`` (the
``kernel``) and ``w_i >= 0`` a weight per row. Similarities below 0 count as 0:
the empty set covers nothing, as in apricot-select, whose greedy starts from
zeros. Two representations of ``s`` serve the greedy and swap algorithms in
:mod:`sftselect.selectors.facility_greedy`:

* :class:`DenseSimilarities` -- every ``s(i, j)``, float32, ``n * n * 4`` bytes
  (exact);
* :class:`KnnSimilarities` -- for every row ``i`` only its ``n_neighbors``
  most similar rows ``j`` (itself included); every other ``s(i, j)`` counts
  as 0. This is an approximation: a row none of whose neighbours is selected
  counts as uncovered. ``n * n_neighbors * 8`` bytes, built by blocked exact
  search (matrix products, then a partial sort per row), no index library.

Kernels (:data:`KERNELS`) or any callable ``kernel(A, B) -> [len(A), len(B)]``:

* ``"cosine"`` -- the cosine similarity (zero vectors: 0 with everything);
* ``"cosine_squared"`` -- its square: what apricot-select's ``metric="cosine"``
  computes (``1 - (1 - cos)`` squared, then used as a similarity);
* ``"dot"`` -- the raw dot product (for vectors already normalised as wanted).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..exceptions import InvalidParameterError
from .coverage import unit_rows

__all__ = [
    "KERNELS",
    "DenseSimilarities",
    "KnnSimilarities",
    "kernel_block",
    "prepare",
]

KERNELS: tuple[str, ...] = ("cosine", "cosine_squared", "dot")

#: Rows per block when a graph or matrix is built (bounds the temporaries).
BLOCK = 256


def prepare(X: np.ndarray, kernel: str | Callable[..., Any]) -> np.ndarray:
    """The rows as the kernel reads them (unit rows for the cosine kernels), float32."""
    if kernel in ("cosine", "cosine_squared"):
        return unit_rows(X)
    return np.ascontiguousarray(X, dtype=np.float32)


def kernel_block(A: np.ndarray, B: np.ndarray, kernel: str | Callable[..., Any]) -> np.ndarray:
    """Similarities ``s(a, b)`` of the rows of ``A`` to those of ``B`` (prepared), clipped at 0."""
    if callable(kernel):
        S = np.asarray(kernel(A, B), dtype=np.float32)
        if S.shape != (A.shape[0], B.shape[0]):
            raise InvalidParameterError(
                f"The 'kernel' callable returned shape {list(S.shape)}; expected "
                f"[{A.shape[0]}, {B.shape[0]}] (one similarity per pair of rows)."
            )
        if not np.isfinite(S).all():
            raise InvalidParameterError(
                "The 'kernel' callable returned a similarity that is not finite."
            )
    else:
        S = A @ B.T
        if kernel == "cosine_squared":
            np.square(S, out=S)
    np.maximum(S, 0.0, out=S)
    return S


class DenseSimilarities:
    """Every similarity, stored by candidate: ``T[j, i] = s(i, j)`` (float32, clipped at 0)."""

    exact = True

    def __init__(self, P: np.ndarray, kernel: str | Callable[..., Any]) -> None:
        n = P.shape[0]
        self.n = n
        self.T = np.empty((n, n), dtype=np.float32)
        for start in range(0, n, BLOCK):
            # rows i = all, candidates j in the block: s(i, j) -> T[j, i]
            self.T[start : start + BLOCK] = kernel_block(P, P[start : start + BLOCK], kernel).T

    def gains_all(self, cur: np.ndarray, w: np.ndarray) -> np.ndarray:
        """The gain of every candidate given the current coverage ``cur``."""
        out = np.empty(self.n, dtype=np.float64)
        for start in range(0, self.n, BLOCK):
            blk = self.T[start : start + BLOCK]
            out[start : start + BLOCK] = (np.maximum(blk, cur) - cur) @ w
        return out

    def gain(self, j: int, cur: np.ndarray, w: np.ndarray) -> float:
        return float((np.maximum(self.T[j], cur) - cur) @ w)

    def gains(self, cands: np.ndarray, cur: np.ndarray, w: np.ndarray) -> np.ndarray:
        return (np.maximum(self.T[cands], cur) - cur) @ w

    def update(self, cur: np.ndarray, j: int) -> None:
        """Cover with candidate ``j``: ``cur = max(cur, s(., j))``."""
        np.maximum(cur, self.T[j], out=cur)

    def column(self, j: int) -> np.ndarray:
        """``s(i, j)`` for every row ``i`` (float32)."""
        return self.T[j]


class KnnSimilarities:
    """Each row's ``m`` most similar rows; by candidate ``j``: the rows that list ``j``.

    ``nbrs[i]`` / ``sims[i]`` are row ``i``'s neighbours and their similarities
    (ties at the cut: as ``numpy.argpartition`` leaves them, deterministic for
    the same input). By candidate ``j`` (CSC):
    ``rows[indptr[j]:indptr[j+1]]`` and ``vals[...]``.
    """

    exact = False

    def __init__(
        self,
        P: np.ndarray,
        kernel: str | Callable[..., Any],
        n_neighbors: int,
        *,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        n = P.shape[0]
        m = min(int(n_neighbors), n)
        self.n, self.m = n, m
        nbrs = np.empty((n, m), dtype=np.int32)
        sims = np.empty((n, m), dtype=np.float32)
        for start in range(0, n, BLOCK):
            S = kernel_block(P[start : start + BLOCK], P, kernel)
            if m < n:
                part = np.argpartition(-S, m - 1, axis=1)[:, :m]
            else:
                part = np.broadcast_to(np.arange(n), S.shape)
            vals = np.take_along_axis(S, part, axis=1)
            nbrs[start : start + BLOCK] = part
            sims[start : start + BLOCK] = vals
            if on_progress is not None:
                on_progress(S.shape[0])
        self.nbrs, self.sims = nbrs, sims
        flat = nbrs.ravel()
        order = np.argsort(flat, kind="stable")
        self.rows = (order // m).astype(np.int32)
        self.vals = sims.ravel()[order]
        self.indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(flat, minlength=n), out=self.indptr[1:])

    def _col(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.indptr[j], self.indptr[j + 1]
        return self.rows[a:b], self.vals[a:b]

    def gains_all(self, cur: np.ndarray, w: np.ndarray) -> np.ndarray:
        cand = np.repeat(np.arange(self.n), np.diff(self.indptr))
        contrib = (np.maximum(self.vals, cur[self.rows]) - cur[self.rows]) * w[self.rows]
        return np.bincount(cand, weights=contrib, minlength=self.n)

    def gain(self, j: int, cur: np.ndarray, w: np.ndarray) -> float:
        rows, vals = self._col(j)
        c = cur[rows]
        return float((np.maximum(vals, c) - c) @ w[rows])

    def gains(self, cands: np.ndarray, cur: np.ndarray, w: np.ndarray) -> np.ndarray:
        return np.array([self.gain(int(j), cur, w) for j in cands], dtype=np.float64)

    def update(self, cur: np.ndarray, j: int) -> None:
        rows, vals = self._col(j)
        cur[rows] = np.maximum(cur[rows], vals)
