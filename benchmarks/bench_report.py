"""Benchmark ``sftselect.report.compare`` on a large pool: build time and page size.

Run from the repository root::

    python benchmarks/bench_report.py                  # 500,000 rows, 5 selections (about 2 min)
    python benchmarks/bench_report.py --rows 100000 --repeats 1

The pool (built untimed): the real Alpaca-format records of ``--pool``/*.json with a
``source`` column naming the file each came from (the bundled 2,000-record sample,
``source`` "sample", when that folder is absent), repeated and shuffled (seed 0) to
``--rows`` rows. The vectors for the map are synthetic (``--dims`` float32, 20 Gaussian
clusters, seed 0): the build's cost depends on their shape, not their values, and
embedding 500,000 rows is what ``--embed-cache`` saves a report from. Five selections
of ``--k`` rows are made untimed ("once scores and vectors exist"): the longest and
the shortest responses (``LengthSelector``, words, whose scores the report draws), two
random draws and the rows nearest the first cluster's centre.

Timed, interleaved, ``--repeats`` times each, after one warm-up of each:

(a) **baseline**: one ``LengthSelector(k, unit="words").run(pool)`` on the same pool:
    one cheap selection, the yardstick of "seconds".
(b) **compare**: ``compare(pool, selections, embeddings=X)`` (lengths measured, overlaps,
    the source column, the PCA map, 20 sampled rows per strategy, the HTML).

Reported: the median of each, the ratio (b)/(a), the page size, and the page size for
a 2,000-row pool for scale. Targets: the page under 3 MB, the build under 10 s, and the
overlap numbers on the page equal to set arithmetic on the selections (exit status 1
if a correctness check fails; otherwise 0 whatever the figures).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_POOL = "/work/shared/data/alpaca_pool"


def build_pool(folder: str, rows: int):
    from datasets import Dataset

    from sftselect import load_sample

    records = []
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        with open(path, encoding="utf-8") as fh:
            for r in json.load(fh):
                records.append(
                    {
                        "instruction": r.get("instruction", ""),
                        "input": r.get("input", ""),
                        "output": r.get("output", ""),
                        "source": Path(path).stem,
                    }
                )
    origin = f"{len(records):,} real records of {folder}"
    if not records:
        records = [{**r, "source": "sample"} for r in load_sample().to_list()]
        origin = "the bundled 2,000-record sample"
    rng = np.random.default_rng(0)
    take = rng.permutation(np.resize(np.arange(len(records)), rows))
    columns = {k: [records[i][k] for i in take] for k in records[0]}
    return Dataset.from_dict(columns), origin


def vectors(rows: int, dims: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, dims)).astype(np.float32) * 3
    X = rng.normal(size=(rows, dims)).astype(np.float32)
    X += centres[rng.integers(0, 20, size=rows)]
    return X


def selections(pool, X: np.ndarray, k: int):
    from sftselect import LengthSelector, RandomSelector

    near = np.argsort(((X - X[:1000].mean(axis=0)) ** 2).sum(axis=1))[:k]
    return {
        "longest": LengthSelector(k=k, unit="words").run(pool),
        "shortest": LengthSelector(k=k, unit="words", largest=False).run(pool),
        "random-0": RandomSelector(k=k, random_state=0).run(pool),
        "random-1": RandomSelector(k=k, random_state=1).run(pool),
        "near-centre": np.sort(near),
    }


def check(report, sels) -> list[str]:
    """The overlap numbers on the page against set arithmetic on the positions."""
    sets = {n: set((s.indices if hasattr(s, "indices") else s).tolist()) for n, s in sels.items()}
    problems = []
    for a in sets:
        for b in sets:
            want = len(sets[a] & sets[b])
            if f'data-a="{a}" data-b="{b}" data-count="{want}"' not in report.html:
                problems.append(f"overlap {a}/{b} is not {want} on the page")
    if report.charts != len(sels) * 2 + 2 + 1:  # lengths, maps, two scorers, one source column
        problems.append(f"{report.charts} charts, expected {len(sels) * 2 + 3}")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--dims", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pool", default=DEFAULT_POOL)
    args = ap.parse_args()

    from sftselect import LengthSelector
    from sftselect.report import compare

    t0 = time.perf_counter()
    pool, origin = build_pool(args.pool, args.rows)
    X = vectors(len(pool), args.dims)
    sels = selections(pool, X, args.k)
    print(
        f"pool: {len(pool):,} rows from {origin}; vectors {X.shape[0]:,} x {X.shape[1]} "
        f"(synthetic); 5 selections of {args.k:,} (untimed setup {time.perf_counter() - t0:.0f}s)"
    )
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()}")

    def baseline():
        return LengthSelector(k=args.k, unit="words").run(pool)

    def build():
        return compare(pool, sels, embeddings=X)

    baseline(), build()  # warm-up
    times: dict[str, list[float]] = {"baseline": [], "compare": []}
    report = None
    for _ in range(args.repeats):
        for name, fn in (("baseline", baseline), ("compare", build)):
            t = time.perf_counter()
            out = fn()
            times[name].append(time.perf_counter() - t)
            if name == "compare":
                report = out
    assert report is not None
    med = {n: statistics.median(v) for n, v in times.items()}
    size = len(report.html.encode("utf-8"))
    small = pool.select(range(2000))
    small_sels = {"a": np.arange(0, 2000, 2), "b": np.arange(0, 1000)}
    small_size = len(compare(small, small_sels, embeddings=X[:2000]).html.encode("utf-8"))
    problems = check(report, sels)

    print(f"baseline (one LengthSelector run): median {med['baseline']:.2f}s  {times['baseline']}")
    print(f"compare (5 selections, map):       median {med['compare']:.2f}s  {times['compare']}")
    print(f"ratio compare / baseline: {med['compare'] / med['baseline']:.2f}x")
    print(
        f"page: {size:,} bytes at {len(pool):,} rows; {small_size:,} bytes at 2,000 rows (2 selections)"
    )
    verdicts = [
        ("page under 3 MB", size < 3_000_000),
        ("build under 10 s", med["compare"] < 10.0),
        ("overlap numbers and charts correct", not problems),
    ]
    for text, ok in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}: {text}")
    for p in problems:
        print("  " + p)
    sections = re.findall(r'<section id="(\w+)">', report.html)
    print("sections:", ", ".join(sections))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
