"""Benchmark sftselect.train against a bare transformers loop, and packing against padding.

Run from the repository root (CPU, a few minutes)::

    python benchmarks/bench_train.py

Every ratio compares two measurements of this run on the same model, batch and
data (real 1k-longest records, LLaMA-2 tokenizer, a randomly initialised
LLaMA of --hidden width; float32; torch threads as set by --threads):

1. Overhead: ``train()`` (transformers Trainer, our collator) against a bare
   loop doing the same work: the same encoded examples, padded the same way,
   forward, backward, gradient clipping at 1.0, AdamW, linear schedule.
   Target: the bare loop's tokens/s at most 1.1x the helper's.
2. Packing: ``train(..., packing=True)`` against ``packing=False`` over the
   same examples for one epoch; real (non-padding) tokens per second.
   Target: at least 1.5x.

The script is a report: it prints PASS/FAIL per target and exits 0.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import transformers

from sftselect.io import load_data
from sftselect.templates import VICUNA_V1_1
from sftselect.train import PadCollator, TrainConfig, conversations, encode_dataset, train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def tokenizer(tmp: Path):
    shutil.copy(SHARED / "tokenizers" / "llama2_tokenizer.model", tmp / "tokenizer.model")
    return transformers.LlamaTokenizer.from_pretrained(str(tmp))


def model(tok, hidden: int, layers: int):
    config = transformers.LlamaConfig(
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=len(tok),
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config)


def bare_loop(net, examples, batch: int, lr: float) -> tuple[float, int]:
    """Forward/backward/clip/AdamW/linear schedule over `examples` in order; (seconds, tokens)."""
    net.train()
    net.config.use_cache = False
    opt = torch.optim.AdamW(net.parameters(), lr=lr)
    steps = len(examples) // batch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / steps)
    collate = PadCollator(0)
    tokens = 0
    start = time.perf_counter()
    for s in range(steps):
        chunk = examples[s * batch : (s + 1) * batch]
        tokens += sum(len(e.input_ids) for e in chunk)
        out = net(**collate(chunk))
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - start, tokens


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=32)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp())
    tok = tokenizer(tmp)
    rows = load_data(SHARED / "paper" / "filtered_alpaca_1k_longest.json")
    rows = rows.select(sorted(random.Random(0).sample(range(len(rows)), args.examples)))
    examples, stats = encode_dataset(VICUNA_V1_1, tok, conversations(rows), args.max_length)
    print(
        f"{stats.kept} examples, {stats.tokens} tokens, {stats.truncated} truncated; "
        f"model hidden={args.hidden} layers={args.layers}; torch threads {args.threads}"
    )
    base = TrainConfig(
        max_length=args.max_length,
        epochs=1.0,
        batch_size=args.batch,
        micro_batch_size=args.batch,
        learning_rate=1e-4,
        use_cpu=True,
    )

    # 1. overhead: same examples, same batches (the bare loop in the helper's order is
    #    approximated by one epoch over the same examples, padded per batch)
    bare_s, bare_tok = bare_loop(model(tok, args.hidden, args.layers), examples, args.batch, 1e-4)
    helper = train(
        model(tok, args.hidden, args.layers), rows, tmp / "a", tokenizer=tok, config=base
    )
    bare_tps = bare_tok / bare_s
    helper_tps = stats.tokens / helper.train_seconds
    ratio = bare_tps / helper_tps
    print(f"bare loop   {bare_tps:9.1f} real tokens/s ({bare_s:.1f}s)")
    print(f"train()     {helper_tps:9.1f} real tokens/s ({helper.train_seconds:.1f}s)")
    print(
        f"overhead: bare/helper = {ratio:.3f}x (target <= 1.1x): {'PASS' if ratio <= 1.1 else 'FAIL'}"
    )

    # 2. packing vs padding, one epoch over the same examples
    packed = train(
        model(tok, args.hidden, args.layers),
        rows,
        tmp / "b",
        tokenizer=tok,
        config=replace(base, packing=True),
    )
    packed_tps = stats.tokens / packed.train_seconds
    gain = packed_tps / helper_tps
    print(
        f"packing     {packed_tps:9.1f} real tokens/s ({packed.train_seconds:.1f}s, "
        f"{packed.log['rows']} rows of <= {args.max_length})"
    )
    print(f"packing/padding = {gain:.2f}x (target >= 1.5x): {'PASS' if gain >= 1.5 else 'FAIL'}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
