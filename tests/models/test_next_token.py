"""NextTokenLogits: equal to one-prompt generate() logits, batch-invariant, cached, resumable."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sftselect.exceptions import InvalidParameterError
from sftselect.models.next_token import NextTokenLogits, token_ids_of
from sftselect.testing import sample_tokenizer, tiny_llama

DIGITS = [str(i) for i in range(1, 7)]


@pytest.fixture(scope="module")
def tok():
    return sample_tokenizer()


@pytest.fixture(scope="module")
def sharp(tok):
    """A tiny LLaMA whose LM head is scaled up, so the digit logits differ by whole units."""
    import torch

    model = tiny_llama(tok, context=128)
    with torch.no_grad():
        model.lm_head.weight.mul_(40.0)
    return model


PROMPTS = [
    "Write a poem about the sea.",
    "What is 2 + 2?",
    "Explain the difference between a list and a tuple in Python, with examples. " * 3,
    "x",
    "Translate 'good morning' into French, German and Italian.",
]


def generate_scores(model, tok, prompt, ids):
    """The logits DEITA's infer_score reads: generate(...).scores[0][0] at the ids."""
    input_ids = tok.encode(prompt, return_tensors="pt")
    out = model.generate(
        input_ids, max_new_tokens=2, return_dict_in_generate=True, output_scores=True
    )
    return out.scores[0][0].detach().cpu().numpy()[ids]


def test_logits_equal_generate_first_step(tok, sharp):
    engine = NextTokenLogits(sharp, tokenizer=tok, batch_size=3)
    ids = token_ids_of(tok, DIGITS, "test")
    got = engine.logits(PROMPTS, ids)
    assert got.counts() == {"rows": 5, "cached": 0, "empty": 0, "too_long": 0, "non_finite": 0}
    for prompt, row in zip(PROMPTS, got.values):
        want = generate_scores(sharp, tok, prompt, ids)
        np.testing.assert_allclose(row, want, rtol=1e-4, atol=1e-5)
    # the digits really differ: a wrong position would not pass the check above by chance
    assert np.ptp(got.values, axis=1).min() > 0.5


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batch_size=st.integers(1, 6),
    order=st.permutations(list(range(len(PROMPTS)))),
    side=st.sampled_from(["left", "right"]),
    window=st.integers(1, 6),
)
def test_batch_size_order_padding_side_and_window_change_nothing(
    tok, sharp, batch_size, order, side, window
):
    ids = token_ids_of(tok, DIGITS, "test")
    base = NextTokenLogits(sharp, tokenizer=tok, batch_size=1).logits(PROMPTS, ids).values
    old = tok.padding_side
    tok.padding_side = side
    try:
        engine = NextTokenLogits(sharp, tokenizer=tok, batch_size=batch_size)
        engine.window_rows = window
        got = engine.logits([PROMPTS[i] for i in order], ids)
    finally:
        tok.padding_side = old
    np.testing.assert_allclose(got.values, base[order], rtol=1e-5, atol=1e-5)


def test_too_long_and_empty_rows_are_nan_and_counted(tok, sharp):
    engine = NextTokenLogits(
        sharp, tokenizer=tok, max_length=12, add_special_tokens=False, batch_size=2
    )
    ids = token_ids_of(tok, DIGITS, "test")
    got = engine.logits(["short one", "", PROMPTS[2]], ids)
    assert got.counts()["empty"] == 1 and got.counts()["too_long"] == 1
    assert np.isfinite(got.values[0]).all()
    assert np.isnan(got.values[1:]).all()


def test_context_limit_defaults_to_the_model(tok, sharp):
    engine = NextTokenLogits(sharp, tokenizer=tok)
    ids = token_ids_of(tok, DIGITS, "test")
    got = engine.logits(["word " * 200], ids)  # > 128 positions
    assert got.too_long.tolist() == [True]


def test_cache_second_run_computes_nothing(tok, sharp, tmp_path, monkeypatch):
    ids = token_ids_of(tok, DIGITS, "test")
    first = NextTokenLogits(sharp, tokenizer=tok, cache_dir=tmp_path).logits(PROMPTS, ids)
    engine = NextTokenLogits(sharp, tokenizer=tok, cache_dir=tmp_path)
    monkeypatch.setattr(engine, "_forward", lambda *a: pytest.fail("forward on a cached run"))
    again = engine.logits(PROMPTS, ids)
    assert again.counts()["cached"] == len(PROMPTS)
    np.testing.assert_array_equal(first.values, again.values)


def test_killed_run_resumes_from_the_batches_it_finished(tok, sharp, tmp_path):
    ids = token_ids_of(tok, DIGITS, "test")
    want = NextTokenLogits(sharp, tokenizer=tok).logits(PROMPTS, ids).values
    engine = NextTokenLogits(sharp, tokenizer=tok, batch_size=2, cache_dir=tmp_path)
    real, calls = engine._forward, []

    def dies_on_second_batch(model, batch):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(model, batch)

    engine._forward = dies_on_second_batch
    with pytest.raises(KeyboardInterrupt):
        engine.logits(PROMPTS, ids)
    resumed = NextTokenLogits(sharp, tokenizer=tok, batch_size=2, cache_dir=tmp_path)
    got = resumed.logits(PROMPTS, ids)
    assert got.counts()["cached"] == 2  # the first batch
    np.testing.assert_allclose(got.values, want, rtol=1e-5, atol=1e-5)


def test_other_weights_or_tokens_never_share_entries(tok, sharp, tmp_path):
    ids = token_ids_of(tok, DIGITS, "test")
    NextTokenLogits(sharp, tokenizer=tok, cache_dir=tmp_path).logits(PROMPTS, ids)
    other = tiny_llama(tok, context=128, random_state=1)
    got = NextTokenLogits(other, tokenizer=tok, cache_dir=tmp_path).logits(PROMPTS, ids)
    assert got.counts()["cached"] == 0
    got = NextTokenLogits(sharp, tokenizer=tok, cache_dir=tmp_path).logits(PROMPTS, ids[::-1])
    assert got.counts()["cached"] == 0


def test_bad_token_ids_and_strings_raise_one_line(tok, sharp):
    engine = NextTokenLogits(sharp, tokenizer=tok)
    with pytest.raises(InvalidParameterError, match="outside the vocabulary"):
        engine.logits(PROMPTS, [len(tok) + 5])
    with pytest.raises(InvalidParameterError, match="token_ids"):
        engine.logits(PROMPTS, [])
    with pytest.raises(InvalidParameterError, match="not a single token"):
        token_ids_of(tok, ["not-a-token-at-all"], "test")


def test_model_without_lm_head_raises(tok):
    base = tiny_llama(tok).model  # the LlamaModel inside: hidden states, no head
    engine = NextTokenLogits(base, tokenizer=tok)
    with pytest.raises(InvalidParameterError, match="no LM head"):
        engine.logits(PROMPTS, [3])


def test_loaded_model_needs_a_tokenizer(sharp):
    with pytest.raises(InvalidParameterError, match="tokenizer"):
        NextTokenLogits(sharp).logits(PROMPTS, [3])


def test_non_finite_logits_are_nan_counted_and_never_cached(tok, tmp_path):
    import torch

    broken = tiny_llama(tok, context=128, random_state=3)
    ids = token_ids_of(tok, DIGITS, "test")
    with torch.no_grad():
        broken.lm_head.weight[ids[0]] = float("nan")
    engine = NextTokenLogits(broken, tokenizer=tok, cache_dir=tmp_path)
    got = engine.logits(PROMPTS[:2], ids)
    assert got.counts()["non_finite"] == 2 and np.isnan(got.values).all()
    again = NextTokenLogits(broken, tokenizer=tok, cache_dir=tmp_path).logits(PROMPTS[:2], ids)
    assert again.counts()["cached"] == 0
