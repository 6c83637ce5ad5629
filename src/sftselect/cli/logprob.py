"""The model log-prob options of ``sftselect select`` and ``score`` (``--selector ifd``,
``superfiltering``, ``perplexity``): building the selector, ``--dry-run``, and the
score column."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._common import CliError, batch_size_arg

__all__ = [
    "LOGPROB_SELECTORS",
    "add_logprob_options",
    "logprob_dry_run",
    "logprob_scores",
    "logprob_selector",
]

LOGPROB_SELECTORS = ("ifd", "superfiltering", "perplexity")
#: The score column ``sftselect score`` writes for each selector.
SCORE_COLUMNS = {"ifd": "ifd", "superfiltering": "ifd", "perplexity": "perplexity"}


def _limit(text: str) -> float | None:
    if text.lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def add_logprob_options(p: argparse.ArgumentParser) -> None:
    """The options of the log-prob selectors (``--model`` is shared with the judge options,
    ``--batch-size`` and ``--device`` with the embedding options, where the command has them)."""
    g = p.add_argument_group("model log-probs (--selector ifd, superfiltering, perplexity)")
    lm_help = "ifd, superfiltering, perplexity: the causal LM, a folder, a hub name or a .gguf file"
    if "--model" in p._option_string_actions:  # shared with the judge options: one --model
        action = p._option_string_actions["--model"]
        action.help = f"{action.help}; {lm_help}"
    else:
        g.add_argument("--model", default=None, help=lm_help)
    g.add_argument("--tokenizer", default=None, help="tokenizer (default: the model's own)")
    g.add_argument(
        "--context-length",
        type=int,
        default=None,
        help="token limit of each text (ifd: 512, superfiltering: 1024, perplexity: the model's)",
    )
    g.add_argument(
        "--ifd-limit",
        type=_limit,
        default=1.0,
        help="ifd, superfiltering: never select rows with IFD >= this; 'none' keeps them "
        "(default: 1)",
    )
    g.add_argument(
        "--no-cherry-skips",
        action="store_true",
        help="ifd: do not apply Cherry's length skip rules",
    )
    if "--keep" in p._option_string_actions:  # shared with the dedup filters: one --keep
        action = p._option_string_actions["--keep"]
        action.help = f"{action.help}; perplexity: lowest (default) or highest first"
    else:
        g.add_argument("--keep", default=None, help="perplexity: lowest (default) or highest first")
    g.add_argument(
        "--unconditioned", action="store_true", help="perplexity: the answer alone, no prompt"
    )
    g.add_argument(
        "--template",
        choices=["alpaca", "plain"],
        default="alpaca",
        help="perplexity: the prompt (Cherry's Alpaca prompt, or instruction\\ninput\\n)",
    )
    if "--dtype" not in p._option_string_actions:
        g.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None)
    if "--score-cache" not in p._option_string_actions:  # one cache folder for model scores
        g.add_argument(
            "--score-cache",
            default=None,
            help="folder caching every row's log-probs: a re-run or a killed run pays nothing "
            "twice",
        )
    if "--batch-size" not in p._option_string_actions:
        g.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help="rows per forward pass (default: the selector's own, 16)",
        )
    if "--device" not in p._option_string_actions:
        g.add_argument("--device", default=None, help="cuda or cpu (default: the best found)")


def logprob_selector(args: argparse.Namespace, *, scoring: bool = False) -> Any:
    """The selector ``args`` describe (``scoring``: every row, no k needed)."""
    from ..selectors.ifd import IFDSelector, SuperfilteringSelector
    from ..selectors.perplexity import PerplexitySelector

    name = args.selector
    model = args.model
    if model is None and name != "superfiltering":
        raise CliError(f"--selector {name} needs --model (a folder, a hub name or a .gguf file)")
    common: dict[str, Any] = {
        "tokenizer": args.tokenizer,
        "format": getattr(args, "format", None),
        "dtype": args.dtype,
        "device": getattr(args, "device", None),
        "cache_dir": args.score_cache,
        "show_progress": not args.quiet,
        **batch_size_arg(args),
    }
    k = None if scoring else args.k
    bounds: dict[str, Any] = {}
    if not scoring:
        bounds = {"min_score": args.min_score, "max_score": args.max_score}
        ties = getattr(args, "ties", None) or "stable"
        bounds.update(ties=ties, random_state=getattr(args, "seed", None))
    if name == "perplexity":
        keep = args.keep or "lowest"
        if keep not in ("lowest", "highest"):
            raise CliError(f"--keep {keep} is a dedup rule; perplexity takes lowest or highest")
        return PerplexitySelector(
            model,
            k,
            keep=keep,
            conditioned=not args.unconditioned,
            template=args.template,
            max_length=args.context_length,
            **bounds,
            **common,
        )
    cls = IFDSelector if name == "ifd" else SuperfilteringSelector
    if model is None:
        model = "gpt2"
    # scoring (score, --dry-run) calls score() or dry_run(), which need no k or bound
    extra: dict[str, Any] = {"ifd_limit": None if scoring else args.ifd_limit}
    if name == "ifd":
        extra["cherry_skips"] = not args.no_cherry_skips
    if args.context_length is not None:
        extra["max_length"] = args.context_length
    return cls(model, k, **extra, **bounds, **common)


def logprob_dry_run(args: argparse.Namespace, selector: Any, dataset: Any) -> int:
    """Print rows, tokens per pass and rows already cached; run no model."""
    report = selector.dry_run(dataset)
    print(json.dumps({"selector": args.selector, **report}, indent=2))
    return 0


def logprob_scores(args: argparse.Namespace, dataset: Any) -> tuple[str, Any]:
    """The score column name and one score per row (NaN where a row has none)."""
    selector = logprob_selector(args, scoring=True)
    return SCORE_COLUMNS[args.selector], selector.score(dataset)
