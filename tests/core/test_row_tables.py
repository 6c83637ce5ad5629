"""Per-row details: summarised in the provenance, written beside the output."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from sftselect.core.provenance import _jsonable
from sftselect.core.row_tables import RowArray, RowTable, find_row_tables, write_row_tables


def test_tables_are_found_named_and_written(tmp_path):
    removed = RowTable("removed", {"position": [3, 5], "kept": [1, 1]})
    extra = {
        "labels": RowArray(np.array([0, 1, 1])),
        "stages": [{"details": {"removed_rows": removed}}, {"details": {"removed_rows": removed}}],
        "count": 2,
    }
    names = [t.name for t in find_row_tables(extra)]
    assert names == ["stage0-removed", "stage1-removed", "rows"]
    paths = write_row_tables(extra, tmp_path / "out.jsonl")
    assert [p.name for p in paths] == [
        "out.jsonl.stage0-removed.csv",
        "out.jsonl.stage1-removed.csv",
        "out.jsonl.rows.csv",
    ]
    with open(paths[-1], newline="") as fh:
        assert list(csv.reader(fh)) == [["position", "labels"], ["0", "0"], ["1", "1"], ["2", "1"]]
    record = _jsonable(extra)
    json.dumps(record)
    assert record["labels"] == {"row_table": "rows", "column": "labels", "rows": 3}
    assert record["stages"][0]["details"]["removed_rows"]["rows"] == 2
    assert not list(tmp_path.glob("*.sftselect-tmp"))


def test_bad_tables_are_refused():
    with pytest.raises(ValueError):
        RowTable("a/b", {"x": [1]})
    with pytest.raises(ValueError):
        RowTable("t", {"x": [1, 2], "y": [1]})
    assert RowArray([1, 2]).sum() == 3  # an array like any other
