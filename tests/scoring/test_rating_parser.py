"""The strict rating parser: what judges write, and what it must refuse."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sftselect.scoring.rating import locate_rating, parse_rating
from tests.helpers.paths import FIXTURES

_CORPUS = [
    json.loads(line)
    for line in (FIXTURES / "judge_replies.jsonl").read_text().splitlines()
    if line.strip()
]


@pytest.mark.parametrize("row", _CORPUS, ids=[f"line{i + 1}" for i in range(len(_CORPUS))])
def test_judge_reply_corpus(row):
    """Each reply in tests/fixtures/judge_replies.jsonl parses to the score a person reads from it (or None)."""
    parsed = parse_rating(row["reply"])
    assert parsed.value == row["score"], f"{row['why']}: got {parsed}"


@pytest.mark.parametrize(
    ("reply", "value"),
    [
        ("4.5\nThe response is accurate.", 4.5),
        ("5", 5.0),
        ("5.\n\nGreat answer", 5.0),
        ("Score: 4.5", 4.5),
        ("score: 3\nbecause", 3.0),
        ("**Score:** 4", 4.0),
        ("**4.5**", 4.5),
        ("4.5/5", 4.5),
        ("4 out of 5", 4.0),
        ("Rating: 3.5 / 5", 3.5),
        ("Accuracy: 4\nExplanation: ...", 4.0),
        ("The answer is mostly correct. I would rate it 3.5.", 3.5),
        ("I rate this response a 4 out of 5 because it is clear.", 4.0),
        ("The score is 4.0 since it is accurate.", 4.0),
        ("Overall it is fine (score: 2). It misses details; score: 2.", 2.0),
    ],
)
def test_parses_what_judges_write(reply, value):
    """Common reply shapes parse to the score they state."""
    assert parse_rating(reply).value == value


def test_reads_the_whole_number_after_a_label():
    """'Score: 4.5' is 4.5, not 4.0 (AlpaGasus's parser read one character)."""
    assert parse_rating("Score: 4.5\nGood").value == 4.5


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "empty reply"),
        (None, "empty reply"),
        ("   \n  ", "empty reply"),
        ("The response is good and helpful.", "no score found"),
        ("Score: 3. On reflection, score: 4.", "ambiguous"),
        ("7", "outside the scale"),
        ("-1\nbad", "outside the scale"),
        ("Rating: 8/10", "over 10"),
    ],
)
def test_refuses_what_is_not_a_score(reply, reason):
    """No score, two different scores, or a score off the scale give None and the reason."""
    parsed = parse_rating(reply)
    assert parsed.value is None and reason in parsed.reason


def test_other_scales():
    """The scale bounds the accepted values and the denominator."""
    assert parse_rating("8/10", scale=(1, 10)).value == 8.0
    assert parse_rating("8/10").value is None


_grid = st.integers(0, 10).map(lambda i: i / 2)  # 0, 0.5, ..., 5
_no_digits = st.text(alphabet=st.characters(blacklist_categories=["Nd"]), max_size=80)


@given(st.floats(0, 5).map(lambda x: round(x, 1)), _no_digits)
def test_first_line_number_wins(value, rest):
    """A number alone on the first line is the score, whatever explanation without digits follows."""
    assert parse_rating(f"{value}\n{rest}").value == value


@given(_grid, st.sampled_from(["Score: {}", "**Score:** {}", "Rating: {}/5", "{}"]), _no_digits)
def test_labelled_score_then_any_explanation(value, form, explanation):
    """'Score: x' followed by any explanation without digits parses to x, for every x on the grid."""
    assert parse_rating(form.format(f"{value:g}") + "\n" + explanation).value == value


@given(_grid, _grid, _no_digits)
def test_two_different_labelled_scores_are_refused(a, b, between):
    """'Score: a' and later 'Score: b' with a != b is ambiguous; with a == b it is a."""
    parsed = parse_rating(f"Score: {a:g}\n{between}\nScore: {b:g}")
    if a == b:
        assert parsed.value == a
    else:
        assert parsed.value is None and "ambiguous" in parsed.reason


@given(st.text(alphabet=st.characters(blacklist_categories=["Nd"]), max_size=100))
def test_text_without_digits_never_parses(text):
    """A reply without any digit never yields a score."""
    assert parse_rating(text).value is None


_reply_parts = st.sampled_from(
    [
        "",
        " ",
        "\t",
        "\n",
        "\r\n",
        "4",
        "4.5",
        "-1",
        "+3",
        "10",
        ".",
        "!",
        "/5",
        "Score:",
        "**",
        "x",
        "out of 5",
    ]
)


@given(st.lists(_reply_parts, max_size=8).map("".join), st.sampled_from([(0.0, 5.0), (1.0, 10.0)]))
def test_any_mix_of_parts_gives_a_value_on_the_scale_or_a_reason(reply, scale):
    """Whatever the mix of numbers, labels and separators, the parser gives a value on the scale or None."""
    parsed = parse_rating(reply, scale)
    assert parsed.value is None or scale[0] <= parsed.value <= scale[1]
    assert parsed.reason


# --- where the score was read (locate_rating) -------------------------------------------
_EMPHASIS = re.compile(r"[*_`#>]+|\[\[|\]\]")


@pytest.mark.parametrize("row", _CORPUS, ids=[f"line{i + 1}" for i in range(len(_CORPUS))])
def test_located_score_is_the_parsed_number_in_the_reply_itself(row):
    """On every corpus reply, locate_rating gives parse_rating's result unchanged, and the
    span (into the reply as given, emphasis and all) holds the number read as the value."""
    parsed, span = locate_rating(row["reply"])
    assert parsed == parse_rating(row["reply"])
    assert (span is None) == (parsed.value is None)
    if span is not None:
        start, end = span
        assert float(_EMPHASIS.sub("", row["reply"][start:end])) == parsed.value
        assert row["reply"][start].isdigit() or row["reply"][start] in "+-"


def test_located_score_is_the_first_line_or_first_verdict_not_an_earlier_count():
    reply = "The answer lists 3 colours correctly. Score: 3"
    assert locate_rating(reply) == (parse_rating(reply), (45, 46))
    reply = "**Score:** 4\n\nIt has 4 steps. I would rate it 4."
    assert locate_rating(reply)[1] == (11, 12)
    reply = "It names 2 of 3 cases, a scale of 0 to 5. I give it a 2.5 out of 5."
    parsed, (start, end) = locate_rating(reply)
    assert (parsed.value, reply[start:end]) == (2.5, "2.5")
    assert locate_rating("Rate it from 0 to 5.") == (parse_rating("Rate it from 0 to 5."), None)
    assert locate_rating(None)[1] is None


@given(
    _grid,
    st.sampled_from(["Score: {}", "Rating: {}/5", "{}", "It lists 3 items. I would rate it {}."]),
    _no_digits,
    st.lists(st.tuples(st.integers(0, 60), st.sampled_from(["**", "__", "`", "[[", "]]"]))),
)
def test_emphasis_anywhere_keeps_value_and_maps_the_span_back(value, form, rest, marks):
    """Emphasis inserted anywhere (inside the number too) changes neither the value nor
    which number the span covers: the span, its emphasis removed, is the number written."""
    plain = form.format(f"{value:g}") + "\n" + rest
    reply = plain
    for at, mark in sorted(marks, reverse=True):
        reply = reply[:at] + mark + reply[at:]
    parsed, span = locate_rating(reply)
    assert parsed == parse_rating(reply)
    if parse_rating(plain).value is None:  # emphasis marks in ``rest`` may read differently
        return
    if parsed.value is not None:
        start, end = span
        assert _EMPHASIS.sub("", reply[start:end]) == f"{value:g}"
