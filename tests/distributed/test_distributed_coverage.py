"""FacilityLocationSelector and TargetedSelector on Ray: the single-machine rankings."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

import sftselect.distributed as sd  # noqa: E402
from sftselect import FacilityLocationSelector, TargetedSelector, load_sample  # noqa: E402
from sftselect.embedding import HashingEmbedder  # noqa: E402


@pytest.fixture(scope="module")
def pool() -> Dataset:
    ds = load_sample().select(range(300))
    weights = (np.arange(300) % 7 + 1).astype(float).tolist()
    return ds.add_column("quality", weights)


def test_facility_location_with_weights_on_ray_equals_one_process(ray_local, pool):
    sel = FacilityLocationSelector(HashingEmbedder(32), 25, weights="quality", refine="swap")
    one = sel.run(pool)
    dist = sd.run(sel, pool, num_blocks=3, workers=1)
    assert dist.ranked.tolist() == one.ranked.tolist()
    assert dist.summary.stages[-1].name == "embed+rank"


def test_targeted_on_ray_equals_one_process(ray_local, pool):
    tasks = {
        "code": Dataset.from_dict({"prompt": ["Write a Python function.", "Fix this bug."]}),
        "facts": Dataset.from_dict({"prompt": ["What is the capital of France?"]}),
    }
    sel = TargetedSelector(HashingEmbedder(32), 20, targets=tasks)
    one = sel.run(pool)
    dist = sd.run(sel, pool, num_blocks=3, workers=1)
    assert dist.ranked.tolist() == one.ranked.tolist()
    assert dist.extra["selected_per_task"] == one.extra["selected_per_task"]
