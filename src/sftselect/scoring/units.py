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

import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..core.constraints import Satisfies
from ..exceptions import InvalidParameterError, MissingExtraError
from ._processes import map_in_processes
from ._word_bytes import WORD_RE, count_words, plain_strings

__all__ = [
    "UNIT_CONSTRAINTS",
    "Characters",
    "HFTokens",
    "LengthUnit",
    "NltkWords",
    "TiktokenTokens",
    "Words",
    "is_unit",
    "resolve_unit",
]


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
        if isinstance(texts, pa.ChunkedArray) and all(plain_strings(c) for c in texts.chunks):
            parts = [count_words(c) for c in texts.chunks]
            return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        if isinstance(texts, pa.Array) and plain_strings(texts):
            return count_words(texts)
        # Nulls or other array types: the Arrow regex kernel (same counts, slower).
        counts = pc.count_substring_regex(texts, pattern=WORD_RE)
        return counts.to_numpy(zero_copy_only=False).astype(np.int64)

    def __repr__(self) -> str:
        return "Words()"


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
        try:
            return tiktoken.get_encoding(self.encoding)
        except ValueError:  # tiktoken's "Unknown encoding ...": a name the user gave
            known = ", ".join(sorted(tiktoken.list_encoding_names()))
            raise InvalidParameterError(
                f"The unit 'tiktoken:{self.encoding}' names no tiktoken encoding; known: {known}."
            ) from None

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
        path = os.fspath(self.tokenizer)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
        except ValueError as exc:  # a folder or name that holds no tokenizer transformers reads
            first = " ".join(str(exc).split())[:200]
            raise InvalidParameterError(
                f"The unit 'hf:{path}' is no tokenizer transformers can load ({first})."
            ) from None
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


def is_unit(unit: Any) -> bool:
    """Whether :func:`resolve_unit` accepts ``unit`` (it loads nothing to tell)."""
    try:
        resolve_unit(unit)
    except InvalidParameterError:
        return False
    return True


#: The declared constraint of a selector's ``unit`` parameter.
UNIT_CONSTRAINTS: list[Any] = [Satisfies(is_unit, f"one of {UNIT_HELP}", invalid="bytes")]
