"""Hypothesis strategies for instruction datasets in each format."""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
import numpy as np
from datasets import Dataset

WORDS = [
    "the",
    "a",
    "model",
    "answer",
    "Dr.",
    "e.g.",
    "U.S.",
    "don't",
    "(see",
    "below)",
    "42",
    "3.14",
    '"quoted"',
    "end.",
    "why?",
    "yes!",
    "naïve",
    "日本語",
    "…",
    "--",
    "'s",
]

#: Short texts of words, punctuation and whitespace (including empty and blank).
texts = st.lists(st.sampled_from(WORDS), min_size=0, max_size=30).flatmap(
    lambda ws: st.sampled_from([" ", "  ", "\n", " \t"]).map(lambda sep: sep.join(ws))
)

#: Non-empty texts (at least one word).
nonempty_texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=30).map(" ".join)

#: Arbitrary Unicode strings, for checks against Python's own len/split.
any_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)

SOURCES = ["sharegpt", "flan", "dolly"]


@st.composite
def alpaca_rows(
    draw: Any, min_size: int = 0, max_size: int = 40, allow_empty: bool = True
) -> list[dict]:
    """Alpaca records with a ``source`` and a numeric ``score`` column."""
    n = draw(st.integers(min_size, max_size))
    body = texts if allow_empty else nonempty_texts
    return [
        {
            "instruction": draw(nonempty_texts),
            "input": draw(st.sampled_from(["", "some context"])),
            "output": draw(body),
            "source": draw(st.sampled_from(SOURCES)),
            "score": float(draw(st.integers(0, 10))) / 2,
        }
        for _ in range(n)
    ]


def alpaca_datasets(min_size: int = 0, max_size: int = 40, allow_empty: bool = True):
    """``datasets.Dataset`` objects in Alpaca format (with source and score)."""
    return alpaca_rows(min_size, max_size, allow_empty).map(_to_dataset)


def _to_dataset(rows: list[dict]) -> Dataset:
    if not rows:
        return Dataset.from_dict(
            {"instruction": [], "input": [], "output": [], "source": [], "score": []}
        )
    return Dataset.from_list(rows)


@st.composite
def sharegpt_datasets(draw: Any, min_size: int = 1, max_size: int = 20) -> Dataset:
    """FastChat/ShareGPT conversations of 1-3 human/gpt exchanges."""
    n = draw(st.integers(min_size, max_size))
    rows = []
    for _ in range(n):
        turns = []
        for _ in range(draw(st.integers(1, 3))):
            turns.append({"from": "human", "value": draw(nonempty_texts)})
            turns.append({"from": "gpt", "value": draw(nonempty_texts)})
        rows.append({"conversations": turns})
    return Dataset.from_list(rows)


@st.composite
def openai_datasets(draw: Any, min_size: int = 1, max_size: int = 20) -> Dataset:
    """OpenAI chat ``messages`` with an optional system turn."""
    n = draw(st.integers(min_size, max_size))
    rows = []
    for _ in range(n):
        msgs = [{"role": "system", "content": "be brief"}] if draw(st.booleans()) else []
        for _ in range(draw(st.integers(1, 3))):
            msgs.append({"role": "user", "content": draw(nonempty_texts)})
            msgs.append({"role": "assistant", "content": draw(nonempty_texts)})
        rows.append({"messages": msgs})
    return Dataset.from_list(rows)


ks = st.one_of(st.integers(1, 60), st.floats(0.01, 1.0))
seeds = st.integers(0, 2**32 - 1)


@st.composite
def vector_sets(draw: Any, max_rows: int = 40, max_dim: int = 6) -> Any:
    """Float32 matrices ``[n, d]`` of small integers (duplicates, zero rows and ties included)."""
    import numpy as np

    n = draw(st.integers(1, max_rows))
    d = draw(st.integers(1, max_dim))
    values = draw(st.lists(st.integers(-3, 3), min_size=n * d, max_size=n * d))
    return np.array(values, dtype=np.float32).reshape(n, d)


@st.composite
def case_whitespace_edits(draw: Any, text: str) -> str:
    """``text`` with its case and whitespace changed (the same words, in order)."""
    words = text.split()
    seps = draw(
        st.lists(
            st.sampled_from([" ", "  ", "\n", "\t", " \u00a0"]),
            min_size=len(words),
            max_size=len(words),
        )
    )
    cased = [w.upper() if draw(st.booleans()) else w for w in words]
    lead = draw(st.sampled_from(["", " ", "\n"]))
    return lead + "".join(w + s for w, s in zip(cased, seps))


# -- parameter constraints (sftselect.core.constraints) ------------------------------------
_bounds = st.one_of(st.none(), st.integers(-5, 5))


@st.composite
def intervals(draw: Any) -> Any:
    """An Interval of ints or reals with small (possibly open-ended) bounds."""
    import numbers

    from sftselect.core.constraints import Interval

    left, right = draw(_bounds), draw(_bounds)
    if left is not None and right is not None and left > right:
        left, right = right, left
    type_ = draw(st.sampled_from([numbers.Integral, numbers.Real]))
    closed = draw(st.sampled_from(["left", "right", "both", "neither"]))
    return Interval(type_, left, right, closed=closed)


def constraints() -> Any:
    """One declared constraint, in any of the forms a selector may declare."""
    from sftselect.core.constraints import InstanceOf, Options

    return st.one_of(
        intervals(),
        st.lists(
            st.sampled_from(["last", "first", "sum", "x"]), min_size=1, max_size=3, unique=True
        ).map(lambda o: Options(*o)),
        st.sampled_from(
            [None, "boolean", "random_state", "callable", str, InstanceOf(str, "a str")]
        ),
    )


constraint_lists = st.lists(constraints(), min_size=1, max_size=3)

#: Values inside and outside the constraints above: the interval bounds and their
#: neighbours, bools, NaN and infinities, strings, None, generators, callables, objects.
param_values = st.one_of(
    st.integers(-7, 7),
    st.sampled_from([-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 4.999, 5.0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.sampled_from(["last", "first", "sum", "x", "", "LAST"]),
    st.builds(lambda s: np.random.default_rng(s), st.integers(0, 3)),
    st.just(len),
    st.just(object()),
    st.just(np.int64(3)),
    st.just(np.float64(0.5)),
    st.just(np.bool_(True)),
)
