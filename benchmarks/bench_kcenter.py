"""Benchmark KCenterSelector against the greedy loop it replaced, on the same vectors.

Run from the repository root::

    python benchmarks/bench_kcenter.py                 # about 5 minutes on 2 idle cores
    python benchmarks/bench_kcenter.py --old-full      # also the old loop at k = n - 1 on all rows
    python benchmarks/bench_kcenter.py --quick         # 50,000 rows (about 1 minute)

Vectors: ``--rows`` (default 200,000) x ``--dim`` (64) float32, standard normal
(seed 0), given to ``KCenterSelector`` as ``PrecomputedEmbeddings``; the first
centre is drawn by ``random_state=0`` and handed to the old loop too. The old
loop is the code ``kcenter_order`` ran before the zero-radius tail: for every
pick one float32 matrix-vector product over all rows, a minimum and an argmax.

Parts, the old loop and the selector interleaved, best of ``--repeats``
(default 2; part 2 once), with the two orders checked to be identical:

1. cosine, k = 1,000, all rows;
2. cosine, k = rows - 1 (every row but one): ``KCenterSelector`` on all rows,
   and both sides on ``--small-rows`` (default 50,000, k = small - 1) for the
   ratio; with ``--old-full`` the old loop also runs on all rows (as long as
   the selector: minutes);
3. euclidean, k = small - 1, on ``--small-rows`` rows drawn (with repeats)
   from ``small / 2.5`` distinct vectors: the case the exact shortcut covers
   (once every unpicked row is at distance 0 from a centre, the rest of the
   order is the unpicked rows by index, with no further product).

There is no speed target: without exact duplicates (parts 1 and 2) the work
per pick is the old loop's, and the ratio is about 1; a ratio far from 1 there
is other load on the machine (the 1-minute load average at the end of each
part is printed). Exits 1 if any order differs from the old loop's, else 0.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np


def old_kcenter_loop(X: np.ndarray, first: int, metric: str, limit: int) -> np.ndarray:
    """The greedy loop as ``kcenter_order`` ran it before the zero-radius tail."""
    from sftselect.selectors.coverage import unit_rows

    n = X.shape[0]
    if metric == "cosine":
        P, sq = unit_rows(X), None
    else:
        P = np.ascontiguousarray(X, dtype=np.float32)
        sq = np.einsum("ij,ij->i", P, P)

    def dist(c: int) -> np.ndarray:
        dots = P @ P[c]
        return 1.0 - dots if sq is None else np.maximum(sq + sq[c] - 2.0 * dots, 0.0)

    m = min(limit, n)
    order = np.empty(m, dtype=np.int64)
    order[0] = first
    nearest = dist(first)
    nearest[first] = -np.inf
    for i in range(1, m):
        c = int(np.argmax(nearest))
        order[i] = c
        np.minimum(nearest, dist(c), out=nearest)
        nearest[c] = -np.inf
    return order


def compare(
    label: str, X: np.ndarray, metric: str, k: int, repeats: int, with_old: bool = True
) -> bool:
    """Time the old loop and KCenterSelector on ``X``, interleaved, best of ``repeats``;
    print both and the ratio."""
    from datasets import Dataset

    from sftselect.embedding import PrecomputedEmbeddings
    from sftselect.selectors import KCenterSelector

    n = X.shape[0]
    rows = Dataset.from_dict({"instruction": [""] * n, "output": [""] * n})
    selector = KCenterSelector(PrecomputedEmbeddings(X), k, metric=metric, random_state=0)
    first = int(np.random.default_rng(0).integers(n))
    old_seconds = new_seconds = float("inf")
    for _ in range(repeats):
        if with_old:
            start = time.perf_counter()
            old = old_kcenter_loop(X, first, metric, k)
            old_seconds = min(old_seconds, time.perf_counter() - start)
        start = time.perf_counter()
        new = selector.run(rows).ranked
        new_seconds = min(new_seconds, time.perf_counter() - start)
    load = os.getloadavg()[0]
    line = f"  {label:<58} KCenterSelector {new_seconds:8.2f} s"
    same = True
    if with_old:
        same = np.array_equal(old, new)
        line += (
            f"   old loop {old_seconds:8.2f} s   {old_seconds / new_seconds:5.2f}x   "
            f"same order: {'PASS' if same else 'FAIL'}"
        )
    print(f"{line}   (load {load:.2f})", flush=True)
    return same


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--small-rows", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="best of, parts 1 and 3")
    parser.add_argument("--old-full", action="store_true", help="the old loop at k = rows - 1")
    parser.add_argument("--quick", action="store_true", help="--rows 50,000, --small-rows 10,000")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.small_rows = 50_000, 10_000

    import threadpoolctl

    threads = [(p["internal_api"], p["num_threads"]) for p in threadpoolctl.threadpool_info()]
    print(
        f"Python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
        f"BLAS threads {threads}; load average {os.getloadavg()[0]:.2f}"
    )
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.rows, args.dim)).astype(np.float32)
    small = X[: args.small_rows]
    distinct = max(1, int(args.small_rows / 2.5))
    dup = X[rng.integers(0, distinct, args.small_rows)]
    n, s, d = args.rows, args.small_rows, args.dim
    ok = True
    print(f"{n:,} x {d} float32, standard normal:")
    r = args.repeats
    ok &= compare(f"1. cosine, k = 1,000 of {n:,}", X, "cosine", 1000, r)
    ok &= compare(f"2. cosine, k = {n - 1:,} of {n:,}", X, "cosine", n - 1, 1, args.old_full)
    ok &= compare(f"   cosine, k = {s - 1:,} of {s:,}", small, "cosine", s - 1, r)
    label = f"3. euclidean, k = {s - 1:,} of {s:,} ({distinct:,} distinct rows)"
    ok &= compare(label, dup, "euclidean", s - 1, r)
    print(f"load average at the end {os.getloadavg()[0]:.2f} (timings under load are slower)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
