"""Packed rows attended one example at a time: no attention across examples, no wasted work.

A packed row (:mod:`sftselect.train.packing`) holds several examples whose
``position_ids`` restart at 0. With ``attn_implementation="sdpa"``,
transformers reads those restarts and builds a block-diagonal ``L x L`` mask,
so a 2,048-token row still computes all 2,048 x 2,048 attention scores, most
of them masked, and SDPA cannot take its causal fast path (a mask rules it
out). :func:`segment_attention` instead runs causal SDPA on each example's
segment of the row: the same result (tested against the masked path, logits
and gradients), with ``sum(l_i**2)`` scores instead of ``(sum l_i)**2``.

:func:`packed_attention` switches a model to it for the length of a packed
training run and back afterwards (the saved model never names it). It is used
only where it computes exactly what the model would: a causal model on
``sdpa`` with no sliding window and no logit soft-capping. Flash-attention
implementations already read packed ``position_ids`` natively and are left
alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["SEGMENTS", "packed_attention", "segment_attention"]

#: The name under which :func:`segment_attention` is registered with transformers.
SEGMENTS = "sftselect_segments"

# keyword arguments that change attention in ways causal SDPA per segment does not do
_UNSUPPORTED = ("softcap", "sliding_window", "s_aux", "position_bias")


def segment_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """Causal SDPA over each segment of each row (a transformers attention function).

    Segments start wherever ``position_ids`` does not go up by one, as in
    transformers' own packed-sequence detection; without ``position_ids`` a
    row is one segment. Returns ``(output of shape (batch, length, heads,
    head_dim), None)`` like transformers' ``sdpa_attention_forward``.
    """
    import torch
    import torch.nn.functional as F

    bad = [name for name in _UNSUPPORTED if kwargs.get(name) is not None]
    if bad:
        raise RuntimeError(f"segment attention cannot apply {', '.join(bad)}; use 'sdpa'.")
    if attention_mask is not None:
        raise RuntimeError(
            "segment attention is for packed rows, which carry no attention mask; got one."
        )
    if is_causal is False or not getattr(module, "is_causal", True):
        raise RuntimeError("segment attention is causal only; this attention is not.")
    length = query.shape[2]
    if key.shape[2] != length:
        raise RuntimeError(
            "segment attention runs on whole rows in training (no KV cache); got "
            f"{length} queries for {key.shape[2]} keys."
        )
    groups = getattr(module, "num_key_value_groups", 1)
    if groups > 1:
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    positions = kwargs.get("position_ids")
    rows = []
    for b in range(query.shape[0]):
        if positions is None:
            cuts = [0, length]
        else:
            row = positions[b if positions.shape[0] > 1 else 0]
            starts = torch.nonzero(row[1:] - row[:-1] != 1).flatten() + 1
            cuts = [0, *starts.tolist(), length]
        parts = [
            F.scaled_dot_product_attention(
                query[b : b + 1, :, s:e],
                key[b : b + 1, :, s:e],
                value[b : b + 1, :, s:e],
                dropout_p=dropout,
                scale=scaling,
                is_causal=True,
            )
            for s, e in itertools.pairwise(cuts)
        ]
        rows.append(parts[0] if len(parts) == 1 else torch.cat(parts, dim=2))
    out = torch.cat(rows, dim=0) if len(rows) > 1 else rows[0]
    return out.transpose(1, 2).contiguous(), None


def _eligible(model: Any) -> bool:
    config = model.config
    return (
        getattr(config, "_attn_implementation", None) == "sdpa"
        and getattr(config, "sliding_window", None) is None
        and getattr(config, "attn_logit_softcapping", None) is None
        and not getattr(config, "is_encoder_decoder", False)
    )


@contextmanager
def packed_attention(model: Any) -> Iterator[str]:
    """Run ``model`` with :func:`segment_attention` inside the block when it applies
    (see the module docstring), and yield the attention in use."""
    if not _eligible(model):
        yield str(getattr(model.config, "_attn_implementation", None))
        return
    from transformers import AttentionInterface

    if SEGMENTS not in AttentionInterface._global_mapping:
        AttentionInterface.register(SEGMENTS, segment_attention)
    model.set_attn_implementation(SEGMENTS)
    try:
        yield SEGMENTS
    finally:
        model.set_attn_implementation("sdpa")
