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


def test_a_bad_weight_on_ray_is_named_by_its_row_in_the_pool(ray_local, pool):
    """Row 250 is in the third block; the actor's error names 250 (as one process does),
    not the row's position in its block."""
    from sftselect.exceptions import DataFormatError

    weights = list(pool["quality"])
    weights[250] = -1.0
    bad = pool.remove_columns("quality").add_column("quality", weights)
    sel = FacilityLocationSelector(HashingEmbedder(32), 25, weights="quality")
    with pytest.raises(DataFormatError, match="^Row 250: ") as one:
        sel.run(bad)
    with pytest.raises(DataFormatError, match="^Row 250: ") as dist:
        sd.run(sel, bad, num_blocks=3, workers=1)
    assert str(dist.value) == str(one.value)
