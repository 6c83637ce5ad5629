"""The G-Eval expected score: a rating weighted by the judge's own probabilities.

G-Eval (Liu et al., EMNLP 2023, *G-Eval: NLG Evaluation using GPT-4 with
Better Human Alignment*, section 2) scores a text with the probabilities of
the scale's tokens instead of the one token the judge wrote:

.. math::

    \\text{score} = \\sum_{i} p(s_i) \\, s_i

over the scale's scores :math:`s_i`. Here, from one reply with its token
log-probabilities (OpenAI's ``logprobs.content``):

1. **Which token position.** The reply's tokens, joined, are parsed as usual
   (:func:`~sftselect.scoring.rating.locate_rating`, which also gives where
   the score was read: the first line's score, else the first verdict); the
   position is the token that covers the first character of that number's
   integer part and is that integer part written alone (surrounding whitespace
   aside): ``" 4"`` for ``Score: 4.5`` tokenised ``Score``, ``:``, ``" 4"``,
   ``.``, ``5``. Another number earlier in the reply (``It lists 3 colours.
   Score: 3``) is never taken for the rating. A reply that does not parse has
   no position (its row is a parse failure, as in the default scoring); nor
   has one whose joined tokens do not parse to the caller's rating, nor one
   whose rating digit is not a token of its own (a tokenizer that merged
   ``4.`` into one token).
2. **Which tokens count.** At that position, the sampled token and its
   ``top_logprobs`` alternatives whose text, without surrounding whitespace, is
   one of the scale's integers (``"0"`` .. ``"5"``): ``" 4"`` and ``"4"`` are
   two tokens and both count for 4 (their probabilities add), as do two
   alternatives listed with the same text (two token ids that decode alike: a
   SentencePiece byte-fallback ``<0x34>`` beside the piece ``4``); the sampled
   token counts once: it is left out only when an alternative has both its
   text and its log-probability (that alternative is the sampled token itself;
   a same-text alternative with another log-probability is another token id,
   and both count). Anything else (``"The"``, ``"4.5"``, ``"five"``) is not on
   the scale.
3. **Renormalised.** :math:`p(s_i)` is the probability of the tokens of score
   :math:`s_i` divided by the mass found on the scale's tokens, as G-Eval's
   sum over the scale assumes the mass is all there; that mass (before
   dividing) is kept per row, so a judge that put 40% of its probability on
   ``"The"`` shows as covering 0.6.
4. **Decimal scales.** The distribution is over the integer tokens only: for
   ``4.5`` the position is the ``4``, and the ``.5`` that followed is not
   modelled (its probability depends on the digit before it, which only the
   sampled branch shows). The expected score is a real number on the scale
   either way.

A log-probability that is NaN makes the row's expected score unknown (None);
``-inf`` is a probability of 0. Nothing here defaults: where no expected score
can be computed the value is None with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .rating import locate_rating

__all__ = [
    "ExpectedRating",
    "expected_rating",
    "rating_position",
    "scale_digits",
]

#: One reply token as the backends give it: ``(token, logprob, ((alt, logprob), ...))``
#: (:class:`sftselect.backends.base.TokenLogprob` is such a tuple).
Token = tuple[str, float, Sequence[tuple[str, float]]]


@dataclass(frozen=True, slots=True)
class ExpectedRating:
    """The expected score of one reply (None when it cannot be computed, with why),
    the probability mass found on the scale's tokens, and the token position used."""

    value: float | None
    mass: float | None
    position: int | None
    reason: str


def scale_digits(scale: tuple[float, float]) -> dict[str, int]:
    """The scale's integer scores as the one-digit token texts that write them.

    Raises ValueError for a scale that reaches past 0..9 (a score such as 10 is
    written with two digit tokens by many tokenizers, and its first digit would
    read as 1) or that holds no integer.
    """
    lo, hi = math.ceil(scale[0]), math.floor(scale[1])
    if lo < 0 or hi > 9 or lo > hi:
        raise ValueError(
            f"an expected score needs a scale whose integers are single digits (0 to 9); "
            f"got {scale[0]:g} to {scale[1]:g}"
        )
    return {str(i): i for i in range(lo, hi + 1)}


def rating_position(
    tokens: Sequence[str], rating: float, scale: tuple[float, float] = (0.0, 5.0)
) -> int | None:
    """The index of the token that writes ``rating``'s integer part where the
    joined ``tokens`` state the rating (see the module docstring), or None."""
    return _position(tokens, rating, scale)[0]


def _position(
    tokens: Sequence[str], rating: float, scale: tuple[float, float]
) -> tuple[int | None, str]:
    """The rating's token position, or None and why."""
    text = "".join(tokens)
    parsed, span = locate_rating(text, scale)
    if span is None or parsed.value != rating:
        return None, (
            f"the reply's tokens do not read as its rating {rating:g} "
            f"(they read {parsed.value!r}: {parsed.reason})"
        )
    digit = str(math.floor(rating))
    at = span[0] + (text[span[0]] in "+-")  # the integer part's first character
    end = 0
    for i, token in enumerate(tokens):
        start, end = end, end + len(token)
        if start <= at < end:
            lead = len(token) - len(token.lstrip())
            if token.strip() == digit and start + lead == at:
                return i, ""
            break
    return None, f"no reply token is the rating's digit {digit} alone"


def expected_rating(
    logprobs: Sequence[Token], rating: float | None, scale: tuple[float, float]
) -> ExpectedRating:
    """G-Eval's expected score of one reply (see the module docstring).

    ``logprobs``: the reply's tokens, each ``(token, logprob, top_logprobs)``;
    ``rating``: the reply's parsed rating (None: unparsable); ``scale``: the
    prompt's scale.

    Examples
    --------
    >>> top = ((" 4", math.log(0.6)), (" 5", math.log(0.3)), (" The", math.log(0.1)))
    >>> r = expected_rating([("Score", 0.0, ()), (":", 0.0, ()), (" 4", math.log(0.6), top)],
    ...                     4.0, (0, 5))
    >>> round(r.value, 6), round(r.mass, 6), r.position
    (4.333333, 0.9, 2)
    """
    digits = scale_digits(scale)
    if rating is None:
        return ExpectedRating(None, None, None, "no rating parsed")
    position, why = _position([t[0] for t in logprobs], rating, scale)
    if position is None:
        return ExpectedRating(None, None, None, why)
    token, logprob, top = logprobs[position]
    candidates = list(top)
    # exact equality: a backend lists the sampled token with the very number it gave it
    if all(text != token or lp != logprob for text, lp in candidates):
        candidates.append((token, logprob))
    by_score: dict[int, float] = {}
    for text, lp in candidates:
        score = digits.get(text.strip())
        if score is None:
            continue
        if math.isnan(lp):
            return ExpectedRating(None, None, position, f"NaN log-probability for {text!r}")
        by_score[score] = by_score.get(score, 0.0) + math.exp(lp)
    mass = math.fsum(by_score.values())
    if not mass > 0.0:
        return ExpectedRating(None, 0.0, position, "no probability on the scale's tokens")
    value = math.fsum(score * p for score, p in by_score.items()) / mass
    # Rounding cannot carry the mean outside the scores it averages.
    value = min(max(value, min(by_score)), max(by_score))
    return ExpectedRating(value, mass, position, "expected over the scale's tokens")
