"""What each parameter of :class:`~sftselect.selectors.quality.QualitySelector` may hold.

Its ``_parameter_constraints`` (see :mod:`sftselect.core.constraints`), kept apart so the
selector's module stays small. The rule that needs the prompt (the scale's digits with
``scoring="expected"``) is checked where used.
"""

from __future__ import annotations

import numbers
import os
from typing import Any

from ..backends.base import MAX_TOP_LOGPROBS
from ..core.constraints import K_CONSTRAINTS, HasMethods, InstanceOf, Interval, Options, Satisfies
from ..data.formats import FORMAT_CONSTRAINTS
from ..prompts import RatingPrompt, load_presets
from .quality_expected import SCORINGS
from .score import BOUND, TIE_RULES

__all__ = ["QUALITY_CONSTRAINTS"]

_POSITIVE_INT = Interval(numbers.Integral, 1, None)


def _is_cache(cache: Any) -> bool:
    """What :func:`~sftselect.backends.cache.as_reply_store` takes."""
    return (
        cache is None
        or isinstance(cache, (str, os.PathLike))
        or (hasattr(cache, "get_many") and hasattr(cache, "put"))
    )


#: ``QualitySelector._parameter_constraints``.
QUALITY_CONSTRAINTS: dict[str, list[Any]] = {
    "judge": [HasMethods("chat", description="a chat backend (with a 'chat' method)")],
    "k": [*K_CONSTRAINTS, None],
    "min_score": BOUND,
    "max_score": BOUND,
    "prompt": [
        Options(*sorted(load_presets("rating"))),
        InstanceOf(RatingPrompt, "a RatingPrompt"),
    ],
    "format": FORMAT_CONSTRAINTS,
    "turns": [Options("last", "first")],
    "cache": [Satisfies(_is_cache, "a ReplyCache, a MemoryCache, a path or None")],
    "max_concurrency": [_POSITIVE_INT],
    "max_tokens": [_POSITIVE_INT, None],
    "temperature": [Interval(numbers.Real, 0, None), None],
    "reask": [Interval(numbers.Integral, 0, None)],
    "on_parse_error": [Options("nan", "raise")],
    "on_request_error": [Options("raise", "nan")],
    "scoring": [Options(*SCORINGS)],
    "top_logprobs": [
        Interval(
            numbers.Integral,
            0,
            MAX_TOP_LOGPROBS,
            closed="both",
            description=f"an int from 0 to {MAX_TOP_LOGPROBS}",
        )
    ],
    "ties": [Options(*TIE_RULES)],
    "random_state": ["random_state"],
    "show_progress": ["boolean"],
}
