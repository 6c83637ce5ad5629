"""Benchmark the K-means backends of ``sftselect.embedding.clustering.kmeans``: time and peak memory.

Run from the repository root::

    python benchmarks/bench_kmeans.py                 # 50,000 x 768 float32, 100 clusters
    python benchmarks/bench_kmeans.py --rows 10000    # smaller

Each backend (``sklearn``, ``minibatch``, ``faiss`` when installed, and the
default ``auto``) runs in its own fresh subprocess, so native allocations
(BLAS, OpenMP, FAISS), which ``tracemalloc`` cannot see, are measured: the
child builds the data, resets its resident-set high-water mark
(``/proc/self/clear_refs``) and, where the kernel does not allow that, polls
``VmRSS`` every 5 ms in a thread; it runs ``kmeans`` once and reports the wall
time, the peak RSS and the peak growth over the data alone. The data: a seeded mixture of 100 Gaussian
blobs in 768 dimensions (float32), so the inertia of each backend's clustering
can be compared with the others. Target: the default backend finishes in under
60 s on the 2-core machine. Exit status 0 whatever the timings (a report).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

from _memory import RssSampler, reset_peak, vm

BACKENDS = ("sklearn", "minibatch", "faiss", "auto")
TARGET_S = 60.0


def make_data(rows: int, dim: int, blobs: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((blobs, dim), dtype=np.float32)
    X = centres[rng.integers(0, blobs, rows)]
    X += np.float32(0.6) * rng.standard_normal((rows, dim), dtype=np.float32)
    return X


def child(args: argparse.Namespace) -> None:
    """Run one backend once and print a JSON line with time and memory."""
    import numpy as np

    from sftselect.embedding.clustering import kmeans

    X = make_data(args.rows, args.dim, args.blobs, args.seed)
    base = vm("VmRSS")
    hwm_reset = reset_peak()
    t0 = time.perf_counter()
    c0 = time.process_time()
    with RssSampler() as sampler:
        labels, centroids = kmeans(X, args.clusters, random_state=args.seed, backend=args.backend)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    # The kernel's high-water mark when it could be reset; else RSS polled every 5 ms.
    hwm = max(vm("VmHWM"), sampler.peak) if hwm_reset else sampler.peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    inertia = float(((X - centroids[labels]) ** 2).sum(dtype=np.float64))
    print(
        json.dumps(
            {
                "backend": args.backend,
                "seconds": wall,
                "cpu_seconds": cpu,
                "clusters": int(centroids.shape[0]),
                "inertia": inertia,
                "data_bytes": int(X.nbytes),
                "rss_before": base,
                "peak_rss": hwm,
                "peak_extra": hwm - base,
                "peak_source": "VmHWM" if hwm_reset else "VmRSS polled every 5 ms",
                "child_maxrss": maxrss,
            }
        )
    )


def run_backend(args: argparse.Namespace, backend: str) -> tuple[dict | None, str]:
    """The child's measurements, or None and why it failed (exit status, last error line)."""
    cmd = [sys.executable, __file__, "--child", "--backend", backend]
    for name in ("rows", "dim", "clusters", "blobs", "seed"):
        cmd += [f"--{name}", str(getattr(args, name))]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"  {backend}: failed ({tail})")
        return None, f"exit {proc.returncode}: {tail}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), ""


def default_verdict(by: dict[str, dict], failed: dict[str, str]) -> str | None:
    """The target's verdict line: the default backend's time, or FAIL naming why it has none
    (its child failed); None when the default backend was not run (``--backend`` other)."""
    if "auto" in by:
        verdict = "PASS" if by["auto"]["seconds"] < TARGET_S else "FAIL"
        return (
            f"default ('auto') {by['auto']['seconds']:.1f} s, target < {TARGET_S:.0f} s: {verdict}"
        )
    if "auto" in failed:
        return (
            f"default ('auto') did not finish ({failed['auto']}), target < {TARGET_S:.0f} s: FAIL"
        )
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--blobs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", default=None, help="only this backend (the child uses it too)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    from sftselect.embedding.clustering import MINIBATCH_THRESHOLD

    try:
        import faiss  # noqa: F401

        have_faiss = True
    except ImportError:
        have_faiss = False
    mib = 1024 * 1024
    load = os.getloadavg()[0]
    print(
        f"K-means on {args.rows:,} x {args.dim} float32, {args.clusters} clusters "
        f"({args.blobs} Gaussian blobs, seed {args.seed}); {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; 1-min load average {load:.2f} at the start"
        + (" -- measured under load (other jobs share the CPUs)" if load > 0.7 else "")
    )
    print(
        f"default backend 'auto': sklearn KMeans below {MINIBATCH_THRESHOLD:,} rows, "
        "MiniBatchKMeans from there"
    )
    results = []
    failed: dict[str, str] = {}
    for backend in [args.backend] if args.backend else BACKENDS:
        if backend == "faiss" and not have_faiss:
            print("  faiss: not installed (pip install faiss-cpu), skipped")
            continue
        r, error = run_backend(args, backend)
        if r is None:
            failed[backend] = error
        else:
            results.append(r)
            extra = f"{r['peak_extra'] / mib:,.0f} MiB"
            print(
                f"  {backend:9s} {r['seconds']:7.2f} s wall ({r['cpu_seconds']:.1f} s CPU)  "
                f"peak RSS {r['peak_rss'] / mib:,.0f} MiB, peak extra over the data {extra} "
                f"(data {r['data_bytes'] / mib:,.0f} MiB; {r['peak_source']})  "
                f"inertia {r['inertia']:.4e}"
            )
    load_end = os.getloadavg()[0]
    print(f"1-min load average at the end: {load_end:.2f}")
    by = {r["backend"]: r for r in results}
    if "sklearn" in by:
        for r in results:
            print(
                f"  {r['backend']:9s} time {r['seconds'] / by['sklearn']['seconds']:.2f}x sklearn, "
                f"inertia {r['inertia'] / by['sklearn']['inertia']:.4f}x sklearn"
            )
    if failed:
        print("failed backends: " + "; ".join(f"{b} ({why})" for b, why in failed.items()))
    line = default_verdict(by, failed)
    if line is not None:
        print(line)


if __name__ == "__main__":
    main()
