"""LogProbScorer: the engine's numbers against a one-example loop, its cache, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from sftselect.exceptions import InvalidParameterError  # noqa: E402
from sftselect.models.logprobs import LogProbScorer, Span  # noqa: E402
from sftselect.testing import sample_tokenizer, tiny_llama  # noqa: E402


@pytest.fixture(scope="module")
def tok():
    return sample_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return tiny_llama(tok, context=64).eval()


@pytest.fixture(scope="module")
def spans():
    from sftselect.data.sample import load_sample

    rows = load_sample().select(range(24)).to_list()
    out = []
    for r in rows:
        prompt = f"{r['instruction']}\n{r['input']}\n" if r["input"] else f"{r['instruction']}\n"
        out.append(Span(prompt + r["output"], prompt, 64))
    out.append(Span("Say nothing.\n", "Say nothing.\n", 64))  # an empty answer
    return out


def one_example(tok, model, span):
    """Per-token NLL of one span, as Cherry's data_analysis.py computes it (one forward each)."""
    ids = tok.encode(span.text, return_tensors="pt", truncation=True, max_length=span.max_length)
    start = max(1, len(tok.encode(span.prefix)))
    with torch.no_grad():
        logits = model(ids).logits
    losses = []
    for i in range(start, ids.shape[1]):
        logp = torch.log_softmax(logits[0, i - 1], dim=-1)
        losses.append(-logp[ids[0, i]].item())
    return np.array(losses)


def test_matches_the_one_example_loop_token_by_token(tok, model, spans):
    """Each scored token's NLL equals the unbatched reference loop's within 1e-4 relative
    (with a tokenizer that has no pad token: padding uses UNK under the attention mask)."""
    assert tok.pad_token_id is None
    res = LogProbScorer(model, tok, batch_size=5, show_progress=False).score(spans, per_token=True)
    for i, span in enumerate(spans):
        want = one_example(tok, model, span)
        assert res.n_tokens[i] == want.size
        np.testing.assert_allclose(res.token_nll[i], want, rtol=1e-4, atol=1e-6)
        if want.size:
            np.testing.assert_allclose(res.nll_sum[i], want.sum(), rtol=1e-4)
    assert res.n_tokens[-1] == 0 and np.isnan(res.mean_nll()[-1])  # empty answer: NaN, no default


def test_head_only_path_equals_the_full_forward(tok, model, spans):
    scorer = LogProbScorer(model, tok, batch_size=8, show_progress=False)
    fast = scorer.score(spans)
    assert scorer.head_only()
    scorer._head_only = False  # the full-logits path
    full = scorer.score(spans)
    np.testing.assert_allclose(fast.nll_sum, full.nll_sum, rtol=1e-5)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batch_size=st.integers(1, 9),
    seed=st.integers(0, 10_000),
    left=st.booleans(),
    chunk=st.integers(1, 30),
)
def test_batch_size_order_padding_side_and_chunks_never_change_a_score(
    tok, model, spans, batch_size, seed, left, chunk
):
    base = LogProbScorer(model, tok, batch_size=1, show_progress=False).score(spans).nll_sum
    order = np.random.default_rng(seed).permutation(len(spans))
    old_side = tok.padding_side
    tok.padding_side = "left" if left else "right"
    try:
        got = (
            LogProbScorer(model, tok, batch_size=batch_size, chunk_rows=chunk, show_progress=False)
            .score(iter([spans[i] for i in order]), total=len(spans))
            .nll_sum
        )
    finally:
        tok.padding_side = old_side
    np.testing.assert_allclose(got, base[order], rtol=1e-4, equal_nan=True)


def test_cache_rerun_reads_everything_and_a_killed_run_keeps_finished_batches(
    tok, model, spans, tmp_path, monkeypatch
):
    first = LogProbScorer(model, tok, batch_size=4, cache_dir=tmp_path / "a", show_progress=False)
    want = first.score(spans)
    assert want.n_cached == 0
    again = LogProbScorer(model, tok, batch_size=4, cache_dir=tmp_path / "a", show_progress=False)
    calls = []
    monkeypatch.setattr(again, "_forward", lambda *a: calls.append(1))
    got = again.score(spans)
    assert got.n_cached == len(spans) and not calls  # no forward pass at all
    np.testing.assert_array_equal(got.nll_sum, want.nll_sum)
    np.testing.assert_array_equal(got.n_tokens, want.n_tokens)

    # a run killed after two batches keeps them; the re-run computes only the rest
    killed = LogProbScorer(model, tok, batch_size=4, cache_dir=tmp_path / "b", show_progress=False)
    real = killed._forward
    done = []

    def dies(*args):
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append(len(args[2]))
        return real(*args)

    monkeypatch.setattr(killed, "_forward", dies)
    with pytest.raises(KeyboardInterrupt):
        killed.score(spans)
    rerun = LogProbScorer(model, tok, batch_size=4, cache_dir=tmp_path / "b", show_progress=False)
    res = rerun.score(spans)
    assert res.n_cached == sum(done)  # the two finished batches
    np.testing.assert_allclose(res.nll_sum, want.nll_sum, rtol=1e-6, equal_nan=True)


def test_cache_key_covers_weights_and_text(tok, spans, tmp_path):
    a = LogProbScorer(tiny_llama(tok, context=64), tok, cache_dir=tmp_path, show_progress=False)
    b = LogProbScorer(
        tiny_llama(tok, context=64, random_state=1), tok, cache_dir=tmp_path, show_progress=False
    )
    a.score(spans[:3])
    assert b.score(spans[:3]).n_cached == 0  # other weights: no shared entry
    edited = [Span(s.text + "!", s.prefix, s.max_length) for s in spans[:3]]
    assert a.score(edited).n_cached == 0
    assert a.cached_count(spans[:3]) == 3


def test_prompt_longer_than_context_is_truncated_counted_and_nan(tok, model):
    prompt = "word " * 200
    res = LogProbScorer(model, tok, show_progress=False).score([Span(prompt + "answer", prompt)])
    assert res.truncated[0]  # cut at the model's context (64)
    assert res.n_tokens[0] == 0 and np.isnan(res.mean_nll()[0])


def test_model_without_lm_head_is_a_one_line_error(tok, model):
    with pytest.raises(InvalidParameterError, match="no LM head") as err:
        LogProbScorer(model.model, tok, show_progress=False).score([Span("a b c", "a")])
    assert "\n" not in str(err.value)


def test_non_finite_loss_is_nan_never_a_number(tok, spans):
    broken = tiny_llama(tok, context=64).eval()
    with torch.no_grad():
        broken.lm_head.weight[5, 0] = float("nan")
    res = LogProbScorer(broken, tok, show_progress=False).score(spans[:4])
    assert np.isnan(res.mean_nll()).all()


def test_quiet_when_asked(tok, model, spans, capsys):
    LogProbScorer(model, tok, show_progress=False).score(spans[:3])
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_invalid_batch_size_is_named(tok, model, spans):
    with pytest.raises(InvalidParameterError, match="batch_size"):
        LogProbScorer(model, tok, batch_size=0, show_progress=False).score(spans[:1])
