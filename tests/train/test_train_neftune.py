"""NEFTune noise: bounded by alpha / sqrt(length * d) for the configured length, as transformers' otherwise."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from sftselect.exceptions import InvalidParameterError  # noqa: E402
from sftselect.train import TrainConfig, long_is_more  # noqa: E402
from sftselect.train.neftune import neftune, noise_bound  # noqa: E402


def tiny(vocab: int = 64, width: int = 32):
    config = transformers.LlamaConfig(
        hidden_size=width,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=vocab,
        max_position_embeddings=4096,
    )
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config)


def noise_of(model, ids):
    embeddings = model.get_input_embeddings()
    clean = embeddings.weight[ids].detach()  # the lookup itself, without the forward hook
    return embeddings(ids).detach() - clean


def test_fixed_length_noise_does_not_depend_on_the_batch_width():
    """With length=2048 every batch gets noise up to alpha/sqrt(2048 d), whatever its width."""
    model = tiny()
    model.train()
    bound = noise_bound(15.0, 2048, 32)
    assert bound == pytest.approx(15.0 / math.sqrt(2048 * 32))
    with neftune(model, 15.0, 2048):
        for width in (8, 300):
            noise = noise_of(model, torch.randint(0, 64, (2, width)))
            assert noise.abs().max().item() <= bound * (1 + 1e-6)
            assert noise.abs().max().item() > 0.9 * bound  # uniform: the bound is reached
    assert noise_of(model, torch.randint(0, 64, (2, 8))).abs().max().item() == 0.0  # removed


def test_batch_width_noise_equals_transformers_neftune():
    """length=None draws exactly transformers' NEFTune noise (scaled by the batch's width)."""
    from transformers.integrations.neftune import neftune_post_forward_hook

    model = tiny()
    model.train()
    ids = torch.randint(0, 64, (2, 10))
    torch.manual_seed(7)
    with neftune(model, 5.0, None):
        ours = model.get_input_embeddings()(ids).detach()
    embeddings = model.get_input_embeddings()
    embeddings.neftune_noise_alpha = 5.0
    handle = embeddings.register_forward_hook(neftune_post_forward_hook)
    torch.manual_seed(7)
    theirs = embeddings(ids).detach()
    handle.remove()
    assert torch.allclose(ours, theirs)


def test_no_noise_in_eval_mode():
    """The hook adds nothing while the model is in eval mode."""
    model = tiny()
    model.eval()
    with neftune(model, 15.0, 2048):
        assert noise_of(model, torch.randint(0, 64, (1, 5))).abs().max().item() == 0.0


def test_the_paper_preset_scales_for_max_length_and_the_setting_is_checked():
    """long_is_more scales NEFTune for its max_length (2048, the script's padding); bad lengths are refused."""
    config = long_is_more()
    assert config.neftune_length == "max_length" and config.neftune_scale_length() == 2048
    assert TrainConfig().neftune_scale_length() is None
    for bad in (0, -5, "batch", 2.5, True):
        with pytest.raises(
            InvalidParameterError, match="'neftune_length' parameter of TrainConfig"
        ):
            TrainConfig(neftune_length=bad).validate()
