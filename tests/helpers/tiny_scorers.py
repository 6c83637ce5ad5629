"""Tiny model-based scorers for the conformance suite: built once per process, no hub."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile


@functools.cache
def _tokenizer():
    from sftselect.testing import sample_tokenizer

    return sample_tokenizer()


@functools.cache
def _causal_lm():
    from sftselect.testing import tiny_llama

    return tiny_llama(_tokenizer(), context=1024)


@functools.cache
def _reward_lm():
    import torch
    import transformers

    tok = _tokenizer()
    config = {
        k: v for k, v in _causal_lm().config.to_dict().items() if k not in ("id2label", "label2id")
    }
    config.update(num_labels=1, pad_token_id=tok.unk_token_id)
    torch.manual_seed(0)
    return transformers.LlamaForSequenceClassification(transformers.LlamaConfig(**config)).eval()


@functools.cache
def _cache_dir() -> str:
    """One score cache per process: the suite runs each selector several times on the same
    rows, and the repeats read the cache (which the suite thereby checks)."""
    folder = tempfile.mkdtemp(prefix="sftselect-conformance-scores-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # nothing left behind
    return folder


def next_token_engine():
    """A NextTokenLogits over a tiny random LLaMA (one model object for every case)."""
    from sftselect.models.next_token import NextTokenLogits

    return NextTokenLogits(
        _causal_lm(), tokenizer=_tokenizer(), batch_size=64, cache_dir=_cache_dir()
    )


def reward_engine():
    """A RewardModel over a tiny random LLaMA sequence classifier."""
    from sftselect.models.reward import RewardModel

    return RewardModel(_reward_lm(), tokenizer=_tokenizer(), batch_size=64, cache_dir=_cache_dir())
