"""RewardModel / RewardSelector against a transcription of MoDS's reward call.

The reference is MoDS's per-record loop (github.com/CASIA-LM/MoDS at
7d179bd9783537ce3948207b8c60e556f9fc9780, quality-evaluation/quality-evaluation.py),
on tiny random sequence-classification models built from configs (no hub):
a DeBERTa-v2 (the architecture of the OpenAssistant reward model MoDS uses) and
a BERT (whose pair input has token type ids).
"""

from __future__ import annotations

import collections
import json
import re

import numpy as np
import pytest
from datasets import Dataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sftselect.data.sample import load_sample
from sftselect.exceptions import InvalidParameterError, SftSelectWarning
from sftselect.models.reward import RewardModel
from sftselect.selectors.reward import RewardSelector


def mods_reference(rank_model, tokenizer, input_list):
    """MoDS's loop, minus the file I/O and ``.cuda()``."""
    result_list = []
    for element in input_list:
        instruction = element["instruction"]
        _input = ""
        if "input" in element.keys():  # noqa: SIM118 (transcribed as written)
            _input = element["input"]
        _output = element["output"]
        question = ""
        if _input == "":  # noqa: SIM108 (transcribed as written)
            question = instruction
        else:
            question = instruction + "\n" + _input
        answer = _output
        try:
            inputs = tokenizer(question, answer, return_tensors="pt")
            score = rank_model(**inputs).logits[0].detach()
        except Exception:
            continue
        result_list.append(
            {
                "instruction": instruction,
                "input": _input,
                "output": _output,
                "reward_score": float(score),
            }
        )
    return result_list


@pytest.fixture(scope="module")
def word_tokenizer(tmp_path_factory):
    """A WordPiece tokenizer over the bundled sample's 2,000 commonest words."""
    import transformers

    pool = load_sample()
    words = collections.Counter(
        w
        for col in ("instruction", "input", "output")
        for text in pool[col]
        for w in re.findall(r"\w+|[^\w\s]", text.lower())
    )
    folder = tmp_path_factory.mktemp("wordpiece")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *(w for w, _ in words.most_common(2000))]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return transformers.BertTokenizer.from_pretrained(str(folder))


def _scaled(model):
    import torch

    with torch.no_grad():  # random heads give near-equal rewards; spread them
        for name, p in model.named_parameters():
            if name.startswith(("classifier", "pooler")):
                p.mul_(30.0)
    return model.eval()


@pytest.fixture(scope="module")
def deberta(word_tokenizer):
    import torch
    import transformers

    config = transformers.DebertaV2Config(
        vocab_size=len(word_tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        num_labels=1,
        max_position_embeddings=512,
        relative_attention=True,
        position_buckets=64,
        pos_att_type=["p2c", "c2p"],
        type_vocab_size=0,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    return _scaled(transformers.DebertaV2ForSequenceClassification(config))


@pytest.fixture(scope="module")
def bert(word_tokenizer):
    import torch
    import transformers

    config = transformers.BertConfig(
        vocab_size=len(word_tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        num_labels=1,
        max_position_embeddings=512,
        pad_token_id=0,
    )
    torch.manual_seed(1)
    return _scaled(transformers.BertForSequenceClassification(config))


def _rows(records):
    return [{k: r.get(k, "") for k in ("instruction", "input", "output")} for r in records]


@pytest.mark.parametrize("arch", ["deberta", "bert"])
def test_bundled_sample_matches_mods(arch, request, word_tokenizer):
    model = request.getfixturevalue(arch)
    records = _rows(load_sample().select(range(0, 2000, 80)).to_list())  # 25 rows
    want = [r["reward_score"] for r in mods_reference(model, word_tokenizer, records)]
    engine = RewardModel(model, tokenizer=word_tokenizer, batch_size=7)
    got = RewardSelector(engine, k=1.0).score(Dataset.from_list(records))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    # rewards spread far beyond the tolerance: a wrong pairing would not match by chance
    assert np.std(want) > 20 * 1e-4 * np.abs(want).max()


def test_real_alpaca_records_match_mods(deberta, word_tokenizer, shared_data):
    records = _rows(json.loads((shared_data / "alpaca_pool" / "random_9k.json").read_text())[:40])
    want = [r["reward_score"] for r in mods_reference(deberta, word_tokenizer, records)]
    got = RewardSelector(RewardModel(deberta, tokenizer=word_tokenizer), k=1.0).score(
        Dataset.from_list(records)
    )
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batch_size=st.integers(1, 9),
    seed=st.integers(0, 2**16),
    side=st.sampled_from(["left", "right"]),
    window=st.integers(1, 13),
)
def test_batch_size_order_padding_side_and_window_change_nothing(
    bert, word_tokenizer, batch_size, seed, side, window
):
    records = _rows(load_sample().select(range(12)).to_list())
    q = [r["instruction"] for r in records]
    a = [r["output"] for r in records]
    base = RewardModel(bert, tokenizer=word_tokenizer, batch_size=1).rewards(q, a).values
    order = np.random.default_rng(seed).permutation(len(q))
    old, word_tokenizer.padding_side = word_tokenizer.padding_side, side
    try:
        engine = RewardModel(bert, tokenizer=word_tokenizer, batch_size=batch_size)
        engine.window_rows = window
        got = engine.rewards([q[i] for i in order], [a[i] for i in order])
    finally:
        word_tokenizer.padding_side = old
    np.testing.assert_allclose(got.values, base[order], rtol=1e-5, atol=1e-6)


def test_selector_reads_rows_a_window_at_a_time(deberta, word_tokenizer, monkeypatch):
    """Only ``window_rows`` rows' texts at once; scores and counts as in one window."""
    records = _rows(load_sample().select(range(11)).to_list())
    records[4]["output"] = None  # a row with no response, in the second window
    ds = Dataset.from_list(records)
    whole = RewardModel(deberta, tokenizer=word_tokenizer, batch_size=4)
    with pytest.warns(SftSelectWarning):
        want = RewardSelector(whole, k=1.0).run(ds)
    engine = RewardModel(deberta, tokenizer=word_tokenizer, batch_size=4)
    engine.window_rows = 3
    seen = []
    real = engine.rewards
    monkeypatch.setattr(engine, "rewards", lambda q, a: seen.append(len(q)) or real(q, a))
    with pytest.warns(SftSelectWarning, match="1 of 11 rows"):
        got = RewardSelector(engine, k=1.0).run(ds)
    assert seen == [3, 2, 3, 2]  # four windows; the row without a response is never sent
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-6, equal_nan=True)
    assert np.isnan(got.scores[4]) and got.indices.tolist() == want.indices.tolist()
    assert got.extra["reward"] == want.extra["reward"]
    assert got.extra["reward"]["no_response"] == 1 and got.extra["reward"]["rows"] == 10


def test_selects_the_highest_rewards_and_caches(deberta, word_tokenizer, tmp_path, monkeypatch):
    records = _rows(load_sample().select(range(20)).to_list())
    ds = Dataset.from_list(records)
    want = np.array([r["reward_score"] for r in mods_reference(deberta, word_tokenizer, records)])
    engine = RewardModel(deberta, tokenizer=word_tokenizer, cache_dir=tmp_path)
    sel = RewardSelector(engine, k=5).run(ds)
    assert sorted(sel.indices.tolist()) == sorted(np.argsort(-want, kind="stable")[:5].tolist())
    again = RewardModel(deberta, tokenizer=word_tokenizer, cache_dir=tmp_path)
    monkeypatch.setattr(again, "_forward", lambda *a: pytest.fail("forward on a cached run"))
    assert RewardSelector(again, k=5).run(ds).indices.tolist() == sel.indices.tolist()


def test_too_long_and_missing_rows_are_nan_counted_and_warned(deberta, word_tokenizer):
    ds = Dataset.from_list(
        [
            {"instruction": "Say hi.", "input": "", "output": "Hi."},
            {"instruction": "word " * 80, "input": "", "output": "long"},
            {"instruction": "Nothing.", "input": "", "output": None},
        ]
    )
    engine = RewardModel(deberta, tokenizer=word_tokenizer, max_length=32)
    with pytest.warns(SftSelectWarning, match="2 of 3 rows could not be scored"):
        sel = RewardSelector(engine, k=1).run(ds)
    assert sel.indices.tolist() == [0]
    assert sel.extra["reward"]["too_long"] == 1 and sel.extra["reward"]["no_response"] == 1


def test_chat_rows_use_the_last_turn(bert, word_tokenizer):
    chat = Dataset.from_list(
        [
            {
                "conversations": [
                    {"from": "human", "value": "Name a prime."},
                    {"from": "gpt", "value": "Seven."},
                    {"from": "human", "value": "And an even one?"},
                    {"from": "gpt", "value": "Two."},
                ]
            }
        ]
    )
    got = RewardSelector(RewardModel(bert, tokenizer=word_tokenizer), k=1).score(chat)
    want = mods_reference(
        bert, word_tokenizer, [{"instruction": "And an even one?", "input": "", "output": "Two."}]
    )
    np.testing.assert_allclose(got, [want[0]["reward_score"]], rtol=1e-4)


def test_checkpoint_without_a_trained_head_is_refused(word_tokenizer, tmp_path):
    import transformers

    config = transformers.BertConfig(
        vocab_size=len(word_tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
    )
    transformers.BertModel(config).save_pretrained(tmp_path / "bare")  # no classifier weights
    word_tokenizer.save_pretrained(tmp_path / "bare")
    with pytest.raises(InvalidParameterError, match="no trained classification head"):
        RewardModel(str(tmp_path / "bare")).rewards(["q"], ["a"])


def test_never_loads_in_init():
    sel = RewardSelector("no/such-reward-model", k=2, render="nonsense")
    assert sel.model == "no/such-reward-model"
    with pytest.raises(InvalidParameterError, match="'render'"):
        sel.select_indices(Dataset.from_list([{"instruction": "a", "output": "b"}]))
