"""Batches for training: right padding, or packing several examples into one row.

**Padding** (:class:`PadCollator`): each batch is padded on the right to its
longest example; padding has attention mask 0 and label ``-100``.

**Packing** (:func:`pack`, :class:`PackedCollator`): examples are placed whole
(never split) into rows of at most ``max_length`` tokens by best-fit
decreasing, and each row carries ``position_ids`` that restart at 0 for every
example. The collator passes no ``attention_mask``: transformers (>= 4.53)
then reads the restarts in ``position_ids`` as sequence boundaries and builds a
block-diagonal causal mask (``masking_utils.find_packed_sequence_indices``), so
no token attends to another example; the loss of a packed row equals the sum
of its examples' losses (the tests check it). This needs the model to run
without a KV cache in training (the trainer sets ``config.use_cache=False``)
and an attention that takes a 4-D mask (``sdpa``, ``eager``) or flash
attention (which reads ``position_ids`` itself). The padding at the end of a
packed batch is a segment of its own, with label ``-100``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from ..exceptions import DataFormatError
from .examples import IGNORE_INDEX, Encoded

__all__ = ["PackedCollator", "PackedRow", "PadCollator", "pack"]


@dataclass(frozen=True)
class PackedRow:
    """Several examples in one row: ids, labels, and the length of each example."""

    input_ids: list[int]
    labels: list[int]
    lengths: tuple[int, ...]


def pack(examples: list[Encoded], max_length: int) -> list[PackedRow]:
    """Place whole examples into rows of at most ``max_length`` tokens (best-fit decreasing).

    Parameters
    ----------
    examples : list of Encoded
        Each at most ``max_length`` tokens long (truncate them first).
    max_length : int
        Tokens per row at most.

    Returns
    -------
    list of PackedRow
        Rows in the order they were opened; each example appears in exactly
        one row, in full.
    """
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i].input_ids))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (remaining capacity, bin), sorted
    for i in order:
        n = len(examples[i].input_ids)
        if n > max_length:
            raise DataFormatError(
                f"Example {i} has {n} tokens; expected at most max_length={max_length} "
                "(truncate the examples first)."
            )
        k = bisect.bisect_left(free, (n, -1))
        if k < len(free):
            remaining, b = free.pop(k)
        else:
            b, remaining = len(bins), max_length
            bins.append([])
        bins[b].append(i)
        if remaining - n > 0:
            bisect.insort(free, (remaining - n, b))
    rows = []
    for members in bins:
        ids: list[int] = []
        labels: list[int] = []
        for i in members:
            ids += examples[i].input_ids
            labels += examples[i].labels
        rows.append(PackedRow(ids, labels, tuple(len(examples[i].input_ids) for i in members)))
    return rows


@dataclass(frozen=True)
class PadCollator:
    """Right-pad a list of :class:`Encoded` to the longest; labels of padding are -100."""

    pad_id: int

    def __call__(self, batch: list[Any]) -> dict[str, Any]:
        import torch

        width = max(len(ex.input_ids) for ex in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, ex in enumerate(batch):
            n = len(ex.input_ids)
            ids[r, :n] = torch.tensor(ex.input_ids, dtype=torch.long)
            labels[r, :n] = torch.tensor(ex.labels, dtype=torch.long)
            mask[r, :n] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@dataclass(frozen=True)
class PackedCollator:
    """Batch :class:`PackedRow` objects with per-example ``position_ids`` and no attention mask."""

    pad_id: int

    def __call__(self, batch: list[Any]) -> dict[str, Any]:
        import torch

        width = max(len(row.input_ids) for row in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        positions = torch.zeros((len(batch), width), dtype=torch.long)
        for r, row in enumerate(batch):
            n = len(row.input_ids)
            ids[r, :n] = torch.tensor(row.input_ids, dtype=torch.long)
            labels[r, :n] = torch.tensor(row.labels, dtype=torch.long)
            pos = [p for length in row.lengths for p in range(length)]
            pos += range(width - n)  # the padding is a segment of its own
            positions[r] = torch.tensor(pos, dtype=torch.long)
        return {"input_ids": ids, "position_ids": positions, "labels": labels}
