"""Strict parsing of pairwise judge replies: two scores, or one verdict tag."""

from __future__ import annotations

import pytest
from hypothesis import given

from sftselect.evaluate.parse import parse_reply, parse_score_pair, parse_verdict_tag
from sftselect.exceptions import InvalidParameterError
from tests.helpers.strategies_eval import scores

SCALE = (1.0, 10.0)


@pytest.mark.parametrize(
    ("reply", "verdict", "pair"),
    [
        ("8 7\nAssistant 1 is more detailed.", "first", (8.0, 7.0)),
        ("6 9", "second", (6.0, 9.0)),
        ("7 7\nBoth are fine.", "tie", (7.0, 7.0)),
        ("8, 7\nexplanation", "first", (8.0, 7.0)),
        ("8,7", "first", (8.0, 7.0)),
        ("8.5 9\n", "second", (8.5, 9.0)),
        ("**8 7**\nbold first line", "first", (8.0, 7.0)),
        ("\n  9  4  \nleading blank line", "first", (9.0, 4.0)),
        ("10 1", "first", (10.0, 1.0)),
    ],
)
def test_score_pairs_the_parser_reads(reply, verdict, pair):
    """Two numbers alone on the first non-blank line give the verdict and both scores."""
    parsed = parse_score_pair(reply, SCALE)
    assert (parsed.verdict, parsed.scores) == (verdict, pair)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "empty reply"),
        (None, "empty reply"),
        ("   \n ", "empty reply"),
        ("Assistant 1: 8\nAssistant 2: 7", "not two scores"),
        ("8 7 6", "not two scores"),
        ("8/10 7/10", "not two scores"),
        ("Both answers are good.\n8 7", "not two scores"),
        ("11 7", "outside the scale"),
        ("0 5", "outside the scale"),
        ("8 -1", "outside the scale"),
    ],
)
def test_score_pair_replies_refused_with_a_reason(reply, reason):
    """Replies without exactly two in-scale numbers on the first line are refused, never defaulted."""
    parsed = parse_score_pair(reply, SCALE)
    assert parsed.verdict is None and parsed.scores is None and reason in parsed.reason


@given(scores, scores)
def test_score_pair_verdict_follows_the_comparison(s1, s2):
    """For any two in-scale scores the verdict is first/second/tie as s1 >, <, == s2."""
    parsed = parse_score_pair(f"{s1:g} {s2:g}\nwhy", SCALE)
    expected = "first" if s1 > s2 else "second" if s2 > s1 else "tie"
    assert parsed.verdict == expected and parsed.scores == (s1, s2)


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("Assistant A is more helpful. [[A]]", "first"),
        ("Final verdict: [[B]]", "second"),
        ("They are equally good.\n\n[[C]]", "tie"),
        ("[[A]] ... as I said, [[A]]", "first"),
    ],
)
def test_verdict_tags_the_parser_reads(reply, verdict):
    """Exactly one distinct tag [[A]]/[[B]]/[[C]] gives first/second/tie."""
    assert parse_verdict_tag(reply).verdict == verdict


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("Assistant A is better.", "no verdict tag"),
        ("[A]", "no verdict tag"),
        ("", "empty reply"),
        ("Not [[A]] but rather [[B]]", "ambiguous"),
    ],
)
def test_verdict_replies_refused_with_a_reason(reply, reason):
    """No tag, or two different tags, is a parse failure with its reason (FastChat would guess A)."""
    parsed = parse_verdict_tag(reply)
    assert parsed.verdict is None and reason in parsed.reason


def test_parse_reply_refuses_an_unknown_output_kind():
    """An output kind other than 'scores' or 'verdict' is an error naming it."""
    with pytest.raises(InvalidParameterError, match="'output' parameter of parse_reply.*'stars'"):
        parse_reply("8 7", "stars", SCALE)
    with pytest.raises(InvalidParameterError, match="'scale' parameter of parse_reply"):
        parse_reply("8 7", "scores", None)
