"""QualitySelector(scoring="expected") on Ray: the scores one machine gives, and provenance
counts that add up across the blocks (Ray's merge sums every number of the summary)."""

from __future__ import annotations

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

import sftselect.distributed as sd  # noqa: E402
from sftselect import load_sample  # noqa: E402
from sftselect.backends.openai_compat import OpenAICompatibleBackend  # noqa: E402
from sftselect.selectors.quality import QualitySelector  # noqa: E402
from sftselect.testing import LoopbackServer  # noqa: E402
from tests.selectors.test_quality_expected import judge_reply  # noqa: E402


def test_expected_scoring_on_ray_equals_one_machine(ray_local, tmp_path):
    pool = load_sample().select(range(40))
    with LoopbackServer(reply=judge_reply) as server:
        judge = OpenAICompatibleBackend(
            "judge", base_url=server.base_url, api_key_env=None, backoff_base=0.01
        )
        q = QualitySelector(
            judge, k=6, scoring="expected", top_logprobs=5, cache=tmp_path / "r.sqlite",
            random_state=0,
        )  # fmt: skip
        dist = sd.run(q, pool, num_blocks=4, workers=2)
        sent = server.request_count
        one = q.run(pool)  # the same cache: nothing sent
        assert server.request_count == sent
    # each block checks one reply alone before its others: still one request per row
    assert sent == len(pool)
    assert dist.indices.tolist() == one.indices.tolist()
    np.testing.assert_array_equal(dist.scores, one.scores)
    merged, local = dist.extra["rating"], one.extra["rating"]
    assert merged["scoring"] == "expected"
    assert merged["expected"]["rows"] == local["expected"]["rows"] == len(pool)
    assert merged["expected"]["mass_sum"] == pytest.approx(local["expected"]["mass_sum"])
    for name, count in local["expected"].items():
        if name != "mass_sum":
            assert merged["expected"][name] == count, name
