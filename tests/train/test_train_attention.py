"""Segment attention for packed rows: the masked path's result, without its wasted work."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from sftselect import LengthSelector, load_sample  # noqa: E402
from sftselect.prompts.templates import VICUNA_V1_1  # noqa: E402
from sftselect.train import (  # noqa: E402
    PackedCollator,
    TrainConfig,
    conversations,
    encode,
    pack,
    train,
)
from sftselect.train.attention import SEGMENTS, packed_attention, segment_attention  # noqa: E402
from tests.helpers.tiny_llama import spm_tokenizer, tiny_llama, truncate_after_prompt  # noqa: E402


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return spm_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def batch(tok):
    """Two packed rows of the bundled sample's 5 longest records (3 and 2 examples, plus padding)."""
    longest = LengthSelector(k=5).select(load_sample())
    trained = (30, 60, 90, 140, 40)  # answer tokens kept after each first prompt
    examples = [
        truncate_after_prompt(encode(VICUNA_V1_1, tok, c), n)
        for c, n in zip(conversations(longest), trained)
    ]
    assert sum(len(e.input_ids) for e in examples) <= 800
    rows = pack(examples, 400)
    assert len(rows) == 2 and sorted(len(r.lengths) for r in rows) == [2, 3], [
        len(e.input_ids) for e in examples
    ]
    return PackedCollator(0)(rows)


def losses_and_grads(model, batch):
    model.zero_grad()
    out = model(**batch)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.logits.detach(), out.loss.detach(), grads


def test_segments_give_the_masked_paths_logits_and_gradients(tok, batch):
    """Packed rows through segment attention: the same logits, loss and gradients as the
    block-diagonal mask transformers builds for sdpa (GQA model, rows with padding)."""
    model = tiny_llama(tok).train()
    model.config.use_cache = False
    assert model.config._attn_implementation == "sdpa"
    ref_logits, ref_loss, ref_grads = losses_and_grads(model, batch)
    with packed_attention(model) as used:
        assert used == SEGMENTS and model.config._attn_implementation == SEGMENTS
        logits, loss, grads = losses_and_grads(model, batch)
    assert model.config._attn_implementation == "sdpa"
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loss, ref_loss)
    assert grads.keys() == ref_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], atol=1e-5, rtol=1e-4, msg=name)


def test_models_it_cannot_reproduce_keep_their_attention(tok):
    """Eager attention or a sliding window: packed_attention leaves the model as it is."""
    eager = tiny_llama(tok)
    eager.set_attn_implementation("eager")
    with packed_attention(eager) as used:
        assert used == "eager" == eager.config._attn_implementation
    windowed = tiny_llama(tok)
    windowed.config.sliding_window = 64
    with packed_attention(windowed) as used:
        assert used == "sdpa"


def test_refuses_what_it_would_compute_wrongly():
    """A mask, a KV cache, soft-capping or a non-causal module is an error, never ignored."""
    q = torch.zeros(1, 2, 4, 8)

    class Causal:
        is_causal = True

    with pytest.raises(RuntimeError, match="softcap"):
        segment_attention(Causal(), q, q, q, None, softcap=30.0)
    with pytest.raises(RuntimeError, match="carry no attention mask"):
        segment_attention(Causal(), q, q, q, torch.ones(1, 1, 4, 4, dtype=torch.bool))
    with pytest.raises(RuntimeError, match="4 queries for 6 keys"):
        segment_attention(Causal(), q, torch.zeros(1, 2, 6, 8), torch.zeros(1, 2, 6, 8), None)

    class Bidirectional:
        is_causal = False

    with pytest.raises(RuntimeError, match="causal only"):
        segment_attention(Bidirectional(), q, q, q, None)


def test_packed_training_logs_segments_and_saves_plain_sdpa(tok, tmp_path):
    """train(packing=True) runs segment attention, says so in the log, and the saved
    model loads with its own attention (the custom name is never saved)."""
    longest = LengthSelector(k=8).select(load_sample())
    config = TrainConfig(
        max_length=128, max_steps=2, batch_size=2, micro_batch_size=2, use_cpu=True, packing=True
    )
    model = tiny_llama(tok)
    train(model, longest, tmp_path / "m", tokenizer=tok, config=config)
    log = json.loads((tmp_path / "m" / "training_log.json").read_text())
    assert log["attention"] == SEGMENTS and model.config._attn_implementation == "sdpa"
    assert SEGMENTS not in (tmp_path / "m" / "config.json").read_text()
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert reloaded.config._attn_implementation == "sdpa"
    unpacked = train(
        tiny_llama(tok),
        longest,
        tmp_path / "u",
        tokenizer=tok,
        config=TrainConfig(
            max_length=128, max_steps=1, batch_size=2, micro_batch_size=2, use_cpu=True
        ),
    )
    assert unpacked.log["attention"] == "sdpa"
