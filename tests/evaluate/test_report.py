"""Reports and result files: the Markdown table, the PNG, saving, and parameter checks."""

from __future__ import annotations

import json
import warnings

import pytest

from sftselect.backends import CallableBackend, MemoryCache
from sftselect.evaluate import (
    Pairs,
    judge_pairs,
    load_result,
    markdown_table,
    plan_requests,
    plot_wtl,
)
from sftselect.exceptions import DataFormatError, InvalidParameterError, JudgeFailureWarning


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


def _by_answer(messages):
    """Scores 8 2, except an unparsable reply when the answer 'four' is shown first."""
    text = messages[-1]["content"]
    first = text.split("Answer]\n", 1)[1]
    return "I cannot decide." if first.startswith("four") else "8 2\nfirst is better"


def test_judge_pairs_warns_naming_how_many_pairs_were_left_out_and_the_first():
    """A run leaving a pair out for an unparsable reply warns JudgeFailureWarning with the count and that pair."""
    judge = CallableBackend(_by_answer, identity="by-answer")
    with pytest.warns(JudgeFailureWarning) as caught:
        result = judge_pairs(_pairs(), judge, n_bootstrap=0)
    assert result.summary["overall"]["parse_failures"] == 1
    (message,) = [str(w.message) for w in caught if issubclass(w.category, JudgeFailureWarning)]
    assert "1 of 3 pairs were left out" in message and "1 with an unparsable reply" in message
    assert "pair 1, test set 'vicuna', id '1', order ab: " in message
    assert "'I cannot decide.'" in message and "counts 2 pairs" in message


def test_judge_pairs_does_not_warn_when_every_pair_is_scored():
    """A run in which every pair is scored emits no JudgeFailureWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", JudgeFailureWarning)
        result = judge_pairs(_pairs(), _judge("9 2\nfirst is better"), n_bootstrap=0)
    assert result.summary["overall"]["scored"] == 3


def test_all_unparsable_replies_warn_that_every_pair_was_left_out():
    """A judge that never replies in format makes judge_pairs warn that all pairs were left out."""
    with pytest.warns(JudgeFailureWarning, match="3 of 3 pairs were left out .*counts 0 pairs"):
        judge_pairs(_pairs(), _judge("I like both."), n_bootstrap=0)


def test_load_result_on_an_answers_file_says_it_is_not_a_judge_result(tmp_path):
    """load_result on a generate answers file (JSON Lines) says it is not a judge result and what report reads, not "malformed JSON"."""
    rows = [
        {"id": i, "testset": "t", "prompt": f"q{i}", "answer": "a", "model": "m"} for i in (0, 1)
    ]
    for name in ("a1.jsonl", "a1.json"):
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        with pytest.raises(DataFormatError) as err:
            load_result(path)
        message = str(err.value)
        assert "malformed" not in message and "not a pairwise result" in message
        assert "JSON Lines" in message and "answers file of `sftselect generate`" in message
        assert "sftselect judge -o" in message and "sftselect-pairwise-v1" in message


def test_load_result_on_an_alpaca_eval_array_names_what_it_is(tmp_path):
    """load_result on an AlpacaEval outputs array names it as such and the format report reads."""
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps([{"instruction": "q", "output": "a", "generator": "m"}]))
    with pytest.raises(DataFormatError, match="JSON array of 1 item, .*AlpacaEval model outputs"):
        load_result(path)


def test_load_result_still_reports_truly_malformed_json(tmp_path):
    """A truncated result file is still reported as malformed JSON with its line."""
    path = tmp_path / "r.json"
    path.write_text('{"format": "sftselect-pairwise-v1",\n "model_a": ')
    with pytest.raises(DataFormatError, match=r"r\.json:2: malformed JSON"):
        load_result(path)


def test_estimate_counts_uncached_requests_and_their_tokens_and_sends_nothing():
    """estimate_judge_cost counts the planned requests not yet cached, their prompt tokens and a max_tokens cost bound, sending nothing."""
    from sftselect.evaluate import estimate_judge_cost

    sent = []

    def judge_fn(messages):
        sent.append(messages)
        return "9 2"

    judge = CallableBackend(judge_fn, identity="counting")
    pairs = _pairs()
    cache = MemoryCache()
    head = Pairs.from_lists(
        pairs.prompts[:1], pairs.answers_a[:1], pairs.answers_b[:1], testsets=["vicuna"]
    )
    judge_pairs(head, judge, cache=cache, n_bootstrap=0)
    assert len(sent) == 2
    est = estimate_judge_cost(
        pairs,
        judge,
        cache=cache,
        count_tokens=len,
        usd_per_1m_input=2.0,
        usd_per_1m_output=4.0,
    )
    assert len(sent) == 2  # nothing more was sent
    todo = plan_requests(pairs)[2:]
    tokens = sum(len(text) for r in todo for _, text in r.messages)
    assert (est.rows, est.requests_to_send, est.cached) == (3, 4, 2)
    assert est.prompt_tokens == tokens and est.max_output_tokens == 4 * 256
    assert est.cost_usd == pytest.approx(tokens / 1e6 * 2.0 + 4 * 256 / 1e6 * 4.0)
    assert est.token_counter == "len" and "4 requests to send (2 cached)" in est.summary()
    fast = estimate_judge_cost(pairs, judge, protocol="fastchat-pair-v2", max_tokens=100)
    assert (fast.cached, fast.max_output_tokens, fast.cost_usd) == (0, 6 * 100, None)


def test_estimate_on_a_cache_path_that_does_not_exist_creates_no_file(tmp_path):
    """A dry-run estimate on a new cache path counts nothing cached and does not create the file."""
    from sftselect.evaluate import estimate_judge_cost

    est = estimate_judge_cost(_pairs(), _judge("9 2"), cache=tmp_path / "new" / "c.sqlite")
    assert (est.requests_to_send, est.cached) == (6, 0)
    assert not (tmp_path / "new").exists()


def test_a_plot_without_matplotlib_names_the_plot_extra(tmp_path, monkeypatch):
    """The core install has no matplotlib: a plot asked for is a one-line error naming
    sftselect[plot] and writes nothing (`sftselect report` is checked in test_evaluate_http)."""
    import importlib.util
    import sys

    import numpy as np

    from sftselect.cli.plots import plot_histogram
    from sftselect.exceptions import MissingExtraError

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real_find_spec(name, *a),
    )
    with pytest.raises(MissingExtraError, match=r'pip install "sftselect\[plot\]"'):
        plot_histogram(np.arange(5.0), tmp_path / "h.png", 3, "t")
    assert not (tmp_path / "h.png").exists()
