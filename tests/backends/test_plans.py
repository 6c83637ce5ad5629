"""Remembered plans: a fully cached re-run renders nothing and returns what the full path returns."""

from __future__ import annotations

import sqlite3

import hypothesis.strategies as st
import numpy as np
import pytest
from datasets import Dataset
from hypothesis import given, settings

from sftselect.backends import CallableBackend, MemoryCache, ReplyCache
from sftselect.backends.plans import plan_digest
from sftselect.selectors.quality import QualitySelector
from tests.helpers.strategies import alpaca_datasets, sharegpt_datasets


class Counting(QualitySelector):
    """A QualitySelector that counts how many times it renders its requests."""

    renders = 0

    def _render(self, *args):
        type(self).renders += 1
        return QualitySelector._render(*args)


class Planless:
    """A reply store with only ``get_many`` and ``put``: every run takes the rendering path."""

    def __init__(self, inner):
        self.inner = inner

    def get_many(self, keys):
        return self.inner.get_many(keys)

    def put(self, key, backend, request, reply):
        self.inner.put(key, backend, request, reply)


def judge_fn(calls):
    def judge(messages):
        calls.append(messages)
        n = len(messages[-1]["content"])
        return "I cannot say." if n % 4 == 0 else f"{n % 6}\nbecause"

    return judge


def data(n=10):
    return Dataset.from_list(
        [
            {"instruction": f"Task {i % 7}", "input": "", "output": f"Answer {i % 7} " * (i + 1)}
            for i in range(n)
        ]
    )


def comparable(ratings):
    report = ratings.report.as_dict()
    report.pop("seconds")
    scores = [None if np.isnan(s) else float(s) for s in ratings.scores]
    return (
        scores,
        ratings.replies,
        ratings.reasons,
        ratings.parse_failures,
        ratings.request_failures,
        ratings.reasked,
        report,
    )


def test_fully_cached_rerun_renders_nothing(tmp_path):
    """A re-run whose replies are all cached renders no request, sends none, and rates alike."""
    calls = []
    backend = CallableBackend(judge_fn(calls), identity="j")
    path = tmp_path / "c.sqlite"
    Counting.renders = 0
    first = Counting(backend, cache=path).rate(data())
    assert Counting.renders == 1 and len(calls) == 10
    again = Counting(backend, cache=ReplyCache(path)).rate(data())
    assert Counting.renders == 1 and len(calls) == 10
    assert again.report.cache_hits == again.report.unique and again.report.sent == 0
    rendered = Counting(backend, cache=Planless(ReplyCache(path))).rate(data())
    assert Counting.renders == 2 and len(calls) == 10
    assert comparable(first)[:-1] == comparable(again)[:-1]
    assert comparable(again) == comparable(rendered)


@settings(max_examples=40, deadline=None)
@given(
    ds=st.one_of(alpaca_datasets(max_size=25), sharegpt_datasets(max_size=12)),
    reask=st.integers(0, 1),
)
def test_planned_rerun_equals_the_rendering_path(ds, reask):
    """On any data (duplicates, rows with no response, unparsable replies, re-asks), the
    planned re-run returns exactly what a re-run that renders every request returns."""
    calls = []
    backend = CallableBackend(judge_fn(calls), identity="j")
    store = MemoryCache()
    QualitySelector(backend, cache=store, reask=reask).rate(ds)
    sent = len(calls)
    planned = QualitySelector(backend, cache=store, reask=reask).rate(ds)
    rendered = QualitySelector(backend, cache=Planless(store), reask=reask).rate(ds)
    assert len(calls) == sent
    assert comparable(planned) == comparable(rendered)


def test_a_missing_reply_falls_back_and_sends_only_it(tmp_path):
    """If a reply of the plan is gone from the file, the run renders again and sends that one."""
    calls = []
    backend = CallableBackend(judge_fn(calls), identity="j")
    path = tmp_path / "c.sqlite"
    first = QualitySelector(backend, cache=path).rate(data())
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM replies WHERE rowid = (SELECT MIN(rowid) FROM replies)")
    Counting.renders = 0
    again = Counting(backend, cache=path).rate(data())
    assert Counting.renders == 1 and len(calls) == 11 and again.report.sent == 1
    assert comparable(first)[:-1] == comparable(again)[:-1]


def test_a_truncated_plan_is_not_trusted(tmp_path):
    """A plan whose stored key rows do not add up to its size is ignored, not half-used."""
    calls = []
    backend = CallableBackend(judge_fn(calls), identity="j")
    path = tmp_path / "c.sqlite"
    QualitySelector(backend, cache=path).rate(data())
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM plan_keys WHERE pos = 3")
    Counting.renders = 0
    again = Counting(backend, cache=path).rate(data())
    assert Counting.renders == 1 and len(calls) == 10 and again.report.cache_hits == 10


def test_a_cache_file_from_before_plans_still_works(tmp_path):
    """A file with only the replies table opens, serves its replies, then gains a plan."""
    calls = []
    backend = CallableBackend(judge_fn(calls), identity="j")
    path = tmp_path / "c.sqlite"
    QualitySelector(backend, cache=path).rate(data())
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE plan_keys")
        db.execute("DROP TABLE plans")
    Counting.renders = 0
    Counting(backend, cache=path).rate(data())
    Counting(backend, cache=path).rate(data())
    assert Counting.renders == 1 and len(calls) == 10


def test_another_template_decoding_or_judge_is_another_plan(tmp_path):
    """Changing the prompt, the decoding or the judge's identity never reuses a stored plan."""
    calls = []
    path = tmp_path / "c.sqlite"
    j = CallableBackend(judge_fn(calls), identity="j")
    QualitySelector(j, cache=path).rate(data(4))
    QualitySelector(j, cache=path, temperature=0.7).rate(data(4))
    assert len(calls) == 8
    QualitySelector(j, cache=path, prompt="alpagasus_helpfulness").rate(data(4))
    assert len(calls) == 12
    QualitySelector(CallableBackend(judge_fn(calls), identity="k"), cache=path).rate(data(4))
    assert len(calls) == 16
    assert len(ReplyCache(path)) == 16


def test_clearing_plans_loses_no_reply(tmp_path):
    """clear_plans() drops the index only: the next run renders again but sends nothing."""
    calls = []
    backend = CallableBackend(judge_fn(calls), identity="j")
    path = tmp_path / "c.sqlite"
    QualitySelector(backend, cache=path).rate(data())
    assert ReplyCache(path).clear_plans() == 1
    Counting.renders = 0
    again = Counting(backend, cache=path).rate(data())
    assert Counting.renders == 1 and len(calls) == 10 and again.report.cache_hits == 10


def test_the_first_plan_stored_wins():
    """Storing a digest twice keeps the first key list (two processes racing agree anyway)."""
    for store in (MemoryCache(),):
        store.put_plan("d", ["a", "b"])
        store.put_plan("d", ["c"])
        assert store.plan_replies("d") == (["a", "b"], [None, None])


def test_the_first_plan_stored_wins_in_the_file(tmp_path):
    """The same holds for the SQLite file, and a plan's replies come back in key order."""
    store = ReplyCache(tmp_path / "c.sqlite")
    store.put_plan("d", ["b", "a", "b"])
    store.put_plan("d", ["c"])
    assert store.plan_replies("d") == (["b", "a", "b"], [None, None, None])
    assert store.plan_replies("other") is None


texts = st.text(max_size=8)


@settings(max_examples=200)
@given(
    a=st.lists(st.tuples(texts, texts), min_size=1, max_size=5),
    b=st.lists(st.tuples(texts, texts), min_size=1, max_size=5),
)
def test_digest_is_equal_exactly_when_the_fields_are(a, b):
    """Two plans' digests are equal exactly when their field values are equal (no separator
    can be forged: moving a character between fields or rows changes the digest)."""

    def digest(rows):
        cols = {"x": [r[0] for r in rows], "y": [r[1] for r in rows]}
        return plan_digest("j", {"t": 1}, cols, np.arange(len(rows)))

    assert (digest(a) == digest(b)) == (a == b)


def test_digest_covers_identity_template_and_rows():
    """The judge, the template and which rows get a request each change the digest."""
    cols = {"x": ["ab", "c"]}
    base = plan_digest("j", {"t": 1}, cols, np.arange(2))
    assert base == plan_digest("j", {"t": 1}, {"x": ["ab", "c"]}, np.array([0, 1]))
    assert base != plan_digest("k", {"t": 1}, cols, np.arange(2))
    assert base != plan_digest("j", {"t": 2}, cols, np.arange(2))
    assert base != plan_digest("j", {"t": 1}, cols, np.array([1]))
    assert base != plan_digest("j", {"t": 1}, {"x": ["a", "bc"]}, np.arange(2))


def test_digest_refuses_a_missing_value():
    """A None among the fields is an error naming the column and row, not a silent ''."""
    with pytest.raises(TypeError, match="'x': row 1 is None"):
        plan_digest("j", {}, {"x": ["a", None]}, np.arange(2))


def test_cached_rerun_with_unparsable_replies_raises_the_parse_error(tmp_path):
    """A fully cached re-run reports unparsable replies as JudgeParseError, as the first run did."""
    from sftselect.exceptions import JudgeParseError

    calls: list = []
    judge = CallableBackend(judge_fn(calls), identity="scripted")
    cache = tmp_path / "r.sqlite"
    messages = []
    for _ in range(2):
        selector = QualitySelector(judge, k=3, cache=cache, on_parse_error="raise")
        with pytest.raises(JudgeParseError, match="could not be parsed") as info:
            selector.rate(data())
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert len(calls) == len(data())  # the second run sent nothing
