"""Exact and MinHash deduplication on Ray (``DUPLICATE_GROUPS``): keys per block, groups by
key on the cluster, the same groups, kept rows and removed-rows table as one machine."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

import sftselect.distributed as sd  # noqa: E402
from sftselect import (  # noqa: E402
    Chain,
    ExactDedup,
    LengthSelector,
    MinHashDedup,
    RepresentationFilter,
    SemDeDup,
    load_sample,
)
from sftselect.core.base import EngineKind, RankResult, Selector  # noqa: E402
from sftselect.core.row_tables import find_row_tables  # noqa: E402
from tests.helpers.near_copies import _edit, pool_with_near_copies  # noqa: E402
from tests.helpers.paths import require_shared_data  # noqa: E402


def _with_duplicates(rows: list[dict], seed: int) -> list[dict]:
    """``rows``, then edited near-copies of some (scattered sources, so a duplicate is
    rarely in its original's block), exact repeats, empty rows and 100 near-identical
    rows whose buckets hold more than 64 rows (the cap on large buckets)."""
    rng = np.random.default_rng(seed)
    out = [dict(r) for r in rows]
    for src in rng.choice(len(rows), size=len(rows) // 6, replace=False).tolist():
        row = dict(rows[src])
        field = ["instruction", "output"][int(rng.integers(2))]
        row[field] = _edit(row[field], rng)
        out.append(row)
    out += [dict(rows[i]) for i in rng.choice(len(rows), size=25, replace=False).tolist()]
    out += [{"instruction": "", "input": "", "output": ""}] * 3
    head, tail = (" ".join(f"w{j}" for j in range(a, a + 200)) for a in (0, 200))
    # 100 rows, pairs at Jaccard 0.975 (5 of 397 shingles differ): buckets of about 86
    out += [{"instruction": f"{head} v{i} {tail}", "input": "", "output": "ok"} for i in range(100)]
    order = rng.permutation(len(out))  # copies spread among the originals
    return [out[i] for i in order]


@pytest.fixture(scope="module")
def sample_pool() -> Dataset:
    rows = load_sample().select(range(600)).to_list()
    pool = Dataset.from_list(_with_duplicates(rows, seed=1))
    return pool.add_column("score", np.random.default_rng(2).integers(0, 5, len(pool)).tolist())


def _same(one, got) -> None:
    """Ranking, kept rows, every removed-rows table and the details are one machine's."""
    assert got.ranked.tolist() == one.ranked.tolist()
    assert got.indices.tolist() == one.indices.tolist()
    mine, theirs = find_row_tables(got.extra), find_row_tables(one.extra)
    assert [t.name for t in mine] == [t.name for t in theirs] and theirs
    for a, b in zip(mine, theirs):
        assert list(a) == list(b)
        for column in b:
            assert np.array_equal(a[column], b[column]), (b.name, column)

    def plain(extra):
        return {k: str(v) for k, v in extra.items() if k != "removed_rows"}

    assert plain(got.extra) == plain(one.extra)


MINHASH = {
    "first-1-block": (1, lambda: MinHashDedup()),
    "longest-3-blocks": (3, lambda: MinHashDedup(keep="longest")),
    "random-7-blocks": (7, lambda: MinHashDedup(keep="random", random_state=5)),
    "selector-4-blocks": (4, lambda: MinHashDedup(keep=LengthSelector(unit="words"))),
    "column-unverified-5-blocks": (5, lambda: MinHashDedup(keep="score", verify=False)),
    "instruction-ngram3-2-blocks": (
        2,
        lambda: MinHashDedup(fields="instruction", ngram=3, threshold=0.5, random_state=1),
    ),
}


@pytest.mark.parametrize("case", list(MINHASH), ids=str)
def test_minhash_on_ray_is_one_machines(ray_local, sample_pool, case):
    num_blocks, make = MINHASH[case]
    one = make().run(sample_pool)
    assert one.extra["removed"] > 100 and one.extra["candidate_pairs"] > 0
    got = sd.run(make(), sample_pool, num_blocks=num_blocks)
    _same(one, got)
    stages = [s.name for s in got.summary.stages]
    assert "keys+classes" in stages and "gather" not in stages  # no row reached the driver


@pytest.mark.parametrize(
    ("num_blocks", "make"),
    [
        (3, lambda: ExactDedup()),
        (6, lambda: ExactDedup(keep="score", fields="instruction")),
        (2, lambda: ExactDedup(keep=LengthSelector(unit="chars"), casefold=False)),
    ],
    ids=["first", "column-instruction", "selector"],
)
def test_exact_dedup_on_ray_is_one_machines(ray_local, sample_pool, num_blocks, make):
    one = make().run(sample_pool)
    assert one.extra["removed"] >= 25
    _same(one, sd.run(make(), sample_pool, num_blocks=num_blocks))


def test_chain_of_minhash_then_length_on_ray_is_one_machines(ray_local, sample_pool):
    def make():
        return Chain(MinHashDedup(random_state=0), LengthSelector(k=150, unit="words"))

    one = make().run(sample_pool)
    got = sd.run(make(), sample_pool, num_blocks=4)
    assert got.ranked.tolist() == one.ranked.tolist()
    _same(one, got)


def test_minhash_on_ray_on_real_alpaca_with_near_copies(ray_local):
    data = require_shared_data()
    rows, _ = pool_with_near_copies(data, 1200, 300, seed=4)
    pool = Dataset.from_list(_with_duplicates(rows, seed=3))
    for num_blocks, make in (
        (5, lambda: MinHashDedup(keep="longest")),
        (3, lambda: ExactDedup(fields="instruction,response")),
    ):
        one = make().run(pool)
        assert one.extra["removed"] > 100
        _same(one, sd.run(make(), pool, num_blocks=num_blocks))


def test_a_duplicate_groups_selector_without_its_methods_is_refused():
    class Half(Selector):
        engine_kind = EngineKind.DUPLICATE_GROUPS

        def duplicate_keys(self, dataset):  # the other methods are missing
            raise NotImplementedError

        def _rank(self, dataset, rng, limit):
            return RankResult(order=np.arange(len(dataset)), n_eligible=len(dataset))

    from sftselect.distributed.dispatch import engine_kind_of

    with pytest.raises(TypeError, match="DUPLICATE_GROUPS but has no pair_values"):
        engine_kind_of(Half())


def _provenance(path):
    import json

    record = json.loads(path.read_text())
    for key in ("engine", "seconds", "output", "created"):  # engine: on Ray only
        record.pop(key, None)
    # what one process hashes of the table in memory (the file's SHA-256 is compared)
    record["input"].pop("fingerprint")
    record["input"].pop("content_sha256", None)
    return record


@pytest.mark.parametrize(
    "options",
    [
        ["--selector", "minhash", "--keep", "longest", "--threshold", "0.6"],
        ["--selector", "exact-dedup", "--fields", "instruction", "--keep", "score"],
        ["--dedup", "minhash", "--selector", "length", "-k", "120", "--unit", "words"],
    ],
    ids=["minhash", "exact", "dedup-then-length"],
)
def test_cli_engine_ray_writes_one_machines_files(ray_local, sample_pool, tmp_path, options):
    """`select ... --engine ray` writes the output, OUTPUT.removed.csv and the provenance
    record (less what says where and how long it ran) byte for byte as one machine."""
    from sftselect.cli import main

    src = tmp_path / "pool.jsonl"
    sample_pool.to_json(src)
    files = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine / "sel.jsonl"
        out.parent.mkdir()
        argv = ["select", str(src), "-o", str(out), "--seed", "3", *options, "--report", "-q"]
        assert main([*argv, "--engine", engine]) == 0
        files[engine] = out
    local, on_ray = files["local"], files["ray"]
    assert on_ray.read_bytes() == local.read_bytes()
    removed = local.with_name("sel.jsonl.removed.csv")
    assert removed.exists() and len(removed.read_text().splitlines()) > 20
    assert on_ray.with_name(removed.name).read_bytes() == removed.read_bytes()
    prov = local.with_name("sel.jsonl.provenance.json")
    assert _provenance(on_ray.with_name(prov.name)) == _provenance(prov)


def test_cli_engine_ray_refuses_semdedup(tmp_path, capsys):
    from sftselect.cli import main

    argv = ["select", "sample:alpaca_2k", "-o", str(tmp_path / "o.jsonl"), "--selector"]
    assert main([*argv, "semdedup", "--embed-column", "v", "--engine", "ray"]) == 2
    assert "semdedup runs on this machine" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("make", "stage"),
    [
        (lambda e: SemDeDup(e, eps=0.3, n_clusters=4, random_state=1), "embed+rank"),
        (lambda e: SemDeDup(e, eps=0.3, n_clusters=4, keep="random", random_state=2), "embed+rank"),
        (lambda e: SemDeDup(e, eps=0.3, n_clusters=4, keep="longest", random_state=1), "gather"),
        (lambda e: RepresentationFilter(e, 150, max_similarity=0.6), "embed+rank"),
    ],
    ids=["semdedup-hard", "semdedup-random", "semdedup-longest", "repr"],
)
def test_embedding_filters_on_ray_are_one_machines(ray_local, sample_pool, make, stage):
    """SemDeDup and RepresentationFilter: vectors in actors and the global step on the
    driver when it reads only vectors (VECTORS_THEN_GLOBAL), else the rows gathered."""
    from sftselect.embedding import HashingEmbedder

    pool = sample_pool.select(range(300))
    one = make(HashingEmbedder(n_features=32)).run(pool)
    got = sd.run(make(HashingEmbedder(n_features=32)), pool, num_blocks=3)
    assert got.ranked.tolist() == one.ranked.tolist() and 0 < one.indices.size < 300
    assert stage in [s.name for s in got.summary.stages]
    if "removed_rows" in one.extra:
        _same(one, got)


def test_no_rows_left_for_the_dedup_stage_of_a_chain(ray_local, sample_pool):
    """A dedup stage that receives no rows gives what one machine gives (no rows)."""
    from sftselect import ColumnScoreSelector

    def make():
        return Chain(ColumnScoreSelector("score", min_score=99.0), MinHashDedup())

    one = make().run(sample_pool)
    got = sd.run(make(), sample_pool, num_blocks=3)
    assert one.indices.size == 0 and got.indices.tolist() == []


@pytest.mark.parametrize("parts", [1, 3, 8])
def test_any_number_of_partitions_gives_the_same_groups(ray_local, sample_pool, parts):
    """Classes, buckets and pairs are sets: 1, 3 or 8 shuffle partitions (over 5 blocks)
    give one machine's groups, counts and removed-rows table."""
    from sftselect.distributed.dedup import rank_duplicates
    from sftselect.distributed.engine import cluster_info
    from sftselect.distributed.summary import RunSummary

    selector = MinHashDedup(keep="random", random_state=7)
    one = selector.run(sample_pool)
    rng, _ = selector.resolve_seed()
    result, n = rank_duplicates(
        selector,
        sd.from_huggingface(sample_pool, num_blocks=5),
        rng,
        RunSummary(cluster_info()),
        rank=lambda ranker: ranker.rank_indices(sample_pool),  # not called for "random"
        column_names=sample_pool.column_names,
        parts=parts,
    )
    got = selector.build_selection(result, n=n, k=None, seed=None)
    assert n == len(sample_pool)
    _same(one, got)
