"""ExactDedup: normalisation, fields, keep policies, properties, and the real pools."""

from __future__ import annotations

import json

import numpy as np
import pytest
from datasets import Dataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sftselect import Chain, ExactDedup, InvalidParameterError, LengthSelector
from tests.helpers.strategies import alpaca_rows, case_whitespace_edits

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _ds(rows):
    return Dataset.from_list(rows)


def _row(instruction, output="", input=""):
    return {"instruction": instruction, "input": input, "output": output}


def test_each_normalisation_step_is_an_option():
    rows = [
        _row("Café  au lait"),
        _row("café au lait"),
        _row("Cafe\u0301 au lait"),
        _row("STRASSE"),
        _row("straße"),
    ]
    ds = _ds(rows)
    assert ExactDedup().select_indices(ds).tolist() == [0, 3]
    assert ExactDedup(casefold=False).select_indices(ds).tolist() == [0, 1, 3, 4]
    assert ExactDedup(nfkc=False).select_indices(ds).tolist() == [0, 2, 3]
    assert ExactDedup(collapse_whitespace=False).select_indices(ds).tolist() == [0, 1, 3]


def test_fields_are_compared_separately_and_without_boundary_collisions():
    rows = [_row("ab", "c"), _row("a", "bc"), _row("ab", "z"), _row("y", "c")]
    ds = _ds(rows)
    assert ExactDedup().select_indices(ds).tolist() == [0, 1, 2, 3]
    assert ExactDedup(fields="instruction").select_indices(ds).tolist() == [0, 1, 3]
    assert ExactDedup(fields=["output"]).select_indices(ds).tolist() == [0, 1, 2]
    assert ExactDedup(fields=["response"]).select_indices(ds).tolist() == [0, 1, 2]
    assert ExactDedup(fields="instruction,output").select_indices(ds).tolist() == [0, 1, 2, 3]


def test_conversation_field_of_chat_rows():
    def conv(*turns):
        return {"messages": [{"role": r, "content": c} for r, c in turns]}

    rows = [
        conv(("user", "Hi"), ("assistant", "Hello!")),
        conv(("user", "hi "), ("assistant", "hello!")),
        conv(("user", "Hi"), ("assistant", "Hello!"), ("user", "More"), ("assistant", "Sure")),
    ]
    ds = _ds(rows)
    assert ExactDedup().select_indices(ds).tolist() == [0, 2]
    assert ExactDedup(fields="instruction").select_indices(ds).tolist() == [0, 2]
    assert ExactDedup(fields="response").select_indices(ds).tolist() == [0, 2]


def test_keep_policies_and_the_removed_table():
    rows = [
        {**_row("Same", "short"), "score": 1.0},
        {**_row("same", "the longest answer"), "score": 0.0},
        {**_row("SAME", "mid one"), "score": 9.0},
        {**_row("Other", "x"), "score": 5.0},
    ]
    ds = _ds(rows)
    kw = {"fields": "instruction"}
    assert ExactDedup(**kw).select_indices(ds).tolist() == [0, 3]
    assert ExactDedup(**kw, keep="longest").select_indices(ds).tolist() == [1, 3]
    assert ExactDedup(**kw, keep="score").select_indices(ds).tolist() == [2, 3]
    shortest = LengthSelector(unit="chars", largest=False)
    assert ExactDedup(**kw, keep=shortest).select_indices(ds).tolist() == [0, 3]
    draws = {
        tuple(ExactDedup(**kw, keep="random", random_state=s).select_indices(ds)) for s in range(20)
    }
    assert len(draws) == 3  # each copy is kept under some seed
    run = ExactDedup(**kw, keep="longest").run(ds)
    table = run.extra["removed_rows"]
    assert table["position"].tolist() == [0, 2]
    assert table["kept"].tolist() == [1, 1]
    assert table["group"].tolist() == [0, 0]
    assert table["similarity"].tolist() == [1.0, 1.0]
    assert run.extra["largest_groups"] == [{"group": 0, "kept": 1, "size": 3}]
    record = run.provenance(content_hash=False)
    assert record["details"]["removed_rows"] == {
        "row_table": "removed",
        "rows": 2,
        "columns": ["position", "kept", "group", "similarity"],
    }
    json.dumps(record)


def test_parameters_are_checked():
    ds = _ds([_row("a")])
    for bad in ({"nfkc": 1}, {"keep": None}, {"fields": ""}, {"fields": ["x"]}, {"keep": "nope"}):
        with pytest.raises(InvalidParameterError):
            ExactDedup(**bad).run(ds)


@SETTINGS
@given(data=st.data(), rows=alpaca_rows(min_size=1, max_size=15, allow_empty=False))
def test_a_case_or_whitespace_edited_copy_is_removed(data, rows):
    """A copy of a row with its case and whitespace changed is removed, covered by the original."""
    i = data.draw(st.integers(0, len(rows) - 1))
    copy = dict(rows[i])
    copy["instruction"] = data.draw(case_whitespace_edits(copy["instruction"]))
    copy["output"] = data.draw(case_whitespace_edits(copy["output"]))
    ds = _ds([*rows, copy])
    run = ExactDedup().run(ds)
    n = len(rows)
    assert n not in run.indices.tolist()
    table = run.extra["removed_rows"]
    kept_for_copy = table["kept"][table["position"].tolist().index(n)]
    assert (
        ExactDedup().text_keys(ds.select([int(kept_for_copy)]))[0]
        == ExactDedup().text_keys(ds.select([i]))[0]
    )


@SETTINGS
@given(rows=alpaca_rows(min_size=0, max_size=25))
def test_dedup_is_idempotent(rows):
    """Deduplicating the result again removes nothing; it holds one row per distinct key."""
    rows = rows + rows[: len(rows) // 2]
    ds = _ds(rows) if rows else Dataset.from_dict({"instruction": [], "input": [], "output": []})
    once = ExactDedup().select(ds)
    assert ExactDedup().select_indices(once).tolist() == list(range(len(once)))
    if len(ds):
        keys = ExactDedup().text_keys(ds).to_pylist()
        assert len(once) == len(set(keys))


@SETTINGS
@given(rows=alpaca_rows(min_size=1, max_size=25), data=st.data())
def test_kept_rows_do_not_depend_on_row_order(rows, data):
    """Permuting the rows keeps the same texts (keep="first") and, under a keep policy with
    distinct priorities (a unique score column), the very same rows."""
    rows = rows + [dict(r) for r in rows[::2]]
    for i, r in enumerate(rows):
        r["uid"] = float(i)
    perm = data.draw(st.permutations(range(len(rows))))
    ds, shuffled = _ds(rows), _ds([rows[p] for p in perm])
    texts = lambda d, idx: sorted(ExactDedup().text_keys(d.select(idx)).to_pylist())  # noqa: E731
    a, b = ExactDedup().select_indices(ds), ExactDedup().select_indices(shuffled)
    assert texts(ds, a) == texts(shuffled, b)
    a = ExactDedup(keep="uid").select(ds)["uid"]
    b = ExactDedup(keep="uid").select(shuffled)["uid"]
    assert sorted(a) == sorted(b)


def test_chain_in_front_of_length():
    rows = [_row("q", "w " * 10), _row("Q", "w " * 10), _row("r", "w " * 5), _row("s", "w")]
    ds = _ds(rows)
    assert Chain(ExactDedup(), LengthSelector(2, unit="words")).select_indices(ds).tolist() == [
        0,
        2,
    ]


def test_exact_repeats_across_the_alpaca_pool_files(shared_data):
    """With no normalisation, the removed rows are the records that repeat an earlier one
    exactly (counted with a Python dict of (instruction, input, output))."""
    rows = []
    for name in ("random_9k", "claude_t45", "helpfulness_t45"):
        for r in json.loads((shared_data / "alpaca_pool" / f"{name}.json").read_text("utf-8")):
            rows.append({k: r[k] for k in ("instruction", "input", "output")})
    seen: dict[tuple, int] = {}
    expected_kept = []
    for i, r in enumerate(rows):
        key = (r["instruction"], r["input"], r["output"])
        if key not in seen:
            seen[key] = i
            expected_kept.append(i)
    ds = _ds(rows)
    raw = ExactDedup(nfkc=False, casefold=False, collapse_whitespace=False).run(ds)
    assert raw.indices.tolist() == expected_kept
    assert raw.extra["removed"] == len(rows) - len(seen) == 1426
    normalised = ExactDedup().run(ds)
    assert normalised.extra["removed"] >= raw.extra["removed"]
    assert np.isin(raw.indices, normalised.indices, invert=True).sum() == (
        normalised.extra["removed"] - raw.extra["removed"]
    )
