"""Benchmark batched generation against one prompt at a time.

Run from the repository root (CPU, about a minute)::

    python benchmarks/bench_generate.py

Same randomly initialised LLaMA (LLaMA-2 tokenizer), the first --prompts
Vicuna questions, greedy, --max-new-tokens each: ``generate(batch_size=N)``
against ``generate(batch_size=1)``, both through the same ``generate()`` (the
same left padding; a batch of one has nothing to pad). Both are warmed up
untimed on two prompts, then run --repeats times each, alternating. The
verdict: PASS when every batched run is at least 3x faster than the fastest
one-at-a-time run (the spread between runs is the noise measured) AND the
answers of all runs are identical (float32, CPU). Exits 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import torch
import transformers

from sftselect.generate import generate, read_answers

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each side")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp())
    shutil.copy(SHARED / "tokenizers" / "llama2_tokenizer.model", tmp / "tokenizer.model")
    tok = transformers.LlamaTokenizer.from_pretrained(str(tmp))
    config = transformers.LlamaConfig(
        hidden_size=args.hidden,
        intermediate_size=2 * args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=len(tok),
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=1_000_000,
    )
    torch.manual_seed(0)
    net = transformers.LlamaForCausalLM(
        config
    ).eval()  # no reachable EOS: every answer is full length
    common = dict(tokenizer=tok, max_new_tokens=args.max_new_tokens)
    sizes = {"one at a time": 1, "batched": args.prompts}
    # Untimed warm-up of both paths (first kernels, allocator, tokenizer caches), so that
    # neither pays start-up costs inside a timed run.
    for size in sizes.values():
        generate(net, "vicuna", tmp / f"warm-{size}.jsonl", batch_size=size, limit=2, **common)
    seconds: dict[str, list[float]] = {name: [] for name in sizes}
    answers: dict[str, list[dict[str, str]]] = {name: [] for name in sizes}
    for i in range(args.repeats):
        order = list(sizes) if i % 2 == 0 else list(reversed(sizes))
        for name in order:  # alternating, so that load changes hit both sides alike
            out = tmp / f"{sizes[name]}-{i}.jsonl"  # a fresh file: generate() resumes a file
            report = generate(
                net, "vicuna", out, batch_size=sizes[name], limit=args.prompts, **common
            )
            seconds[name].append(report.seconds)
            answers[name].append({r["id"]: r["answer"] for r in read_answers(out)})
    first = answers["one at a time"][0]
    same = len(first) == args.prompts and all(
        run == first for runs in answers.values() for run in runs
    )
    one, many = seconds["one at a time"], seconds["batched"]
    ratio = min(one) / min(many)
    worst = min(one) / max(many)  # the fastest baseline against the slowest batched run
    print(
        f"{args.prompts} prompts x {args.max_new_tokens} tokens, hidden={args.hidden} "
        f"layers={args.layers}, torch threads {args.threads}; both warmed up untimed, then "
        f"{args.repeats} runs each, alternating (load average {os.getloadavg()[0]:.2f})"
    )
    for name, runs in seconds.items():
        print(f"{name:<14} " + ", ".join(f"{t:.2f}s" for t in runs) + f" (best {min(runs):.2f}s)")
    print(
        f"batched speed-up {ratio:.2f}x best vs best; {worst:.2f}x the fastest one-at-a-time run "
        f"against the slowest batched run (the margin the verdict uses: the noise measured)"
    )
    ok = same and worst >= 3
    print(
        f"verdict: {'PASS' if ok else 'FAIL'} (target: >= 3x with every batched run, and "
        f"identical answers in all {2 * args.repeats} runs: {same})"
    )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
