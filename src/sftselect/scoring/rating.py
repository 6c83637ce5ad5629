"""A strict parser for the ratings LLM judges write.

The rule: read the score a person reads, refuse what a person would call no
score or ambiguous.

1. Markdown emphasis (``** __ ` # >``, ``[[ ]]``) is ignored.
2. Descriptions of the scale are removed first: ranges (``0 to 5``, ``0-5``,
   ``between 3 and 4``, ``3 or 4``), the scale's top (``maximum score of 5``)
   and a score named to describe it (``5 being the highest``, ``0 is the
   lowest``, ``5 = excellent``, ``a score of 5 would require``, ``a 5 if``).
3. The answer slot: the first line holds a score, alone or labelled, maybe
   over the top (``4.5``, ``Score: 4.5``, ``4/5``, ``Rating: 4 out of 5``),
   with an optional gloss after it (``4.5 (accurate)``, ``4 - good``, a
   sentence). A bare number followed by ``. Text`` is list numbering, and so
   is a first line whose next line begins with a number in the same style
   (``5 - Excellent`` then ``4 - Good``: a rubric).
4. Verdicts anywhere: a labelled score (``score: 4``, ``the score of the
   given input is 5``), a verb (``I would rate this response 4``, ``I give it
   a 4``, ``deserves a 3.5``), ``is a solid 4``, or a bare ``4/5`` over the
   scale's top. Negated or purposive ones (``not give it a 5``, ``to earn a
   5``) are dropped, and so are counts (``3 out of 5 questions``).
5. The first line's score and every verdict must agree; two different values
   are refused as ambiguous. So is ``4,5``: a decimal comma, or two scores
   ``4, 5`` (the prompt's "value indicating the scores" comes from Vicuna's
   two-score prompt). A score off the scale, or over another top
   (``8/10``), is refused. Scores must be written in digits.

An unparsable reply is never turned into a score: the caller gets ``None``
and the reason. :func:`locate_rating` also says where the score was read:
the span, in the reply as given, of the number the value comes from (the
first line's score, else the first verdict), which expected scoring
(:mod:`sftselect.scoring.expected`) maps to the rating's token.

AlpaGasus (``rating/filter.py``) reads ``float(reply.split('\\n')[0])``;
failing that, the rest of the line after ``score:``, or for ``Score:`` one
character only (``Score: 4.5`` became 4.0); failing that, -1. It never looks
past that one line, so it misses verdicts in prose. It also never refuses
conflicting scores. This parser reads whole numbers anywhere. Because it reads
prose, it must also refuse descriptions of the scale and contradictions,
which AlpaGasus never saw. (*Long Is More* reuses AlpaGasus's filtered data
and ships no rating parser.)
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ParsedRating", "locate_rating", "parse_rating"]

#: Where a parsed score is written: ``reply[start:end]`` is the number it was read from.
Span = tuple[int, int]

_H = r"[^\S\n]"  # horizontal space: descriptions and glosses never span lines
# A number in digits: not part of a word or version ("4th", "v1.5", "5-point"),
# a percentage, or a decimal comma ("4,5").
_N = r"(?<![\w.])[-+]?[0-9]+(?:\.[0-9]+)?(?![\w%]|-[a-zA-Z]|,[0-9]|\.[0-9])"
_OVER = rf"{_H}*(?:/|out{_H}+of){_H}*"  # "4/5", "4 out of 5"
_EMPH = re.compile(r"[*_`#>]+|\[\[|\]\]")
_DECIMAL_COMMA = re.compile(r"(?<![0-9])[0-9],[0-9](?![0-9])")

_DESCRIPTIONS = re.compile(
    "|".join(
        [
            # ranges: "0 to 5", "0-5", "between 3 and 4", "3 or a 4"
            rf"\bbetween{_H}+{_N}{_H}+and{_H}+{_N}",
            rf"{_N}{_H}*(?:-|–|—|\bto\b|\bthrough\b|\bor\b(?:{_H}+an?\b)?){_H}*{_N}",
            # the scale's ends: "maximum score of 5", "highest possible rating is 5"
            rf"\b(?:max(?:imum)?|highest|top|full|best|lowest|min(?:imum)?|possible)(?:{_H}+possible)?"
            rf"{_H}+(?:score|rating|grade|value)s?{_H}*(?:of|is|:|=)?{_H}*{_N}",
            # a score named to describe it: "5 being the highest", "5 = excellent", "a 5 if ..."
            rf"{_N}(?:{_OVER}{_N})?{_H}*(?:=|(?:being|would|could|should|might|requires?|means|meaning"
            rf"|indicates?|represents?|denotes?|signif(?:y|ies)|stands{_H}+for|corresponds?"
            rf"|is{_H}+(?:the|reserved|given|awarded|assigned|typically|usually|only|for)|if|unless)\b)",
        ]
    ),
    re.I,
)

# The answer slot, on the first line: [label] number [over top] [tail].
_SLOT = re.compile(
    rf"^{_H}*(?:((?:(?:overall|final|my|total){_H}+)?(?:score|rating|grade|accuracy|helpfulness|verdict)s?)"
    rf"{_H}*(?:\([^)\n]*\))?{_H}*[\"']?{_H}*(?:(?:is\b)?{_H}*[:=\-–]?){_H}*)?"
    rf"({_N})(?:{_OVER}({_N}))?(.*)$",
    re.I,
)

_OBJ = rf"(?:it|this|that|them|(?:this|the){_H}+(?:response|answer|assistant|output|one))"
_VERDICT = re.compile(
    # "not"/"never"/"n't" or "to get|earn|..." shortly before, in the same clause: not a verdict
    rf"(?P<neg>(?:\b(?:not|never|cannot|hardly)\b|n't\b|\bto{_H}+(?=get|earn|receive|reach|achieve|deserve|merit))"
    rf"(?:(?!\b(?:but|so|yet|though|although|however)\b)[^\n.;,!?\d]){{0,30}}?)?"
    rf"(?:"
    # "score: 4", "rating of 3.5", "the score of the given input is 5", "score is: 5", "Score\n4.5"
    rf"(?P<label>\b(?:score|rating|grade)s?\b[\"']?(?:{_H}+(?:for|of|given{_H}+to){_H}+(?:[a-z']+{_H}+){{1,5}}?"
    rf"(?=is\b|would\b|will\b))?{_H}*(?:(?:is|would{_H}+be|will{_H}+be|of|as|at)\b)?{_H}*(?:[:=]|-(?=\s))?\s*"
    rf"(?:an?{_H}+)?)"
    # "I would rate this response 4", "I give it a 4", "give it a score of 4"
    rf"|(?P<verb>\b(?:rat(?:e|es|ed|ing)|giv(?:e|es|ing)|gave|assign(?:s|ed|ing)?|award(?:s|ed|ing)?)\b{_H}+"
    rf"(?:{_OBJ}{_H}+(?:an?{_H}+|as{_H}+(?:an?{_H}+)?|at{_H}+|(?:an?{_H}+)?(?:score|rating){_H}+of{_H}+)?"
    rf"|an?{_H}+|(?:an?{_H}+)?(?:score|rating){_H}+of{_H}+))"
    # "deserves a 3.5", "this gets a 3", "receives a score of 4"
    rf"|(?P<get>\b(?:deserv(?:e|es|ing)|earns?|earned|gets?|got|receives?|received|merits?)\b{_H}+"
    rf"(?:an?{_H}+(?:(?:perfect|solid|strong|high|low|fair){_H}+)?|(?:an?{_H}+)?(?:score|rating){_H}+of{_H}+))"
    # "this is a solid 4", "it's a 4 out of 5", "it deserves 4." (must end like a verdict)
    rf"|(?P<loose>\b(?:is|it's|as)\b{_H}+an?{_H}+(?:(?:solid|strong|clear|weak|fair|perfect|low|high){_H}+)?"
    rf"|\b(?:deserves?|merits?){_H}+)"
    rf"|(?P<bare>)"  # a bare "4/5": only over the scale's top
    rf")(?P<value>{_N})(?:{_OVER}(?P<denom>{_N}))?",
    re.I,
)
# What may follow a loose verdict ("is a 4", "deserves 4", a bare "4/5") for it to be
# one: "3 out of 5 questions" is a count.
_VERDICT_END = re.compile(
    r"\s*(?:$|[.,;:!?)\]]|(?:because|since|as|for|overall|given|from|on|in|but|and|stars?|points?)\b)",
    re.I,
)


@dataclass(frozen=True, slots=True)
class ParsedRating:
    """A parsed reply: ``value`` (None when unparsable) and why."""

    value: float | None
    reason: str


def parse_rating(reply: str | None, scale: tuple[float, float] = (0.0, 5.0)) -> ParsedRating:
    """Parse one judge reply into a score on ``scale`` (see the module docstring).

    Examples
    --------
    >>> parse_rating("Score: 4.5\\nThe answer is accurate.")
    ParsedRating(value=4.5, reason='first line')
    >>> parse_rating("Rate it on a scale of 0 to 5, with 5 being the best.").value is None
    True
    """
    return _parse(reply, scale)[0]


def locate_rating(
    reply: str | None, scale: tuple[float, float] = (0.0, 5.0)
) -> tuple[ParsedRating, Span | None]:
    """:func:`parse_rating`'s result, and where in ``reply`` the score was read.

    The span is that of the number the value comes from: the first line's score,
    or else the first verdict (all verdicts agree, or the reply is refused), as
    ``(start, end)`` offsets into ``reply`` itself (emphasis such as ``**``
    inside the number is included: ``reply[start:end]`` is ``"4**.5"`` for
    ``**4**.5``); None when no value was parsed.

    Examples
    --------
    >>> reply = "It lists 3 colours. Score: 4"
    >>> parsed, (start, end) = locate_rating(reply)
    >>> parsed.value, reply[start:end], start
    (4.0, '4', 27)
    """
    parsed, span, undo = _parse(reply, scale)
    if span is None or undo is None:
        return parsed, None
    return parsed, (undo(span[0]), undo(span[1] - 1) + 1)


def _parse(
    reply: str | None, scale: tuple[float, float]
) -> tuple[ParsedRating, Span | None, Callable[[int], int] | None]:
    """The parsed rating, the span of its number in the cleaned text, and the map
    from cleaned-text offsets back to ``reply``'s."""
    if reply is None or not reply.strip():
        return ParsedRating(None, "empty reply"), None, None
    bare, emph_pieces = _sub_mapped(_EMPH, "", reply)
    text = bare.strip()
    lead = len(bare) - len(bare.lstrip())
    m = _DECIMAL_COMMA.search(text.partition("\n")[0])
    if m:
        reason = f"ambiguous: {m.group()!r} is a decimal comma or two scores"
        return ParsedRating(None, reason), None, None
    clean, desc_pieces = _sub_mapped(_DESCRIPTIONS, " ~ ", text)

    def undo(i: int) -> int:
        return _back(emph_pieces, _back(desc_pieces, i) + lead)

    first, _, rest = clean.partition("\n")
    slot = _first_line(first, rest)
    if isinstance(slot, ParsedRating):
        return slot, None, None
    found = _verdicts(slot.group(4) + "\n" + rest if slot else clean, scale[1])
    if slot:  # the slot is on the first line: its offsets are clean's
        found.insert(0, (float(slot.group(2)), slot.group(3), slot.span(2)))
    if not found:
        reason = "no score found" + (" (only the scale described)" if clean != text else "")
        return ParsedRating(None, reason), None, None
    values = {v for v, _, _ in found}
    if len(values) > 1:
        return ParsedRating(None, f"ambiguous: several scores {sorted(values)}"), None, None
    lo, hi = scale
    for value, denom, _ in found:
        if denom is not None and float(denom) != hi:
            return ParsedRating(None, f"score over {denom}, expected over {hi:g}"), None, None
        if not (lo <= value <= hi):
            reason = f"score {value:g} outside the scale [{lo:g}, {hi:g}]"
            return ParsedRating(None, reason), None, None
    parsed = ParsedRating(found[0][0], "first line" if slot else "in prose")
    return parsed, found[0][2], undo


def _sub_mapped(pattern: re.Pattern[str], repl: str, text: str) -> tuple[str, list[Span]]:
    """``pattern.sub(repl, text)`` (no pattern here matches an empty string), and the
    ``(new, old)`` start offset of every piece of ``text`` kept."""
    out, pieces, new, old = [], [(0, 0)], 0, 0
    for m in pattern.finditer(text):
        out.append(text[old : m.start()])
        out.append(repl)
        new += m.start() - old + len(repl)
        old = m.end()
        pieces.append((new, old))
    out.append(text[old:])
    return "".join(out), pieces


def _back(pieces: list[Span], i: int) -> int:
    """The offset in the old text of the kept character at offset ``i`` of the new one."""
    k = bisect_right(pieces, i, key=lambda piece: piece[0]) - 1
    new, old = pieces[k]
    return old + (i - new)


def _first_line(first: str, rest: str) -> re.Match[str] | ParsedRating | None:
    """The answer slot's match (groups: label, value, denominator, tail), a refusal, or
    None when it holds no score."""
    m = _SLOT.match(first)
    if not m:
        return None
    label, value, denom, tail = m.groups()
    t = tail.strip()
    if re.match(rf"[,;]?{_H}*{_N}", t):
        return ParsedRating(
            None, f"ambiguous: several numbers on the score line {first.strip()[:40]!r}"
        )
    if t in ("", ".", "!"):
        ok = True
    elif not label and t[0] in ".):-–" and re.match(rf"\s*{_N}{_H}*{re.escape(t[0])}", rest):
        ok = False  # "5 - Excellent\n4 - Good ...": a rubric or a numbered list, not a score
    else:
        ok = bool(label or denom or t[0] in "([-–—:,;" or re.match(r"\s+[A-Z]", tail))
        ok = ok or ("." in value and t.startswith(". "))  # "4.5. Text"; "1. Text" is numbering
    return m if ok else None


def _verdicts(text: str, top: float) -> list[tuple[float, str | None, Span]]:
    """Every verdict in ``text`` as (value, denominator, the value's span), negated ones
    and counts dropped."""
    found = []
    for m in _VERDICT.finditer(text):
        if m.group("neg") is not None:
            continue
        loose = m.group("loose") is not None or m.group("bare") is not None
        if loose and not _VERDICT_END.match(text, m.end()):
            continue
        if m.group("bare") is not None and (
            m.group("denom") is None or float(m.group("denom")) != top
        ):
            continue
        found.append((float(m.group("value")), m.group("denom"), m.span("value")))
    return found
