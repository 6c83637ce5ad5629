"""Composition: hand-computed cases for Chain, Union, Intersection and PerSource."""

from __future__ import annotations

import pytest
from datasets import Dataset

from sftselect import (
    Chain,
    ColumnScoreSelector,
    Intersection,
    InvalidParameterError,
    KTooLargeWarning,
    LengthSelector,
    PerSource,
    RandomSelector,
    Union,
)


@pytest.fixture
def ds():
    # lengths (words): 1 2 3 4 5 6 ; scores: 5 4 3 2 1 0
    return Dataset.from_dict(
        {
            "instruction": [f"q{i}" for i in range(6)],
            "output": [" ".join(["w"] * (i + 1)) for i in range(6)],
            "score": [5.0, 4.0, 3.0, 2.0, 1.0, 0.0],
            "source": ["a", "b", "a", "b", "a", "b"],
        }
    )


def test_union_without_k_is_set_union(ds):
    """Union(k=None) is the union of what each operand selects."""
    u = Union(LengthSelector(2, unit="words"), ColumnScoreSelector("score", 2))
    assert u.select_indices(ds).tolist() == [0, 1, 4, 5]


def test_union_with_k_round_robins_by_rank(ds):
    """Union(k=3) takes rank 0 of each operand, then rank 1 of the first."""
    u = Union(LengthSelector(2, unit="words"), ColumnScoreSelector("score", 2), k=3)
    # rankings: length [5,4,3,...], score [0,1,2,...] -> 5, 0, then 4
    assert u.select_indices(ds).tolist() == [0, 4, 5]
    assert u.rank_indices(ds).tolist()[:4] == [5, 0, 4, 1]


def test_intersection_with_k_takes_shallowest_common_rows(ds):
    """Intersection(k=2) ranks rows by the depth at which both operands include them."""
    i = Intersection(LengthSelector(1, unit="words"), ColumnScoreSelector("score", 1), k=2)
    # length rank: 5,4,3,2,1,0 ; score rank: 0,1,2,3,4,5 -> worst rank: row2=3, row3=3, others >=4
    assert i.select_indices(ds).tolist() == [2, 3]


def test_intersection_without_k_may_be_empty(ds):
    """Intersection(k=None) of disjoint selections is empty."""
    i = Intersection(LengthSelector(2, unit="words"), ColumnScoreSelector("score", 2))
    assert i.select_indices(ds).tolist() == []


def test_operators_are_sugar(ds):
    """a | b, a & b and a >> b build Union, Intersection and Chain."""
    a, b = LengthSelector(3, unit="words"), ColumnScoreSelector("score", 4)
    assert (a | b).select_indices(ds).tolist() == Union(a, b).select_indices(ds).tolist()
    assert (a & b).select_indices(ds).tolist() == [3]
    assert (
        (b >> a).select_indices(ds).tolist() == Chain(b, a).select_indices(ds).tolist() == [1, 2, 3]
    )


def test_chain_fraction_applies_to_the_stage_input(ds):
    """A stage's fractional k is a fraction of the rows it receives."""
    c = Chain(ColumnScoreSelector("score", 4), LengthSelector(0.5, unit="words"))
    assert c.select_indices(ds).tolist() == [2, 3]


def test_per_source_quotas(ds):
    """PerSource takes each source's quota with the base selector, and nothing else."""
    p = PerSource("source", {"a": 2, "b": 1}, LengthSelector(unit="words"))
    # source a rows 0,2,4 -> longest 2,4 ; source b rows 1,3,5 -> longest 5
    assert p.select_indices(ds).tolist() == [2, 4, 5]
    details = p.run(ds).extra["sources"]
    assert details["a"] == {
        "rows": 3,
        "quota": 2,
        "selected": 2,
        "selector": "LengthSelector",
        "seed": None,  # stable ties draw nothing
        "details": {"n_excluded_by_rule": 0, "n_unscorable": 0},
    }


def test_per_source_with_a_chain_sets_the_quota_on_its_last_stage(ds):
    """PerSource over a Chain takes each quota with the chain's last stage."""
    rated = ColumnScoreSelector("score", min_score=2.0)  # rows 0, 1, 2, 3
    p = PerSource("source", {"a": 1, "b": 1}, rated >> LengthSelector(unit="words"))
    # source a: rows 0, 2 rated >= 2 -> longest 2 ; source b: rows 1, 3 -> longest 3
    assert p.select_indices(ds).tolist() == [2, 3]


def test_per_source_refuses_a_base_it_cannot_give_a_quota(ds):
    """A base with no k and no last stage (an empty Chain) is an error naming 'base'."""
    with pytest.raises(InvalidParameterError, match="'base' parameter of PerSource"):
        PerSource("source", {"a": 1}, Chain()).select_indices(ds)


def test_per_source_warns_about_missing_and_small_sources(ds):
    """A quota for an absent source, or larger than the source, warns."""
    with pytest.warns(KTooLargeWarning):
        PerSource("source", {"a": 5, "zzz": 1}, LengthSelector(unit="words")).select_indices(ds)


def test_composites_validate_operands(ds):
    """Non-selectors and too few operands are clear errors."""
    with pytest.raises(InvalidParameterError, match="at least 2"):
        Union(LengthSelector(1)).select_indices(ds)
    with pytest.raises(InvalidParameterError, match="must be a Selector"):
        Union(LengthSelector(1), "length").select_indices(ds)


def test_provenance_of_composites_nests_params(ds):
    """A composite's provenance lists its operands with their parameters."""
    record = (
        Union(LengthSelector(2, unit="words"), RandomSelector(2, random_state=1), k=3)
        .run(ds)
        .provenance()
    )
    assert record["params"]["k"] == 3
    assert [s["selector"] for s in record["params"]["selectors"]] == [
        "LengthSelector",
        "RandomSelector",
    ]


def test_composites_record_each_operands_seed_so_the_run_repeats(ds):
    """An unseeded operand's drawn entropy is recorded by Union, Chain and PerSource, and repeats the run."""
    union = Union(LengthSelector(k=2, unit="words"), RandomSelector(k=2))
    run = union.run(ds)
    operands = run.extra["operands"]
    assert [o["selector"] for o in operands] == ["LengthSelector", "RandomSelector"]
    assert operands[0]["seed"] is None and "entropy" in operands[1]["seed"]
    entropy = int(operands[1]["seed"]["entropy"])
    again = Union(LengthSelector(k=2, unit="words"), RandomSelector(k=2, random_state=entropy))
    assert again.select_indices(ds).tolist() == run.indices.tolist()
    chain = Chain(LengthSelector(k=4, unit="words"), RandomSelector(k=2)).run(ds)
    assert "entropy" in chain.extra["stages"][1]["seed"]
    per = PerSource("source", {"a": 1, "b": 1}, RandomSelector()).run(ds)
    assert all("entropy" in per.extra["sources"][s]["seed"] for s in ("a", "b"))


def test_a_judges_parse_failures_reach_the_composite_record(ds):
    """A QualitySelector operand's rating report (parse failures included) is in the Union's record."""
    from sftselect.backends import CallableBackend
    from sftselect.selectors.quality import QualitySelector

    judge = CallableBackend(lambda messages: "no idea", identity="mute")
    union = Union(LengthSelector(k=2, unit="words"), QualitySelector(judge, k=2))
    with pytest.warns(KTooLargeWarning):
        run = union.run(ds)
    rating = run.extra["operands"][1]["details"]["rating"]
    assert rating["parse_failures"] == len(ds) and run.provenance()["details"]["operands"][1]


def test_per_source_warns_naming_the_short_source(ds):
    """A source with fewer rows than its quota is named in the warning."""
    with pytest.warns(KTooLargeWarning, match="source 'b' has 3 rows") as caught:
        PerSource("source", {"a": 1, "b": 5}, LengthSelector(unit="words")).run(ds)
    assert not any("LengthSelector was asked" in str(w.message) for w in caught)


@pytest.mark.parametrize(
    ("selector", "owner", "column"),
    [
        (
            Chain(ColumnScoreSelector("score", min_score=4.5), LengthSelector(k=1000)),
            "ColumnScoreSelector",
            "score",
        ),
        (
            PerSource("source", {"sharegpt": 600, "flan": 400}, base=LengthSelector()),
            "PerSource",
            "source",
        ),
    ],
)
def test_readme_examples_on_the_sample_name_the_column_they_need(selector, owner, column):
    """The README's Chain and PerSource examples need a column the bundled sample lacks: the
    error is one line naming it and the columns found."""
    from sftselect import MissingColumnError, load_sample

    with pytest.raises(MissingColumnError) as info:
        selector.select_indices(load_sample())
    assert str(info.value).splitlines() == [
        f"{owner} needs column(s) [{column!r}], which the dataset does not have. "
        "Columns found: ['instruction', 'input', 'output']."
    ]
