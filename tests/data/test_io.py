"""Loading and saving: every supported input, line-numbered errors, atomic writes."""

from __future__ import annotations

import json
import re
from unittest import mock

import pytest
from datasets import Dataset, DatasetDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sftselect.data.json_records
from sftselect import DataFormatError, load_data, load_sample, save_data
from sftselect.data.io import check_output_path
from sftselect.data.reference import load_released

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
    ).save_to_disk(str(tmp_path / "dd"))
    assert len(load_data(tmp_path / "dd", split="test")) == 1
    with pytest.raises(DataFormatError, match="splits found"):
        load_data(tmp_path / "dd", split="validation")


def test_a_folder_of_data_files_is_refused_and_its_files_load(tmp_path):
    """A folder of data files is not handed to datasets.load_dataset (issue 19): it is refused
    naming its files, and the file itself loads."""
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS))
    with pytest.raises(DataFormatError, match="it holds train.jsonl"):
        load_data(folder)
    assert load_data(folder / "train.jsonl").to_list() == ROWS


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


# --- chunked JSON / JSON Lines loading against the whole-list reference -------------------------
#
# load_data reads .json and .jsonl a chunk of records at a time. The reference below is the
# loader it replaced (every record parsed, then column lists over the union of the fields and one
# Dataset.from_dict): the chunked loader must give the same rows, the same features and the same
# errors.


def _reference_columns(records):
    names = {}
    for rec in records:
        if len(rec) != len(names) or any(name not in names for name in rec):
            names.update(dict.fromkeys(rec))
    return {name: [rec.get(name) for rec in records] for name in names}


def _reference_schema_error(path, columns, lines, exc):
    import pyarrow as pa

    def json_kind(value):
        if isinstance(value, bool):
            return "boolean"
        if isinstance(value, (int, float)):
            return "number"
        kinds = {str: "string", list: "array", dict: "object"}
        return kinds.get(type(value), type(value).__name__)

    def where(i):
        return f"line {lines[i]}" if lines is not None else f"record {i} (0-based)"

    for name, values in columns.items():
        try:
            pa.array(values)
            continue
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            pass
        first = next((i for i, v in enumerate(values) if v is not None), None)
        if first is None:  # pragma: no cover
            continue
        kind = json_kind(values[first])
        for i in range(first + 1, len(values)):
            v = values[i]
            if v is not None and json_kind(v) != kind:
                return DataFormatError(
                    f"{path}: field {name!r} is a {json_kind(v)} at {where(i)} but a "
                    f"{kind} at {where(first)}; each field must have one type in "
                    "every record."
                )
        return DataFormatError(
            f"{path}: field {name!r} holds values that do not share one type ({exc}); "
            f"its first value is at {where(first)}."
        )
    return DataFormatError(f"{path}: the records do not share one schema ({exc}).")


_TOO_DEEP = "JSON nested too deeply to read (Python's parser stops near 1,000 levels)"


def _reference_jsonl(path, text):
    """JSON Lines parsed by the standard library alone: only \\n, \\r\\n and \\r end a line
    (a string may hold U+2028), blank lines are skipped, lines count from 1."""
    records, lines = [], []
    for lineno, line in enumerate(re.split(r"\r\n|\r|\n", text), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except RecursionError:
            raise DataFormatError(f"{path}:{lineno}: {_TOO_DEEP}.") from None
        except json.JSONDecodeError as exc:
            raise DataFormatError(
                f"{path}:{lineno}: malformed JSON ({exc.msg}, column {exc.colno})."
            ) from None
        if not isinstance(rec, dict):
            raise DataFormatError(
                f"{path}:{lineno}: a {type(rec).__name__}; expected a JSON object."
            )
        records.append(rec)
        lines.append(lineno)
    return records, lines


def _reference_json(path, text):
    """A .json document parsed whole: an array of objects, an object whose one array-valued
    field holds them, or JSON Lines saved as .json (with their line numbers)."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise DataFormatError(f"{path}: {_TOO_DEEP}.") from None
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and text.lstrip().startswith("{"):
            return _reference_jsonl(path, text)
        raise DataFormatError(
            f"{path}:{exc.lineno}: malformed JSON ({exc.msg}, column {exc.colno})."
        ) from None
    if isinstance(data, dict):
        arrays = [v for v in data.values() if isinstance(v, list)]
        if len(arrays) == 1:
            data = arrays[0]
    if not isinstance(data, list):
        raise DataFormatError(
            f"{path}: expected a JSON array of records (objects); found a {type(data).__name__}."
        )
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise DataFormatError(
                f"{path}: record {i} is a {type(rec).__name__}; expected an object."
            )
    return data, None


def _reference_load(path):
    """The previous loader, written here with the standard library and pyarrow alone (no
    sftselect parsing code, so a wrong line or message in the library cannot be copied
    into the expectation): the whole file parsed, then Dataset.from_dict of all columns."""
    import pyarrow as pa

    text = path.read_text(encoding="utf-8")
    parse = _reference_jsonl if path.suffix == ".jsonl" else _reference_json
    records, lines = parse(path, text)
    columns = _reference_columns(records)
    try:
        return Dataset.from_dict(columns)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise _reference_schema_error(path, columns, lines, exc) from None


def _chunked(path, chunk_rows):
    from sftselect.data.io import _load_json_file

    return _load_json_file(path, jsonl=path.suffix == ".jsonl", chunk_rows=chunk_rows)


def _outcome(load):
    try:
        return load(), None
    except (DataFormatError, OverflowError) as exc:
        return None, exc


def _assert_same_as_reference(path, chunk_rows):
    expected, expected_error = _outcome(lambda: _reference_load(path))
    got, error = _outcome(lambda: _chunked(path, chunk_rows))
    if expected_error is None:
        assert error is None, f"reference loaded it, chunked raised {error!r}"
        assert got.column_names == expected.column_names
        assert got.features == expected.features
        assert got.num_rows == expected.num_rows
        assert got.to_list() == expected.to_list()
        return
    # Where the reference fails, the chunked loader fails with a DataFormatError too; the
    # reference let an int beyond int64 escape as a bare OverflowError.
    assert isinstance(error, DataFormatError), f"reference raised {expected_error!r}, got {error!r}"
    if not isinstance(expected_error, DataFormatError):
        return
    want, have = str(expected_error), str(error)
    if "holds values that do not share one type (" not in want:
        assert have == want  # malformed JSON, not an object, a type change: the same message
        return
    # "field F holds values that do not share one type (<pyarrow's message>); its first value
    # is at ...": the same field and place; pyarrow's message may come from another chunk.
    assert have.split(" (", 1)[0] == want.split(" (", 1)[0]
    assert have.rsplit("; ", 1)[1] == want.rsplit("; ", 1)[1]


_TEXT = st.text(alphabet='ab é\u2028"\\', max_size=3)
_NUMBER = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.integers(-(2**64), 2**64),
    st.sampled_from([2**53, -(2**53), 2**53 + 1, 2**63 - 1]),
    st.floats(allow_nan=False, width=64),
)
_ANY = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(-2, 2), _TEXT),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("xyz"), inner, max_size=3)
    ),
    max_leaves=6,
)
# Families of values one field may hold: mostly ones pyarrow can give one type, mixed
# (ints, floats and bools; nested lists; objects with different keys), so that most
# drawn files load and the promotions are exercised.
_FAMILIES = [
    _NUMBER,
    st.one_of(st.none(), _TEXT),
    st.one_of(st.none(), st.lists(_NUMBER, max_size=3)),
    st.one_of(st.none(), st.lists(st.lists(_NUMBER, max_size=2), max_size=2)),
    st.one_of(st.none(), st.dictionaries(st.sampled_from("xyz"), _NUMBER, max_size=3)),
    st.one_of(
        st.none(),
        st.lists(
            st.dictionaries(
                st.sampled_from("xyz"),
                st.one_of(_NUMBER, st.lists(_NUMBER, max_size=2)),
                max_size=2,
            ),
            max_size=2,
        ),
    ),
    st.one_of(
        st.none(),
        st.dictionaries(
            st.sampled_from("xy"),
            st.dictionaries(st.sampled_from("pq"), _NUMBER, max_size=2),
            max_size=2,
        ),
    ),
    _ANY,
]


@st.composite
def _record_lists(draw):
    keys = ["a", "b", "c", "input_ids"]
    families = {k: draw(st.sampled_from(_FAMILIES)) for k in keys}
    records = []
    for _ in range(draw(st.integers(0, 8))):
        order = draw(st.permutations(keys))
        present = draw(st.lists(st.sampled_from(keys), unique=True, max_size=4))
        records.append({k: draw(families[k]) for k in order if k in present})
    return records


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    read_chars=st.sampled_from([1, 2, 5, 1 << 20]),
    records=_record_lists(),
    layout=st.sampled_from(["jsonl", "array", "array-indented", "lines.json"]),
    chunk_rows=st.integers(1, 3),
)
def test_chunked_loading_matches_the_whole_list_loader(
    tmp_path_factory, records, layout, chunk_rows, read_chars
):
    """For random records (missing fields, ints/floats/bools/strings/None, nested lists and
    objects), loading a chunk of 1-3 records at a time gives the rows, features and errors of
    parsing everything and calling Dataset.from_dict once. A .json array is also read a few
    characters at a time, so that records and numbers are cut at the ends of the blocks read."""
    folder = tmp_path_factory.mktemp("chunked")
    if layout == "jsonl":
        path = folder / "d.jsonl"
        path.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
        )
    elif layout == "lines.json":
        path = folder / "d.json"
        path.write_text(
            "\n".join(json.dumps(r, ensure_ascii=False) for r in records), encoding="utf-8"
        )
    else:
        path = folder / "d.json"
        indent = 2 if layout == "array-indented" else None
        path.write_text(json.dumps(records, ensure_ascii=False, indent=indent), encoding="utf-8")
    if layout == "lines.json" and not records:
        return  # an empty .json file is malformed either way
    with mock.patch.object(sftselect.data.json_records, "_READ_CHARS", read_chars):
        _assert_same_as_reference(path, chunk_rows)


@pytest.mark.parametrize(
    ("name", "write", "where"),
    [
        ("t.jsonl", lambda rows: "\n".join(json.dumps(r) for r in rows), ("line 7", "line 2")),
        ("t.json", json.dumps, ("record 6 (0-based)", "record 1 (0-based)")),
        (
            "lines.json",
            lambda rows: "\n".join(json.dumps(r) for r in rows),
            ("line 7", "line 2"),
        ),
    ],
)
def test_a_type_change_across_chunks_names_both_places(tmp_path, name, write, where):
    """The two records of a field whose type changes are named when they are chunks apart,
    and the chunks between (all-null for the field) change nothing."""
    rows = [{"instruction": "a"}, {"instruction": "b", "score": 4}]
    rows += [{"instruction": c} for c in "cdef"]
    rows += [{"instruction": "g", "score": "high"}]
    path = tmp_path / name
    path.write_text(write(rows))
    for chunk_rows in (1, 2, 3, 100):
        with pytest.raises(DataFormatError) as info:
            _chunked(path, chunk_rows)
        assert str(info.value) == (
            f"{path}: field 'score' is a string at {where[0]} but a number at {where[1]}; "
            "each field must have one type in every record."
        )


def test_fields_first_seen_in_a_later_chunk_are_back_filled(tmp_path):
    """A field first seen chunks later is None in the earlier rows; a field that is all-null in
    one chunk and an int, then a float, in later ones comes out as double (as from_dict gives)."""
    rows = [{"instruction": "a", "score": None}, {"instruction": "b"}]
    rows += [{"instruction": "c", "score": 3}, {"instruction": "d", "tags": ["x"], "score": 0.5}]
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    for chunk_rows in (1, 2, 3):
        loaded = _chunked(path, chunk_rows)
        assert loaded.column_names == ["instruction", "score", "tags"]
        assert str(loaded.features["score"]) == "Value('float64')"
        assert loaded.to_list() == [
            {"instruction": "a", "score": None, "tags": None},
            {"instruction": "b", "score": None, "tags": None},
            {"instruction": "c", "score": 3.0, "tags": None},
            {"instruction": "d", "score": 0.5, "tags": ["x"]},
        ]
        assert loaded.features == _reference_load(path).features


def test_errors_in_a_later_chunk_name_the_file_and_line(tmp_path):
    """Malformed JSON and records that are not objects are reported with file and line (JSON
    Lines) or record (arrays) when they come chunks after the first; a malformed array is
    reported before an earlier element that is not an object, as the whole-file parse did."""
    good = [json.dumps({"instruction": str(i), "output": "x"}) for i in range(5)]
    bad_line = tmp_path / "bad.jsonl"
    bad_line.write_text("\n".join([*good, '{"instruction": "b", "output": ', *good]))
    not_object = tmp_path / "list.jsonl"
    not_object.write_text("\n".join([*good, "[1, 2]", *good]))
    bad_array = tmp_path / "bad.json"
    bad_array.write_text("[\n" + ",\n".join([*good, "[1]", *good]) + ",\n{]")
    list_in_array = tmp_path / "list.json"
    list_in_array.write_text("[\n" + ",\n".join([*good, "[1]", *good]) + "\n]")
    for chunk_rows in (1, 2, 100):
        with pytest.raises(DataFormatError, match=r"bad.jsonl:6: malformed JSON \(Expecting value"):
            _chunked(bad_line, chunk_rows)
        with pytest.raises(DataFormatError, match=r"list.jsonl:6: a list; expected a JSON object"):
            _chunked(not_object, chunk_rows)
        with pytest.raises(DataFormatError, match=r"bad.json:13: malformed JSON"):
            _chunked(bad_array, chunk_rows)
        with pytest.raises(DataFormatError, match=r"list.json: record 5 is a list; expected"):
            _chunked(list_in_array, chunk_rows)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"data": [{"a": 1}, {"a": 2}], "version": 2}', [{"a": 1}, {"a": 2}]),
        ('{"a": 1}', "expected a JSON array of records (objects); found a dict"),
        ('"text"', "expected a JSON array of records (objects); found a str"),
        ("[]", []),
        ("  \n", "malformed JSON"),
        ('[{"a": 1}] [', "malformed JSON (Extra data"),
        ('[{"a": 1},]', "malformed JSON (Expecting value"),
    ],
)
def test_other_json_documents_load_or_fail_as_before(tmp_path, text, expected):
    """An object with one array of records, a lone object, a scalar, an empty array and broken
    arrays give what the whole-file parse gave."""
    path = tmp_path / "doc.json"
    path.write_text(text)
    if isinstance(expected, list):
        assert load_data(path).to_list() == expected
    else:
        with pytest.raises(DataFormatError, match=re.escape(expected)):
            load_data(path)


def test_line_separators_inside_strings_and_crlf(tmp_path):
    """U+2028, U+2029 and U+0085 inside a string are characters, not line breaks (save_data
    writes them raw; the previous loader split lines there and failed to read its own output);
    CRLF and CR line ends count one line each."""
    rows = [
        {"instruction": "a\u2028b\u2029c\x85d", "output": "x"},
        {"instruction": "e", "output": "y"},
    ]
    for suffix in (".jsonl", ".json"):
        path = save_data(Dataset.from_list(rows), tmp_path / f"sep{suffix}")
        assert load_data(path).to_list() == rows
    crlf = tmp_path / "crlf.jsonl"
    crlf.write_bytes(b'{"a": 1}\r\n\r\n{"a": 2}\r{"a": }\r\n')
    with pytest.raises(DataFormatError, match=r"crlf.jsonl:4: malformed JSON"):
        load_data(crlf)


def test_long_records_and_blocks_cut_anywhere(tmp_path):
    """A .json array read a few characters at a time, and chunks ended by their text length,
    give the same rows."""
    rows = [{"instruction": "i" * (i * 37 % 500), "n": i, "x": i / 3} for i in range(60)]
    path = tmp_path / "long.json"
    path.write_text(json.dumps(rows, indent=1))
    from sftselect.data.io import _load_json_file

    with mock.patch.object(sftselect.data.json_records, "_READ_CHARS", 3):
        loaded = _load_json_file(path, jsonl=False, chunk_rows=10_000, chunk_chars=1000)
    assert loaded.to_list() == rows
    assert loaded.features == _reference_load(path).features


def test_chunked_loading_holds_about_one_chunk_of_python_objects(tmp_path):
    """Peak Python memory (tracemalloc; Arrow's buffers are not counted) while loading 20,000
    records 1,000 at a time is a small part of the whole-list loader's."""
    import tracemalloc

    rows = [
        {"instruction": f"Question {i} " * 4, "input": "", "output": "word " * (i % 50)}
        for i in range(20_000)
    ]
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    del rows
    peaks = {}
    for name, load in (("reference", _reference_load), ("chunked", lambda p: _chunked(p, 1000))):
        tracemalloc.start()
        ds = load(path)
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert ds.num_rows == 20_000
    assert peaks["chunked"] < 0.2 * peaks["reference"], peaks


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # [1, true] alone is not one Arrow type, but is list<double> beside [2.5]
        ([{"a": [1, True]}, {"a": [2.5]}], "list<item: double>"),
        ([{"a": [[1, True]]}, {"a": [[2.5]]}], "list<item: list<item: double>>"),
        # pyarrow's inference stops at the first bool, float or string of a column
        ([{"a": 2.5}, {"a": 1}, {"a": True}], "double"),
        ([{"a": 1}, {"a": True}, {"a": 2.5}], "is a boolean at"),
        ([{"a": 1}, {"a": "x"}], "is a string at"),
        ([{"a": 1.5}, {"a": 2**53 + 1}], "holds values that do not share one type"),
        ([{"a": {"y": 1}}, {"a": {"x": "s", "y": 2.5}}], "struct<y: double, x: string>"),
        ([{"a": None}, {"b": [1]}, {"a": "x"}], "string"),
        ([{"input_ids": [1, 2]}, {"input_ids": [3]}], "list<item: int32>"),
        ([{"attention_mask": 1}, {"attention_mask": 300}], "int64"),
    ],
)
def test_chunk_boundaries_keep_from_dicts_types_and_errors(tmp_path, rows, expected):
    """Promotions and errors that depend on records in other chunks (one record a chunk)."""
    path = tmp_path / "edge.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    for chunk_rows in (1, 2):
        _assert_same_as_reference(path, chunk_rows)
    try:
        loaded = _chunked(path, 1)
    except DataFormatError as exc:
        assert expected in str(exc)
    else:
        assert str(loaded.data.schema.field(loaded.column_names[0]).type) == expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=st.lists(
        st.dictionaries(st.sampled_from("ab"), st.one_of(st.integers(0, 9), _TEXT), max_size=2),
        max_size=4,
    ),
    layout=st.sampled_from(["jsonl", "array", "lines.json"]),
    edit=st.tuples(st.floats(0, 1), st.sampled_from([*'[]{},:" \n\rx1', ""])),
    read_chars=st.sampled_from([1, 3, 1 << 20]),
)
def test_a_damaged_file_fails_or_loads_as_before(
    tmp_path_factory, records, layout, edit, read_chars
):
    """One character inserted or deleted anywhere in a file: the chunked loader loads what the
    whole-file loader loaded, or raises the same error (file and line, or record)."""
    if layout == "jsonl":
        text = "".join(json.dumps(r) + "\n" for r in records)
    elif layout == "lines.json":
        text = "\n".join(json.dumps(r) for r in records)
    else:
        text = json.dumps(records, indent=1)
    at = int(edit[0] * len(text))
    text = text[:at] + edit[1] + text[at + (not edit[1]) :]
    path = tmp_path_factory.mktemp("damaged") / ("d.jsonl" if layout == "jsonl" else "d.json")
    path.write_text(text, encoding="utf-8")
    with mock.patch.object(sftselect.data.json_records, "_READ_CHARS", read_chars):
        for chunk_rows in (1, 2):
            _assert_same_as_reference(path, chunk_rows)
