"""compare(): the numbers the report shows, the inputs it accepts, and its bad-input errors."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from datasets import Dataset

from sftselect import LengthSelector, RandomSelector, load_sample
from sftselect.embedding import HashingEmbedder
from sftselect.exceptions import DataFormatError, InvalidParameterError
from sftselect.report import Report, compare
from sftselect.report.measures import category_shares, detect_category_columns


@pytest.fixture(scope="module")
def pool() -> Dataset:
    return load_sample()


@pytest.fixture(scope="module")
def runs(pool):
    return {
        "longest": LengthSelector(k=150, unit="words").run(pool),
        "random": RandomSelector(k=150, random_state=3).run(pool),
        "shortest": LengthSelector(k=150, unit="words", largest=False).run(pool),
    }


class _Cells(HTMLParser):
    """The overlap table's cells as the page shows them: (a, b) -> visible count text."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple[str, str], str] = {}
        self.only: dict[str, str] = {}
        self._key = None
        self._only = None
        self._in_count = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "td" and "ov" in (a.get("class") or "").split():
            self._key = (a["data-a"], a["data-b"])
        if tag == "td" and "only" in (a.get("class") or "").split():
            self._only = a["data-name"]
        if tag == "span" and a.get("class") == "count":
            self._in_count = True

    def handle_data(self, data):
        if self._in_count and self._key:
            self.cells[self._key] = data
            self._in_count = False
        elif self._only and data.strip():
            self.only[self._only] = data.strip()
            self._only = None

    def handle_endtag(self, tag):
        if tag == "td":
            self._key = None


def test_overlap_numbers_are_the_selections(pool, runs):
    """Every pair's shared rows and Jaccard index, and the rows each alone picked, as
    the page prints them, equal set arithmetic on the selections' positions."""
    report = compare(pool, runs)
    cells = _Cells()
    cells.feed(report.html)
    sets = {n: set(r.indices.tolist()) for n, r in runs.items()}
    assert len(cells.cells) == 9
    for (a, b), text in cells.cells.items():
        inter = len(sets[a] & sets[b])
        assert int(text.replace(",", "")) == inter
        assert report.overlaps.jaccard[a, b] == pytest.approx(inter / len(sets[a] | sets[b]))
    for name, s in sets.items():
        others = set().union(*(v for n, v in sets.items() if n != name))
        assert int(cells.only[name].replace(",", "")) == len(s - others)
    # longest and shortest share nothing at k=150 of 2,000; random shares something with each
    assert report.overlaps.counts["longest", "shortest"] == 0


def test_every_input_kind_gives_the_same_report(pool, runs, tmp_path):
    """A Selection, its provenance dict, the provenance file and bare positions give the
    same overlaps; the provenance's parameters and seed are on the page."""
    run = runs["random"]
    record = run.provenance()
    path = tmp_path / "random.jsonl.provenance.json"
    path.write_text(json.dumps(record))
    report = compare(
        pool,
        {"sel": run, "dict": record, "file": str(path), "list": run.indices.tolist()},
    )
    counts = {k: v for k, v in report.overlaps.counts.items()}
    assert set(counts.values()) == {150}
    assert "RandomSelector" in report.html and "random_state" in report.html
    seeds = re.findall(
        r'<tr data-strategy="(\w+)">.*?</td><td>.*?</td><td.*?</td><td>.*?</td><td>(.*?)</td>',
        report.html,
    )
    assert dict(seeds)["file"] == "3" and dict(seeds)["list"] == "—"


def test_report_is_deterministic_and_self_contained(pool, runs):
    """The same inputs give the same bytes; nothing is fetched (no src= or href= to
    another file or host)."""
    a = compare(pool, runs, embeddings=HashingEmbedder(64)).html
    b = compare(pool, runs, embeddings=HashingEmbedder(64)).html
    assert a == b
    assert not re.search(r'\bsrc=|href="(?!#)|@import|url\(', a)


def test_charts_one_per_strategy_and_section(pool, runs):
    """Lengths (3), scores (the two length selectors), the map (3) with embeddings."""
    report = compare(pool, runs, embeddings=HashingEmbedder(64))
    assert report.charts == 3 + 2 + 3
    no_map = compare(pool, runs)
    assert no_map.charts == 5 and "No embeddings given" in no_map.html


def test_texts_are_escaped(runs):
    """Row text that looks like markup is shown as text, never run."""
    rows = [
        {
            "instruction": f"q{i}",
            "input": "",
            "output": "</script><script>alert(1)</script>" * (i + 1),
        }
        for i in range(5)
    ]
    ds = Dataset.from_list(rows)
    report = compare(ds, {"all": [0, 1, 2, 3, 4]})
    assert "<script>alert(1)" not in report.html
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in report.html


def test_category_shares(small_alpaca):
    """The source column is found; its shares in the pool and each subset are counts."""
    # "output" has 7 distinct texts in 30 rows: a text field of the format, never a category
    assert detect_category_columns(small_alpaca) == ["output", "source"]
    assert detect_category_columns(small_alpaca, skip=["output"]) == ["source"]
    from sftselect.report.inputs import Strategy

    s = Strategy(name="first", indices=np.arange(4))
    shares = category_shares(small_alpaca, "source", [s])
    assert shares.categories == ["flan", "dolly", "sharegpt"]
    np.testing.assert_allclose(shares.pool, [1 / 3, 1 / 3, 1 / 3])
    np.testing.assert_allclose(shares.subsets["first"], [2 / 4, 1 / 4, 1 / 4])
    report = compare(small_alpaca, {"first": [0, 1, 2, 3]})
    assert "first, source = flan: 50.0%" in report.html
    assert "output = " not in report.html  # compare skips the format's text fields


def test_many_categories_pool_into_other(small_alpaca):
    ds = small_alpaca.add_column("topic", [f"t{i % 15}" for i in range(30)])
    shares = category_shares(ds, "topic", [], max_categories=5)
    assert shares.categories[-1] == "(other)" and len(shares.categories) == 5
    assert shares.pool.sum() == pytest.approx(1.0) and shares.pool[-1] == pytest.approx(22 / 30)


def test_class_label_columns_show_their_names(small_alpaca):
    from datasets import ClassLabel

    ds = small_alpaca.add_column("task", [i % 3 for i in range(30)])
    ds = ds.cast_column("task", ClassLabel(names=["brainstorm", "qa", "summarise"]))
    shares = category_shares(ds, "task", [])
    assert sorted(shares.categories) == ["brainstorm", "qa", "summarise"]
    report = compare(ds, {"first": [0, 1, 2, 3]}, columns=["task"])
    assert "task = brainstorm: " in report.html and "task = 0:" not in report.html


def test_save_and_notebook_display(pool, runs, tmp_path):
    report = compare(pool, {"longest": runs["longest"]})
    out = report.save(tmp_path / "r.html")
    assert out.read_text(encoding="utf-8") == report.html
    shown = report._repr_html_()
    assert shown.startswith("<iframe srcdoc=") and "&lt;svg class=&quot;chart&quot;" in shown
    assert isinstance(report, Report) and "1 selections" in repr(report)


@pytest.mark.parametrize(
    ("positions", "message"),
    [
        ([0, 1, 2000], "position 2000 (entry 2) is out of range for a pool of 2,000 rows"),
        ([0, -1], "position -1 (entry 1) is out of range"),
        ([3, 3, 4], "lists 1 position(s) twice"),
        ([0.5, 1.0], "must be ints"),
    ],
)
def test_bad_positions(pool, positions, message):
    with pytest.raises(DataFormatError, match=re.escape(message)) as err:
        compare(pool, {"mine": positions})
    assert "the selection 'mine'" in str(err.value) and "\n" not in str(err.value)


def test_provenance_from_another_pool(pool, runs, tmp_path):
    """A record made from other rows (same count) is refused, naming the file."""
    record = runs["random"].provenance()
    other = pool.select(range(1, 2000)).add_item(pool[0])  # the same rows, in another order
    path = tmp_path / "r.provenance.json"
    path.write_text(json.dumps(record))
    with pytest.raises(
        DataFormatError, match=f"^{re.escape(str(path))}: was selected from another pool"
    ):
        compare(other, {"r": str(path)})
    record["input"]["rows"] = 10
    path.write_text(json.dumps(record))
    with pytest.raises(DataFormatError, match="a pool of 10 rows; this pool has 2,000"):
        compare(pool, {"r": str(path)})


def test_output_file_must_match_its_provenance(pool, runs, tmp_path):
    out = tmp_path / "longest.jsonl"
    pool.select(runs["longest"].indices[:-1]).to_json(out)
    (tmp_path / "longest.jsonl.provenance.json").write_text(
        json.dumps(runs["longest"].provenance())
    )
    with pytest.raises(DataFormatError, match="holds 149 rows but its provenance lists 150"):
        compare(pool, {"longest": out})
    lone = tmp_path / "lone.jsonl"
    lone.write_text("{}\n")
    with pytest.raises(DataFormatError, match=r"lone.jsonl: no provenance record beside it"):
        compare(pool, {"lone": lone})


def test_bad_parameters(pool, runs):
    with pytest.raises(InvalidParameterError, match="'selections' parameter of compare"):
        compare(pool, {})
    with pytest.raises(InvalidParameterError, match="shape"):
        compare(pool, {"a": [1]}, embeddings=np.zeros((3, 2)))
    with pytest.raises(InvalidParameterError, match="Row 1 holds NaN"):
        X = np.zeros((len(pool), 2))
        X[1, 0] = np.nan
        compare(pool, {"a": [1]}, embeddings=X)
    with pytest.raises(InvalidParameterError, match="must be a Selection"):
        compare(pool, {"a": 3})


@pytest.mark.parametrize("exact_up_to", [1024, 0])
def test_map_axes_are_the_principal_components(exact_up_to):
    """Both ways to the map's axes (the scatter matrix's eigenvectors; the randomized range
    finder used above 1,024 dimensions) give an exact SVD's two leading principal axes (up
    to sign) and their shares of the variance."""
    from sftselect.report.measures import _top_two_components

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 40)) * np.r_[6.0, 4.0, np.linspace(2, 0.5, 38)] + rng.normal(size=40)
    centred = X - X.mean(axis=0)
    _, sing, vt = np.linalg.svd(centred, full_matrices=False)
    axes, shares = _top_two_components(centred, np.random.default_rng(1), exact_up_to=exact_up_to)
    for i in range(2):
        assert abs(float(axes[:, i] @ vt[i])) == pytest.approx(1.0, abs=1e-6)
        assert shares[i] == pytest.approx(sing[i] ** 2 / (sing**2).sum(), rel=1e-6)


def test_a_selection_run_on_another_pool(pool):
    """A Selection made from other rows is refused, naming it."""
    other = pool.select(range(1, 2000)).add_item(pool[0])
    run = LengthSelector(k=5, unit="words").run(other)
    with pytest.raises(DataFormatError, match="^the selection 'x': was selected from another pool"):
        compare(pool, {"x": run})


def test_an_empty_selection_still_draws(pool):
    """A threshold that kept nothing: every chart is still drawn, the Jaccard is NaN."""
    report = compare(pool, {"none": [], "some": [1, 2]}, embeddings=HashingEmbedder(16))
    assert report.overlaps.counts["none", "some"] == 0
    assert np.isnan(report.overlaps.jaccard["none", "none"])
    assert report.charts == 4 and "none: 0 rows" in report.html
