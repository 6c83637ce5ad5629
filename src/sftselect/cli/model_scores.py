"""``--selector deita`` and ``--selector reward`` of ``sftselect select`` and ``score``.

``--model`` names the scorer (a folder, a hub name or a ``.gguf`` file): for
``deita`` the complexity scorer (``--quality-model`` the quality scorer), for
``reward`` the sequence-classification reward model. ``select --selector
deita`` with ``--embed-model`` or ``--embed-column`` is DEITA's whole
selection (:func:`~sftselect.selectors.deita.deita_preset`: combined-score
order through the similarity filter, ``--max-similarity`` defaulting to
DEITA's 0.9 rule); without them it ranks by the score alone. ``--dry-run``
prints the rows, prompt tokens and cached rows without loading the model.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from ._common import CliError, batch_size_arg, format_arg, info

__all__ = [
    "MODEL_SELECTORS",
    "add_model_score_options",
    "model_dry_run",
    "model_selector",
    "score_with_model",
]

MODEL_SELECTORS = ("deita", "reward")


def add_model_score_options(p: argparse.ArgumentParser) -> None:
    """The options of the model scorers (``--model`` is the judge group's, shared)."""
    g = p.add_argument_group("model scorers (--selector deita, reward; --model names the model)")
    g.add_argument(
        "--quality-model",
        default=None,
        help="deita: the quality scorer (default: hkust-nlp/deita-quality-scorer)",
    )
    g.add_argument(
        "--deita-by",
        choices=["combined", "complexity", "quality"],
        default="combined",
        help="deita: the score that ranks rows (default: %(default)s)",
    )
    g.add_argument(
        "--render",
        choices=["pair", "chat"],
        default="pair",
        help="reward: tokenizer(question, answer) pairs or the chat template (default: pair)",
    )
    g.add_argument(
        "--model-max-length",
        type=int,
        default=None,
        help="rows with more tokens are NaN, counted (default: the model's context)",
    )
    if "--dtype" not in p._option_string_actions:  # one --dtype, as train and generate name it
        g.add_argument(
            "--dtype", choices=["float32", "float16", "bfloat16"], default=None, help="dtype"
        )
    g.add_argument(
        "--score-cache",
        default=".sftselect/model_scores",
        help="folder of the per-row score cache: a re-run or a killed run computes nothing twice",
    )
    for flag, kwargs in (
        (
            "--batch-size",
            {"type": int, "default": None, "help": "rows per forward pass (default: 8)"},
        ),
        ("--device", {"default": None, "help": "cuda or cpu (default: cuda when present)"}),
    ):
        if flag not in p._option_string_actions:
            g.add_argument(flag, **kwargs)


def _engine_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        **batch_size_arg(args),
        "max_length": args.model_max_length,
        "device": args.device,
        "dtype": args.dtype,
        "cache_dir": args.score_cache,
    }


def _engines(args: argparse.Namespace) -> dict[str, Any]:
    from ..models.next_token import NextTokenLogits
    from ..models.reward import RewardModel
    from ..selectors.deita import DEFAULT_COMPLEXITY_MODEL, DEFAULT_QUALITY_MODEL
    from ..selectors.reward import DEFAULT_REWARD_MODEL

    settings = dict(_engine_settings(args), show_progress=not args.quiet)
    if args.selector == "reward":
        return {
            "model": RewardModel(args.model or DEFAULT_REWARD_MODEL, render=args.render, **settings)
        }
    return {
        "complexity": NextTokenLogits(args.model or DEFAULT_COMPLEXITY_MODEL, **settings),
        "quality": NextTokenLogits(args.quality_model or DEFAULT_QUALITY_MODEL, **settings),
    }


def _embedder(args: argparse.Namespace) -> Any:
    from ._common import embedder_from_args

    return embedder_from_args(args)


def model_selector(args: argparse.Namespace, *, k: Any = None, for_score: bool = False):
    """The DeitaSelector, deita preset or RewardSelector the options ask for."""
    from ..selectors.deita import DEITA_MAX_SIMILARITY, DeitaSelector, deita_preset
    from ..selectors.reward import RewardSelector

    engines = _engines(args)
    k = args.k if not for_score else k
    bounds = {} if for_score else {"min_score": args.min_score, "max_score": args.max_score}
    no_rule = k is None and args.min_score is None and args.max_score is None
    if not for_score and no_rule and not args.dry_run:
        raise CliError(f"--selector {args.selector} needs -k or --min-score/--max-score")
    seed = getattr(args, "seed", None)
    ties = getattr(args, "ties", None) or "stable"
    if args.selector == "reward":
        return RewardSelector(
            engines["model"], k, format=format_arg(args), ties=ties, random_state=seed, **bounds
        )
    embedder = None if for_score else _embedder(args)
    if embedder is not None:
        if bounds["min_score"] is not None or bounds["max_score"] is not None or k is None:
            raise CliError("--selector deita with embeddings (DEITA's filter) needs -k, no bounds")
        similarity = getattr(args, "max_similarity", None)
        return deita_preset(
            embedder,
            k,
            complexity=engines["complexity"],
            quality=engines["quality"],
            max_similarity=DEITA_MAX_SIMILARITY if similarity in (None, 0.9) else similarity,
            text=getattr(args, "embed_text", None) or "example",
            format=format_arg(args),
            show_progress=not args.quiet,
        )
    return DeitaSelector(
        engines["complexity"],
        engines["quality"],
        k,
        by=args.deita_by,
        format=format_arg(args),
        ties=ties,
        random_state=seed,
        **bounds,
    )


def model_dry_run(args: argparse.Namespace, dataset: Any) -> int:
    """Print rows, prompt tokens and cached rows per model; load no weights.

    The rows are read ``window_rows`` at a time, as scoring reads them, so a dry run
    holds one window's prompts, never the whole data set's."""
    from ..models.loading import load_tokenizer
    from ..models.next_token import token_ids_of
    from ..models.row_engine import row_windows
    from ..selectors.deita import COMPLEXITY_TEMPLATE, QUALITY_TEMPLATE, SCORE_TOKENS, deita_turns
    from ..selectors.reward import reward_pairs

    engines = _engines(args)
    if args.selector == "reward":
        used = {"reward": engines["model"]}
    else:
        used = {
            w: engines[w] for w in ("complexity", "quality") if args.deita_by in ("combined", w)
        }
    ids = {}
    for which, engine in used.items():
        if which != "reward":
            tok = load_tokenizer(engine.model, engine.tokenizer, None, "sftselect")
            ids[which] = token_ids_of(tok, SCORE_TOKENS, "sftselect")
    plans: dict[str, dict[str, int]] = {}
    size = min(int(engine.window_rows) for engine in used.values())
    for rows in row_windows(len(dataset), size):
        part = dataset.select(rows)
        if args.selector == "reward":
            q, a, _ = reward_pairs(part, format_arg(args), "sftselect")
            _add_plan(plans, "reward", used["reward"].plan(list(zip(q, a))))
            continue
        ins, outs, _ = deita_turns(part, format_arg(args), "sftselect")
        for which, engine in used.items():
            if which == "complexity":
                prompts = [COMPLEXITY_TEMPLATE.format(instruction=t) for t in ins]
            else:
                prompts = [
                    QUALITY_TEMPLATE.format(instruction=t, output=r) for t, r in zip(ins, outs)
                ]
            _add_plan(plans, which, engine.plan_logits(prompts, ids[which]))
    for name, plan in plans.items():
        print(
            f"{name}: {plan['rows']:,} prompts, {plan['tokens']:,} tokens "
            f"(longest {plan['longest']:,}), {plan['cached']:,} cached, "
            f"{plan['rows'] - plan['cached']:,} to compute"
        )
    return 0


def _add_plan(plans: dict[str, dict[str, int]], name: str, part: dict[str, int]) -> None:
    """One window's plan added to ``plans[name]`` (counts summed, the longest kept)."""
    total = plans.setdefault(name, {"rows": 0, "tokens": 0, "longest": 0, "cached": 0})
    for key in ("rows", "tokens", "cached"):
        total[key] += int(part[key])
    total["longest"] = max(total["longest"], int(part["longest"]))


def score_with_model(args: argparse.Namespace, dataset: Any) -> tuple[str, np.ndarray]:
    """The score column name and values of ``score --selector deita|reward``."""
    selector = model_selector(args, k=1.0, for_score=True)
    values = selector.score(dataset)
    name = "reward_score" if args.selector == "reward" else f"deita_{args.deita_by}_score"
    info(
        f"{args.selector}: {int(np.isnan(values).sum()):,} of {len(values):,} rows unscorable",
        args.quiet,
    )
    return name, values
