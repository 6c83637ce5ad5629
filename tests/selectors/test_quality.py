"""QualitySelector with an injected judge: prompts, thresholds, ties, failures, cache."""

from __future__ import annotations

import re

import numpy as np
import pytest
from datasets import Dataset

from sftselect import KTooLargeWarning
from sftselect.backends import BackendError, CallableBackend, ReplyCache
from sftselect.exceptions import InvalidParameterError, JudgeParseError, JudgeRequestError
from sftselect.prompts import RatingPrompt, load_presets
from sftselect.selectors.quality import QualitySelector


def rows(n=12):
    return Dataset.from_list(
        [
            {
                "instruction": f"Task {i}",
                "input": "ctx" if i % 2 else "",
                "output": f"Answer number {i}",
            }
            for i in range(n)
        ]
    )


def scripted(scores):
    """A judge that answers each 'Answer number i' with scores[i] (a str reply)."""
    calls = []

    def judge(messages):
        calls.append(messages)
        i = int(re.search(r"Answer number (\d+)", messages[-1]["content"]).group(1))
        return scores[i]

    judge.calls = calls
    return judge


def test_alpagasus_prompt_is_sent_verbatim():
    """The request is AlpaGasus's system message and triplet + accuracy prompt, with its decoding."""
    judge = scripted(["5\nok"] * 2)
    QualitySelector(CallableBackend(judge, identity="j"), k=1).run(rows(2))
    preset = load_presets("rating")["alpagasus"]
    msgs = judge.calls[1]
    assert msgs[0] == {"role": "system", "content": preset["system"]}
    assert msgs[1]["content"] == (
        "###Instruction:\nTask 1\n\n### Input:\nctx\n\n### Response:\nAnswer number 1\n\n"
        "Please rate according to the accuracy of the response to the instruction and the input. "
        "Each assistant receives a score on a scale of 0 to 5, where a higher score indicates higher "
        "level of the accuracy. Please first output a single line containing value indicating the "
        "scores. In the subsequent line, please provide a comprehensive explanation of your "
        "evaluation, avoiding any potential bias. \n\n"
    )
    req = QualitySelector(CallableBackend(judge, identity="j")).requests(rows(1))[0]
    assert (req.max_tokens, req.temperature, req.top_p) == (256, 0.0, 1.0)


def test_threshold_and_top_k():
    """min_score keeps ratings >= the threshold; k keeps the best of those."""
    scores = ["5", "4.5", "3", "4.5", "2", "5", "4", "4.5", "1", "0", "4.5", "5"]
    backend = CallableBackend(scripted(scores), identity="j")
    keep = QualitySelector(backend, min_score=4.5).select_indices(rows())
    assert keep.tolist() == [0, 1, 3, 5, 7, 10, 11]
    top = QualitySelector(backend, k=4, min_score=4.5, random_state=0).select_indices(rows())
    assert {0, 5, 11} <= set(top.tolist()) and len(top) == 4


def test_ties_at_the_cut_are_sampled_uniformly_with_the_seed():
    """With k cutting through the 4.5s, each 4.5 is drawn about equally often over seeds."""
    scores = ["5"] + ["4.5"] * 4 + ["1"] * 7
    backend = CallableBackend(scripted(scores), identity="j")
    counts = np.zeros(12)
    for seed in range(200):
        counts[
            QualitySelector(backend, k=3, min_score=4.5, random_state=seed).select_indices(rows())
        ] += 1
    assert counts[0] == 200 and np.all(counts[1:5] > 60) and counts[5:].sum() == 0


def test_unparsable_replies_are_nan_counted_and_never_selected():
    """An unparsable reply scores NaN, is counted in the report, and is never selected."""
    scores = ["5", "I cannot rate this."] + ["4"] * 10
    with pytest.warns(KTooLargeWarning):
        sel = QualitySelector(CallableBackend(scripted(scores), identity="j"), k=12).run(rows())
    assert np.isnan(sel.scores[1]) and 1 not in sel.indices
    assert sel.extra["rating"]["parse_failures"] == 1


def test_on_parse_error_raise_names_the_row():
    """on_parse_error='raise' raises after the run, naming the row and the reason."""
    scores = ["5", "no score here"] + ["4"] * 10
    q = QualitySelector(
        CallableBackend(scripted(scores), identity="j"), k=2, on_parse_error="raise"
    )
    with pytest.raises(JudgeParseError, match="row 1, no score found"):
        q.select_indices(rows())


def test_reask_recovers_a_score_in_the_same_conversation():
    """reask=1 asks again after an unparsable reply, and the second reply's score counts."""

    def judge(messages):
        if len(messages) > 2:
            return "4"
        return "Hmm, decent." if "Answer number 3" in messages[1]["content"] else "5"

    sel = QualitySelector(CallableBackend(judge, identity="j"), min_score=0, reask=1).run(rows(5))
    assert sel.scores.tolist() == [5, 5, 5, 4, 5]
    assert sel.extra["rating"]["reasked"] == 1


def test_request_failures_raise_after_caching_the_rest(tmp_path):
    """A failing request raises JudgeRequestError; the other replies are cached for the re-run."""
    calls = []

    def judge(messages):
        calls.append(1)
        if "Answer number 2" in messages[1]["content"]:
            raise BackendError("server down")
        return "4"

    cache = tmp_path / "r.sqlite"
    q = QualitySelector(CallableBackend(judge, identity="j"), k=2, cache=cache)
    with pytest.raises(JudgeRequestError, match="1 of 5 rating requests failed"):
        q.select_indices(rows(5))
    assert len(ReplyCache(cache)) == 4
    nan = QualitySelector(
        CallableBackend(judge, identity="j"), k=2, cache=cache, on_request_error="nan"
    )
    sel = nan.run(rows(5))
    assert np.isnan(sel.scores[2]) and len(calls) == 6


def test_second_run_sends_nothing(tmp_path):
    """With a cache file, a second selection over the same data sends no request."""
    judge = scripted(["4"] * 12)
    q = QualitySelector(
        CallableBackend(judge, identity="j"), k=3, cache=tmp_path / "r.sqlite", random_state=1
    )
    first = q.select_indices(rows())
    n = len(judge.calls)
    assert q.select_indices(rows()).tolist() == first.tolist() and len(judge.calls) == n == 12


def test_rows_without_a_response_are_not_sent():
    """A chat row with no assistant turn costs no request and scores NaN."""
    ds = Dataset.from_list(
        [
            {
                "conversations": [
                    {"from": "human", "value": "q"},
                    {"from": "gpt", "value": "Answer number 0"},
                ]
            },
            {"conversations": [{"from": "human", "value": "alone"}]},
        ]
    )
    judge = scripted(["5"])
    scores = QualitySelector(CallableBackend(judge, identity="j"), min_score=0).score(ds)
    assert len(judge.calls) == 1 and scores[0] == 5 and np.isnan(scores[1])


def test_custom_template_with_named_fields():
    """A user template with {instruction}, {input}, {response} is filled per row; others are refused."""
    prompt = RatingPrompt(
        version="mine-v1", user="Q: {instruction}\nA: {response}\nScore 1-10:", scale=(1, 10)
    )
    judge = scripted(["9"] * 3)
    scores = QualitySelector(
        CallableBackend(judge, identity="j"), prompt=prompt, min_score=1
    ).score(rows(3))
    assert judge.calls[0] == [
        {"role": "user", "content": "Q: Task 0\nA: Answer number 0\nScore 1-10:"}
    ]
    assert scores.tolist() == [9, 9, 9]
    with pytest.raises(InvalidParameterError, match="unknown field"):
        RatingPrompt(version="bad", user="{question} {response}")


def test_dry_run_counts_without_sending():
    """estimate() counts requests and prompt tokens, and sends nothing."""
    judge = scripted(["4"] * 12)
    q = QualitySelector(CallableBackend(judge, identity="j"), min_score=4)
    est = q.estimate(
        rows(), count_tokens=lambda s: len(s.split()), usd_per_1m_input=1.0, usd_per_1m_output=2.0
    )
    assert est.requests_to_send == 12 and est.prompt_tokens > 12 * 50 and len(judge.calls) == 0
    assert est.cost_usd == pytest.approx(est.prompt_tokens / 1e6 + 12 * 256 * 2 / 1e6)


def test_dry_run_cost_is_about_when_the_token_count_is_approximate(monkeypatch):
    """Without a tokenizer the prompt tokens are characters / 4, which bounds nothing: the
    summary gives the cost as "about", and "at most" only with a real count."""
    tiktoken = pytest.importorskip("tiktoken")

    def no_encoding(name):
        raise ValueError(f"{name} cannot be had offline")

    monkeypatch.setattr(tiktoken, "get_encoding", no_encoding)  # no tokenizer: the fallback
    q = QualitySelector(CallableBackend(scripted(["4"] * 12), identity="j"), min_score=4)
    prices = {"usd_per_1m_input": 1.0, "usd_per_1m_output": 2.0}
    rough = q.estimate(rows(), **prices)
    assert rough.approximate and rough.token_counter == "approximate: characters / 4"
    assert "estimated cost about $" in rough.summary() and "cost at most" not in rough.summary()
    counted = q.estimate(rows(), count_tokens=lambda s: len(s.split()), **prices)
    assert not counted.approximate and "estimated cost at most $" in counted.summary()
    unpriced = q.estimate(rows())
    assert "estimated cost n/a (no prices given)" in unpriced.summary()


def test_provenance_names_judge_and_prompt_version():
    """The provenance records the judge identity, prompt version and the run report."""
    record = (
        QualitySelector(
            CallableBackend(scripted(["4"] * 3), identity="judge-x"), k=1, random_state=0
        )
        .run(rows(3))
        .provenance()
    )
    assert record["details"]["judge"] == "judge-x"
    assert record["details"]["prompt_version"] == "alpagasus-accuracy-v1"
    assert record["details"]["rating"]["sent"] == 3


def test_unparsable_replies_are_reported_by_a_warning_not_only_in_provenance():
    """A judge whose replies never parse selects nothing and says so with a JudgeFailureWarning."""
    from sftselect import JudgeFailureWarning
    from sftselect.backends import CallableBackend

    ds = Dataset.from_dict({"instruction": ["q"] * 4, "output": ["a", "b", "c", "d"]})
    judge = CallableBackend(lambda messages: "I refuse to rate.", identity="mute")
    with pytest.warns(JudgeFailureWarning, match="4 of 4 judge replies could not be parsed"):
        assert QualitySelector(judge, min_score=4.0).select_indices(ds).tolist() == []


def test_without_a_cache_one_selector_object_pays_once():
    """With cache=None, select then run on one selector sends each request once; a clone starts empty."""
    calls = []

    def judge_fn(messages):
        calls.append(1)
        return "4"

    judge = CallableBackend(judge_fn, identity="counting")
    ds = Dataset.from_dict({"instruction": ["q"] * 3, "output": ["a", "b", "c"]})
    selector = QualitySelector(judge, k=2, random_state=0)
    selector.select(ds)
    selector.run(ds)
    assert len(calls) == 3
    selector.clone().run(ds)
    assert len(calls) == 6
    assert "_memory_cache" in selector.__dict__ and "_memory_cache" not in selector.__getstate__()


def test_estimate_refuses_a_negative_price():
    """QualitySelector.estimate checks its prices (shared with the pairwise judge's estimate)."""
    judge = CallableBackend(lambda messages: "4", identity="j")
    ds = Dataset.from_dict({"instruction": ["q"], "output": ["a"]})
    with pytest.raises(InvalidParameterError, match="'usd_per_1m_input' parameter of"):
        QualitySelector(judge).estimate(ds, usd_per_1m_input=-1.0, usd_per_1m_output=1.0)


def test_dry_run_creates_no_cache_file(tmp_path):
    """estimate() with a cache path that does not exist counts nothing cached and creates nothing."""
    path = tmp_path / "sub" / "ratings.sqlite"
    q = QualitySelector(CallableBackend(scripted(["4"] * 12), identity="j"), cache=path)
    est = q.estimate(rows())
    assert (est.requests_to_send, est.cached) == (12, 0)
    assert list(tmp_path.iterdir()) == []


def test_dry_run_reads_an_existing_cache_without_writing_it(tmp_path):
    """estimate() counts the replies an existing cache holds, and leaves its files as they were."""
    path = tmp_path / "ratings.sqlite"
    store = ReplyCache(path)
    QualitySelector(CallableBackend(scripted(["4"] * 5), identity="j"), cache=store).score(rows(5))
    q = QualitySelector(CallableBackend(scripted(["4"] * 12), identity="j"), cache=path)

    def files():
        # -shm is SQLite's shared-memory index, whose read marks every reader updates.
        return {
            p.name: (p.read_bytes(), p.stat().st_mtime_ns)
            for p in tmp_path.iterdir()
            if not p.name.endswith("-shm")
        }

    # In use by a writer (its -wal beside it) and closed (one file): read, not written.
    for state in ("open", "closed"):
        before = files()
        est = q.estimate(rows())
        assert (est.requests_to_send, est.cached) == (7, 5), state
        assert files() == before, state
        store.close()
    assert list(files()) == ["ratings.sqlite"]


def test_dry_run_names_a_cache_file_it_cannot_read(tmp_path):
    """estimate() on a cache path holding no SQLite database raises one CacheError naming it,
    and leaves the file as it was."""
    from sftselect.exceptions import CacheError

    path = tmp_path / "ratings.sqlite"
    path.write_bytes(b"not a database, just some bytes" * 10)
    q = QualitySelector(CallableBackend(scripted(["4"] * 12), identity="j"), cache=path)
    with pytest.raises(CacheError, match="ratings.sqlite is not a readable SQLite database"):
        q.estimate(rows())
    assert [p.name for p in tmp_path.iterdir()] == ["ratings.sqlite"]
    assert path.read_bytes() == b"not a database, just some bytes" * 10
