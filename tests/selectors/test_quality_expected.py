"""QualitySelector(scoring="expected") through the real HTTP client against a scripted judge
that returns token log-probabilities (LoopbackServer + ScriptedReply)."""

from __future__ import annotations

import hashlib
import math
import warnings

import numpy as np
import pytest

from sftselect import load_sample
from sftselect.backends import ReplyCache
from sftselect.backends.openai_compat import OpenAICompatibleBackend
from sftselect.exceptions import (
    InvalidParameterError,
    JudgeFailureWarning,
    JudgeLogprobsError,
    JudgeRequestError,
)
from sftselect.prompts import RatingPrompt
from sftselect.selectors.quality import QualitySelector
from sftselect.testing import Fault, LoopbackServer, ScriptedReply, hashed_faults

SECRET = "sk-test-NEVER-IN-A-MESSAGE-0123456789"


def distribution(body) -> dict[str, float]:
    """The judge's probabilities at the score token, from a hash of the prompt: the scale's
    tokens with a space (and "4" without), and "The" off the scale."""
    content = body["messages"][-1]["content"]
    h = hashlib.sha256(content.encode()).digest()
    weights = [1 + b for b in h[:8]]
    names = [" 0", " 1", " 2", " 3", " 4", " 5", "4", "The"]
    total = sum(weights)
    return {name: w / total for name, w in zip(names, weights)}


def sampled(dist: dict[str, float]) -> str:
    """The token greedy decoding writes: the most likely one on the scale."""
    return max((t for t in dist if t != "The"), key=lambda t: dist[t])


def judge_reply(body):
    dist = distribution(body)
    token = sampled(dist)
    return ScriptedReply.from_tokens(
        [("Score", -0.01), (":", 0.0), (token, math.log(dist[token])), ("\n", 0.0), "Fine."],
        top={2: {t: math.log(p) for t, p in dist.items()}},
    )


def hand_expected(dist: dict[str, float], n: int) -> tuple[float, float]:
    """sum score x p over the scale's tokens among the n most likely (and the sampled one),
    renormalised; and the mass found: computed here from the script, not by the library."""
    kept = dict(sorted(dist.items(), key=lambda kv: -kv[1])[:n])
    kept.setdefault(sampled(dist), dist[sampled(dist)])
    on_scale = {t: p for t, p in kept.items() if t != "The"}
    mass = sum(on_scale.values())
    return sum(int(t) * p for t, p in on_scale.items()) / mass, mass


def judge(server, **kw):
    return OpenAICompatibleBackend(
        "judge", base_url=server.base_url, backoff_base=0.01, max_retries=2, **kw
    )


@pytest.fixture(scope="module")
def rows():
    return load_sample().select(range(24))


def bodies(selector, rows):
    backend = OpenAICompatibleBackend("m", api_key_env=None)
    return [backend.request_body(r) for r in selector.requests(rows)]


@pytest.mark.parametrize("top", [20, 3, 0])
def test_expected_scores_equal_the_formula_by_hand(rows, tmp_path, top):
    """Each row's score is the hand-computed sum of score x probability over the scale's
    tokens the server sent (top_logprobs of them), renormalised; the mass is recorded."""
    with LoopbackServer(reply=judge_reply) as server:
        selector = QualitySelector(
            judge(server, api_key_env=None),
            k=5,
            scoring="expected",
            top_logprobs=top,
            cache=tmp_path / "c.sqlite",
            random_state=0,
        )
        ratings = selector.rate(rows)
        sent = server.requests
    assert len(sent) == len(rows)
    assert all(r.body["logprobs"] is True and r.body["top_logprobs"] == top for r in sent)
    by_prompt = {r.last_user_message: distribution(r.body) for r in sent}
    for body, score, mass in zip(bodies(selector, rows), ratings.scores, ratings.mass):
        want, want_mass = hand_expected(by_prompt[body["messages"][-1]["content"]], top)
        assert score == pytest.approx(want, rel=1e-12)
        assert mass == pytest.approx(want_mass, rel=1e-12)
    summary = ratings.summary()
    assert summary["scoring"] == "expected" and summary["expected_failures"] == 0
    counts = summary["expected"]
    assert counts["rows"] == len(rows)
    assert counts["mass_sum"] == pytest.approx(float(np.sum(ratings.mass)))
    bins = [counts[k] for k in counts if k.startswith("mass_") and k != "mass_sum"]
    assert sum(bins) == len(rows)
    if top == 0:  # only the sampled token: every score is the integer written
        assert set(ratings.scores.tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0, 5.0}
    else:
        assert not np.array_equal(ratings.scores, np.round(ratings.scores))


def test_selection_records_the_mode_and_rerun_pays_nothing(rows, tmp_path):
    """run() after rate() reads every reply (with its log-probabilities) from the cache
    file; the provenance records the mode, top_logprobs and the mass counts."""
    cache = tmp_path / "c.sqlite"
    with LoopbackServer(reply=judge_reply) as server:
        selector = QualitySelector(
            judge(server, api_key_env=None),
            k=5,
            scoring="expected",
            top_logprobs=20,
            cache=cache,
            random_state=0,
        )
        scores = selector.rate(rows).scores
        assert server.request_count == len(rows)
        fresh = QualitySelector(
            judge(server, api_key_env=None), k=5, scoring="expected", cache=cache, random_state=0
        )
        selection = fresh.run(rows)
        assert server.request_count == len(rows)
    np.testing.assert_array_equal(selection.scores, scores)
    assert selection.indices.tolist() == sorted(np.argsort(-scores, kind="stable")[:5].tolist())
    record = selection.provenance()
    assert record["params"]["scoring"] == "expected" and record["params"]["top_logprobs"] == 20
    rating = record["details"]["rating"]
    assert rating["scoring"] == "expected" and rating["cache_hits"] == len(rows)
    assert rating["expected"]["rows"] == len(rows)


def test_endpoint_without_logprobs_stops_after_one_request(rows, tmp_path, monkeypatch):
    """An endpoint that sends none (a plain text reply): one line naming the endpoint, never
    the key, after a single request; a re-run on the same cache sends nothing and says so."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    cache = tmp_path / "c.sqlite"
    with LoopbackServer(reply=lambda body: "Score: 4\nFine.") as server:
        backend = judge(server)
        selector = QualitySelector(backend, k=5, scoring="expected", cache=cache)
        with pytest.raises(JudgeLogprobsError) as info:
            selector.rate(rows)
        assert server.request_count == 1
        message = str(info.value)
        assert "\n" not in message and SECRET not in message
        assert backend.identity in message and "without log-probabilities" in message
        assert "top_logprobs=20" in message and "--judge-scoring rating" in message
        assert "TransformersChatBackend" in message and "--local-judge PATH" in message
        with pytest.raises(JudgeLogprobsError):
            QualitySelector(backend, k=5, scoring="expected", cache=cache).rate(rows)
        assert server.request_count == 1


def test_replies_cached_without_logprobs_never_answer_expected_scoring(rows, tmp_path):
    """Rating-mode replies in the cache are other requests: expected scoring sends its own."""
    cache = tmp_path / "c.sqlite"
    with LoopbackServer(reply=judge_reply) as server:
        QualitySelector(judge(server, api_key_env=None), k=5, cache=cache).rate(rows)
        assert server.request_count == len(rows)
        assert all("logprobs" not in r.body for r in server.requests)
        selector = QualitySelector(judge(server, api_key_env=None), scoring="expected", cache=cache)
        assert selector.estimate(rows).cached == 0
        ratings = selector.rate(rows)
        assert server.request_count == 2 * len(rows)
        assert ratings.report.cache_hits == 0 and ratings.report.sent == len(rows)
        assert selector.estimate(rows).cached == len(rows)
    assert len(ReplyCache(cache)) == 2 * len(rows)


def test_resume_after_failed_requests_gives_the_scores_of_a_clean_run(rows, tmp_path):
    """Requests the server refused fail the run (replies so far cached); the re-run sends
    only those and ends with the scores a run without faults gives."""
    cache = tmp_path / "c.sqlite"
    faults = hashed_faults(0.3, [Fault.status_code(400)], random_state=3, max_attempts=1)
    with LoopbackServer(reply=judge_reply, faults=faults) as server:
        selector = QualitySelector(
            judge(server, api_key_env=None), scoring="expected", top_logprobs=5, cache=cache
        )
        with pytest.raises(JudgeRequestError):
            selector.rate(rows)
        failed = sum(r.fault is not None for r in server.requests)
        assert 0 < failed < len(rows)
        before = server.request_count
        resumed = selector.rate(rows)
        assert server.request_count - before == failed
        assert resumed.report.cache_hits == len(rows) - failed
    with LoopbackServer(reply=judge_reply) as clean:
        fresh = QualitySelector(judge(clean, api_key_env=None), scoring="expected", top_logprobs=5)
        np.testing.assert_array_equal(resumed.scores, fresh.rate(rows).scores)


def test_later_replies_without_logprobs_or_rating_token_are_nan_and_counted(rows):
    """After the first reply passed the check, a reply without log-probabilities, one whose
    rating is no token of its own, and an unparsable one each score NaN, counted apart."""

    def reply(body):
        content = body["messages"][-1]["content"]
        if rows[3]["output"] in content:
            return "Score: 4"  # no log-probabilities
        if rows[5]["output"] in content:
            return ScriptedReply.from_tokens(["Score", ":", " 4.5"])  # "4" is no token alone
        if rows[7]["output"] in content:
            return ScriptedReply.from_tokens(["I", " cannot", " rate", " this"])
        return judge_reply(body)

    with LoopbackServer(reply=reply) as server:
        selector = QualitySelector(judge(server, api_key_env=None), scoring="expected")
        with pytest.warns(JudgeFailureWarning) as caught:
            ratings = selector.rate(rows)
    nan = np.flatnonzero(np.isnan(ratings.scores)).tolist()
    assert nan == [3, 5, 7]
    assert ratings.expected_failures == 2 and ratings.parse_failures == 1
    counts = ratings.summary()["expected"]
    assert (counts["no_logprobs"], counts["no_rating_token"], counts["rows"]) == (1, 1, 21)
    assert "without log-probabilities" in ratings.reasons[3]
    assert "digit 4 alone" in ratings.reasons[5]
    assert any("2 of 24 rated rows have no expected score" in str(w.message) for w in caught)


def test_reask_keeps_asking_for_logprobs(rows):
    """A reply with no score is asked again in the same conversation, still with logprobs."""

    def reply(body):
        if len(body["messages"]) == 2:  # system + user: the first ask
            return ScriptedReply.from_tokens(["Hmm", "."])
        return judge_reply(body)

    with LoopbackServer(reply=reply) as server:
        selector = QualitySelector(judge(server, api_key_env=None), scoring="expected", reask=1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ratings = selector.rate(rows.select(range(4)))
        follow = [r.body for r in server.requests if len(r.body["messages"]) > 2]
    assert len(follow) == 4 and all(b["top_logprobs"] == 20 for b in follow)
    assert ratings.reasked == 4 and not np.isnan(ratings.scores).any()


def test_rating_mode_asks_for_no_logprobs(rows):
    with LoopbackServer(reply=judge_reply) as server:
        ratings = QualitySelector(judge(server, api_key_env=None)).rate(rows.select(range(3)))
        assert all("logprobs" not in r.body for r in server.requests)
    assert ratings.mass is None and "expected" not in ratings.summary()
    assert set(ratings.scores.tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0, 5.0}


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"scoring": "mean"}, "The 'scoring' parameter of QualitySelector must be one of"),
        ({"scoring": "expected", "top_logprobs": 21}, "'top_logprobs'.*an int from 0 to 20"),
        ({"scoring": "expected", "top_logprobs": -1}, "'top_logprobs'.*Got -1 instead"),
        ({"scoring": "expected", "top_logprobs": True}, "'top_logprobs'.*Got True instead"),
        (
            {
                "scoring": "expected",
                "prompt": RatingPrompt("ten-v1", "{response}", scale=(1.0, 10.0)),
            },
            r"scoring='expected'\): an expected score needs a scale whose integers are single",
        ),
    ],
)
def test_bad_parameters_fail_before_any_request(rows, params, match):
    with LoopbackServer(reply=judge_reply) as server:
        selector = QualitySelector(judge(server, api_key_env=None), **params)
        with pytest.raises(InvalidParameterError, match=match) as info:
            selector.rate(rows)
        assert server.request_count == 0
    assert "\n" not in str(info.value)


def test_expected_scoring_caps_the_preset_reply_length(rows):
    """Every reply token travels and is cached with its alternatives: expected scoring asks
    for 16 tokens unless max_tokens is given; the default scoring keeps AlpaGasus's 256."""
    backend = OpenAICompatibleBackend("m", api_key_env=None)
    lengths = {
        name: {backend.request_body(r)["max_tokens"] for r in selector.requests(rows)}
        for name, selector in {
            "rating": QualitySelector(backend),
            "expected": QualitySelector(backend, scoring="expected"),
            "given": QualitySelector(backend, scoring="expected", max_tokens=64),
        }.items()
    }
    assert lengths == {"rating": {256}, "expected": {16}, "given": {64}}
