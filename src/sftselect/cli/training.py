"""``sftselect train`` and ``sftselect generate``: fine-tune on a selected subset,
then answer a packaged test set."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from ._common import info, positive_int, refuse_overwriting_inputs

__all__ = ["register"]


@contextlib.contextmanager
def _quiet_transformers(quiet: bool) -> Iterator[None]:
    """With ``quiet``: no transformers log lines (errors aside), no progress bars of
    transformers or huggingface_hub ("Loading weights", "Writing model shards"), and nothing
    on stdout (Trainer's PrinterCallback prints each log dict there, ``train_runtime`` too).
    What the callbacks record (the training log) is unchanged; the global logging and
    progress-bar settings are restored afterwards."""
    if not quiet:
        yield
        return
    import huggingface_hub.utils as hub_utils
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hub_bars = not hub_utils.are_progress_bars_disabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # huggingface_hub's bars too
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()  # huggingface_hub's bars too
        if hub_bars:
            hub_utils.enable_progress_bars()
        else:
            hub_utils.disable_progress_bars()


def _every(text: str) -> int | str:
    """``--checkpoint-every``: a positive int or ``epoch``."""
    if text == "epoch":
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a positive int or 'epoch'; got {text!r}"
        ) from None


def _train(args: argparse.Namespace) -> int:
    from ..data.io import load_data
    from ..train import get_preset, train
    from ..train.config import with_changes

    config = with_changes(
        get_preset(args.preset, "sftselect train"),
        {
            "template": args.template,
            "max_length": args.max_length,
            "packing": True if args.packing else None,
            "epochs": args.epochs,
            "max_steps": args.max_steps,
            "learning_rate": args.learning_rate,
            "weight_decay": args.weight_decay,
            "warmup_steps": args.warmup_steps,
            "batch_size": args.batch_size,
            "micro_batch_size": args.micro_batch_size,
            "neftune_alpha": args.neftune_alpha,
            "random_state": args.seed,
            "use_cpu": True if args.cpu else None,
            "checkpoint_every": args.checkpoint_every,
            "checkpoint_limit": args.checkpoint_limit,
        },
    )
    switches: dict[str, Any] = {}
    if args.no_neftune:
        switches["neftune_alpha"] = None
    if args.bf16 is not None:
        switches["bf16"] = args.bf16 == "on"
    if args.gradient_checkpointing is not None:
        switches["gradient_checkpointing"] = args.gradient_checkpointing == "on"
    config = replace(config, **switches)
    refuse_overwriting_inputs(
        {"--data": args.data, "--model": args.model},
        [("--output", "the output folder", args.output)],
    )
    data = load_data(args.data, split=args.split)
    info(f"training on {len(data)} rows from {args.data} -> {args.output}", args.quiet)
    with _quiet_transformers(args.quiet):
        result = train(
            args.model,
            data,
            args.output,
            config=config,
            format=args.format,
            gguf_file=args.gguf_file,
            dtype=args.dtype,
            lora=args.lora,
            resume_from_checkpoint=True if args.resume else None,
        )
    first = f"{result.losses[0]:.4f}" if result.losses else "n/a"
    last = f"{result.losses[-1]:.4f}" if result.losses else "n/a"
    info(
        f"{result.steps} steps in {result.train_seconds:.1f}s, loss {first} -> {last}, "
        f"{result.tokens_per_second:.0f} tokens/s; {result.stats.truncated} truncated, "
        f"{result.stats.dropped} dropped; log: {result.output_dir / 'training_log.json'}",
        args.quiet,
    )
    return 0


def _generate(args: argparse.Namespace) -> int:
    from ..generate.runner import generate

    model: Any = args.model
    if args.base_url is not None:  # a served model: --model is its name on the server
        from ..backends import OpenAICompatibleBackend

        model = OpenAICompatibleBackend(
            args.model, base_url=args.base_url, api_key_env=args.api_key_env
        )
    else:
        refuse_overwriting_inputs(
            {"--model": args.model}, [("-o", "the answers file", args.output)]
        )
    with _quiet_transformers(args.quiet):
        report = generate(
            model,
            args.testset,
            args.output,
            template=args.template,
            model_name=args.model_name,
            gguf_file=args.gguf_file,
            dtype=args.dtype,
            device=args.device,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            random_state=args.seed,
            limit=args.limit,
            turns=args.turns,
        )
    info(
        f"{report.written} answers written, {report.skipped} already there, "
        f"{report.seconds:.1f}s ({report.tokens_per_second:.1f} tokens/s), "
        f"template {report.template} -> {report.output}",
        args.quiet,
    )
    return 0


def register(sub: Any) -> None:
    """Add ``train`` and ``generate`` to the ``sftselect`` parser."""
    from ..prompts.templates import TEMPLATES
    from ..testsets import NAMES
    from ..train.config import PRESETS

    tr = sub.add_parser("train", help="fine-tune a causal LM on a (selected) dataset")
    tr.add_argument("--model", required=True, help="model folder, hub name or .gguf file")
    tr.add_argument("--data", required=True, help=".json, .jsonl, .parquet or a saved Dataset")
    tr.add_argument("--output", required=True, help="folder for the model, tokenizer and log")
    tr.add_argument("--preset", choices=sorted(PRESETS), default="default")
    tr.add_argument("--template", choices=sorted(TEMPLATES), default=None)
    tr.add_argument("--format", choices=["alpaca", "dolly", "sharegpt", "openai"], default=None)
    tr.add_argument("--split", default="train")
    tr.add_argument("--max-length", type=positive_int, default=None)
    tr.add_argument("--packing", action="store_true", help="pack examples into full rows")
    tr.add_argument("--epochs", type=float, default=None)
    tr.add_argument("--max-steps", type=positive_int, default=None)
    tr.add_argument("--learning-rate", type=float, default=None)
    tr.add_argument("--weight-decay", type=float, default=None)
    tr.add_argument("--warmup-steps", type=int, default=None)
    tr.add_argument("--batch-size", type=positive_int, default=None, help="effective batch")
    tr.add_argument("--micro-batch-size", type=positive_int, default=None)
    tr.add_argument("--neftune-alpha", type=float, default=None)
    tr.add_argument("--no-neftune", action="store_true", help="turn NEFTune off")
    tr.add_argument("--bf16", choices=["on", "off"], default=None)
    tr.add_argument("--gradient-checkpointing", choices=["on", "off"], default=None)
    tr.add_argument("--seed", type=int, default=None)
    tr.add_argument("--gguf-file", default=None, help="GGUF file name inside --model")
    tr.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None)
    tr.add_argument("--cpu", action="store_true", help="train on the CPU even with a GPU")
    tr.add_argument(
        "--lora", choices=["lora", "qlora"], default=None, help="train LoRA adapters (PEFT)"
    )
    tr.add_argument(
        "--checkpoint-every",
        type=_every,
        default=None,
        help="write a checkpoint every N optimizer steps, or 'epoch'",
    )
    tr.add_argument("--checkpoint-limit", type=positive_int, default=None)
    tr.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in --output"
    )
    tr.add_argument("-q", "--quiet", action="store_true")
    tr.set_defaults(handler=_train)

    ge = sub.add_parser("generate", help="answer a packaged test set (resumable JSONL)")
    ge.add_argument("--model", required=True, help="model folder, hub name or .gguf file")
    ge.add_argument("--testset", required=True, choices=list(NAMES))
    ge.add_argument("-o", "--output", required=True, help="answers file (.jsonl), appended to")
    ge.add_argument("--template", choices=sorted(TEMPLATES), default=None)
    ge.add_argument("--model-name", default=None, help="the 'model' field of the rows")
    ge.add_argument("--limit", type=positive_int, default=None)
    ge.add_argument(
        "--turns",
        choices=["first", "all"],
        default="first",
        help="'all': answer every turn of a multi-turn question (MT-Bench), in the conversation",
    )
    ge.add_argument("--max-new-tokens", type=positive_int, default=512)
    ge.add_argument("--batch-size", type=positive_int, default=8)
    ge.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default)")
    ge.add_argument("--top-p", type=float, default=1.0)
    ge.add_argument("--seed", type=int, default=None)
    ge.add_argument("--gguf-file", default=None)
    ge.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None)
    ge.add_argument("--device", default=None)
    ge.add_argument(
        "--base-url",
        default=None,
        help="an OpenAI-compatible server (vLLM, TGI, llama.cpp, transformers serve) up to /v1; "
        "--model is then the name it serves",
    )
    ge.add_argument("--api-key-env", default=None, help="environment variable of the server's key")
    ge.add_argument("-q", "--quiet", action="store_true")
    ge.set_defaults(handler=_generate)
