"""Length-sorted batches: every non-empty row exactly once, longest first, within the bounds."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from sftselect.models.batching import length_sorted_batches


@given(
    lengths=st.lists(st.integers(0, 300), max_size=60),
    batch_size=st.integers(1, 9),
    max_tokens=st.one_of(st.none(), st.integers(1, 1000)),
)
def test_batches_cover_each_nonempty_row_once_longest_first(lengths, batch_size, max_tokens):
    batches = list(length_sorted_batches(lengths, batch_size, max_tokens=max_tokens))
    flat = np.concatenate(batches) if batches else np.array([], dtype=np.int64)
    assert sorted(flat.tolist()) == [i for i, n in enumerate(lengths) if n > 0]
    seen = [lengths[i] for i in flat.tolist()]
    assert seen == sorted(seen, reverse=True)
    for b in batches:
        assert 1 <= len(b) <= batch_size
        if max_tokens is not None and len(b) > 1:
            assert len(b) * lengths[b[0]] <= max_tokens


def test_equal_lengths_keep_their_order():
    batches = list(length_sorted_batches([3, 5, 3, 5, 3], 2))
    assert [b.tolist() for b in batches] == [[1, 3], [0, 2], [4]]
