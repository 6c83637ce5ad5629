"""The log-prob selectors on Ray: the same scores and top-k as one machine (ROW_SCORE, actors)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pytest.importorskip("torch")

import sftselect.distributed as sd  # noqa: E402
from sftselect import IFDSelector, PerplexitySelector, load_sample  # noqa: E402
from sftselect.testing import sample_tokenizer, tiny_llama  # noqa: E402


@pytest.fixture(scope="module")
def ray_local():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    tok = sample_tokenizer(folder)
    tiny_llama(tok, context=128).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("make", [IFDSelector, PerplexitySelector], ids=["ifd", "perplexity"])
def test_ray_gives_the_one_machine_scores_and_top_k(ray_local, model_dir, make):
    pool = load_sample().select(range(40))
    selector = make(model_dir, k=7, show_progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = selector.run(pool)
        dist = sd.run(selector, pool, num_blocks=3, workers=2)
    assert dist.indices.tolist() == one.indices.tolist()
    np.testing.assert_allclose(dist.scores, one.scores, rtol=1e-5, equal_nan=True)
