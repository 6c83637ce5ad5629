"""The log-prob selectors on Ray: the same scores and top-k as one machine (ROW_SCORE, actors),
and ``num_gpus`` reaching their actors (``ray_local``: tests/distributed/conftest.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pytest.importorskip("torch")

import sftselect.distributed as sd  # noqa: E402
from sftselect import (  # noqa: E402
    DeitaSelector,
    IFDSelector,
    LengthSelector,
    PerplexitySelector,
    RewardSelector,
    SuperfilteringSelector,
    load_sample,
)
from sftselect.distributed.scoring import actor_gpus  # noqa: E402
from sftselect.testing import sample_tokenizer, tiny_llama  # noqa: E402


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


def test_num_gpus_reaches_the_model_scoring_actors(ray_local, model_dir, monkeypatch):
    """No GPU here: the options given to ``map_batches`` are checked, and the run goes on
    without the GPU request (Ray would wait for a GPU this machine does not have)."""
    from ray.data import Dataset as RayDataset

    real = RayDataset.map_batches
    calls: list[dict] = []

    def spy(self, fn, *args, **kwargs):
        calls.append({"fn": getattr(fn, "__name__", repr(fn)), **kwargs})
        kwargs.pop("num_gpus", None)
        return real(self, fn, *args, **kwargs)

    monkeypatch.setattr(RayDataset, "map_batches", spy)
    pool = load_sample().select(range(12))
    selector = IFDSelector(model_dir, k=3, show_progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = selector.run(pool)
        dist = sd.run(selector, pool, num_blocks=2, workers=1, num_gpus=1)
    actors = [c for c in calls if c["fn"] == "ScoringActor"]
    assert len(actors) == 1
    assert actors[0]["num_gpus"] == 1.0
    assert "1 GPU each" in dist.summary.describe()
    assert dist.indices.tolist() == one.indices.tolist()


def test_only_selectors_that_run_a_model_take_gpus():
    for cls in (IFDSelector, SuperfilteringSelector, PerplexitySelector, DeitaSelector):
        assert cls.scores_on_device and cls.score_in_actors, cls
    assert RewardSelector.scores_on_device
    assert actor_gpus(IFDSelector("m"), 1) == {"num_gpus": 1.0}
    assert actor_gpus(IFDSelector("m"), 0.5) == {"num_gpus": 0.5}
    assert actor_gpus(IFDSelector("m"), 0) == {}
    assert actor_gpus(LengthSelector(k=3), 1) == {}  # scored by tasks, no model
    from sftselect.selectors.quality import QualitySelector

    # an LLM judge waits on HTTP in its actors: no GPU for it
    assert QualitySelector.score_in_actors and not QualitySelector.scores_on_device
    from sftselect.exceptions import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="num_gpus"):
        actor_gpus(IFDSelector("m"), -1)


def test_model_actors_stay_on_the_driver_node_only_with_a_cache_file(
    ray_local, model_dir, tmp_path, monkeypatch
):
    """A model scorer without a cache file may use every node's GPUs (no node pin); with
    ``cache_dir`` (on the selector or on its LogProbScorer) its actors share that file and
    stay on the driver's node; an LLM judge always does."""
    from ray.data import Dataset as RayDataset

    from sftselect.distributed.scoring import pinned_to_driver
    from sftselect.models.logprobs import LogProbScorer
    from sftselect.selectors.quality import QualitySelector

    real = RayDataset.map_batches
    calls: list[dict] = []

    def spy(self, fn, *args, **kwargs):
        calls.append({"fn": getattr(fn, "__name__", repr(fn)), **kwargs})
        return real(self, fn, *args, **kwargs)

    monkeypatch.setattr(RayDataset, "map_batches", spy)
    pool = load_sample().select(range(8))
    pins = ("label_selector", "scheduling_strategy")
    free = IFDSelector(model_dir, k=3, show_progress=False)
    cached = IFDSelector(model_dir, k=3, show_progress=False, cache_dir=tmp_path / "c")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dist = sd.run(free, pool, num_blocks=2, workers=1)
        sd.run(cached, pool, num_blocks=2, workers=1)
    actors = [c for c in calls if c["fn"] == "ScoringActor"]
    assert len(actors) == 2
    assert not any(p in actors[0] for p in pins)
    assert any(p in actors[1] for p in pins)
    assert "on any node (no cache file)" in dist.summary.describe()
    assert pinned_to_driver(IFDSelector(LogProbScorer(model_dir, cache_dir=tmp_path / "s")))
    assert not pinned_to_driver(IFDSelector(LogProbScorer(model_dir)))
    assert pinned_to_driver(QualitySelector(lambda request: "5"))
