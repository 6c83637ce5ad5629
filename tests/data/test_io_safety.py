"""Loading and saving safely (issue 19): writes through unpredictable temporary names that
never follow a planted link, folders that are not saved Datasets refused, saved-Dataset
folders that name files outside themselves refused, undecodable bytes and deep nesting
named by file and line, and JSON output without the nulls Arrow adds to nested objects."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset, DatasetDict

from sftselect import DataFormatError, load_data, save_data
from sftselect.core.atomic import TMP_SUFFIX
from sftselect.core.provenance import write_json_atomic
from tests.helpers.paths import FIXTURES

DATA = FIXTURES
ROWS = [
    {"instruction": "a", "input": "", "output": "x y"},
    {"instruction": "b", "input": "c", "output": "z"},
]


def _plant_links(folder: Path, victim: Path, names: list[str]) -> list[Path]:
    """Symbolic links to ``victim`` at every name a writer could once predict."""
    links = []
    for name in names:
        link = folder / name
        link.symlink_to(victim)
        links.append(link)
    return links


def _pids() -> list[int]:
    """This process's id and its neighbours (another process could be next)."""
    return [os.getpid() + d for d in range(-3, 4)]


def _assert_untouched(victim: Path, links: list[Path]) -> None:
    assert victim.read_text() == "victim"
    for link in links:
        assert link.is_symlink() and os.readlink(link) == str(victim)


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".parquet", ""])
def test_save_data_never_follows_a_link_at_a_temporary_name(tmp_path, suffix):
    """A link planted where save_data once put its temporary file (.NAME.tmp-PID, for
    several PIDs) is neither followed nor replaced, and no temporary file is left."""
    victim = tmp_path / "victim.txt"
    victim.write_text("victim")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    name = f"data{suffix}"
    links = _plant_links(out_dir, victim, [f".{name}.tmp-{pid}" for pid in _pids()])
    save_data(Dataset.from_list(ROWS), out_dir / name)
    _assert_untouched(victim, links)
    assert load_data(out_dir / name).to_list() == ROWS
    assert not (out_dir / name).is_symlink()
    assert sorted(p.name for p in out_dir.iterdir()) == sorted([name, *(p.name for p in links)])


def test_provenance_writer_never_follows_a_link_at_a_temporary_name(tmp_path):
    """The provenance record's old temporary name (NAME.provenance.json.tmp-PID) is left alone."""
    victim = tmp_path / "victim.txt"
    victim.write_text("victim")
    target = tmp_path / "out.jsonl.provenance.json"
    links = _plant_links(tmp_path, victim, [f"{target.name}.tmp-{pid}" for pid in _pids()])
    write_json_atomic({"k": 3}, target)
    _assert_untouched(victim, links)
    assert json.loads(target.read_text()) == {"k": 3}


def test_plots_never_follow_a_link_at_a_temporary_name(tmp_path):
    """stats --plot wrote through the fixed name .NAME.tmp.png; a link planted there is left
    alone (the embedding picture too)."""
    pytest.importorskip("matplotlib", reason="the plot extra is not installed")
    from sftselect.cli.plots import plot_embedding, plot_histogram

    victim = tmp_path / "victim.txt"
    victim.write_text("victim")
    links = _plant_links(tmp_path, victim, [".h.png.tmp.png", ".e.png.tmp.png"])
    plot_histogram(np.arange(20.0), tmp_path / "h.png", 5, "t")
    X = np.random.default_rng(0).normal(size=(10, 3))
    plot_embedding(X, None, np.array([1, 2]), tmp_path / "e.png", "t")
    _assert_untouched(victim, links)
    for name in ("h.png", "e.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_temporary_names_are_unpredictable_and_recognisable(tmp_path, monkeypatch):
    """Each write uses a new random name, .NAME.<random>.sftselect-tmp, in the target's folder."""
    seen: list[str] = []
    real_replace = os.replace

    def spy(src, dst, *args, **kwargs):
        seen.append(os.fspath(src))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", spy)
    for _ in range(2):
        save_data(Dataset.from_list(ROWS), tmp_path / "o.jsonl")
        write_json_atomic({}, tmp_path / "p.json")
    assert len(set(seen)) == 4
    for src in seen:
        assert Path(src).parent == tmp_path
        assert re.fullmatch(r"\.(o\.jsonl|p\.json)\.[^/]+" + re.escape(TMP_SUFFIX), Path(src).name)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ""])
def test_a_failed_write_leaves_nothing_behind(tmp_path, monkeypatch, suffix):
    """An exception during the write removes the temporary file (or folder); an existing
    output is left as it was."""
    out = tmp_path / f"o{suffix}"
    save_data(Dataset.from_list(ROWS), out)
    before = sorted(p.name for p in tmp_path.iterdir())

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Dataset, "to_list", fail)
    monkeypatch.setattr(Dataset, "to_parquet", fail)
    monkeypatch.setattr(Dataset, "save_to_disk", fail)
    with pytest.raises(OSError, match="disk full"):
        save_data(Dataset.from_list(ROWS[:1]), out)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert load_data(out).to_list() == ROWS


def test_written_files_have_the_usual_permissions(tmp_path):
    """Temporary files are created 0600; the output gets the mode a plain open would give."""
    umask = os.umask(0)
    os.umask(umask)
    save_data(Dataset.from_list(ROWS), tmp_path / "o.jsonl")
    save_data(Dataset.from_list(ROWS), tmp_path / "folder")
    assert (tmp_path / "o.jsonl").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o777 & ~umask


# --- folders ------------------------------------------------------------------------------


def test_a_plain_folder_is_refused_naming_its_data_files(tmp_path, monkeypatch):
    """A folder that is not a saved Dataset is refused in one line listing its data files;
    datasets.load_dataset (and its cache under ~/.cache) is never reached."""
    import datasets

    def never(*args, **kwargs):
        raise AssertionError("datasets.load_dataset was called")

    monkeypatch.setattr(datasets, "load_dataset", never)
    folder = tmp_path / "repo"
    (folder / "sub").mkdir(parents=True)
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS))
    (folder / "sub" / "more.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataFormatError) as info:
        load_data(folder)
    message = str(info.value)
    assert "\n" not in message and "not a saved Dataset" in message
    assert "train.jsonl" in message and os.path.join("sub", "more.parquet") in message
    assert "pass a file" in message


def test_a_plain_folder_with_malformed_json_lines_is_one_error(tmp_path):
    """The folder of malformed JSON Lines that gave a `datasets` traceback is refused as a folder."""
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "bad.jsonl").write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(DataFormatError, match="bad.jsonl"):
        load_data(folder)


@pytest.mark.parametrize("name", ["../../secret.arrow", "/etc/passwd", "sub/../../x.arrow"])
def test_a_saved_dataset_naming_files_outside_its_folder_is_refused(tmp_path, monkeypatch, name):
    """state.json with ../ (or an absolute path) in a data file name is refused before
    datasets.load_from_disk reads anything."""
    import datasets

    folder = tmp_path / "a" / "b" / "ds"
    Dataset.from_list(ROWS).save_to_disk(str(folder))
    state = json.loads((folder / "state.json").read_text())
    state["_data_files"] = [{"filename": name}]
    (folder / "state.json").write_text(json.dumps(state))

    def never(*args, **kwargs):
        raise AssertionError("datasets.load_from_disk was called")

    monkeypatch.setattr(datasets, "load_from_disk", never)
    with pytest.raises(DataFormatError, match=r"state\.json.*outside") as info:
        load_data(folder)
    assert name in str(info.value)


def test_a_saved_dataset_dict_naming_a_split_outside_its_folder_is_refused(tmp_path):
    """dataset_dict.json's split names are folders inside it; ../ is refused."""
    folder = tmp_path / "dd"
    DatasetDict({"train": Dataset.from_list(ROWS)}).save_to_disk(str(folder))
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": ["../../elsewhere"]}))
    with pytest.raises(DataFormatError, match=r"dataset_dict\.json.*outside"):
        load_data(folder, split="../../elsewhere")


def test_a_saved_dataset_with_an_unreadable_state_file_is_one_error(tmp_path):
    """A state.json that is not JSON names the file."""
    folder = tmp_path / "ds"
    Dataset.from_list(ROWS).save_to_disk(str(folder))
    (folder / "state.json").write_text("{not json")
    with pytest.raises(DataFormatError, match=r"state\.json"):
        load_data(folder)


def test_saved_datasets_still_load(tmp_path):
    """A real saved Dataset and DatasetDict load as before."""
    Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "ds"))
    DatasetDict({"train": Dataset.from_list(ROWS)}).save_to_disk(str(tmp_path / "dd"))
    assert load_data(tmp_path / "ds").to_list() == ROWS
    assert load_data(tmp_path / "dd").to_list() == ROWS


# --- undecodable bytes and deep nesting -----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("bad.jsonl", '{"a": "x"}\r\n{"a": "y"}\n{"a": "\xff"}\n'),
        ("bad.json", '[\n{"a": "x"},\n{"a": "\xff"}\n]'),
        ("lines.json", '{"a": "x"}\n{"a": "y"}\n{"a": "\xff"}\n'),
    ],
)
def test_a_byte_that_is_not_utf8_names_file_line_and_offset(tmp_path, name, text):
    """An undecodable byte is a DataFormatError naming the file, its line and byte offset."""
    raw = text.encode("latin-1")
    path = tmp_path / name
    path.write_bytes(raw)
    offset = raw.index(b"\xff")
    line = raw[:offset].replace(b"\r\n", b"\n").count(b"\n") + 1
    with pytest.raises(DataFormatError) as info:
        load_data(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: ")
    assert f"byte offset {offset}" in message and "0xff" in message and "UTF-8" in message


def test_a_bad_byte_far_into_a_file_is_found(tmp_path):
    """The offset is right past the reader's first blocks (and a multi-byte character cut
    by a block boundary is not mistaken for a bad byte)."""
    good = json.dumps({"a": "é" * 300_000}, ensure_ascii=False) + "\n"
    raw = (good * 5).encode() + b'{"a": "\xc3("}\n'
    path = tmp_path / "far.jsonl"
    path.write_bytes(raw)
    offset = raw.index(b"\xc3(")
    with pytest.raises(DataFormatError, match=rf"far\.jsonl:6: .*byte offset {offset}\b"):
        load_data(path)


@pytest.mark.parametrize("name", ["deep.jsonl", "deep.json", "deep_object.json"])
def test_json_nested_too_deep_for_the_parser_is_one_error(tmp_path, name):
    """JSON nested 100,000 deep was a RecursionError; it is a DataFormatError naming the file."""
    value = "[" * 100_000 + "]" * 100_000
    if name == "deep_object.json":
        text = '{"x": ' + value + "}"
    elif name == "deep.json":
        text = '[{"a": 1},\n{"x": ' + value + "}]"
    else:
        text = '{"a": 1}\n{"x": ' + value + "}\n"
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataFormatError, match=rf"{re.escape(name)}.*nested too deeply"):
        load_data(path)


def test_json_nested_deeper_than_arrow_holds_names_the_field_and_line(tmp_path):
    """70 levels parse but are more than Arrow's schema holds: the field and line are named."""
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1, "x": []}\n{"a": 2, "x": ' + "[" * 70 + "]" * 70 + "}\n")
    with pytest.raises(DataFormatError, match=r"d\.jsonl:2: field 'x' is nested 70 levels"):
        load_data(path)


# --- nulls Arrow adds to nested objects -------------------------------------------------------


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("name", ["openai_chat.jsonl", "openai_tools.jsonl"])
@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_openai_messages_round_trip_without_added_nulls(tmp_path, name, suffix):
    """OpenAI-format files (plain chat; tool calls, tool results, tools with different
    parameters) are written back as they were read: no tool_calls/tool_call_id/name/weight
    null on messages that had none."""
    source = DATA / name
    out = tmp_path / f"out{suffix}"
    save_data(load_data(source), out)
    written = _records(out) if suffix == ".jsonl" else json.loads(out.read_text())
    assert written == _records(source)
    assert load_data(out).to_list() == load_data(source).to_list()


def test_a_subset_without_tool_calls_has_no_tool_keys(tmp_path):
    """Rows selected from a file with tool calls keep only their own keys."""
    source = load_data(DATA / "openai_tools.jsonl")
    save_data(source.select([2]), tmp_path / "o.jsonl")
    assert _records(tmp_path / "o.jsonl") == [_records(DATA / "openai_tools.jsonl")[2]]


def test_top_level_nulls_are_kept(tmp_path):
    """Top-level fields are columns: a record without one, or with null, is written with null."""
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1, "b": null}\n{"a": 2}\n')
    save_data(load_data(path), tmp_path / "o.jsonl")
    assert _records(tmp_path / "o.jsonl") == [{"a": 1, "b": None}, {"a": 2, "b": None}]


def test_nested_nulls_and_missing_keys_are_one_thing(tmp_path):
    """Inside nested objects a null and a missing key load alike; both are written as
    missing (null list elements stay)."""
    path = tmp_path / "in.jsonl"
    path.write_text(
        '{"m": [{"role": "assistant", "content": null, "x": [1, null]}, {"role": "user"}]}\n'
    )
    save_data(load_data(path), tmp_path / "o.jsonl")
    assert _records(tmp_path / "o.jsonl") == [
        {"m": [{"role": "assistant", "x": [1, None]}, {"role": "user"}]}
    ]
