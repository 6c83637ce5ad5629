"""Loading and saving: every supported input, line-numbered errors, atomic writes."""

from __future__ import annotations

import json
import re

import pytest
from datasets import Dataset, DatasetDict

from sftselect import DataFormatError, load_data, load_sample, save_data
from sftselect.io import check_output_path
from sftselect.reference import load_released

ROWS = [
    {"instruction": "a", "input": "", "output": "x y"},
    {"instruction": "b", "input": "c", "output": "z"},
]


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".parquet", ""])
def test_round_trip_each_format(tmp_path, suffix):
    """save_data then load_data gives back the same rows for every output type."""
    path = tmp_path / f"data{suffix}"
    save_data(Dataset.from_list(ROWS), path)
    assert load_data(path).to_list() == ROWS


def test_json_lines_saved_as_json_are_read(tmp_path):
    """A .json file holding JSON Lines is read as JSON Lines."""
    path = tmp_path / "x.json"
    path.write_text("\n".join(json.dumps(r) for r in ROWS))
    assert load_data(path).to_list() == ROWS


def test_malformed_jsonl_names_the_line(tmp_path):
    """A malformed JSON Lines record is reported with file and line number."""
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n" + '{"instruction": "b", "output": \n')
    with pytest.raises(DataFormatError, match=r"bad.jsonl:2: malformed JSON"):
        load_data(path)


def test_malformed_json_names_the_line(tmp_path):
    """A malformed JSON array is reported with its line number."""
    path = tmp_path / "bad.json"
    path.write_text('[\n{"a": 1},\n{"a": 2,,}\n]')
    with pytest.raises(DataFormatError, match=r"bad.json:3: malformed JSON"):
        load_data(path)


def test_non_object_record_is_named(tmp_path):
    """A record that is not an object names its position."""
    path = tmp_path / "list.json"
    path.write_text(json.dumps([ROWS[0], ["not", "an", "object"]]))
    with pytest.raises(DataFormatError, match="record 1 is a list"):
        load_data(path)


def test_missing_file_is_file_not_found(tmp_path):
    """A path that does not exist is a FileNotFoundError naming it."""
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_data(tmp_path / "nope.json")


def test_saved_dataset_dict_split(tmp_path):
    """A saved DatasetDict folder is read at the requested split."""
    DatasetDict(
        {"train": Dataset.from_list(ROWS), "test": Dataset.from_list(ROWS[:1])}
    ).save_to_disk(tmp_path / "dd")
    assert len(load_data(tmp_path / "dd", split="test")) == 1
    with pytest.raises(DataFormatError, match="splits found"):
        load_data(tmp_path / "dd", split="validation")


def test_hub_style_loading_goes_through_load_dataset(tmp_path):
    """A folder of data files is read by datasets.load_dataset, the same call a hub name takes."""
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS))
    assert load_data(folder).to_list() == ROWS


def test_unknown_hub_name_offline_fails_clearly():
    """A name that is neither a file nor loadable is a FileNotFoundError that says both."""
    with pytest.raises(FileNotFoundError, match="not a local file or folder"):
        load_data("no-such-user/no-such-dataset-xyz")


def test_bundled_sample_is_real_alpaca():
    """The bundled sample holds 2,000 Alpaca records with non-empty outputs."""
    ds = load_sample()
    assert len(ds) == 2000 and ds.column_names == ["instruction", "input", "output"]
    assert all(isinstance(o, str) for o in ds["output"])


def test_released_subset_parses(shared_data):
    """The released FastChat 1k files parse back to Alpaca records with their Alpaca index."""
    ds = load_released(shared_data / "paper" / "filtered_alpaca_1k_longest.json")
    assert len(ds) == 1000
    assert ds[0]["alpaca_index"] == 7
    assert sum(bool(x) for x in ds["input"]) == 232


def test_sample_prefix_loads_bundled_sample():
    """load_data('sample:alpaca_2k') is the bundled sample."""
    assert load_data("sample:alpaca_2k").to_list()[:3] == load_sample().to_list()[:3]


def test_fields_missing_from_the_first_record_are_kept(tmp_path):
    """Every field of any record becomes a column; a record without it has None there."""
    rows = [
        {"instruction": "a", "output": "x"},
        {"instruction": "b", "input": "c", "output": "y", "extra": 1},
    ]
    for name, text in (
        ("a.json", json.dumps(rows)),
        ("a.jsonl", "\n".join(json.dumps(r) for r in rows)),
    ):
        path = tmp_path / name
        path.write_text(text)
        loaded = load_data(path)
        assert loaded.column_names == ["instruction", "output", "input", "extra"]
        assert loaded.to_list() == [
            {"instruction": "a", "output": "x", "input": None, "extra": None},
            {"instruction": "b", "output": "y", "input": "c", "extra": 1},
        ]


@pytest.mark.parametrize(
    ("name", "write", "where"),
    [
        ("t.jsonl", lambda rows: "\n\n".join(json.dumps(r) for r in rows), "line 5"),
        ("t.json", json.dumps, "record 2 (0-based)"),
    ],
)
def test_a_field_whose_type_changes_names_field_and_record(tmp_path, name, write, where):
    """A field that is a string in one record and a number in another names both places."""
    rows = [
        {"instruction": "a", "output": "x"},
        {"instruction": "b", "output": "y"},
        {"instruction": "c", "output": 123},
    ]
    path = tmp_path / name
    path.write_text(write(rows))
    with pytest.raises(
        DataFormatError, match=f"field 'output' is a number at {re.escape(where)}"
    ) as info:
        load_data(path)
    assert "but a string at" in str(info.value)


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".parquet", ""])
def test_save_data_replaces_its_own_kind_of_output(tmp_path, suffix):
    """Writing twice to the same path replaces the first output with the second."""
    path = tmp_path / f"out{suffix}"
    save_data(Dataset.from_list(ROWS), path)
    save_data(Dataset.from_list(ROWS[:1]), path)
    assert load_data(path).to_list() == ROWS[:1]


def test_save_data_never_replaces_a_folder_of_other_files(tmp_path):
    """A folder that is not a saved Dataset is refused, and its files are left alone."""
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(DataFormatError, match="not a saved Dataset"):
        save_data(Dataset.from_list(ROWS), folder)
    assert (folder / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious"]


@pytest.mark.parametrize(
    ("make", "name", "message"),
    [
        (lambda p: p.write_text("x"), "plainfile", "is an existing file"),
        (lambda p: p.mkdir(), "dir.jsonl", "is a folder"),
        (lambda p: None, "out.csv", "cannot write .csv files"),
    ],
)
def test_check_output_path_refuses_what_save_data_would_not_write(tmp_path, make, name, message):
    """An output path of the wrong kind is refused up front, before anything is written."""
    path = tmp_path / name
    make(path)
    with pytest.raises(DataFormatError, match=message):
        check_output_path(path)
    with pytest.raises(DataFormatError, match=message):
        save_data(Dataset.from_list(ROWS), path)
