"""Length units: how long a response is.

=================== ======================================================
unit                what is counted
=================== ======================================================
``"chars"``         Unicode code points (Python's ``len``), on Arrow
``"words"``         whitespace-separated words (Python's ``str.split()``),
                    on Arrow
``"nltk_words"``    NLTK word tokens: Punkt sentence split, then NLTK's
                    Treebank-style tokenizer per sentence (the paper's measure)
``"tiktoken:NAME"`` tokens of a tiktoken encoding (``encode_ordinary``)
``"hf:PATH"``       tokens of a Hugging Face tokenizer (no special tokens)
an object           a ``tiktoken.Encoding``, a ``transformers`` tokenizer, a
                    ``tokenizers.Tokenizer``, or any :class:`LengthUnit`
=================== ======================================================

Character counts run as an Arrow compute kernel over the whole column, word
counts as a few NumPy passes over its UTF-8 bytes (a megabyte at a time).
Token units run the tokenizer once per text, optionally over ``num_proc``
processes (contiguous chunks, results concatenated in order).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..exceptions import InvalidParameterError, MissingExtraError

__all__ = [
    "Characters",
    "HFTokens",
    "LengthUnit",
    "NltkWords",
    "TiktokenTokens",
    "Words",
    "resolve_unit",
]

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


@runtime_checkable
class LengthUnit(Protocol):
    """Anything that measures a batch of texts: ``measure(texts) -> int64 array``."""

    name: str

    def measure(self, texts: pa.Array, *, num_proc: int = 1, batch_size: int = 1000) -> np.ndarray:
        """One non-negative length per text of the Arrow string array ``texts``."""


class Characters:
    """Unicode code points, as Python's ``len(text)``."""

    name = "chars"

    def measure(self, texts: pa.Array, *, num_proc: int = 1, batch_size: int = 1000) -> np.ndarray:
        return pc.utf8_length(texts).to_numpy(zero_copy_only=False).astype(np.int64)

    def __repr__(self) -> str:
        return "Characters()"


class Words:
    """Whitespace-separated words, as ``len(text.split())``."""

    name = "words"

    def measure(self, texts: pa.Array, *, num_proc: int = 1, batch_size: int = 1000) -> np.ndarray:
        if isinstance(texts, pa.ChunkedArray) and all(_plain_strings(c) for c in texts.chunks):
            parts = [_count_words(c) for c in texts.chunks]
            return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        if isinstance(texts, pa.Array) and _plain_strings(texts):
            return _count_words(texts)
        # Nulls or other array types: the Arrow regex kernel (same counts, slower).
        counts = pc.count_substring_regex(texts, pattern=_WORD_RE)
        return counts.to_numpy(zero_copy_only=False).astype(np.int64)

    def __repr__(self) -> str:
        return "Words()"


def _plain_strings(arr: pa.Array) -> bool:
    """A string / large_string array without nulls: what :func:`_count_words` reads."""
    return (
        pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)
    ) and arr.null_count == 0


def _popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each byte of the uint8 array ``x``."""
    if hasattr(np, "bitwise_count"):  # NumPy >= 2.0
        return np.bitwise_count(x)
    return _POPCOUNT[x]


def _count_words(arr: pa.Array) -> np.ndarray:
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


def _measure_chunk(fn: Callable[[list[str]], np.ndarray], texts: list[str]) -> np.ndarray:
    return fn(texts)


def _texts_slice(texts: Any, start: int, stop: int) -> list[str]:
    """``texts[start:stop]`` as Python strings (``texts``: a list or an Arrow string array)."""
    if isinstance(texts, (pa.Array, pa.ChunkedArray)):
        return texts.slice(start, stop - start).to_pylist()
    return texts[start:stop]


# Set in each forked worker by _set_worker_job: the function and the texts it measures.
_WORKER_JOB: tuple[Callable[[list[str]], np.ndarray], Any] | None = None


def _set_worker_job(fn: Callable[[list[str]], np.ndarray], texts: Any) -> None:
    global _WORKER_JOB
    _WORKER_JOB = (fn, texts)
    # A forked child has no copy of the parent's Rust thread pool: a Hugging Face
    # tokenizer that goes on using it hangs (it does when TOKENIZERS_PARALLELISM=true
    # was set explicitly). Each worker is one of num_proc processes anyway.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def _run_worker_slice(start: int, stop: int) -> np.ndarray:
    fn, texts = _WORKER_JOB  # type: ignore[misc]
    return np.asarray(fn(_texts_slice(texts, start, stop)), dtype=np.int64)


def map_in_processes(
    fn: Callable[[list[str]], np.ndarray], texts: list[str] | pa.Array, num_proc: int
) -> np.ndarray:
    """Apply ``fn`` to contiguous chunks of ``texts`` over ``num_proc`` processes.

    ``texts`` is a list of strings or an Arrow string array. Where processes can
    be forked, the workers inherit ``fn`` and ``texts`` from this process
    (nothing is pickled on the way in) and each turns only its own chunk into
    Python strings; elsewhere the chunks are pickled to spawned workers.
    """
    n = len(texts)
    if num_proc <= 1 or n < 2 * num_proc:
        return np.asarray(fn(_texts_slice(texts, 0, n)), dtype=np.int64)
    bounds = np.linspace(0, n, num_proc + 1).astype(int).tolist()
    starts, stops = bounds[:-1], bounds[1:]
    if "fork" in mp.get_all_start_methods():
        pool = ProcessPoolExecutor(
            max_workers=num_proc,
            mp_context=mp.get_context("fork"),
            initializer=_set_worker_job,
            initargs=(fn, texts),
        )
        with pool:
            parts = list(pool.map(_run_worker_slice, starts, stops))
    else:
        chunks = [_texts_slice(texts, a, b) for a, b in zip(starts, stops)]
        with ProcessPoolExecutor(max_workers=num_proc, mp_context=mp.get_context("spawn")) as pool:
            parts = list(pool.map(_measure_chunk, [fn] * len(chunks), chunks))
    return np.concatenate(parts).astype(np.int64, copy=False)


class _PerTextUnit:
    """A unit that calls a Python tokenizer on each text."""

    name = "tokens"

    def _count(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def measure(self, texts: pa.Array, *, num_proc: int = 1, batch_size: int = 1000) -> np.ndarray:
        return map_in_processes(self._count, texts, num_proc)


class NltkWords(_PerTextUnit):
    """NLTK word tokens (Punkt sentences, then Treebank-style words): the paper's unit."""

    name = "nltk_words"

    def _count(self, texts: list[str]) -> np.ndarray:
        from .nltk_words import count_nltk_words

        return count_nltk_words(texts)

    def __repr__(self) -> str:
        return "NltkWords()"


class TiktokenTokens(_PerTextUnit):
    """Tokens of a tiktoken encoding, counted with ``encode_ordinary``.

    ``encoding`` is an encoding name (``"cl100k_base"``, ``"o200k_base"``) or a
    ``tiktoken.Encoding``. The encoding is loaded when first used.
    """

    def __init__(self, encoding: Any) -> None:
        self.encoding = encoding
        self.name = f"tiktoken:{getattr(encoding, 'name', encoding)}"

    def _encoding(self) -> Any:
        if not isinstance(self.encoding, str):
            return self.encoding
        try:
            import tiktoken
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingExtraError(
                "The tiktoken unit needs tiktoken: pip install 'sftselect[tiktoken]'."
            ) from exc
        return tiktoken.get_encoding(self.encoding)

    def _count(self, texts: list[str]) -> np.ndarray:
        encode = self._encoding().encode_ordinary
        return np.fromiter((len(encode(t)) for t in texts), dtype=np.int64, count=len(texts))

    def __repr__(self) -> str:
        return f"TiktokenTokens({self.encoding!r})"


class HFTokens(_PerTextUnit):
    """Tokens of a Hugging Face tokenizer, without special tokens.

    ``tokenizer`` is a ``transformers`` tokenizer, a ``tokenizers.Tokenizer``,
    or a local path / hub name given to ``AutoTokenizer.from_pretrained`` when
    first used. Texts are encoded ``batch_size`` at a time.
    """

    def __init__(self, tokenizer: Any, batch_size: int = 1000) -> None:
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        label = (
            tokenizer
            if isinstance(tokenizer, (str, os.PathLike))
            else getattr(tokenizer, "name_or_path", type(tokenizer).__name__)
        )
        self.name = f"hf:{label}"

    def _tokenizer(self) -> Any:
        if not isinstance(self.tokenizer, (str, os.PathLike)):
            return self.tokenizer
        try:
            from transformers import AutoTokenizer
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingExtraError(
                "A Hugging Face tokenizer unit needs transformers: pip install 'sftselect[hf]'."
            ) from exc
        self.tokenizer = AutoTokenizer.from_pretrained(os.fspath(self.tokenizer))
        return self.tokenizer

    def _count(self, texts: list[str]) -> np.ndarray:
        tok = self._tokenizer()
        out = np.empty(len(texts), dtype=np.int64)
        step = max(1, int(self.batch_size))
        if hasattr(tok, "encode_batch") and not hasattr(tok, "batch_decode"):
            # A tokenizers.Tokenizer; encode_batch_fast gives the same ids without offsets.
            encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
            for start in range(0, len(texts), step):
                batch = texts[start : start + step]
                out[start : start + len(batch)] = [
                    len(e) for e in encode(batch, add_special_tokens=False)
                ]
            return out
        direct = None
        if len(texts) > step:
            # Probe: one call through tok() (which also sets the backend up exactly as
            # the calls below would), then the direct Rust call must agree with it.
            head = texts[: min(step, _HF_PROBE)]
            ref = [len(x) for x in self._call(tok, head)]
            direct = _direct_encoder(tok)
            if (
                direct is not None
                and [len(e) for e in direct(head, add_special_tokens=False)] != ref
            ):
                direct = None
        for start in range(0, len(texts), step):
            batch = texts[start : start + step]
            if direct is not None:
                counts = [len(e) for e in direct(batch, add_special_tokens=False)]
                if not _would_warn_too_long(tok, counts):
                    out[start : start + len(batch)] = counts
                    continue
            out[start : start + len(batch)] = [len(x) for x in self._call(tok, batch)]
        return out

    @staticmethod
    def _call(tok: Any, batch: list[str]) -> list[list[int]]:
        return tok(
            batch,
            add_special_tokens=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]

    def __repr__(self) -> str:
        return f"HFTokens({self.tokenizer!r})"


# What a transformers tokenizer runs between tok(texts) and its Rust backend.
_HF_ENCODE_PATH = (
    "__call__",
    "_call_one",
    "encode_plus",
    "batch_encode_plus",
    "_encode_plus",
    "_batch_encode_plus",
    "prepare_for_tokenization",
    "_switch_to_input_mode",
)
_HF_TOO_LONG_KEY = "sequence-length-is-longer-than-the-specified-maximum"
_HF_PROBE = 64  # texts encoded both ways before the direct Rust call is trusted


def _direct_encoder(tok: Any) -> Callable[..., Any] | None:
    """The backend's ``encode_batch_fast`` when ``tok(texts)`` merely wraps it, else None.

    That holds for a stock ``transformers`` fast tokenizer (no subclass
    overrides the encoding path) right after a call without padding or
    truncation: the call left the backend with neither, and with special-token
    splitting as the tokenizer asks. The Rust call then returns the same ids
    without building offsets and Python dicts (about 30% less time).
    """
    if not getattr(tok, "is_fast", False):
        return None
    for name in _HF_ENCODE_PATH:
        attr = getattr(type(tok), name, None)
        if attr is not None and not str(getattr(attr, "__module__", "")).startswith(
            "transformers.tokenization_utils"
        ):
            return None
    backend = getattr(tok, "backend_tokenizer", None)
    encode = getattr(backend, "encode_batch_fast", None)
    if encode is None or getattr(tok, "_in_target_context_manager", False):
        return None
    if backend.truncation is not None or backend.padding is not None:
        return None
    if getattr(backend, "encode_special_tokens", False) != bool(
        getattr(tok, "split_special_tokens", False)
    ):
        return None
    return encode


def _would_warn_too_long(tok: Any, counts: list[int]) -> bool:
    """Whether ``tok(texts)`` would log its one-off "sequence is too long" warning."""
    limit = getattr(tok, "model_max_length", None)
    if not counts or not isinstance(limit, int) or limit == 0 or max(counts) <= limit:
        return False
    return not getattr(tok, "deprecation_warnings", {}).get(_HF_TOO_LONG_KEY, False)


_NAMED: dict[str, Callable[[], LengthUnit]] = {
    "chars": Characters,
    "characters": Characters,
    "words": Words,
    "whitespace_words": Words,
    "nltk_words": NltkWords,
    "nltk": NltkWords,
}

UNIT_HELP = (
    "'chars', 'words', 'nltk_words', 'tiktoken:<encoding>', 'hf:<tokenizer path or name>', "
    "or a tokenizer / LengthUnit object"
)


def resolve_unit(unit: Any, owner: str = "LengthSelector") -> LengthUnit:
    """Turn a unit name or object into a :class:`LengthUnit`."""
    if isinstance(unit, str):
        if unit in _NAMED:
            return _NAMED[unit]()
        if unit.startswith("tiktoken:") and len(unit) > len("tiktoken:"):
            return TiktokenTokens(unit.split(":", 1)[1])
        if unit.startswith("hf:") and len(unit) > len("hf:"):
            return HFTokens(unit.split(":", 1)[1])
        if os.path.isdir(unit):
            return HFTokens(unit)
    elif isinstance(unit, LengthUnit) and not isinstance(unit, type):
        return unit
    elif type(unit).__module__.startswith("tiktoken"):
        return TiktokenTokens(unit)
    elif hasattr(unit, "encode_batch") or hasattr(unit, "batch_decode"):
        return HFTokens(unit)
    raise InvalidParameterError(
        f"The 'unit' parameter of {owner} must be one of {UNIT_HELP}. Got {unit!r} instead."
    )


def measure_strings(unit: LengthUnit, texts: Sequence[str], *, num_proc: int = 1) -> np.ndarray:
    """Measure plain Python strings with ``unit`` (a convenience for callers)."""
    return unit.measure(pa.array(list(texts), type=pa.string()), num_proc=num_proc)
