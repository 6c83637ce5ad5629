"""MinHashDedup: its LSH parameters, its signatures and its groups against references."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from datasets import Dataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sftselect import Chain, InvalidParameterError, LengthSelector, MinHashDedup, QualitySelector
from sftselect.selectors.dedup._minhash import lsh_params, shingle_sets, signatures
from tests.helpers.conformance import FAKE_JUDGE
from tests.helpers.near_copies import (
    brute_force_pairs,
    example_text,
    pool_with_near_copies,
    shingle_set,
)
from tests.helpers.strategies import alpaca_rows

TEXT = "the quick brown fox jumps over the lazy dog near the quiet river bank today"


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7, 0.8, 0.9, 0.95])
@pytest.mark.parametrize("num_perm", [16, 64, 128, 256])
@pytest.mark.parametrize("weights", [(0.5, 0.5), (0.1, 0.9)])
def test_lsh_params_are_datasketchs(threshold, num_perm, weights):
    """(bands, rows) equal datasketch's _optimal_param (scipy quad) for the same inputs."""
    lsh = pytest.importorskip("datasketch.lsh")
    assert lsh_params(threshold, num_perm, weights) == lsh._optimal_param(
        threshold, num_perm, *weights
    )


def test_default_bands_favour_recall():
    sel = MinHashDedup()
    assert sel.check_params() == (20, 6)
    assert MinHashDedup(weights=(0.5, 0.5)).check_params() == (14, 9)
    assert MinHashDedup(bands=32).check_params() == (32, 4)


def test_shingle_sets_match_an_independent_tokenisation():
    """Shingle counts equal those of a Python-regex shingling (NFKC, lower case, words)."""
    texts = [TEXT, "Ünïcode café — naïve façade, ½ done!", "", "one two", "a a a a a a a"]
    got = shingle_sets(pa.array(texts), 5)
    assert [g.size for g in got] == [len(shingle_set(t, 5)) for t in texts]
    assert got[2].size == 0 and got[3].size == 1 and got[4].size == 1


def test_signatures_do_not_depend_on_batches_or_threads():
    texts = pa.array([f"{TEXT} {i} {'x ' * (i % 7)}" for i in range(50)] + ["", "short"])
    one = signatures(texts, ngram=3, num_perm=64, seed=1)
    other = signatures(texts, ngram=3, num_perm=64, seed=1, num_proc=2, batch_size=7)
    assert np.array_equal(one, other)
    assert np.all(one[50] == np.uint32(0xFFFFFFFF))  # no shingle: the empty signature
    assert not np.array_equal(one, signatures(texts, ngram=3, num_perm=64, seed=2))


@pytest.fixture(scope="module")
def near_copy_pool(tmp_path_factory):
    from tests.helpers.paths import require_shared_data

    rows, sources = pool_with_near_copies(require_shared_data(), 3000, 300)
    return rows, sources


def test_signature_estimates_agree_with_datasketch(near_copy_pool):
    """On the same shingles, both MinHash estimates of Jaccard are unbiased and as precise:
    each within 4 standard errors of the truth, mean errors within 3 standard errors of 0,
    and mean squared errors alike."""
    datasketch = pytest.importorskip("datasketch")
    rows, sources = near_copy_pool
    n = 3000
    rng = np.random.default_rng(1)
    pairs = [(s, n + i) for i, s in enumerate(sources[:150])]  # edited copies: J high
    pairs += [(int(a), int(b)) for a, b in rng.integers(0, n, size=(50, 2)) if a != b]
    texts = [example_text(r) for r in rows]
    ours = signatures(pa.array(texts), ngram=5, num_perm=128, seed=1)
    ests, truths, refs = [], [], []
    for a, b in pairs:
        sa, sb = shingle_set(texts[a], 5), shingle_set(texts[b], 5)
        truths.append(len(sa & sb) / len(sa | sb))
        ests.append(float(np.mean(ours[a] == ours[b])))
        ma, mb = datasketch.MinHash(num_perm=128), datasketch.MinHash(num_perm=128)
        ma.update_batch([s.encode() for s in sa])
        mb.update_batch([s.encode() for s in sb])
        refs.append(ma.jaccard(mb))
    ests, truths, refs = np.array(ests), np.array(truths), np.array(refs)
    se = np.sqrt(truths * (1 - truths) / 128)
    assert np.all(np.abs(ests - truths) <= 4 * se + 1 / 128)
    assert np.all(np.abs(ests - refs) <= 4 * np.sqrt(2) * se + 2 / 128)
    bound = 3 * np.sqrt(np.mean(se**2) / len(pairs))
    assert abs(np.mean(ests - truths)) <= bound
    assert abs(np.mean(refs - truths)) <= bound
    assert np.mean((ests - truths) ** 2) <= 1.5 * np.mean((refs - truths) ** 2) + 1e-4
    assert truths.min() < 0.3 < 0.7 < truths.max()  # the pairs span the range


def _groups(selection, n):
    table = selection.extra["removed_rows"]
    group_of = np.arange(n)
    group_of[table["position"]] = table["kept"]
    return group_of


def test_groups_equal_brute_force_pairs_on_real_near_copies(near_copy_pool):
    """3,000 real Alpaca records and 300 edited copies: every pair at shingle Jaccard >= 0.7
    (brute force over all pairs) is in one group (recall >= 0.98), and every group is
    joined by such pairs (no false positive)."""
    rows, _ = near_copy_pool
    texts = [example_text(r) for r in rows]
    truth = brute_force_pairs(texts, 5, 0.7)
    assert len(truth) >= 150  # the edits made near-duplicates
    ds = Dataset.from_list(rows)
    sel = MinHashDedup(threshold=0.7, random_state=0).run(ds)
    group_of = _groups(sel, len(rows))
    recall = np.mean([group_of[i] == group_of[j] for i, j in truth])
    assert recall >= 0.98, recall
    # No false positive: each group lies inside one component of the true-pair graph.
    from sftselect.selectors.dedup._groups import UnionFind

    uf = UnionFind(len(rows))
    for i, j in truth:
        uf.union(i, j)
    component = uf.labels()
    for kept in np.unique(sel.extra["removed_rows"]["kept"]):
        members = np.flatnonzero(group_of == kept)
        assert np.unique(component[members]).size == 1
    assert np.all(sel.extra["removed_rows"]["similarity"] >= 0.0)
    assert sel.extra["removed"] == len(rows) - sel.indices.size


def test_exact_copies_and_keep_policies():
    rows = [
        {"instruction": TEXT, "input": "", "output": "short", "score": 1.0},
        {"instruction": TEXT, "input": "", "output": "a much longer answer", "score": 5.0},
        {"instruction": TEXT.replace("today", "now"), "input": "", "output": "x", "score": 3.0},
        {"instruction": "Say hi.", "input": "", "output": "Hi!", "score": 2.0},
    ]
    ds = Dataset.from_list(rows)
    kw = {"fields": "instruction"}
    assert MinHashDedup(**kw).select_indices(ds).tolist() == [0, 3]
    assert MinHashDedup(**kw, keep="longest").select_indices(ds).tolist() == [1, 3]
    assert MinHashDedup(**kw, keep="score").select_indices(ds).tolist() == [1, 3]
    keep = LengthSelector(unit="chars", largest=False)
    assert MinHashDedup(**kw, keep=keep).select_indices(ds).tolist() == [2, 3]
    # Whole examples differ in their outputs: the exact copies stay apart from row 2.
    assert MinHashDedup(fields=["instruction", "output"], ngram=2).select_indices(ds).size >= 2


def test_keep_the_best_rated_copy_with_a_judge():
    rows = [{"instruction": TEXT, "input": "", "output": f"answer {i}"} for i in range(6)]
    ds = Dataset.from_list(rows)
    judge = QualitySelector(FAKE_JUDGE, k=None, min_score=0.0, ties="stable")
    kept = MinHashDedup(fields="instruction", keep=judge).select_indices(ds).tolist()
    assert kept == [int(judge.rank_indices(ds)[0])]


def test_chain_in_front_of_a_selector():
    rows = [{"instruction": TEXT, "input": "", "output": "o " * (i + 1)} for i in range(5)]
    rows += [{"instruction": f"Task {i}", "input": "", "output": "w " * i} for i in range(5)]
    ds = Dataset.from_list(rows)
    chained = Chain(
        MinHashDedup(fields="instruction", keep="longest"), LengthSelector(3, unit="words")
    )
    assert chained.select_indices(ds).tolist() == [4, 8, 9]


def test_parameters_are_checked():
    ds = Dataset.from_list([{"instruction": TEXT, "input": "", "output": "x"}])
    for bad in (
        {"threshold": 0},
        {"threshold": 1.5},
        {"ngram": 0},
        {"bands": 500},
        {"keep": 3},
        {"fields": []},
        {"fields": "nope"},
        {"keep": "nope"},
        {"hash_seed": -1},
        {"weights": (0, 0)},
        {"weights": 0.5},
    ):
        with pytest.raises(InvalidParameterError):
            MinHashDedup(**bad).run(ds)


def test_verify_false_unions_candidates_and_reports_estimates():
    """With one row per band any shared MinHash value makes a candidate: unverified, the
    pair at Jaccard 6/16 is joined (its similarity the signature estimate); verified, not."""
    rows = [{"instruction": TEXT, "input": "", "output": ""}] * 2
    rows += [{"instruction": TEXT.replace("lazy", "sleepy"), "input": "", "output": ""}]
    ds = Dataset.from_list(rows)
    loose = MinHashDedup(verify=False, bands=128).run(ds)
    assert loose.indices.tolist() == [0]
    assert loose.extra["verified_pairs"] == 0
    sims = loose.extra["removed_rows"]["similarity"]
    assert sims[0] == 1.0 and abs(sims[1] - 6 / 16) < 0.2
    strict = MinHashDedup(bands=128).run(ds)
    assert strict.indices.tolist() == [0, 2]
    assert strict.extra["candidate_pairs"] >= 1 and strict.extra["verified_pairs"] >= 2


def _dup_rows(rows):
    """``rows`` plus near-copies of every other row (one word dropped from its output)."""
    out = [dict(r) for r in rows]
    for r in rows[::2]:
        words = (r["instruction"] + " " + r["output"]).split()
        out.append(dict(r, output=" ".join(words[1:])))
    for i, r in enumerate(out):
        r["uid"] = float(i)
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=alpaca_rows(min_size=1, max_size=20, allow_empty=False))
def test_minhash_dedup_is_idempotent(rows):
    """Deduplicating the kept rows again removes nothing (signatures depend on the text
    alone, so a pair LSH missed once it misses again)."""
    ds = Dataset.from_list(_dup_rows(rows))
    once = MinHashDedup(ngram=2, threshold=0.5).select(ds)
    again = MinHashDedup(ngram=2, threshold=0.5).select_indices(once)
    assert again.tolist() == list(range(len(once)))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=alpaca_rows(min_size=1, max_size=20, allow_empty=False), data=st.data())
def test_minhash_kept_rows_do_not_depend_on_row_order(rows, data):
    """Under a keep policy with distinct priorities (a unique column) the same rows are
    kept whatever the row order; under keep="first" the same number."""
    rows = _dup_rows(rows)
    perm = data.draw(st.permutations(range(len(rows))))
    ds, shuffled = Dataset.from_list(rows), Dataset.from_list([rows[p] for p in perm])
    sel = MinHashDedup(ngram=2, threshold=0.5, keep="uid")
    assert sorted(sel.select(ds)["uid"]) == sorted(sel.select(shuffled)["uid"])
    first = MinHashDedup(ngram=2, threshold=0.5)
    assert first.select_indices(ds).size == first.select_indices(shuffled).size


def test_pair_jaccard_equals_python_sets():
    from sftselect.selectors.dedup._minhash import pair_jaccard, shingle_set_arrays

    texts = [TEXT, TEXT.replace("lazy", "sleepy"), "", "one two three", TEXT + " again and again"]
    flat, offsets = shingle_set_arrays(pa.array(texts), 3)
    a = np.array([0, 0, 2, 3, 1, 4, 0])
    b = np.array([1, 2, 2, 3, 4, 0, 0])
    got = pair_jaccard(flat, offsets, a, b, chunk=3)
    sets = [shingle_set(t, 3) for t in texts]
    want = [
        len(sets[i] & sets[j]) / len(sets[i] | sets[j]) if sets[i] | sets[j] else 0.0
        for i, j in zip(a, b)
    ]
    assert np.allclose(got, want)
