"""Whitespace word counts read straight from an Arrow string array's UTF-8 bytes.

``count_words(arr)`` equals ``[len(s.split()) for s in arr]`` on valid UTF-8
(Python's whitespace set, the multi-byte characters included) and runs a few
NumPy passes over a megabyte of text at a time instead of building one Python
string per row; ``WORD_RE`` is the same rule for Arrow's regex kernel, used
for arrays with nulls or of other types.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["WORD_RE", "count_words", "plain_strings"]

# Python's str.isspace() characters, spelled for RE2 so Arrow splits exactly as str.split().
_PY_WHITESPACE = (
    r"\t\n\x0b\x0c\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}"
    r"\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
)
_WORD_RE = f"[^{_PY_WHITESPACE}]+"
# The same set as code points: 0x09-0x0D and 0x1C-0x20 are the ASCII ones; the rest
# take two (U+0085, U+00A0) or three (the others) bytes in UTF-8.
_PY_WHITESPACE_NON_ASCII = np.array(
    [0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000],
    dtype=np.int64,
)
# Bytes of values processed per step by the vectorised word counter (bounds its memory).
_WORD_CHUNK_BYTES = 1 << 20
# Code points below U+4000 (the reach of lead bytes 0xC2-0xE3) that Python calls whitespace.
_IS_PY_WHITESPACE = np.zeros(0x4000, dtype=bool)
_IS_PY_WHITESPACE[_PY_WHITESPACE_NON_ASCII] = True
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
# _HIGH_BITS[r]: the bits of a np.packbits byte that stand for its first r elements.
_HIGH_BITS = np.array([(0xFF << (8 - r)) & 0xFF for r in range(8)], dtype=np.uint8)
WORD_RE = _WORD_RE


def plain_strings(arr: pa.Array) -> bool:
    """A string / large_string array without nulls: what :func:`count_words` reads."""
    return (
        pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)
    ) and arr.null_count == 0


def _popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each byte of the uint8 array ``x``."""
    if hasattr(np, "bitwise_count"):  # NumPy >= 2.0
        return np.bitwise_count(x)
    return _POPCOUNT[x]


def count_words(arr: pa.Array) -> np.ndarray:
    """``len(s.split())`` for every string of ``arr``, read from its UTF-8 bytes.

    A word starts at every non-whitespace byte that begins its string or follows
    a whitespace byte; the bytes of a multi-byte whitespace character all count
    as whitespace. This is exactly ``str.split()`` on valid UTF-8, and runs a few
    NumPy passes over ``_WORD_CHUNK_BYTES`` of text at a time.
    """
    n = len(arr)
    out = np.zeros(n, dtype=np.int64)
    if n == 0:
        return out
    _, offsets_buf, data_buf = arr.buffers()
    width = 8 if pa.types.is_large_string(arr.type) else 4
    offsets = np.frombuffer(
        offsets_buf,
        dtype=np.int64 if width == 8 else np.int32,
        count=n + 1,
        offset=arr.offset * width,
    ).astype(np.int64)
    if data_buf is None or offsets[n] == offsets[0]:
        return out
    data = np.frombuffer(data_buf, dtype=np.uint8)
    start = 0
    while start < n:
        stop = int(np.searchsorted(offsets, offsets[start] + _WORD_CHUNK_BYTES, side="right")) - 1
        stop = min(max(stop, start + 1), n)
        lo, hi = int(offsets[start]), int(offsets[stop])
        if hi > lo:
            out[start:stop] = _count_words_in(data[lo:hi], offsets[start : stop + 1] - lo)
        start = stop
    return out


def _count_words_in(data: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Word counts of the strings ``data[bounds[i]:bounds[i + 1]]`` (``data`` non-empty)."""
    # ASCII whitespace: 0x09-0x0D and 0x1C-0x20 (unsigned wrap-around keeps it to two tests).
    shifted = np.subtract(data, 0x09, dtype=np.uint8)
    ws = shifted <= 0x0D - 0x09
    np.subtract(data, 0x1C, out=shifted)
    ws |= shifted <= 0x20 - 0x1C
    _mark_non_ascii_whitespace(data, ws)
    # One bit per byte (most significant first): set where a byte is not whitespace
    # and the byte before it is, i.e. where a word starts inside a string.
    packed = np.packbits(ws)
    after_ws = packed >> 1
    after_ws[1:] |= packed[:-1] << 7
    after_ws &= ~packed
    before = np.zeros(packed.size + 1, dtype=np.int64)  # such bits in the bytes of packed[:i]
    np.cumsum(_popcount(after_ws), dtype=np.int64, out=before[1:])

    def upto(x: np.ndarray) -> np.ndarray:  # such bits for the bytes data[:x]
        q = x >> 3
        tail = after_ws[np.minimum(q, packed.size - 1)] & _HIGH_BITS[x & 7]
        return before[q] + _POPCOUNT[tail]

    starts, stops = bounds[:-1], bounds[1:]
    inner = np.minimum(starts + 1, stops)
    # A non-empty string's first byte starts a word unless it is whitespace.
    first = (stops > starts) & ~ws[np.minimum(starts, data.size - 1)]
    return upto(stops) - upto(inner) + first


def _mark_non_ascii_whitespace(data: np.ndarray, ws: np.ndarray) -> None:
    """Set ``ws`` on every byte of the multi-byte characters Python calls whitespace."""
    # Their lead bytes are 0xC2 (U+0080-U+00BF) and 0xE1-0xE3 (U+1000-U+3FFF). Bytes
    # >= 0xC2 are rare in most text: find the 8-byte blocks holding any first.
    high = data >= 0xC2
    whole = high.size - high.size % 8
    blocks = np.flatnonzero(high[:whole].view(np.uint64) != 0)
    pos = (blocks[:, None] * 8 + np.arange(8)).ravel()
    pos = np.concatenate([pos, np.arange(whole, high.size)])
    lead = data[pos]
    keep = (lead == 0xC2) | ((lead >= 0xE1) & (lead <= 0xE3))
    pos, lead = pos[keep], lead[keep].astype(np.int64)
    if pos.size == 0:
        return
    last = data.size - 1
    b1 = data[np.minimum(pos + 1, last)].astype(np.int64)
    b2 = data[np.minimum(pos + 2, last)].astype(np.int64)
    two = lead == 0xC2
    cont1 = (b1 & 0xC0) == 0x80
    cont2 = two | ((b2 & 0xC0) == 0x80)
    code = np.where(
        two,
        ((lead & 0x1F) << 6) | (b1 & 0x3F),
        ((lead & 0x0F) << 12) | ((b1 & 0x3F) << 6) | (b2 & 0x3F),
    )
    hit = cont1 & cont2 & _IS_PY_WHITESPACE[code]
    if not hit.any():
        return
    pos, two = pos[hit], two[hit]
    ws[pos] = True
    ws[pos + 1] = True
    ws[pos[~two] + 2] = True
