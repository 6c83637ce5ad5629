"""``--judge-scoring`` and ``--top-logprobs`` of ``sftselect select|score --selector quality``.

``--judge-scoring expected`` gives each row G-Eval's expected score (the sum of
score x probability over the scale's tokens at the rating the judge wrote)
instead of the rating it wrote; the endpoint must return log-probabilities
(OpenAI, vLLM, llama.cpp's server; ``--local-judge``'s in-process model does).
One that does not stops the run after its first reply with one error line. ``--top-logprobs N`` is how many alternatives
per token are asked for (0 to 20; default 20). ``score --keep-replies`` then
also writes ``quality_mass``, the probability the judge put on the scale's
tokens at that position.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..backends.base import MAX_TOP_LOGPROBS
from ._common import CliError

__all__ = ["add_judge_scoring_options", "expected_columns", "judge_scoring_kwargs"]

DEFAULT_TOP_LOGPROBS = 20


def add_judge_scoring_options(g: argparse._ArgumentGroup) -> None:
    """Add ``--judge-scoring`` and ``--top-logprobs`` to the judge's option group."""
    g.add_argument(
        "--judge-scoring",
        choices=["rating", "expected"],
        default="rating",
        help="rating: the score the judge wrote; expected: G-Eval's sum of score x "
        "probability over the scale's tokens (needs an endpoint that returns "
        "log-probabilities, or --local-judge) (default: rating)",
    )
    g.add_argument(
        "--top-logprobs",
        type=int,
        default=DEFAULT_TOP_LOGPROBS,
        metavar="N",
        help=f"--judge-scoring expected: alternatives asked for per token, 0 to "
        f"{MAX_TOP_LOGPROBS} (default: {DEFAULT_TOP_LOGPROBS})",
    )


def judge_scoring_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``scoring`` and ``top_logprobs`` for ``QualitySelector``, checked by their flags."""
    top = args.top_logprobs
    if args.judge_scoring != "expected" and top != DEFAULT_TOP_LOGPROBS:
        raise CliError("--top-logprobs applies to --judge-scoring expected only (drop it)")
    if not 0 <= top <= MAX_TOP_LOGPROBS:
        raise CliError(f"--top-logprobs must be from 0 to {MAX_TOP_LOGPROBS}; got {top}")
    return {"scoring": args.judge_scoring, "top_logprobs": top}


def expected_columns(scored: Any, ratings: Any) -> Any:
    """``scored`` with the ``quality_mass`` column when ``ratings`` are expected scores."""
    if ratings.mass is None:
        return scored
    mass = [None if m != m else float(m) for m in ratings.mass.tolist()]  # NaN -> null
    return scored.add_column("quality_mass", mass)
