"""The selectors on Ray Data give the single-machine selection (sftselect.distributed)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pyarrow.parquet as pq
import pytest
from datasets import Dataset

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

import sftselect.distributed as sd  # noqa: E402
from sftselect import (  # noqa: E402
    DiversitySelector,
    KTooLargeWarning,
    LengthSelector,
    MissingExtraError,
    RandomSelector,
    load_data,
    save_data,
)
from sftselect.backends import ReplyCache  # noqa: E402
from sftselect.backends.openai_compat import OpenAICompatibleBackend  # noqa: E402
from sftselect.core.ranking import top_order  # noqa: E402
from sftselect.distributed.topk import block_candidates, merge_candidates  # noqa: E402
from sftselect.embedding import HashingEmbedder  # noqa: E402
from sftselect.exceptions import DataFormatError, InvalidParameterError  # noqa: E402
from sftselect.selectors.quality import QualitySelector  # noqa: E402
from sftselect.testing import LoopbackServer  # noqa: E402
from tests.helpers.paths import REPO  # noqa: E402

ROOT = REPO


def make_pool(n: int, seed: int = 0) -> Dataset:
    """An Alpaca-style pool whose response lengths repeat a lot (many ties at any cut)."""
    rng = np.random.default_rng(seed)
    words = rng.integers(0, 60, n)
    vocab = np.array(["alpha", "beta", "gamma", "delta", "eps"])
    outputs = [" ".join(vocab[: (w % 5) + 1].tolist() * (int(w) // 5)) for w in words]
    blank = rng.random(n) < 0.01
    outputs = ["  " if b else o for b, o in zip(blank, outputs)]
    return Dataset.from_dict(
        {
            "instruction": [f"Question {i % 977}?" for i in range(n)],
            "input": [""] * n,
            "output": outputs,
            "source": [["flan", "dolly", "sharegpt", "oasst"][i % 4] for i in range(n)],
        }
    )


@pytest.fixture(scope="module")
def pool_200k() -> Dataset:
    return make_pool(200_000)


def same_record(one: dict, dist: dict) -> None:
    """The provenance records agree on everything but the time, the content hash and the engine."""
    for key in set(one) | set(dist):
        if key in ("created", "engine"):
            continue
        if key == "input":
            a = {k: v for k, v in one[key].items() if k != "content_sha256"}
            b = {k: v for k, v in dist[key].items() if k != "content_sha256"}
            assert a == b
        else:
            assert one.get(key) == dist.get(key), key


# -- the merge rule, without Ray -------------------------------------------------------


@pytest.mark.parametrize("ties", ["stable", "random"])
@pytest.mark.parametrize("largest", [True, False])
def test_block_candidates_merge_to_the_single_machine_order(ties, largest):
    """Per-block candidates merged give top_order's exact prefix, for both tie rules."""
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 12, 5000).astype(float)
    scores[rng.random(5000) < 0.05] = np.nan
    eligible = ~np.isnan(scores) & (rng.random(5000) < 0.9)
    for limit in (1, 37, 400, None):
        expected = top_order(
            scores, eligible, largest=largest, ties=ties, rng=np.random.default_rng(3), limit=limit
        )
        cuts = [0, 1, 900, 2500, 2501, 5000]
        parts = [
            start
            + block_candidates(scores[start:end], eligible[start:end], largest=largest, limit=limit)
            for start, end in itertools.pairwise(cuts)
        ]
        cand = np.concatenate(parts)[::-1]  # arrival order must not matter
        got = merge_candidates(
            cand,
            scores[cand],
            largest=largest,
            ties=ties,
            limit=limit,
            eligible=eligible,
            rng=np.random.default_rng(3),
        )
        assert got.tolist() == expected.tolist()


# -- length -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "selector",
    [
        LengthSelector(k=1000, unit="words", random_state=0),
        LengthSelector(k=3000, unit="chars", ties="random", random_state=5),
        LengthSelector(
            k=0.01, unit="words", min_length=3, max_length=40, largest=False, random_state=0
        ),
    ],
    ids=["words-stable", "chars-random-ties", "fraction-bounds-shortest"],
)
def test_length_on_200k_rows_equals_single_machine(ray_local, pool_200k, selector):
    """On 200,000 rows the Ray length selection equals the single-machine one row for row."""
    one = selector.run(pool_200k)
    dist = sd.run(selector, pool_200k, num_blocks=8, batch_size=20_000)
    assert dist.indices.tolist() == one.indices.tolist()
    assert dist.ranked.tolist() == one.ranked.tolist()
    np.testing.assert_array_equal(dist.scores, one.scores)
    assert dist.selection.n_eligible == one.n_eligible and dict(dist.extra) == dict(one.extra)
    same_record(one.provenance(), dist.provenance())
    assert [s.name for s in dist.summary.stages][-2:] == ["score", "merge"]


def test_parquet_and_jsonl_readers_keep_file_order_and_the_selection(ray_local, tmp_path):
    """Parquet (many row groups, 3 files) and JSONL read in parallel give the file order and the same rows."""
    pool = make_pool(12_000, seed=1)
    folder = tmp_path / "pq"
    folder.mkdir()
    table = pool.with_format("arrow")[:]
    for i, (a, b) in enumerate([(0, 5000), (5000, 5001), (5001, 12_000)]):
        pq.write_table(table.slice(a, b - a), folder / f"part-{i}.parquet", row_group_size=700)
    jsonl = tmp_path / "pool.jsonl"
    save_data(pool, jsonl)
    with open(jsonl, "a", encoding="utf-8") as fh:
        fh.write("\n\n")  # blank lines are skipped, as load_data skips them
    selector = LengthSelector(k=500, unit="words", drop_echo=True)
    one = selector.run(pool)
    for ds in (
        sd.read_parquet(folder, rows_per_task=1500),
        sd.read_jsonl(jsonl, bytes_per_task=100_000),
    ):
        rows = ds.take_all()
        rows.sort(key=lambda r: r[sd.ROW_COLUMN])
        assert [r[sd.ROW_COLUMN] for r in rows] == list(range(len(pool)))
        assert [r["output"] for r in rows] == pool["output"]
        assert sd.run(selector, ds).indices.tolist() == one.indices.tolist()


def test_written_output_and_provenance_match_single_machine(ray_local, tmp_path):
    """write() gives the single-machine output file byte for byte and its provenance record."""
    pool = make_pool(5000, seed=2)
    selector = LengthSelector(k=300, unit="words", random_state=0)
    one = selector.run(pool)
    for suffix in (".jsonl", ".parquet"):
        expected = tmp_path / f"one{suffix}"
        save_data(pool.select(one.indices), expected)
        out = sd.run(selector, pool, num_blocks=5).write(tmp_path / f"dist{suffix}")
        if suffix == ".jsonl":
            assert out.read_bytes() == expected.read_bytes()
        else:
            assert pq.read_table(out).equals(pq.read_table(expected))
        record = json.loads(out.with_name(out.name + ".provenance.json").read_text())
        assert record["engine"]["engine"] == "ray" and record["output"] == str(out)
        same_record(json.loads(json.dumps(one.provenance())), {**record, "output": None})


def test_row_errors_name_the_row_in_the_pool(ray_local):
    """A null response raises DataFormatError naming its position in the pool, not in its block."""
    pool = Dataset.from_dict({"instruction": ["a"] * 10, "output": ["x"] * 7 + [None] + ["y"] * 2})
    with pytest.raises(DataFormatError, match=r"^Row 7: "):
        sd.run(LengthSelector(k=2, unit="words"), pool, num_blocks=3)


def test_any_ray_dataset_is_indexed_in_its_order(ray_local):
    """A Ray Dataset without positions is indexed in preserve_order order; the selection matches."""
    pool = make_pool(3000, seed=3)
    plain = ray.data.from_arrow(pool.with_format("arrow")[:]).repartition(4)
    indexed = sd.with_row_index(plain)
    rows = sorted(indexed.take_all(), key=lambda r: r[sd.ROW_COLUMN])
    assert [r["output"] for r in rows] == pool["output"]
    dist = sd.run(LengthSelector(k=50, unit="chars"), plain)
    assert dist.indices.tolist() == LengthSelector(k=50, unit="chars").run(pool).indices.tolist()


# -- random --------------------------------------------------------------------------------


def test_random_is_identical_for_1_2_and_4_blocks(ray_local, pool_200k):
    """RandomSelector on 200,000 rows gives one subset for 1, 2 and 4 blocks: the single-machine one."""
    for selector in (
        RandomSelector(k=1000, random_state=11),
        RandomSelector(k=0.005, random_state=11, stratify="source", allocation="equal"),
    ):
        one = selector.run(pool_200k)
        for blocks in (1, 2, 4):
            dist = sd.run(selector, pool_200k, num_blocks=blocks)
            assert dist.indices.tolist() == one.indices.tolist(), blocks
            assert dist.ranked.tolist() == one.ranked.tolist(), blocks
            assert dict(dist.extra) == dict(one.extra)


# -- quality ---------------------------------------------------------------------------------


def rating_reply(body):
    """A deterministic AlpaGasus-style reply: a score from a hash of the prompt."""
    content = body["messages"][-1]["content"]
    h = int(hashlib.sha256(content.encode()).hexdigest(), 16)
    return f"{[3.5, 4.0, 4.5, 5.0][h % 4]}\nThe response is accurate."


DRIVER = textwrap.dedent(
    """
    import sys
    import ray
    ray.init(address=sys.argv[1], log_to_driver=False)
    import sftselect.distributed as sd
    from sftselect.backends.openai_compat import OpenAICompatibleBackend
    from sftselect.selectors.quality import QualitySelector

    judge = OpenAICompatibleBackend("judge", base_url=sys.argv[2], backoff_base=0.01)
    q = QualitySelector(judge, k=40, min_score=4.5, cache=sys.argv[3], max_concurrency=4,
                        random_state=0)
    print("started", flush=True)
    sd.run(q, sd.read_jsonl(sys.argv[4]), workers=2, batch_size=16)
    print("finished", flush=True)
    """
)


def test_quality_killed_and_restarted_pays_each_example_once(ray_local, tmp_path):
    """A rating job killed mid-run and restarted pays each example once (requests in flight aside)."""
    n, workers, per_worker = 300, 2, 4
    pool = make_pool(n, seed=4)
    src = tmp_path / "pool.jsonl"
    save_data(pool, src)
    cache = tmp_path / "replies.sqlite"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    address = ray.get_runtime_context().gcs_address
    with LoopbackServer(reply=rating_reply, latency=0.05) as server:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        proc = subprocess.Popen(
            [sys.executable, str(script), address, server.base_url, str(cache), str(src)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            deadline = time.monotonic() + 90
            while server.request_count < 80 and time.monotonic() < deadline:
                assert proc.poll() is None, "the driver ended before it was killed"
                time.sleep(0.02)
            assert server.request_count >= 80
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        # Ray ends the dead driver's actors; wait until no request arrives any more.
        quiet_since, last = time.monotonic(), server.request_count
        while time.monotonic() - quiet_since < 1.5:
            time.sleep(0.1)
            if server.request_count != last:
                quiet_since, last = time.monotonic(), server.request_count
        paid_before, cached = server.request_count, len(ReplyCache(cache))
        assert 0 < cached < n
        assert paid_before - cached <= workers * per_worker  # lost: only those in flight
        judge = OpenAICompatibleBackend("judge", base_url=server.base_url, backoff_base=0.01)
        q = QualitySelector(
            judge, k=40, min_score=4.5, cache=cache, max_concurrency=per_worker, random_state=0
        )
        dist = sd.run(q, sd.read_jsonl(src), workers=workers, batch_size=16)
        assert server.request_count - paid_before == n - cached  # the rest, each once
        assert dist.extra["rating"]["cache_hits"] == cached
        assert len(ReplyCache(cache)) == n
        per_prompt = server.counts_by_user_message()
        assert sum(c - 1 for c in per_prompt.values()) == paid_before - cached
        before = server.request_count
        one = q.run(pool)  # one machine, same cache: nothing sent, the same subset
        assert server.request_count == before
    assert dist.indices.tolist() == one.indices.tolist()
    np.testing.assert_array_equal(dist.scores, one.scores)


def test_quality_on_ray_uses_no_deprecated_ray_argument(ray_local, tmp_path):
    """The rating actors are pinned to the driver's node without Ray Data's deprecated
    ``ray_remote_args`` (removed in Ray 2.64): no RayDeprecationWarning, the same selection."""
    from ray.util.annotations import RayDeprecationWarning

    pool = make_pool(40, seed=1)
    with LoopbackServer(reply=rating_reply) as server:
        judge = OpenAICompatibleBackend("judge", base_url=server.base_url, backoff_base=0.01)
        q = QualitySelector(judge, k=5, min_score=4.5, cache=tmp_path / "r.sqlite", random_state=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dist = sd.run(q, pool, num_blocks=2, workers=2)
        one = q.run(pool)
    deprecated = [str(w.message) for w in caught if issubclass(w.category, RayDeprecationWarning)]
    assert deprecated == []
    assert dist.indices.tolist() == one.indices.tolist()


def test_quality_needs_a_shared_cache(ray_local):
    """QualitySelector on Ray without a cache file is refused, naming the 'cache' parameter."""
    judge = OpenAICompatibleBackend("judge", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(InvalidParameterError, match="'cache' parameter of QualitySelector"):
        sd.run(QualitySelector(judge, k=1), make_pool(10), num_blocks=2)


# -- diversity --------------------------------------------------------------------------------


def _round_robin(labels, within, cluster_key):
    """Equal allocation written out: each cluster's rows in the order of ``within``; then
    round after round, one row from each cluster that has one left, clusters in the
    order of their key (ties: lower cluster number)."""
    queues = [[int(r) for r in within if labels[r] == c] for c in range(int(labels.max()) + 1)]
    turn = sorted(range(len(queues)), key=lambda c: (cluster_key[c], c))
    order = []
    for j in range(max(len(q) for q in queues)):
        order.extend(queues[c][j] for c in turn if j < len(queues[c]))
    return order


def test_diversity_returns_exactly_k_with_the_single_machine_allocation(ray_local):
    """K-means on a sample, every row assigned on Ray: exactly k rows, allocated by the same rule."""
    n, k = 3000, 101
    pool = make_pool(n, seed=5)
    selector = DiversitySelector(
        HashingEmbedder(32), k, text="example", n_clusters=6, random_state=9
    )
    dist = sd.run(selector, pool, num_blocks=4, kmeans_sample=800, workers=2, batch_size=500)
    labels = np.asarray(dist.extra["labels"])
    assert dist.indices.size == k and np.unique(dist.indices).size == k
    rng = np.random.default_rng(9)
    rng.integers(0, 2**31 - 1)  # the K-means seed, drawn first as on one machine
    within = rng.permutation(n)
    cluster_key = rng.random(6)[: labels.max() + 1]  # the tie-breaks between clusters
    expected = _round_robin(labels, within, cluster_key)[:k]
    assert dist.ranked.tolist() == expected
    taken = np.bincount(labels[dist.indices], minlength=labels.max() + 1)
    sizes = np.bincount(labels)
    assert taken.max() - taken[taken < sizes].min() <= 1  # round robin among clusters
    assert dist.extra["kmeans_sample_rows"] == 800


def test_diversity_equals_single_machine_when_the_sample_is_the_pool(ray_local):
    """With the K-means sample covering the pool, the Ray selection is the single-machine one."""
    pool = make_pool(600, seed=6)
    selector = DiversitySelector(
        HashingEmbedder(16), 40, n_clusters=5, within="centroid", random_state=2
    )
    one = selector.run(pool)
    dist = sd.run(selector, pool, num_blocks=3)
    assert dist.ranked.tolist() == one.ranked.tolist()
    assert np.asarray(dist.extra["labels"]).tolist() == one.extra["labels"].tolist()


# -- the rest of the contract -------------------------------------------------------------------


def test_k_too_large_warns_as_on_one_machine(ray_local):
    """Asking for more rows than are eligible warns KTooLargeWarning and returns the eligible rows."""
    pool = make_pool(200)
    selector = LengthSelector(k=500, unit="words")
    with pytest.warns(KTooLargeWarning):
        dist = sd.run(selector, pool, num_blocks=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KTooLargeWarning)
        assert dist.indices.tolist() == selector.run(pool).indices.tolist()


def test_missing_ray_raises_missing_extra(monkeypatch):
    """Without Ray installed, the distributed functions raise MissingExtraError with the install hint."""
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingExtraError, match=r'pip install "sftselect\[ray\]"'):
        sd.read_parquet("nowhere.parquet")


def test_core_never_imports_ray():
    """Importing sftselect, its selectors, its CLI and sftselect.distributed loads no Ray."""
    code = (
        "import sys, sftselect, sftselect.selectors, sftselect.cli, sftselect.cli.distributed, "
        "sftselect.distributed; print('ray' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "False"


def test_cli_engine_ray_writes_the_single_machine_output(ray_local, tmp_path, capsys):
    """`select --engine ray` on a Parquet file writes the single-machine rows and provenance."""
    from sftselect.cli import main

    pool = make_pool(4000, seed=7)
    src = tmp_path / "pool.parquet"
    save_data(pool, src)
    out = tmp_path / "sel.jsonl"
    argv = ["select", str(src), "-o", str(out), "-k", "250", "--unit", "words", "--engine", "ray"]
    assert main(argv) == 0
    expected = tmp_path / "one.jsonl"
    one = LengthSelector(k=250, unit="words").run(load_data(src))
    save_data(load_data(src).select(one.indices), expected)
    assert out.read_bytes() == expected.read_bytes()
    record = json.loads((tmp_path / "sel.jsonl.provenance.json").read_text())
    assert record["input"]["sha256"] and record["indices"] == one.indices.tolist()
    err = capsys.readouterr().err
    assert "selected 250 of 4,000 rows" in err and "ray: 1 node (2 CPUs)" in err


# -- selectors of your own: the engine runs what a selector declares ---------------------------


def test_a_score_selector_of_your_own_runs_on_ray_row_for_row(ray_local):
    """A ScoreSelector subclass written here, with no edit to sftselect.distributed, inherits
    the ROW_SCORE declaration and is scored in Ray tasks: the single-machine answer, row for
    row (ranking, scores, provenance), for a count, a fraction with random ties, a threshold."""
    from sftselect import ScoreSelector
    from sftselect.core.base import EngineKind

    class VowelShare(ScoreSelector):
        """The share of vowels among the letters of the response (NaN without letters)."""

        def _score(self, dataset):
            shares = []
            for text in dataset["output"]:
                letters = [c for c in text.lower() if c.isalpha()]
                vowels = sum(c in "aeiou" for c in letters)
                shares.append(vowels / len(letters) if letters else np.nan)
            return np.array(shares, dtype=float)

    assert VowelShare.engine_kind is EngineKind.ROW_SCORE
    pool = make_pool(3000, seed=11)
    for selector in (
        VowelShare(k=200),
        VowelShare(k=0.1, largest=False, ties="random", random_state=4),
        VowelShare(min_score=0.4, max_score=0.45),
    ):
        one = selector.run(pool)
        dist = sd.run(selector, pool, num_blocks=4)
        assert dist.ranked.tolist() == one.ranked.tolist()
        assert dist.indices.tolist() == one.indices.tolist()
        np.testing.assert_array_equal(dist.scores, one.scores)
        assert [s.name for s in dist.summary.stages][-2:] == ["score", "merge"]
        same_record(one.provenance(), dist.provenance())


def test_a_selector_of_your_own_without_a_declaration_runs_gathered(ray_local):
    """A plain Selector subclass is WHOLE_DATASET (the fallback): Ray gathers the rows (only
    the columns it names) on the driver and runs the one-process ranking, and says it does not
    scale. RepresentationFilter (VECTORS_THEN_GLOBAL in row order) gives one machine's too."""
    from sftselect import RankResult, RepresentationFilter, Selector

    class LongestInstructions(Selector):
        def __init__(self, k=10):
            self.k = k

        def input_columns(self):
            return ["instruction"]

        def _rank(self, dataset, rng, limit):
            assert dataset.column_names == ["instruction"]
            lengths = np.array([len(t) for t in dataset["instruction"]])
            order = np.lexsort((np.arange(lengths.size), -lengths))
            return RankResult(order=order.astype(np.int64), n_eligible=int(lengths.size))

    pool = make_pool(400, seed=12)
    mine = LongestInstructions(k=25)
    dist = sd.run(mine, pool, num_blocks=3)
    assert dist.ranked.tolist() == mine.run(pool.select_columns(["instruction"])).ranked.tolist()
    gather = dist.summary.stages[-1]
    assert gather.name == "gather" and "does not scale" in gather.detail
    dedup = RepresentationFilter(HashingEmbedder(16), 30, max_similarity=0.9, text="example")
    assert sd.run(dedup, pool, num_blocks=3).ranked.tolist() == dedup.run(pool).ranked.tolist()


def test_vectors_then_global_of_your_own_runs_on_an_actor_pool(ray_local):
    """VECTORS_THEN_GLOBAL without K-means: each block embedded by the selector's own embed()
    in an actor, the global step rank_vectors() on the driver: the single-machine ranking, for
    a selector written here and for a DiversitySelector subclass that opts out of the sample."""
    from sftselect import RankResult, Selector
    from sftselect.core.base import EngineKind
    from sftselect.embedding.cache import embed_dataset

    class FarFromTheMean(Selector):
        engine_kind = EngineKind.VECTORS_THEN_GLOBAL

        def __init__(self, embedder=None, k=10):
            self.embedder, self.k = embedder, k

        def embed(self, dataset):
            return embed_dataset(self.embedder, dataset, text="example", owner="FarFromTheMean")

        def rank_vectors(self, vectors, rng, limit):
            X = np.asarray(vectors, dtype=np.float64)
            if X.shape[0] == 0:
                return RankResult(order=np.empty(0, dtype=np.int64), n_eligible=0)
            far = np.linalg.norm(X - X.mean(axis=0), axis=1)
            order = np.lexsort((np.arange(far.size), -far))
            return RankResult(order=order.astype(np.int64), n_eligible=int(far.size))

        def _rank(self, dataset, rng, limit):
            return self.rank_vectors(self.embed(dataset), rng, limit)

    class ExactDiversity(DiversitySelector):
        kmeans_allocation = False

    pool = make_pool(600, seed=13)
    mine = FarFromTheMean(HashingEmbedder(16), k=30)
    dist = sd.run(mine, pool, num_blocks=3, workers=1)
    assert dist.ranked.tolist() == mine.run(pool).ranked.tolist()
    assert dist.summary.stages[-1].name == "embed+rank"
    exact = ExactDiversity(HashingEmbedder(16), 40, n_clusters=5, random_state=3)
    one = exact.run(pool)
    dist = sd.run(exact, pool, num_blocks=3, workers=1)
    assert dist.ranked.tolist() == one.ranked.tolist()
    assert np.asarray(dist.extra["labels"]).tolist() == one.extra["labels"].tolist()
    assert "kmeans_sample_rows" not in dist.extra


def test_supported_names_every_exported_selector_the_engine_spreads():
    """``sd.SUPPORTED`` lists exactly the exported selectors that declare a kind other
    than WHOLE_DATASET, plus the two that declare theirs by instance (SemDeDup,
    RepresentationFilter: spread when their global step needs only vectors)."""
    import inspect

    import sftselect
    from sftselect.core.base import EngineKind, Selector

    by_instance = {"SemDeDup", "RepresentationFilter"}
    spread = {
        name
        for name in sftselect.__all__
        if inspect.isclass(obj := getattr(sftselect, name))
        and issubclass(obj, Selector)
        and not inspect.isabstract(obj)
        and name != "ScoreSelector"  # the base of the scoring selectors, not one of them
        and (obj.engine_kind is not EngineKind.WHOLE_DATASET or name in by_instance)
    }
    assert set(sd.SUPPORTED) == spread
    assert len(sd.SUPPORTED) == len(set(sd.SUPPORTED))
    spread_by_instance = {
        "SemDeDup": sftselect.SemDeDup(HashingEmbedder(), keep="hard"),
        "RepresentationFilter": sftselect.RepresentationFilter(HashingEmbedder()),
    }
    for name, selector in spread_by_instance.items():
        assert selector.engine_kind is EngineKind.VECTORS_THEN_GLOBAL, name
