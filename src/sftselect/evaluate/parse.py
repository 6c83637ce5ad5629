"""Strict parsers for pairwise judge replies.

Each parser returns which of the two answers *as shown* the judge preferred:
``"first"``, ``"second"`` or ``"tie"``, or None with the reason when the reply
cannot be read. An unparsable reply is never given a default verdict.

Two scores (the paper's protocol)
    The first non-blank line must hold exactly two numbers, separated by
    spaces and/or one comma (``"8 7"``, ``"8, 7"``, ``"8.5 9"``; markdown
    emphasis such as ``**8 7**`` is ignored), each within the scale. The paper's
    script read ``review.split("\\n")[0]``, replaced commas by spaces and split
    on single spaces, so ``"8, 7"`` failed there and a leading blank line too;
    anything else (``"Assistant 1: 8"``, three numbers, ``"8/10 7/10"``) fails
    here as there. Equal scores are a tie.

Verdict tags (FastChat ``pair-v2``)
    The reply must contain ``[[A]]``, ``[[B]]`` or ``[[C]]`` (tie). FastChat
    takes the first of A, B, C found in that precedence; this parser refuses a
    reply holding two different tags (ambiguous) instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..core.validation import param_error

__all__ = ["ParsedVerdict", "parse_reply", "parse_score_pair", "parse_verdict_tag"]

_NUM = r"([-+]?\d+(?:\.\d+)?)"
_PAIR = re.compile(rf"^{_NUM}\s*(?:,\s*|\s+){_NUM}$")
_EMPH = re.compile(r"[*_`]+")
_TAG = re.compile(r"\[\[([ABC])\]\]")
_TAG_MEANING = {"A": "first", "B": "second", "C": "tie"}


@dataclass(frozen=True)
class ParsedVerdict:
    """One parsed reply.

    Attributes
    ----------
    verdict : {"first", "second", "tie"} or None
        The answer preferred as shown; None when the reply is unparsable.
    reason : str
        How the reply was read, or why it could not be.
    scores : tuple of float or None
        The two scores, first-shown answer first (score protocols only).
    """

    verdict: str | None
    reason: str
    scores: tuple[float, float] | None = None


def _excerpt(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_score_pair(reply: str | None, scale: tuple[float, float]) -> ParsedVerdict:
    """Read two scores from the first non-blank line (see the module docstring)."""
    if reply is None or not reply.strip():
        return ParsedVerdict(None, "empty reply")
    first = next(line for line in reply.splitlines() if line.strip())
    line = _EMPH.sub("", first).strip()
    m = _PAIR.match(line)
    if m is None:
        return ParsedVerdict(None, f"first line is not two scores: {_excerpt(first.strip())!r}")
    s1, s2 = float(m.group(1)), float(m.group(2))
    lo, hi = scale
    for s in (s1, s2):
        if not lo <= s <= hi:
            return ParsedVerdict(None, f"score {s:g} outside the scale [{lo:g}, {hi:g}]")
    verdict = "first" if s1 > s2 else "second" if s2 > s1 else "tie"
    return ParsedVerdict(verdict, "two scores on the first line", (s1, s2))


def parse_verdict_tag(reply: str | None) -> ParsedVerdict:
    """Read one ``[[A]]``/``[[B]]``/``[[C]]`` verdict (see the module docstring)."""
    if reply is None or not reply.strip():
        return ParsedVerdict(None, "empty reply")
    tags = sorted(set(_TAG.findall(reply)))
    if not tags:
        return ParsedVerdict(None, "no verdict tag [[A]], [[B]] or [[C]]")
    if len(tags) > 1:
        found = ", ".join(f"[[{t}]]" for t in tags)
        return ParsedVerdict(None, f"ambiguous: several verdict tags ({found})")
    return ParsedVerdict(_TAG_MEANING[tags[0]], f"verdict tag [[{tags[0]}]]")


def parse_reply(
    reply: str | None, output: str, scale: tuple[float, float] | None = None
) -> ParsedVerdict:
    """Parse with the parser of a protocol's ``output`` kind (``"scores"`` or ``"verdict"``)."""
    if output == "scores":
        if scale is None:
            raise param_error("parse_reply", "scale", "a (low, high) pair for 'scores'", scale)
        return parse_score_pair(reply, scale)
    if output == "verdict":
        return parse_verdict_tag(reply)
    raise param_error("parse_reply", "output", "'scores' or 'verdict'", output)
