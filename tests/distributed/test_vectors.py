"""VECTORS_THEN_GLOBAL selectors on Ray: vectors from the actor pool, the global step on the driver."""

from __future__ import annotations

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

import sftselect.distributed as sd  # noqa: E402
from sftselect import Chain, KCenterSelector, LengthSelector, load_sample  # noqa: E402
from sftselect.embedding import HashingEmbedder, PrecomputedEmbeddings  # noqa: E402
from sftselect.exceptions import InvalidParameterError  # noqa: E402


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_kcenter_on_ray_equals_one_machine(ray_local, metric):
    """Farthest-point picks from actor-pool vectors equal the one-process picks, in order."""
    pool = load_sample().select(range(600))
    make = lambda: KCenterSelector(HashingEmbedder(64), k=40, metric=metric, random_state=2)  # noqa: E731
    local = make().run(pool)
    dist = sd.run(make(), pool, num_blocks=4, workers=1)
    assert dist.ranked.tolist() == local.ranked.tolist()
    assert dist.extra["first_center"] == local.extra["first_center"]
    assert dist.extra["radius"] == pytest.approx(local.extra["radius"])
    assert any(s["name"].startswith("embed") for s in dist.summary.as_dict()["stages"])


def test_kcenter_behind_a_chain_on_ray(ray_local):
    """A chain into k-center embeds only the first stage's rows, and picks as one machine does."""
    pool = load_sample().select(range(800))
    make = lambda: Chain(  # noqa: E731
        LengthSelector(k=300), KCenterSelector(HashingEmbedder(32), k=25, random_state=0)
    )
    assert sd.run(make(), pool, num_blocks=4).ranked.tolist() == make().run(pool).ranked.tolist()


def test_kcenter_with_in_memory_vectors_is_refused_on_ray(ray_local):
    """In-memory vectors cannot follow the rows to the workers: refused, naming the fix."""
    pool = load_sample().select(range(50))
    vectors = PrecomputedEmbeddings(np.ones((50, 4), dtype=np.float32))
    with pytest.raises(InvalidParameterError, match="'embedder' parameter of KCenterSelector"):
        sd.run(KCenterSelector(vectors, k=5, random_state=0), pool, num_blocks=2)
