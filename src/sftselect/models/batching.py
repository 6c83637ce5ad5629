"""Batches of token lists for a forward pass: longest first, padded on the right.

Sorting rows by length before batching makes each batch pad little (the idea that made
``HFEmbedder`` 2.2x faster than the one-text loop); the caller writes each batch's
results back to the rows' own positions, so the order never reaches the output.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .loading import import_torch


def length_sorted_batches(
    lengths: Sequence[int] | np.ndarray, batch_size: int, *, max_tokens: int | None = None
) -> Iterator[np.ndarray]:
    """Positions of the rows in batches, longest rows first; rows of length 0 are left out.

    A batch holds at most ``batch_size`` rows and, when ``max_tokens`` is given, at most
    ``max_tokens`` padded tokens (rows x its longest row), but never fewer than one row.
    The sort is stable, so rows of equal length keep their order.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    order = order[lengths[order] > 0]
    start = 0
    while start < order.size:
        stop = min(start + batch_size, order.size)
        if max_tokens is not None:
            width = int(lengths[order[start]])  # the longest row of this batch comes first
            stop = min(stop, start + max(1, max_tokens // max(width, 1)))
        yield order[start:stop]
        start = stop


def right_padded(ids: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    """``(input_ids, attention_mask)`` long tensors of token lists padded on the right."""
    torch, _ = import_torch("right_padded")
    width = max((len(x) for x in ids), default=0)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, row in enumerate(ids):
        if row:
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
    return input_ids, mask
