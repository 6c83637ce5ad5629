"""Benchmark MinHash and exact deduplication on Ray against one machine, 200,000 rows.

Run from the repository root (needs ../shared/data and ``pip install "sftselect[ray]"``)::

    python benchmarks/bench_dedup_ray.py                     # 200,000 rows, Ray with 2 CPUs
    python benchmarks/bench_dedup_ray.py --rows 20000 --cpus 2

The rows are those of ``bench_dedup.py`` (real Alpaca and Dolly records, then
recombined real records and 1% edited copies of earlier rows), written once to
a Parquet file as ``instruction`` / ``input`` / ``output`` columns (the text in
``instruction``). Each side runs in a fresh child process, so its peak memory
is its own:

* one machine -- ``load_data(file)`` then ``MinHashDedup().run`` (and
  ``ExactDedup``);
* Ray -- a local Ray instance with ``--cpus`` CPUs, ``sftselect.distributed.read_parquet``
  (the file read by Ray tasks, four blocks per CPU) then ``sftselect.distributed.run`` (the
  ``DUPLICATE_GROUPS`` path: keys per block, hash shuffles, pairs measured on
  the cluster, union-find on the driver).

Wall time is the selection alone (not the Ray start-up, not loading the file
on one machine); driver peak memory is the peak RSS of the child process
during the selection, less its RSS just before (the Ray workers' memory is
theirs, not the driver's). The verdict is the correctness check: the kept rows,
the ranking and the removed-rows table (position, kept row, group id,
similarity) identical on both sides, and the same counts (groups, candidate
pairs, verified pairs). Exit status 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _memory import RssSampler, vm

HERE = Path(__file__).resolve().parent


def child(side: str, data: Path, out: Path, which: str, cpus: int, rows: int) -> None:
    from sftselect import ExactDedup, MinHashDedup

    selector = MinHashDedup() if which == "minhash" else ExactDedup()
    if side == "ray":
        import ray

        import sftselect.distributed as sd

        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        pool = sd.read_parquet(str(data), rows_per_task=max(1, rows // (4 * cpus)))
        before = vm("VmRSS")
        t0 = time.perf_counter()
        with RssSampler() as rss:
            result = sd.run(selector, pool)
        seconds = time.perf_counter() - t0
        stages = result.summary.describe()
    else:
        from sftselect.data.io import load_data

        pool = load_data(str(data))
        before = vm("VmRSS")
        t0 = time.perf_counter()
        with RssSampler() as rss:
            result = selector.run(pool)
        seconds = time.perf_counter() - t0
        stages = ""
    table = result.extra["removed_rows"]
    counts = {
        k: result.extra.get(k)
        for k in ("rows", "kept", "removed", "groups", "candidate_pairs", "verified_pairs", "joins")
    }
    np.savez(
        out,
        ranked=result.ranked,
        **{f"removed_{c}": np.asarray(table[c]) for c in table},
    )
    out.with_suffix(".json").write_text(
        json.dumps(
            {
                "seconds": seconds,
                "rss_before": before,
                "rss_peak": rss.peak,
                "counts": counts,
                "stages": stages,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--child", nargs=4, metavar=("SIDE", "DATA", "OUT", "WHICH"))
    args = parser.parse_args()
    if args.child:
        side, data, out, which = args.child
        child(side, Path(data), Path(out), which, args.cpus, args.rows)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    from bench_dedup import build_rows

    texts, copies = build_rows(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "rows.parquet"
        n = len(texts)
        pq.write_table(
            pa.table({"instruction": texts, "input": [""] * n, "output": [""] * n}),
            data,
            row_group_size=10_000,
        )
        print(
            f"{n:,} real-record rows ({len(copies):,} edited copies), Ray local with "
            f"{args.cpus} CPUs; each side in a fresh process"
        )
        verdicts = []
        for which in ("minhash", "exact"):
            got = {}
            for side in ("local", "ray"):
                out = Path(tmp) / f"{which}-{side}.npz"
                cmd = [
                    sys.executable,
                    str(HERE / "bench_dedup_ray.py"),
                    *("--cpus", str(args.cpus), "--rows", str(n)),
                ]
                subprocess.run([*cmd, "--child", side, str(data), str(out), which], check=True)
                got[side] = (
                    dict(np.load(out)),
                    json.loads(out.with_suffix(".json").read_text()),
                )
            (a, ra), (b, rb) = got["local"], got["ray"]
            same = a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
            same = same and ra["counts"] == rb["counts"]
            verdicts.append(same)
            print(f"\n{which}: {ra['counts']}")
            for side, r in (("one machine", ra), ("Ray", rb)):
                grew = (r["rss_peak"] - r["rss_before"]) / 2**20
                print(
                    f"  {side:12s} {r['seconds']:7.1f} s   driver peak RSS "
                    f"{r['rss_peak'] / 2**20:7.0f} MiB (+{grew:.0f} MiB during the run)"
                )
            print(f"  Ray / one machine time: {rb['seconds'] / ra['seconds']:.2f}x")
            print("  " + rb["stages"].replace("\n", "\n  "))
            print(f"  groups, kept rows, removed-rows table identical: {same}")
    print(
        "\nverdict: "
        + ("PASS" if all(verdicts) else "FAIL")
        + " (Ray gives one machine's groups, kept rows and removed-rows table)"
    )


if __name__ == "__main__":
    main()
