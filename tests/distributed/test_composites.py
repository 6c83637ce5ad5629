"""Composites on Ray: the same combination code over a Ray pool gives one machine's selection."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from datasets import Dataset

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

import sftselect.distributed as sd  # noqa: E402
from sftselect import (  # noqa: E402
    Chain,
    ColumnScoreSelector,
    DiversitySelector,
    Intersection,
    KTooLargeWarning,
    LengthSelector,
    PerSource,
    RandomSelector,
    RankResult,
    Selector,
    Union,
)
from sftselect.core.base import EngineKind  # noqa: E402
from sftselect.embedding import HashingEmbedder  # noqa: E402


@pytest.fixture(scope="module")
def pool() -> Dataset:
    """1,500 rows with repeated lengths (ties at every cut), four sources and a score."""
    rng = np.random.default_rng(7)
    n = 1500
    words = rng.integers(0, 40, n)
    return Dataset.from_dict(
        {
            "instruction": [f"Question {i % 311} about {w}?" for i, w in enumerate(words)],
            "input": [""] * n,
            "output": [" ".join(["word"] * int(w)) for w in words],
            "source": [["flan", "dolly", "sharegpt", "oasst"][i % 4] for i in range(n)],
            "score": rng.integers(0, 6, n).astype(float).tolist(),
        }
    )


COMPOSITES = {
    "chain": lambda: Chain(
        LengthSelector(k=400, unit="words"), RandomSelector(k=60, random_state=3)
    ),
    "chain-three-stages-fraction": lambda: Chain(
        ColumnScoreSelector("score", min_score=2.0),
        RandomSelector(k=0.5, random_state=5, stratify="source"),
        LengthSelector(k=0.1, unit="chars", ties="random", random_state=1),
    ),
    "union-k": lambda: Union(
        LengthSelector(k=50, unit="words"), RandomSelector(k=50, random_state=1), k=70
    ),
    "union-sets": lambda: Union(
        LengthSelector(k=30, unit="words"), LengthSelector(k=30, unit="words", largest=False)
    ),
    "intersection-k": lambda: Intersection(
        LengthSelector(k=300, unit="chars"), ColumnScoreSelector("score", k=300), k=40
    ),
    "intersection-sets": lambda: Intersection(
        LengthSelector(k=600, unit="words"), RandomSelector(k=600, random_state=2)
    ),
    "per-source": lambda: PerSource(
        "source", {"flan": 20, "dolly": 0.05, "oasst": 7}, base=LengthSelector(unit="words")
    ),
    "per-source-of-chain": lambda: PerSource(
        "source",
        {"sharegpt": 10, "flan": 12},
        base=Chain(RandomSelector(k=100, random_state=0), LengthSelector(k=5, unit="words")),
    ),
    "chain-of-union-then-diversity": lambda: Chain(
        Union(LengthSelector(k=200, unit="words"), RandomSelector(k=200, random_state=9)),
        DiversitySelector(HashingEmbedder(n_features=32), k=25, n_clusters=5, random_state=4),
    ),
}


@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_composite_on_ray_equals_one_machine(ray_local, pool, name):
    """Positions, ranking, eligible count and each operand's record equal one machine's."""
    local = COMPOSITES[name]().run(pool)
    dist = sd.run(COMPOSITES[name](), pool, num_blocks=4)
    assert dist.ranked.tolist() == local.ranked.tolist()
    assert dist.indices.tolist() == local.indices.tolist()
    assert dist.selection.n_eligible == local.n_eligible
    for key in ("stages", "operands", "sources"):
        if key in local.extra:
            mine = dist.extra[key]
            theirs = local.extra[key]
            items = mine.values() if isinstance(mine, dict) else mine
            others = theirs.values() if isinstance(theirs, dict) else theirs
            for a, b in zip(items, others, strict=True):
                assert (a["selector"], a["seed"], a["selected"]) == (
                    b["selector"],
                    b["seed"],
                    b["selected"],
                )


def test_composite_k_too_large_warns_as_on_one_machine(ray_local, pool):
    """A union asked for more rows than its operands offer warns and returns what there is."""
    make = lambda: Union(  # noqa: E731
        LengthSelector(k=5, unit="words"), RandomSelector(k=5, random_state=0)
    )
    with pytest.warns(KTooLargeWarning):
        local = Chain(make(), LengthSelector(k=50)).run(pool)
    with pytest.warns(KTooLargeWarning):
        dist = sd.run(Chain(make(), LengthSelector(k=50)), pool, num_blocks=3)
    assert dist.indices.tolist() == local.indices.tolist()


class _EveryOther(Selector):
    """A user's composite: its operand's ranking, every other entry (the extension contract)."""

    engine_kind = EngineKind.COMPOSITE
    _k_optional = True

    def __init__(self, base, *, k=None):
        self.base = base
        self.k = k

    def _rank(self, dataset, rng, limit):
        from sftselect.core.pool import LocalPool

        return self.rank_pool(LocalPool(dataset), rng, limit)

    def rank_pool(self, pool, rng, limit):
        result, _ = pool.full_ranking(self.base)
        order = np.asarray(result.order)[::2]
        return RankResult(order=order, n_eligible=int(order.size))


def test_a_users_composite_runs_on_ray(ray_local, pool):
    """A composite of one's own that implements rank_pool runs on Ray unchanged."""
    local = _EveryOther(LengthSelector(unit="words"), k=30).run(pool)
    dist = sd.run(_EveryOther(LengthSelector(unit="words"), k=30), pool, num_blocks=4)
    assert dist.ranked.tolist() == local.ranked.tolist()


def test_composite_without_rank_pool_is_refused_by_name(ray_local, pool):
    """A selector declaring COMPOSITE without rank_pool is refused, naming what the kind promises."""

    class NoPool(Selector):
        engine_kind = EngineKind.COMPOSITE

        def __init__(self, k=3):
            self.k = k

        def _rank(self, dataset, rng, limit):
            return RankResult(order=np.arange(len(dataset)), n_eligible=len(dataset))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TypeError, match="NoPool declares COMPOSITE but has no rank_pool"):
            sd.run(NoPool(), pool, num_blocks=2)
