"""A strict parser for the ratings LLM judges write.

What judges really reply, and what this parser makes of it:

=================================  =========  ===================================
reply                              value      rule
=================================  =========  ===================================
``"4.5\\nThe response ..."``         4.5        a number alone on the first line
``"Score: 4.5"``                   4.5        a labelled score on the first line
``"**Score:** 4"``                 4          markdown emphasis is ignored
``"4.5/5"``, ``"4 out of 5"``      4.5, 4     a score over the scale's top
``"... I would rate it 3.5."``     3.5        a single labelled score in prose
``"Score: 3 ... Score: 4"``        None       two different scores: ambiguous
``"The response is good."``        None       no score at all
``"7"`` (scale 0-5)                None       outside the scale
=================================  =========  ===================================

AlpaGasus's own parser reads ``float(reply.split('\\n')[0])`` and, for
``"Score: 4.5"``, only the first character after the label (4.0); this one
reads the whole number. An unparsable reply is never turned into a score: the
caller gets ``None`` and the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ParsedRating", "parse_rating"]

_NUM = r"([-+]?\d+(?:\.\d+)?)"
_EMPH = re.compile(r"[*_`#>]+")
_FIRST_LINE_PATTERNS = [
    re.compile(rf"^{_NUM}\s*(?:/\s*{_NUM}|out\s+of\s+{_NUM})?\s*[.!]?$", re.I),
    re.compile(
        rf"^(?:overall\s+|final\s+)?(?:score|rating|grade|accuracy|helpfulness)s?\s*(?:[:=\-]|is)?\s*{_NUM}"
        rf"\s*(?:/\s*{_NUM}|out\s+of\s+{_NUM})?\s*[.!]?$",
        re.I,
    ),
]
_PROSE_PATTERNS = [
    re.compile(
        rf"\b(?:score|rating|grade|rate\s+(?:it|this|the\s+response)(?:\s+as|\s+a)?)\s*"
        rf"(?:of|is|:|=|as)?\s*(?:a\s+)?{_NUM}(?:\s*(?:/|out\s+of)\s*{_NUM})?",
        re.I,
    ),
    re.compile(rf"{_NUM}\s*(?:/|out\s+of)\s*{_NUM}", re.I),
]


# The common reply, "4.5\n<explanation>": a bare number alone on the first line.
# The general rules below give the same answer for it; this only skips them.
_BARE_FIRST_LINE = re.compile(r"[ \t\r\n]*([-+]?\d+(?:\.\d+)?)[ \t]*[.!]?[ \t]*(?:\r?\n|$)")


@dataclass(frozen=True, slots=True)
class ParsedRating:
    """A parsed reply: ``value`` (None when unparsable) and why."""

    value: float | None
    reason: str


def _check(value: float, denom: str | None, scale: tuple[float, float], how: str) -> ParsedRating:
    lo, hi = scale
    if denom is not None and float(denom) != hi:
        return ParsedRating(None, f"score over {denom}, expected over {hi:g}")
    if not (lo <= value <= hi):
        return ParsedRating(None, f"score {value:g} outside the scale [{lo:g}, {hi:g}]")
    return ParsedRating(value, how)


def parse_rating(reply: str | None, scale: tuple[float, float] = (0.0, 5.0)) -> ParsedRating:
    """Parse one judge reply into a score on ``scale`` (see the module docstring).

    Examples
    --------
    >>> parse_rating("Score: 4.5\\nThe answer is accurate.")
    ParsedRating(value=4.5, reason='first line')
    >>> parse_rating("A fine answer.").value is None
    True
    """
    if reply is None or not reply.strip():
        return ParsedRating(None, "empty reply")
    m = _BARE_FIRST_LINE.match(reply)
    if m:
        return _check(float(m.group(1)), None, scale, "first line")
    return _parse_general(reply, scale)


def _parse_general(reply: str, scale: tuple[float, float]) -> ParsedRating:
    """Every rule of the module docstring, for a non-empty reply."""
    lines = [ln for ln in reply.strip().splitlines() if ln.strip()]
    first = _EMPH.sub("", lines[0]).strip()
    for pattern in _FIRST_LINE_PATTERNS:
        m = pattern.match(first)
        if m:
            denom = next((g for g in m.groups()[1:] if g is not None), None)
            return _check(float(m.group(1)), denom, scale, "first line")
    text = _EMPH.sub("", reply)
    found: list[tuple[float, str | None]] = []
    for pattern in _PROSE_PATTERNS:
        for m in pattern.finditer(text):
            found.append((float(m.group(1)), m.group(2)))
        if found:
            break
    if not found:
        return ParsedRating(None, "no score found")
    values = {v for v, _ in found}
    if len(values) > 1:
        return ParsedRating(None, f"ambiguous: several scores {sorted(values)}")
    value, denom = found[0]
    return _check(value, denom, scale, "in prose")
