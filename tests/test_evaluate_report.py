"""Reports and result files: the Markdown table, the PNG, saving, and parameter checks."""

from __future__ import annotations

import json

import pytest

from sftselect.backends import CallableBackend
from sftselect.evaluate import Pairs, judge_pairs, load_result, markdown_table, plot_wtl
from sftselect.exceptions import InvalidParameterError


def _judge(reply_text):
    return CallableBackend(lambda messages: reply_text, identity=f"fixed:{reply_text!r}")


def _pairs():
    return Pairs.from_lists(
        ["q1", "q2", "q3"],
        ["one two three", "four", "five six"],
        ["x", "y z", "w"],
        testsets=["vicuna", "vicuna", "lima"],
        model_a="long",
        model_b="short",
    )


def test_all_unparsable_replies_give_no_score_and_are_counted():
    """A judge that never answers in format scores nothing: win score None, every pair a parse failure."""
    result = judge_pairs(_pairs(), _judge("I like both."))
    o = result.summary["overall"]
    assert (o["scored"], o["parse_failures"], o["unparsable_replies"]) == (0, 3, 6)
    assert o["win_score"] is None and o["win_score_ci"] is None and o["position_flip_rate"] is None
    table = markdown_table(result.to_dict())
    assert "| **overall** | 3 | 0 | 0 | 0 | 0 | n/a |" in table


def test_saved_result_round_trips_and_the_figure_is_a_png(tmp_path):
    """save() writes JSON that load_result reads back; plot_wtl draws a PNG even with an unscored test set."""
    result = judge_pairs(_pairs(), _judge("9 2\nfirst is better"), n_bootstrap=50, random_state=7)
    path = result.save(tmp_path / "sub" / "r.json")
    doc = load_result(path)
    assert doc["summary"] == json.loads(json.dumps(result.summary))
    assert doc["bootstrap"] == {"n_resamples": 50, "confidence": 0.95, "seed": 7}
    assert doc["run"]["sent"] == 6 and doc["judge"] == "fixed:'9 2\\nfirst is better'"
    png = plot_wtl(doc, tmp_path / "w.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "sub").glob(".*tmp*"))


def test_always_first_judge_is_all_ties_and_all_flips():
    """A judge that always prefers the first answer shown ties every pair, with a flip rate of 1."""
    result = judge_pairs(_pairs(), _judge("9 2\nfirst is better"), n_bootstrap=50)
    o = result.summary["overall"]
    assert (o["win"], o["tie"], o["lose"], o["win_score"]) == (0, 3, 0, 1.0)
    assert o["position_flip_rate"] == 1.0 and o["verdicts_by_position"]["first"] == 6
    assert o["mean_words_a"] == pytest.approx(2.0) and o["mean_chars_b"] == pytest.approx(5 / 3)


def test_fresh_seed_is_drawn_and_recorded_when_none():
    """random_state=None draws a seed and records it, so the intervals can be reproduced."""
    result = judge_pairs(_pairs(), _judge("9 2"), n_bootstrap=20, random_state=None)
    seed = result.bootstrap["seed"]
    again = judge_pairs(_pairs(), _judge("9 2"), n_bootstrap=20, random_state=seed)
    assert isinstance(seed, int) and again.summary == result.summary


@pytest.mark.parametrize(
    ("option", "name"),
    [
        ({"on_request_error": "ignore"}, "on_request_error"),
        ({"n_bootstrap": -1}, "n_bootstrap"),
        ({"confidence": 1.0}, "confidence"),
        ({"random_state": -3}, "random_state"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"protocol": "nope"}, "protocol"),
    ],
)
def test_bad_parameters_use_the_standard_message(option, name):
    """Each invalid option is refused with "The 'x' parameter of F must be ... Got ... instead."."""
    with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter of .* must be .* Got"):
        judge_pairs(_pairs(), _judge("9 2"), **option)


def test_judge_pairs_needs_pairs():
    """Passing raw lists to judge_pairs is refused, pointing at Pairs / load_pairs."""
    with pytest.raises(
        InvalidParameterError, match="'pairs' parameter of judge_pairs must be a Pairs"
    ):
        judge_pairs([("q", "a", "b")], _judge("9 2"))
