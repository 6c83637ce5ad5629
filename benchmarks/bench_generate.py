"""Benchmark batched generation against one prompt at a time.

Run from the repository root (CPU, about a minute)::

    python benchmarks/bench_generate.py

Same randomly initialised LLaMA (LLaMA-2 tokenizer), the first --prompts
Vicuna questions, greedy, --max-new-tokens each: ``generate(batch_size=N)``
against ``generate(batch_size=1)``. Target: batched at least 3x faster. The
answers must be identical (float32, CPU). Prints PASS/FAIL and exits 0.
"""

from __future__ import annotations

import argparse
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
    common = dict(tokenizer=tok, limit=args.prompts, max_new_tokens=args.max_new_tokens)
    one = generate(net, "vicuna", tmp / "one.jsonl", batch_size=1, **common)
    many = generate(net, "vicuna", tmp / "many.jsonl", batch_size=args.prompts, **common)
    same = {r["id"]: r["answer"] for r in read_answers(tmp / "one.jsonl")} == {
        r["id"]: r["answer"] for r in read_answers(tmp / "many.jsonl")
    }
    ratio = one.seconds / many.seconds
    print(
        f"{args.prompts} prompts x {args.max_new_tokens} tokens, hidden={args.hidden} "
        f"layers={args.layers}, torch threads {args.threads}"
    )
    print(f"one at a time {one.seconds:7.2f}s ({one.tokens_per_second:7.1f} tokens/s)")
    print(f"batched       {many.seconds:7.2f}s ({many.tokens_per_second:7.1f} tokens/s)")
    print(
        f"batched speed-up {ratio:.2f}x (target >= 3x): {'PASS' if ratio >= 3 else 'FAIL'}; "
        f"identical answers: {same}"
    )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
