"""The fast, exact NLTK word counter behind :func:`sftselect.scoring.nltk_words.count_nltk_words`.

A line-by-line transcription of NLTK's Punkt sentence splitting and of
``NLTKWordTokenizer``'s rules, working on plain strings and counting tokens
instead of collecting them (the shortcuts and why each is exact are in
:mod:`sftselect.scoring.nltk_words`). The rule table below must equal the
installed NLTK's rules and the transcribed NLTK source must hash to the digest
that module checks; otherwise that module counts with NLTK itself and never
builds a :class:`FastCounter`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

__all__ = ["FastCounter", "expected_treebank_rules", "raw_pattern"]

# --------------------------------------------------------------------------------------
# The fast counter.
# --------------------------------------------------------------------------------------

# Replacement functions equal to the Treebank templates. Every group of every rule
# always takes part in a match, so ``m[i]`` is never None, as the templates assume.


def _pad_match(m: Any) -> str:  # r" \g<0> "
    return " " + m[0] + " "


def _pad_group1(m: Any) -> str:  # r" \1 "
    return " " + m[1] + " "


def _pad_groups12(m: Any) -> str:  # r" \1 \2 "
    return " " + m[1] + " " + m[2] + " "


def _split_groups12(m: Any) -> str:  # r"\1 \2 "
    return m[1] + " " + m[2] + " "


# NLTKWordTokenizer's rules, in order, as (pattern, template, engine, replacement):
# the fast counter runs ``replacement`` (same output as ``template``) with the
# stdlib ``re`` engine where the pattern uses no class (\w, \s, \d, \b) or flag
# whose meaning differs between ``re`` and ``regex``, and with NLTK's own compiled
# pattern otherwise. A different rule list in the installed NLTK disables the fast path.
_RE, _NLTK = "re", "nltk"
_STARTING_QUOTES = (
    ("([«“‘„]|[`]+)", r" \1 ", _RE, _pad_group1),
    (r"^\"", r"``", _RE, "``"),
    (r"(``)", r" \1 ", _RE, _pad_group1),
    (r"([ \(\[{<])(\"|\'{2})", r"\1 `` ", _RE, lambda m: m[1] + " `` "),
    (
        r"(?i)(?<!\w)(\')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)",
        r"\1 ",
        _NLTK,
        lambda m: m[1] + " ",
    ),
)
_PUNCTUATION = (
    (
        r'([^\.])(\.)([\]\)}>"\'' "»”’ " r"]*+)\s*$",
        r"\1 \2 \3 ",
        _NLTK,
        lambda m: m[1] + " " + m[2] + " " + m[3] + " ",
    ),
    (r"([:,])([^\d])", r" \1 \2", _NLTK, lambda m: " " + m[1] + " " + m[2]),
    (r"([:,])$", r" \1 ", _RE, _pad_group1),
    (r"\.{2,}", r" \g<0> ", _RE, _pad_match),
    (r"[;@#$%&]", r" \g<0> ", _RE, _pad_match),
    (r"[\u2012-\u2015]", r" \g<0> ", _RE, _pad_match),
    (
        r'([^\.])(\.)([\]\)}>"\']*)\s*$',
        r"\1 \2\3 ",
        _NLTK,
        lambda m: m[1] + " " + m[2] + m[3] + " ",
    ),
    (r"[?!]", r" \g<0> ", _RE, _pad_match),
    (r"([^'])' ", r"\1 ' ", _RE, lambda m: m[1] + " ' "),
    (r"[*]", r" \g<0> ", _RE, _pad_match),
)
_PARENS_BRACKETS = (r"[\]\[\(\)\{\}\<\>]", r" \g<0> ", _RE, _pad_match)
_DOUBLE_DASHES = (r"--", r" -- ", _RE, " -- ")
_ENDING_QUOTES = (
    ("([»”’])", r" \1 ", _RE, _pad_group1),
    (r"''", " '' ", _RE, " '' "),
    (r'"', " '' ", _RE, " '' "),
    (r"\s+", " ", _NLTK, " "),
    (r"([^' ])('[sS]|'[mM]|'[dD]|') ", r"\1 \2 ", _RE, _split_groups12),
    (r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", r"\1 \2 ", _RE, _split_groups12),
)
_CONTRACTIONS2 = (
    r"(?i)\b(can)(?#X)(not)\b",
    r"(?i)\b(d)(?#X)('ye)\b",
    r"(?i)\b(gim)(?#X)(me)\b",
    r"(?i)\b(gon)(?#X)(na)\b",
    r"(?i)\b(got)(?#X)(ta)\b",
    r"(?i)\b(lem)(?#X)(me)\b",
    r"(?i)\b(more)(?#X)('n)\b",
    r"(?i)\b(wan)(?#X)(na)(?=\s)",
)
_CONTRACTIONS3 = (r"(?i) ('t)(?#X)(is)\b", r"(?i) ('t)(?#X)(was)\b")
# The contraction words without an apostrophe (matched case-insensitively, as by re).
_CONTRACTION_WORDS = ("cannot", "gimme", "gonna", "gotta", "lemme", "wanna")

# Orthographic-context flags, as in nltk.tokenize.punkt.
_ORTHO_BEG_UC = 1 << 1
_ORTHO_MID_UC = 1 << 2
_ORTHO_UNK_UC = 1 << 3
_ORTHO_BEG_LC = 1 << 4
_ORTHO_MID_LC = 1 << 5
_ORTHO_UNK_LC = 1 << 6
_ORTHO_UC = _ORTHO_BEG_UC + _ORTHO_MID_UC + _ORTHO_UNK_UC
_ORTHO_LC = _ORTHO_BEG_LC + _ORTHO_MID_LC + _ORTHO_UNK_LC

# string.whitespace: what PunktSentenceTokenizer._get_last_whitespace_index looks for.
_STRING_WHITESPACE = " \t\n\r\x0b\x0c"


def expected_treebank_rules() -> tuple[Any, ...]:
    """The rules of the table above, in the shape of :func:`_nltk_treebank_rules`."""
    return (
        tuple(rule[:2] for rule in _STARTING_QUOTES),
        tuple(rule[:2] for rule in _PUNCTUATION),
        (_PARENS_BRACKETS[:2],),
        (_DOUBLE_DASHES[:2],),
        tuple(rule[:2] for rule in _ENDING_QUOTES),
        _CONTRACTIONS2,
        _CONTRACTIONS3,
    )


def raw_pattern(pattern: Any) -> Any:
    """The compiled pattern behind NLTK's (possibly timeout-wrapped) pattern object."""
    import regex

    if isinstance(pattern, (re.Pattern, regex.Pattern)):
        return pattern
    inner = getattr(pattern, "_rx", None)
    if isinstance(inner, (re.Pattern, regex.Pattern)):
        return inner
    return regex.compile(pattern.pattern, pattern.flags)


class FastCounter:
    """Counts NLTK word tokens with the shortcuts described in the module docstring.

    Build it only after checking the installed NLTK (see :func:`_counter`).
    """

    def __init__(self, params: Any) -> None:
        import regex
        from nltk.tokenize.destructive import NLTKWordTokenizer as W
        from nltk.tokenize.punkt import PunktSentenceTokenizer, PunktToken

        # ---- Punkt: the same parameters and NLTK's own compiled patterns.
        self._abbrev_types = frozenset(params.abbrev_types)
        self._collocations = frozenset(params.collocations)
        self._sent_starters = frozenset(params.sent_starters)
        self._ortho_context = dict(params.ortho_context)
        lang_vars = PunktSentenceTokenizer(params)._lang_vars
        self._sent_end_chars = tuple(lang_vars.sent_end_chars)
        self._punctuation = tuple(PunktSentenceTokenizer.PUNCTUATION)
        self._period_contexts = raw_pattern(lang_vars.period_context_re()).finditer
        self._realignment = raw_pattern(lang_vars.re_boundary_realignment).match
        self._punkt_words = raw_pattern(lang_vars._word_tokenizer_re()).findall
        self._numeric_sub = raw_pattern(PunktToken._RE_NUMERIC).sub
        self._ellipsis_match = raw_pattern(PunktToken._RE_ELLIPSIS).match
        self._initial_match = raw_pattern(PunktToken._RE_INITIAL).match
        # The last character of string.whitespace in text[pos:endpos] (a reverse search).
        self._last_space = regex.compile("(?r)[" + re.escape(_STRING_WHITESPACE) + "]").search

        # ---- Treebank: each rule as a one-argument function text -> text.
        def bind(rule: tuple[str, str, str, Any], nltk_pattern: Any) -> Callable[[str], str]:
            source, _, engine, replacement = rule
            compiled = re.compile(source) if engine == _RE else raw_pattern(nltk_pattern)
            return functools.partial(compiled.sub, replacement)

        self._sq = [bind(r, p) for r, (p, _) in zip(_STARTING_QUOTES, W.STARTING_QUOTES)]
        self._pu = [bind(r, p) for r, (p, _) in zip(_PUNCTUATION, W.PUNCTUATION)]
        self._parens = bind(_PARENS_BRACKETS, W.PARENS_BRACKETS[0])
        self._dashes = bind(_DOUBLE_DASHES, W.DOUBLE_DASHES[0])
        self._eq = [bind(r, p) for r, (p, _) in zip(_ENDING_QUOTES, W.ENDING_QUOTES)]
        self._contractions = [
            functools.partial(raw_pattern(p).sub, _pad_groups12)
            for p in (*W.CONTRACTIONS2, *W.CONTRACTIONS3)
        ]
        # Same engine and flag as the contraction patterns (stdlib re, (?i)).
        self._contraction_word = re.compile("(?i)" + "|".join(_CONTRACTION_WORDS)).search

    # ---- Punkt ------------------------------------------------------------------------

    def _type(self, tok: str) -> str:
        """PunktToken.type: the lower-cased token, numbers as ``##number##``."""
        low = tok.lower()
        # _RE_NUMERIC is anchored at the start on [-.,] or \d, never an ASCII letter.
        if "a" <= low[0] <= "z":
            return low
        return self._numeric_sub("##number##", low)

    def _first_pass(self, tok: str) -> tuple[bool, bool, bool]:
        """(sentbreak, abbr, ellipsis) as PunktBaseClass._first_pass_annotation sets them."""
        if tok in self._sent_end_chars:
            return True, False, False
        if tok.startswith("..") and self._ellipsis_match(tok):  # \.\.+$
            return False, False, True
        if tok.endswith(".") and not tok.endswith(".."):
            low = tok[:-1].lower()
            if low in self._abbrev_types or low.split("-")[-1] in self._abbrev_types:
                return False, True, False
            return True, False, False
        return False, False, False

    def _ortho_heuristic(self, tok: str, typ: str) -> bool | str:
        """PunktSentenceTokenizer._ortho_heuristic; ``typ`` is the token's type_no_sentperiod."""
        if tok in self._punctuation:
            return False
        context = self._ortho_context.get(typ, 0)
        if tok[0].isupper() and (context & _ORTHO_LC) and not (context & _ORTHO_MID_UC):
            return True
        if tok[0].islower() and ((context & _ORTHO_UC) or not (context & _ORTHO_BEG_LC)):
            return False
        return "unknown"

    def _is_sentbreak(self, tok1: str, tok2: str) -> bool:
        """Whether ``tok1``, followed by ``tok2``, is a sentence break after both passes."""
        sentbreak, abbr, ellipsis = self._first_pass(tok1)
        if not tok1.endswith("."):
            return sentbreak
        # _second_pass_annotation; tok2 carries only its first-pass annotation here.
        typ = self._type(tok1)
        if len(typ) > 1 and typ[-1] == ".":
            typ = typ[:-1]
        next_typ = self._type(tok2)
        if self._first_pass(tok2)[0] and len(next_typ) > 1 and next_typ[-1] == ".":
            next_typ = next_typ[:-1]
        # [^\W\d]\.$ matches two characters (three with a final newline).
        is_initial = len(tok1) <= 3 and tok1[1:2] == "." and self._initial_match(tok1) is not None

        if (typ, next_typ) in self._collocations:
            return False
        if (abbr or ellipsis) and not is_initial:
            if self._ortho_heuristic(tok2, next_typ) is True:
                return True
            if tok2[0].isupper() and next_typ in self._sent_starters:
                return True
        if is_initial or typ == "##number##":
            is_sent_starter = self._ortho_heuristic(tok2, next_typ)
            if is_sent_starter is False:
                return False
            if (
                is_sent_starter == "unknown"
                and is_initial
                and tok2[0].isupper()
                and not (self._ortho_context.get(next_typ, 0) & _ORTHO_LC)
            ):
                return False
        return sentbreak

    def _contains_sentbreak(self, text: str) -> bool:
        """PunktSentenceTokenizer.text_contains_sentbreak(text)."""
        tokens: list[str] = []
        for line in text.split("\n"):
            if line.strip():
                tokens += self._punkt_words(line)
        is_sentbreak = self._is_sentbreak
        return any(is_sentbreak(tokens[i], tokens[i + 1]) for i in range(len(tokens) - 1))

    def _sentence_spans(self, text: str) -> list[tuple[int, int]]:
        """PunktSentenceTokenizer.span_tokenize(text), boundaries realigned."""
        # _match_potential_end_contexts, feeding _slices_from_text.
        slices: list[tuple[int, int]] = []
        last_break = 0
        prev_start = prev_stop = 0
        prev_match = None
        for match in (*self._period_contexts(text), None):
            if match is not None:
                match_start = match.start()
                # _get_last_whitespace_index(text[prev_stop:match_start]), where an
                # index of 0 means "none".
                space = self._last_space(text, prev_stop, match_start)
                word_start = space.end() if space and space.start() > prev_stop else prev_start
            if prev_match is not None and (match is None or prev_stop <= word_start):
                context = (
                    text[prev_start:prev_stop] + prev_match.group() + prev_match.group("after_tok")
                )
                if self._contains_sentbreak(context):
                    slices.append((last_break, prev_match.end()))
                    if prev_match.group("next_tok"):
                        last_break = prev_match.start("next_tok")
                    else:
                        last_break = prev_match.end()
            if match is not None:
                prev_match = match
                prev_start, prev_stop = word_start, match_start
        slices.append((last_break, len(text.rstrip())))

        # _realign_boundaries.
        spans: list[tuple[int, int]] = []
        realign = 0
        last = len(slices) - 1
        for i, (start1, stop1) in enumerate(slices):
            start1 += realign
            if i == last:
                if text[start1:stop1]:
                    spans.append((start1, stop1))
                break
            start2, stop2 = slices[i + 1]
            m = self._realignment(text[start2:stop2])
            if m:
                spans.append((start1, start2 + len(m.group(0).rstrip())))
                realign = m.end()
            else:
                realign = 0
                if text[start1:stop1]:
                    spans.append((start1, stop1))
        return spans

    # ---- Treebank ---------------------------------------------------------------------

    def _treebank_count(self, text: str, tail: bool) -> int:
        """``len(NLTKWordTokenizer().tokenize(text))``.

        ``tail`` is False only when the whole document has no apostrophe, no double
        quote and no contraction word, so that no rule after ``\\s+`` can match.
        """
        sq, pu, eq = self._sq, self._pu, self._eq
        # A rule runs only if a literal its pattern needs is present in the text.
        if "`" in text or "“" in text or "‘" in text or "„" in text or "«" in text:
            text = sq[0](text)
        if text.startswith('"'):
            text = sq[1](text)
        if "``" in text:
            text = sq[2](text)
        if '"' in text or "''" in text:
            text = sq[3](text)
        if "'" in text:
            text = sq[4](text)

        if "." in text:
            text = pu[0](text)
        if "," in text or ":" in text:
            text = pu[1](text)
            if text.endswith((",", ":", ",\n", ":\n")):  # ([:,])$
                text = pu[2](text)
        if ".." in text:
            text = pu[3](text)
        if ";" in text or "$" in text or "%" in text or "&" in text or "#" in text or "@" in text:
            text = pu[4](text)
        if "\u2014" in text or "\u2013" in text or "\u2012" in text or "\u2015" in text:
            text = pu[5](text)
        if "." in text:
            text = pu[6](text)
        if "?" in text or "!" in text:
            text = pu[7](text)
        if "' " in text:
            text = pu[8](text)
        if "*" in text:
            text = pu[9](text)
        if (
            "(" in text
            or ")" in text
            or "[" in text
            or "]" in text
            or "<" in text
            or ">" in text
            or "{" in text
            or "}" in text
        ):
            text = self._parens(text)
        if "--" in text:
            text = self._dashes(text)

        text = " " + text + " "
        if "’" in text or "”" in text or "»" in text:
            text = eq[0](text)
        if "''" in text:
            text = eq[1](text)
        if '"' in text:
            text = eq[2](text)
        # The rules left can only match at an apostrophe or a contraction word. Without
        # one, skipping the \s+ -> " " rule leaves the count as it is: the regex
        # engine's \s is a subset of the characters str.split() splits on.
        if tail:
            if "'" in text:
                text = eq[3](text)
                text = eq[4](text)
                text = eq[5](text)
                for sub in self._contractions:
                    text = sub(text)
            elif self._has_contraction_word(text):
                text = eq[3](text)
                for sub in self._contractions:
                    text = sub(text)
        return len(text.split())

    def _has_contraction_word(self, text: str) -> bool:
        if text.isascii():  # re's case-insensitive match is lower() equality on ASCII
            low = text.lower()
            return any(word in low for word in _CONTRACTION_WORDS)
        return self._contraction_word(text) is not None

    # ---- Both -------------------------------------------------------------------------

    def count(self, text: str) -> int:
        """``len(reference_word_tokens(text))``."""
        tail = "'" in text or '"' in text or self._has_contraction_word(text)
        if "." not in text and "?" not in text and "!" not in text:
            # Punkt has no candidate break: one sentence, the right-stripped text.
            text = text.rstrip()
            return self._treebank_count(text, tail) if text else 0
        treebank_count = self._treebank_count
        return sum(treebank_count(text[a:b], tail) for a, b in self._sentence_spans(text))
