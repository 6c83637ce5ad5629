"""Hypothesis strategies for pairwise evaluation: outcomes, verdicts and judged pairs."""

from __future__ import annotations

import hypothesis.strategies as st

#: One order's outcome for model A: 1 win, 0 tie, -1 lose.
outcomes = st.sampled_from([1, 0, -1])

#: The two orders' outcomes of one pair (order ab, order ba).
outcome_pairs = st.tuples(outcomes, outcomes)

#: Many pairs' per-order outcomes.
outcome_pair_lists = st.lists(outcome_pairs, min_size=1, max_size=60)

#: A verdict on the answers as shown.
verdicts = st.sampled_from(["first", "second", "tie"])

#: A score on the paper's 1-10 scale, integer or half.
scores = st.integers(min_value=2, max_value=20).map(lambda v: v / 2)

#: Per-order judge scores of one pair: (first, second) shown in order ab, then in order ba.
score_pairs = st.tuples(st.tuples(scores, scores), st.tuples(scores, scores))

#: Small lists of answer texts (may be empty strings; never None).
answer_texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40
)
