"""Benchmark LengthSelector on Ray Data against one process, on a large Parquet pool.

Run from the repository root (with ``sftselect[ray]`` installed)::

    python benchmarks/bench_ray.py                      # 2,000,000 rows, unit "words"
    python benchmarks/bench_ray.py --rows 1000000 --unit nltk_words

Each configuration runs in a fresh subprocess, end to end from the Parquet file
(read, score, select) with ``k=1000``:

* ``one process`` -- ``load_data`` + ``LengthSelector.run`` (no Ray);
* ``ray, W CPUs`` -- a local Ray instance with ``num_cpus=W`` (W = 1, 2),
  ``sftselect.distributed.read_parquet`` + ``sftselect.distributed.run``.

Reported per configuration: the wall time of the selection (Ray's start-up,
a few seconds, is reported apart), and the peak memory of the node: the sum
of the proportional set size (PSS) of the subprocess and every process it
started (Ray's GCS, raylet, workers; the object store's shared memory is
counted once), sampled every 0.2 s. Every configuration must select the same
rows, or the script stops with an error. The machine may be shared with other
work: each figure is the best of ``--repeats`` runs.

On a machine with few cores Ray is slower than one process for a vectorised
unit such as ``words`` (the whole selection takes a second, and Ray's per-task
overhead and the transfer of blocks through the object store dominate); the
point is the same answer, and scaling out to cores and nodes when scoring costs
more (``nltk_words``, tokenizers, an LLM judge).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

# Keep the local Ray instance (and the subprocesses, which inherit this) on loopback.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

CHILD = r"""
import json, sys, time
import numpy as np
mode, path, unit, k, cpus, out = sys.argv[1:7]
k, cpus = int(k), int(cpus)
from sftselect import LengthSelector
selector = LengthSelector(k=k, unit=unit, random_state=0)
if mode == "local":
    from sftselect import load_data
    t0 = time.perf_counter()
    dataset = load_data(path)
    indices = selector.run(dataset).indices
    seconds, startup, summary = time.perf_counter() - t0, 0.0, ""
else:
    import ray
    import sftselect.distributed as sd
    t0 = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = sd.run(selector, sd.read_parquet(path))
    seconds = time.perf_counter() - t0
    indices, summary = result.indices, result.summary.describe()
    ray.shutdown()
np.save(out, indices)
print(json.dumps({"seconds": seconds, "startup": startup, "summary": summary}))
"""


def make_pool(path: Path, rows: int, seed: int = 0) -> None:
    """An Alpaca-style Parquet file: responses of 0-400 words from a small vocabulary."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    vocab = np.array(
        [
            "the",
            "model",
            "answers",
            "questions",
            "with",
            "care",
            "and",
            "detail",
            ",",
            ".",
            ";",
            "(",
            ")",
        ]
    )
    writer = None
    step = 100_000
    for start in range(0, rows, step):
        m = min(step, rows - start)
        lengths = rng.gamma(2.0, 40.0, m).astype(int).clip(0, 400)
        outputs = [" ".join(vocab[rng.integers(0, vocab.size, n)].tolist()) for n in lengths]
        table = pa.table(
            {
                "instruction": [f"Instruction number {start + i}." for i in range(m)],
                "input": [""] * m,
                "output": outputs,
            }
        )
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=50_000)
    writer.close()


def _tree_pss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += p.memory_full_info().pss
    return total


def run_child(mode: str, path: Path, unit: str, k: int, cpus: int, out: Path) -> dict:
    """One configuration in a fresh subprocess; its timings and peak node memory (PSS)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, str(path), unit, str(k), str(cpus), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_pss(proc.pid))
            done.wait(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    stdout, _ = proc.communicate()
    done.set()
    thread.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} run failed with status {proc.returncode}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_mb"] = peak[0] / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--unit", default="words")
    parser.add_argument("-k", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cpus", default="1,2", help="Ray CPU counts to try")
    parser.add_argument("--data", default=None, help="reuse this Parquet file (made if missing)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    path = Path(args.data) if args.data else tmp / f"pool_{args.rows}.parquet"
    if not path.exists():
        t0 = time.perf_counter()
        make_pool(path, args.rows)
        print(f"wrote {args.rows:,} rows to {path} in {time.perf_counter() - t0:.1f}s")
    size_mb = os.path.getsize(path) / 2**20
    print(f"pool: {path} ({size_mb:,.0f} MB), unit={args.unit!r}, k={args.k}")
    print(f"machine: {os.cpu_count()} CPUs (possibly shared); best of {args.repeats} runs\n")

    configs = [("local", 1)] + [("ray", int(c)) for c in args.cpus.split(",")]
    rows = []
    reference = None
    for mode, cpus in configs:
        best = None
        for r in range(args.repeats):
            out = tmp / f"{mode}_{cpus}_{r}.npy"
            got = run_child(mode, path, args.unit, args.k, cpus, out)
            indices = np.load(out)
            if reference is None:
                reference = indices
            if not np.array_equal(indices, reference):
                raise SystemExit(
                    f"{mode} with {cpus} CPUs selected other rows: not the same answer"
                )
            if best is None or got["seconds"] < best["seconds"]:
                best = got
        label = "one process" if mode == "local" else f"ray, {cpus} CPU{'s' if cpus > 1 else ''}"
        rows.append((label, best))
        extra = f" (+{best['startup']:.1f}s Ray start-up)" if mode == "ray" else ""
        print(
            f"{label:14s} {best['seconds']:7.2f}s{extra}  peak node memory {best['peak_mb']:,.0f} MB"
        )
        if best["summary"]:
            print("  " + best["summary"].replace("\n", "\n  "))
    base = rows[0][1]["seconds"]
    print("\nsame rows selected by every configuration: yes")
    for label, best in rows[1:]:
        ratio = best["seconds"] / base
        verdict = "slower" if ratio > 1 else "faster"
        print(f"{label}: {ratio:.2f}x the one-process time ({verdict})")
    ray_runs = [b for label, b in rows if label.startswith("ray")]
    if len(ray_runs) >= 2:
        print(
            f"ray scaling, {configs[1][1]} -> {configs[-1][1]} CPUs: "
            f"{ray_runs[0]['seconds'] / ray_runs[-1]['seconds']:.2f}x"
        )
    n = args.rows
    print(
        f"per-row cost: one process {base / n * 1e6:.2f} us/row; "
        + ", ".join(f"{label} {b['seconds'] / n * 1e6:.2f} us/row" for label, b in rows[1:])
    )


if __name__ == "__main__":
    main()
