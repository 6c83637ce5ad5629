"""Facility-location optimisers: lazy greedy, stochastic greedy, swap refinement.

All three work on the objective of :mod:`sftselect.selectors.facility_graph`,
``f(S) = sum_i w_i * max(0, max_{j in S} s(i, j))``, which is monotone and
submodular, through a similarity object (dense or nearest-neighbour graph):

* :func:`greedy_order` with ``optimizer="lazy"`` -- the greedy algorithm
  (each pick the row of largest gain ``f(S + j) - f(S)``, ties: the lowest row
  index), evaluated lazily (Minoux, 1978): stale gains are upper bounds in a
  heap and only the top one is recomputed. The same picks as the plain greedy,
  so the ``(1 - 1/e)`` guarantee (Nemhauser et al., 1978) holds;
* ``optimizer="stochastic"`` -- stochastic greedy (Mirzasoleiman et al., 2015):
  each pick is the best of ``ceil(n / k * ln(1 / epsilon))`` rows drawn
  without replacement from the unpicked ones; ``(1 - 1/e - epsilon)`` in
  expectation;
* :func:`swap_refine` -- swaps as k-medoids makes them (PAM's SWAP with
  FasterPAM's eager rule, Schubert & Rousseeuw, 2021): for each candidate row
  in turn, the medoid whose replacement by it raises ``f`` most is replaced at
  once, until a whole pass over the rows makes no swap. It only ever raises
  ``f`` (the coverage it lowers is the same objective) and ends in a set no
  single swap improves. Dense similarities only.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["OPTIMIZERS", "coverage", "facility_value", "greedy_order", "swap_refine"]

OPTIMIZERS: tuple[str, ...] = ("lazy", "stochastic")


def greedy_order(
    sims: Any,
    w: np.ndarray,
    steps: int,
    *,
    candidates: np.ndarray | None = None,
    cur: np.ndarray | None = None,
    optimizer: str = "lazy",
    sample_size: int | None = None,
    rng: np.random.Generator | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` greedy picks among ``candidates`` (a bool mask; default all rows).

    ``cur`` is the coverage ``max(0, max_{j in S} s(i, j))`` of rows by what
    was picked before (default zeros); it is updated in place and returned with
    the picks. Once every remaining gain is 0, the lazy greedy takes the rest
    by row index (the plain greedy's tie rule gives the same).
    """
    n = sims.n
    cur = np.zeros(n, dtype=np.float64) if cur is None else cur
    alive = np.ones(n, dtype=bool) if candidates is None else candidates.copy()
    steps = min(int(steps), int(alive.sum()))
    order: list[int] = []
    if steps <= 0:
        return np.empty(0, dtype=np.int64), cur
    if optimizer == "stochastic":
        return _stochastic(sims, w, steps, alive, cur, sample_size, rng, on_progress)
    idx = np.flatnonzero(alive)
    g0 = sims.gains_all(cur, w)
    heap = [(-float(g0[j]), int(j)) for j in idx]
    heapq.heapify(heap)
    fresh = np.full(n, -1, dtype=np.int64)
    fresh[idx] = 0
    step = 0
    while len(order) < steps and heap:
        negb, j = heapq.heappop(heap)
        if fresh[j] != step:
            fresh[j] = step
            heapq.heappush(heap, (-sims.gain(j, cur, w), j))
            continue
        if negb == 0.0:  # the largest gain is 0, hence every gain: the rest by index
            rest = sorted([j] + [jj for _, jj in heap])[: steps - len(order)]
            order.extend(rest)
            for jj in rest:  # gains are 0, but the coverage still rises (zero-weight rows)
                sims.update(cur, jj)
            if on_progress is not None:
                on_progress(len(rest))
            break
        order.append(j)
        sims.update(cur, j)
        step += 1
        if on_progress is not None:
            on_progress(1)
    return np.asarray(order, dtype=np.int64), cur


def _stochastic(
    sims: Any,
    w: np.ndarray,
    steps: int,
    alive: np.ndarray,
    cur: np.ndarray,
    sample_size: int | None,
    rng: np.random.Generator | None,
    on_progress: Callable[[int], None] | None,
) -> tuple[np.ndarray, np.ndarray]:
    if rng is None or sample_size is None:
        raise ValueError("stochastic greedy needs a generator and a sample size.")
    pool = np.flatnonzero(alive)  # unpicked rows; a pick is swapped with the last
    size = pool.size
    order = np.empty(steps, dtype=np.int64)
    for t in range(steps):
        s = min(int(sample_size), size)
        pos = rng.choice(size, size=s, replace=False)
        cands = pool[pos]
        gains = sims.gains(cands, cur, w)
        best = gains.max()
        tied = np.flatnonzero(gains == best)
        p = int(pos[tied[np.argmin(cands[tied])]])  # ties: the lowest row index
        j = int(pool[p])
        order[t] = j
        sims.update(cur, j)
        size -= 1
        pool[p], pool[size] = pool[size], pool[p]
        if on_progress is not None:
            on_progress(1)
    return order, cur


def sample_size(n: int, k: int, epsilon: float) -> int:
    """Mirzasoleiman et al.'s sample per pick: ``ceil(n / k * ln(1 / epsilon))`` (at least 1)."""
    return max(1, math.ceil(n / max(k, 1) * math.log(1.0 / epsilon)))


def _top2(M: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ``M`` [k, n] (medoid slots x rows): each row's best slot, best and second value."""
    k = M.shape[0]
    near = np.argmax(M, axis=0)
    cols = np.arange(M.shape[1])
    best = M[near, cols].astype(np.float64)
    if k == 1:
        return near, best, np.zeros_like(best)
    saved = M[near, cols].copy()
    M[near, cols] = -np.inf
    second = np.maximum(M.max(axis=0), 0.0).astype(np.float64)
    M[near, cols] = saved
    return near, best, second


def swap_refine(
    sims: Any,
    w: np.ndarray,
    medoids: np.ndarray,
    *,
    max_passes: int = 10,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, int, bool]:
    """Eager swaps from ``medoids`` (dense similarities); ``(medoids, swaps, converged)``.

    For candidate ``x`` with similarities ``s_i = s(i, x)``, best coverage
    ``c1_i`` (by slot ``near_i``) and second best ``c2_i``, replacing the medoid
    in slot ``m`` by ``x`` changes ``f`` by
    ``sum_i w_i max(s_i - c1_i, 0) - sum_{i: near_i = m} w_i (max(s_i, c1_i) - max(s_i, c2_i))``
    (FastPAM1's decomposition, O(n) for all ``m`` at once). A swap is made when
    the best change exceeds ``1e-12 * f`` (so float rounding cannot cycle).
    Candidates go in row order; the refinement stops after a pass with no swap
    (``converged``: no single swap improves the set) or after ``max_passes``
    passes (``converged`` False).
    """
    medoids = np.array(medoids, dtype=np.int64)
    k, n = medoids.size, sims.n
    if k == 0 or k >= n:
        return medoids, 0, True
    M = np.stack([sims.column(int(j)) for j in medoids]).astype(np.float32)
    near, c1, c2 = _top2(M)
    is_med = np.zeros(n, dtype=bool)
    is_med[medoids] = True
    swaps = passes = 0
    while passes < max_passes:
        passes += 1
        swapped = False
        for x in range(n):
            if is_med[x]:
                continue
            s = sims.column(x).astype(np.float64)
            add = float(np.maximum(s - c1, 0.0) @ w)
            if add <= 0.0:
                continue  # x covers no row better than now: no swap can gain
            loss = np.bincount(
                near, weights=w * (np.maximum(s, c1) - np.maximum(s, c2)), minlength=k
            )
            delta = add - loss
            m = int(np.argmax(delta))
            if delta[m] <= 1e-12 * max(float(c1 @ w), 1.0):
                continue
            is_med[medoids[m]] = False
            is_med[x] = True
            medoids[m] = x
            M[m] = s
            near, c1, c2 = _top2(M)
            swaps += 1
            swapped = True
        if on_progress is not None:
            on_progress(1)
        if not swapped:
            return medoids, swaps, True
    return medoids, swaps, False


def facility_value(sims: Any, w: np.ndarray, selected: np.ndarray) -> float:
    """``f(selected)`` under ``sims`` (dense: exact; graph: the graph's objective)."""
    cur = np.zeros(sims.n, dtype=np.float64)
    for j in np.asarray(selected, dtype=np.int64):
        sims.update(cur, int(j))
    return float(cur @ w)


def coverage(X: np.ndarray, selected: np.ndarray, *, block: int = 4096) -> float:
    """Mean over all rows of ``1 - max cos(row, selected row)`` (lower: better covered).

    Exact (blocked matrix products, no graph); cosine of unit rows, zero
    vectors having 0 with everything. NaN when nothing is selected.
    """
    from .coverage import unit_rows

    selected = np.asarray(selected, dtype=np.int64)
    n = X.shape[0]
    if n == 0 or selected.size == 0:
        return float("nan")
    U = unit_rows(X)
    C = U[selected]
    total = 0.0
    for start in range(0, n, block):
        best = np.full(min(block, n - start), -np.inf, dtype=np.float32)
        for cs in range(0, C.shape[0], 8192):
            np.maximum(best, (U[start : start + block] @ C[cs : cs + 8192].T).max(axis=1), out=best)
        total += float((1.0 - best.astype(np.float64)).sum())
    return total / n
