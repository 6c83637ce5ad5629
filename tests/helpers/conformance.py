"""The checks every selector passes, and the list of selectors they run on.

Add each new selector to ``CASES``: a name and a factory ``(k, seed) -> Selector``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from datasets import Dataset

from sftselect import (
    Chain,
    ColumnScoreSelector,
    DeitaSelector,
    IFDSelector,
    Intersection,
    KTooLargeWarning,
    LengthSelector,
    PerplexitySelector,
    PerSource,
    RandomSelector,
    RewardSelector,
    Selector,
    SuperfilteringSelector,
    Union,
    deita_preset,
)
from sftselect.backends import CallableBackend
from sftselect.core.validation import resolve_k
from sftselect.embedding import HashingEmbedder
from sftselect.selectors.dedup import ExactDedup, MinHashDedup, RepresentationFilter, SemDeDup
from sftselect.selectors.diversity import DiversitySelector
from sftselect.selectors.facility import FacilityLocationSelector
from sftselect.selectors.kcenter import KCenterSelector
from sftselect.selectors.quality import QualitySelector
from sftselect.selectors.targeted import TargetedSelector
from tests.helpers.tiny_scorers import next_token_engine, reward_engine


def _fake_judge(messages):
    """A deterministic judge: a 0-5 score from a hash of the prompt."""
    import hashlib

    h = int(hashlib.sha256(messages[-1]["content"].encode()).hexdigest(), 16)
    return f"{(h % 11) / 2}\nscripted"


FAKE_JUDGE = CallableBackend(_fake_judge, identity="fake-hash-judge-v1")


def _fake_logprob_judge(messages):
    """A deterministic judge with log-probabilities: its digit and p(digit) from a hash."""
    import hashlib
    import math

    from sftselect.backends.base import ChatReply, TokenLogprob

    h = hashlib.sha256(messages[-1]["content"].encode()).digest()
    digit, p = h[0] % 6, 0.5 + h[1] / 512
    top = ((str(digit), math.log(p)), (str(5 - digit), math.log(1 - p)))
    return ChatReply(f"{digit}\n", logprobs=(TokenLogprob(str(digit), math.log(p), top),))


FAKE_LOGPROB_JUDGE = CallableBackend(_fake_logprob_judge, identity="fake-logprob-judge-v1")


@functools.cache
def tiny_scorer():
    """A LogProbScorer over the tiny random LLaMA, built once (for the log-prob selectors)."""
    from sftselect.models.logprobs import LogProbScorer
    from sftselect.testing import sample_tokenizer, tiny_llama

    tok = sample_tokenizer()
    return LogProbScorer(tiny_llama(tok, context=128).eval(), tok, show_progress=False)


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[int | float, int], Selector]
    #: True when the selector returns exactly min(k, n) rows on any dataset
    #: where every row is eligible (no quotas or stages that decide the size).
    exact_k: bool = True


CASES: list[Case] = [
    Case("length-nltk", lambda k, s: LengthSelector(k)),
    Case(
        "length-chars-random-ties",
        lambda k, s: LengthSelector(k, unit="chars", ties="random", random_state=s),
    ),
    Case("length-words-shortest", lambda k, s: LengthSelector(k, unit="words", largest=False)),
    Case("random", lambda k, s: RandomSelector(k, random_state=s)),
    Case("random-stratified", lambda k, s: RandomSelector(k, random_state=s, stratify="source")),
    Case(
        "random-stratified-equal",
        lambda k, s: RandomSelector(k, random_state=s, stratify="source", allocation="equal"),
    ),
    Case(
        "column-score", lambda k, s: ColumnScoreSelector("score", k, ties="random", random_state=s)
    ),
    Case(
        "union",
        lambda k, s: Union(LengthSelector(k, unit="chars"), RandomSelector(k, random_state=s), k=k),
    ),
    Case(
        "intersection",
        lambda k, s: Intersection(
            LengthSelector(k, unit="chars"), ColumnScoreSelector("score", k), k=k
        ),
    ),
    Case(
        "chain",
        lambda k, s: Chain(RandomSelector(1.0, random_state=s), LengthSelector(k, unit="words")),
    ),
    Case("quality", lambda k, s: QualitySelector(FAKE_JUDGE, k, random_state=s)),
    Case(
        "quality-threshold",
        lambda k, s: QualitySelector(FAKE_JUDGE, k, min_score=2.0, ties="stable"),
    ),
    Case(
        "quality-expected",
        lambda k, s: QualitySelector(FAKE_LOGPROB_JUDGE, k, scoring="expected", random_state=s),
    ),
    Case(
        "diversity",
        lambda k, s: DiversitySelector(HashingEmbedder(16), k, n_clusters=4, random_state=s),
    ),
    Case(
        "representation-filter",
        lambda k, s: RepresentationFilter(HashingEmbedder(16), k, max_similarity=0.9),
    ),
    Case(
        "representation-filter-by-score",
        lambda k, s: RepresentationFilter(
            HashingEmbedder(16), k, max_similarity=0.5, order="score", text="example"
        ),
    ),
    Case(
        "kcenter-cosine",
        lambda k, s: KCenterSelector(HashingEmbedder(16), k, random_state=s),
    ),
    Case(
        "kcenter-euclidean",
        lambda k, s: KCenterSelector(HashingEmbedder(16), k, metric="euclidean", random_state=s),
    ),
    Case("exact-dedup", lambda k, s: ExactDedup(k, random_state=s)),
    Case(
        "exact-dedup-keep-longest",
        lambda k, s: ExactDedup(k, fields="instruction", keep="longest", random_state=s),
    ),
    Case("minhash-dedup", lambda k, s: MinHashDedup(k, ngram=2, threshold=0.5, random_state=s)),
    Case(
        "minhash-dedup-keep-selector",
        lambda k, s: MinHashDedup(
            k, fields=["instruction"], ngram=1, keep=LengthSelector(unit="chars"), random_state=s
        ),
    ),
    Case(
        "semdedup",
        lambda k, s: SemDeDup(HashingEmbedder(16), k, eps=0.2, n_clusters=3, random_state=s),
    ),
    Case(
        "semdedup-random",
        lambda k, s: SemDeDup(
            HashingEmbedder(16), k, eps=0.2, n_clusters=2, keep="random", random_state=s
        ),
    ),
    Case(
        "facility-location",
        lambda k, s: FacilityLocationSelector(HashingEmbedder(16), k, random_state=s),
    ),
    Case(
        "facility-location-stochastic-swap",
        lambda k, s: FacilityLocationSelector(
            HashingEmbedder(16), k, optimizer="stochastic", refine="swap", random_state=s
        ),
    ),
    Case(
        "facility-location-knn",
        lambda k, s: FacilityLocationSelector(
            HashingEmbedder(16), k, graph="knn", n_neighbors=3, random_state=s
        ),
    ),
    Case(
        "targeted-two-tasks",
        lambda k, s: TargetedSelector(
            HashingEmbedder(16),
            k,
            targets={
                "questions": Dataset.from_dict(
                    {"prompt": ["Why is the sky blue?", "What is 2+2?"]}
                ),
                "writing": Dataset.from_dict({"prompt": ["Write a poem about the sea."]}),
            },
        ),
    ),
    Case("deita-combined", lambda k, s: DeitaSelector(next_token_engine(), next_token_engine(), k)),
    Case(
        "deita-preset",
        lambda k, s: deita_preset(
            HashingEmbedder(16), k, complexity=next_token_engine(), quality=next_token_engine()
        ),
    ),
    Case("reward", lambda k, s: RewardSelector(reward_engine(), k)),
    Case("ifd", lambda k, s: IFDSelector(tiny_scorer(), k, ifd_limit=None, max_score=1e9)),
    Case("ifd-limited", lambda k, s: IFDSelector(tiny_scorer(), k)),
    Case(
        "superfiltering",
        lambda k, s: SuperfilteringSelector(tiny_scorer(), k, ties="random", random_state=s),
    ),
    Case("perplexity", lambda k, s: PerplexitySelector(tiny_scorer(), k, conditioned=False)),
    Case(
        "per-source",
        lambda k, s: PerSource("source", {"flan": k, "dolly": k}, LengthSelector(unit="chars")),
        exact_k=False,
    ),
]


def run_quietly(selector: Selector, dataset: Dataset):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KTooLargeWarning)
        return selector.run(dataset)


def check_selector(case: Case, dataset: Dataset, k: int | float, seed: int) -> None:
    """Every property of the contract on one dataset, k and seed."""
    n = len(dataset)
    before_fp = dataset._fingerprint
    before_rows = dataset.to_list()
    selector = case.make(k, seed)
    sel = run_quietly(selector, dataset)
    idx = sel.indices
    # subset, unique, ascending, int64
    assert idx.dtype == np.int64
    assert idx.ndim == 1
    assert np.all((idx >= 0) & (idx < max(n, 1))) or idx.size == 0
    assert np.all(np.diff(idx) > 0), "indices must be unique and ascending"
    # ranked holds the same rows
    assert sorted(sel.ranked.tolist()) == idx.tolist()
    # exact size
    if case.exact_k:
        assert idx.size == min(resolve_k(k, n), sel.n_eligible)
    # determinism under the seed
    again = run_quietly(case.make(k, seed), dataset).indices
    assert np.array_equal(idx, again)
    # select() is the same rows through dataset.select
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KTooLargeWarning)
        subset = case.make(k, seed).select(dataset)
    assert isinstance(subset, Dataset)
    assert subset.to_list() == [before_rows[i] for i in idx]
    # the input is not mutated
    assert dataset._fingerprint == before_fp
    assert dataset.to_list() == before_rows
    # the ranking's prefix is the selection
    if case.exact_k and selector.k is not None:
        ranking = case.make(k, seed).rank_indices(dataset)
        assert np.array_equal(np.sort(ranking[: idx.size]), idx)
