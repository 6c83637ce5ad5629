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

Character and word counts run as Arrow compute kernels over the whole column.
Token units run the tokenizer once per text, optionally over ``num_proc``
processes (contiguous chunks, results concatenated in order).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Protocol, runtime_checkable

import multiprocessing as mp
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
        counts = pc.count_substring_regex(texts, pattern=_WORD_RE)
        return counts.to_numpy(zero_copy_only=False).astype(np.int64)

    def __repr__(self) -> str:
        return "Words()"


def _measure_chunk(fn: Callable[[list[str]], np.ndarray], texts: list[str]) -> np.ndarray:
    return fn(texts)


def map_in_processes(
    fn: Callable[[list[str]], np.ndarray], texts: list[str], num_proc: int
) -> np.ndarray:
    """Apply ``fn`` to contiguous chunks of ``texts`` over ``num_proc`` processes."""
    if num_proc <= 1 or len(texts) < 2 * num_proc:
        return np.asarray(fn(texts), dtype=np.int64)
    bounds = np.linspace(0, len(texts), num_proc + 1).astype(int)
    chunks = [texts[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=num_proc, mp_context=mp.get_context(method)) as pool:
        parts = list(pool.map(_measure_chunk, [fn] * len(chunks), chunks))
    return np.concatenate(parts).astype(np.int64, copy=False)


class _PerTextUnit:
    """A unit that calls a Python tokenizer on each text."""

    name = "tokens"

    def _count(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def measure(self, texts: pa.Array, *, num_proc: int = 1, batch_size: int = 1000) -> np.ndarray:
        return map_in_processes(self._count, texts.to_pylist(), num_proc)


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
        label = tokenizer if isinstance(tokenizer, (str, os.PathLike)) else getattr(
            tokenizer, "name_or_path", type(tokenizer).__name__
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
        for start in range(0, len(texts), step):
            batch = texts[start : start + step]
            if hasattr(tok, "encode_batch") and not hasattr(tok, "batch_decode"):
                encodings = tok.encode_batch(batch, add_special_tokens=False)
                out[start : start + len(batch)] = [len(e.ids) for e in encodings]
            else:
                ids = tok(
                    batch,
                    add_special_tokens=False,
                    return_attention_mask=False,
                    return_token_type_ids=False,
                )["input_ids"]
                out[start : start + len(batch)] = [len(x) for x in ids]
        return out

    def __repr__(self) -> str:
        return f"HFTokens({self.tokenizer!r})"


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
