"""The command line never writes over its input (issue 19): the output, the provenance
record and the pictures are each checked against every input (symbolic links, hard links
and relative paths resolved); argument errors are one line; `-k` reads 1e9 as a count;
malformed inputs that gave tracebacks are one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sftselect.cli import main
from sftselect.cli._common import parse_k

ROWS = [
    {"instruction": f"q{i}", "input": "", "output": " ".join(["w"] * (i + 1))} for i in range(10)
]


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def one_error_line(capsys, *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err
    return err


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_select_refuses_to_read_the_provenance_it_would_write(data, tmp_path, capsys):
    """`select data.jsonl.provenance.json -o data.jsonl` overwrote its input with the new
    provenance record; it is refused in one line and nothing changes."""
    assert main(["select", str(data), "-o", str(data.with_suffix(".out.jsonl")), "-k", "2"]) == 0
    prov = tmp_path / "data.jsonl.provenance.json"
    prov.write_text(json.dumps([{"instruction": "a", "output": "b c"}]))
    capsys.readouterr()
    before = snapshot(tmp_path)
    assert main(["select", str(prov), "-o", str(data), "--unit", "words", "-k", "1", "-q"]) == 2
    one_error_line(capsys, "provenance", str(prov))
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("spelling", ["relative", "symlink", "hardlink", "dotdot"])
def test_every_spelling_of_the_input_is_recognised(data, tmp_path, monkeypatch, capsys, spelling):
    """The input is found whatever path names it: relative to the working folder, through a
    symbolic link, as a hard link, or through ``..``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    prov = tmp_path / "out.jsonl.provenance.json"
    prov.write_text(json.dumps([{"instruction": "a", "output": "b c"}]))
    if spelling == "relative":
        source = "out.jsonl.provenance.json"
    elif spelling == "symlink":
        (tmp_path / "sub" / "link.json").symlink_to(prov)
        source = "sub/link.json"
    elif spelling == "hardlink":
        os.link(prov, tmp_path / "sub" / "hard.json")
        source = "sub/hard.json"
    else:
        source = "sub/../out.jsonl.provenance.json"
    before = snapshot(tmp_path)
    assert main(["select", source, "-o", "sub/../out.jsonl", "--unit", "words", "-k", "1"]) == 2
    one_error_line(capsys, "provenance")
    assert snapshot(tmp_path) == before


def test_score_refuses_an_output_that_is_its_input_by_a_hard_link(data, tmp_path, capsys):
    """score -o naming the input's other hard link is refused (resolve() alone does not see it)."""
    twin = tmp_path / "twin.jsonl"
    os.link(data, twin)
    before = data.read_bytes()
    args = ["score", str(twin), "-o", str(data), "--selector", "length", "--unit", "words", "-q"]
    assert main(args) == 2
    one_error_line(capsys, "input", str(data))
    assert data.read_bytes() == before


def test_stats_refuses_to_draw_over_its_input(data, capsys):
    """stats INPUT --plot INPUT wrote a PNG over the data."""
    before = data.read_bytes()
    assert main(["stats", str(data), "--unit", "words", "--plot", str(data), "-q"]) == 2
    one_error_line(capsys, "--plot")
    assert data.read_bytes() == before


def test_select_refuses_a_plot_over_the_input_or_the_output(tmp_path, capsys):
    """--plot (embedding selectors) must not name the input, the output or its provenance."""
    rows = [{**r, "vec": [float(i), 1.0]} for i, r in enumerate(ROWS)]
    src = tmp_path / "vec.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "o.jsonl"
    base = ["select", str(src), "-o", str(out), "--selector", "kcenter", "-k", "2"]
    base += ["--embed-column", "vec", "-q"]
    for plot in (src, out, tmp_path / "o.jsonl.provenance.json"):
        before = snapshot(tmp_path)
        assert main([*base, "--plot", str(plot)]) == 2
        one_error_line(capsys, "--plot")
        assert snapshot(tmp_path) == before


def test_judge_and_report_refuse_to_write_over_their_inputs(tmp_path, capsys):
    """judge -o naming an answers file, and report --markdown/--figure naming the result."""
    from sftselect.backends import CallableBackend
    from sftselect.evaluate import Pairs, judge_pairs

    answers = tmp_path / "a.jsonl"
    answers.write_text('{"prompt": "q", "answer_a": "x", "answer_b": "y"}\n')
    before = answers.read_bytes()
    args = ["judge", "--answers-a", str(answers), "-o", str(answers), "--model", "m", "-q"]
    args += ["--base-url", "http://127.0.0.1:9/v1", "--api-key-env", "", "--timeout", "1"]
    args += ["--deadline", "2", "--on-request-error", "omit", "--n-bootstrap", "0"]
    assert main([*args, "--cache", str(tmp_path / "c.sqlite")]) == 2
    one_error_line(capsys, "-o")
    assert answers.read_bytes() == before

    pairs = Pairs.from_lists(["q"], ["a b"], ["c"], model_a="A", model_b="B")
    judge = CallableBackend(lambda messages: "9 2\nfirst", identity="fixed")
    result = judge_pairs(pairs, judge, n_bootstrap=0, random_state=0).save(tmp_path / "r.json")
    saved = result.read_bytes()
    for option in ("--markdown", "--figure"):
        assert main(["report", str(result), option, str(result), "-q"]) == 2
        one_error_line(capsys, option)
        assert result.read_bytes() == saved


# --- argument errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "prog", "words"),
    [
        (["select"], "sftselect select", "required"),
        (["select", "x.json", "-o", "o.json", "--selector", "nope"], "sftselect select", "nope"),
        (["stats", "x.json", "--bins", "0"], "sftselect stats", "--bins"),
        (["nope"], "sftselect", "invalid choice"),
    ],
)
def test_argument_errors_are_one_line_with_a_hint(capsys, argv, prog, words):
    """An argument error printed 39 lines of usage; it is one line naming the subcommand,
    with a pointer to its --help, and exit status 2."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = one_error_line(capsys, words)
    assert err.startswith(f"{prog}: error: ") and err.endswith(f"(see {prog} --help)")


# --- -k ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1000", 1000),
        ("1e9", 1_000_000_000),
        ("2.0", 2),
        ("1.0", 1.0),  # every row, as k=1.0 in the Python API
        ("3e2", 300),
        ("0.25", 0.25),
        ("2.5e-1", 0.25),
        ("0", 0),  # the selector refuses it, naming k (an int: as before)
    ],
)
def test_k_reads_whole_numbers_as_counts_and_values_below_one_as_fractions(text, value):
    """A float that is a whole number above 1 is a count; a value in (0, 1] a fraction."""
    got = parse_k(text)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("text", ["1.5", "0.0", "-0.5", "nan", "inf", "1e400", "x", ""])
def test_other_k_values_are_one_line_errors(data, tmp_path, capsys, text):
    """Anything else is refused in one line naming -k, before anything is read or written."""
    out = tmp_path / "o.jsonl"
    with pytest.raises(SystemExit) as info:
        main(["select", str(data), "-o", str(out), "-k", text, "-q"])
    assert info.value.code == 2
    one_error_line(capsys, "-k", "count", "fraction")
    assert not out.exists()


def test_k_1e9_is_a_count_on_the_command_line(data, tmp_path, capsys):
    """-k 1e9 was refused as a fraction; it asks for 1,000,000,000 rows (all 10 here, warned)."""
    out = tmp_path / "o.jsonl"
    assert main(["select", str(data), "-o", str(out), "-k", "1e9", "--unit", "words", "-q"]) == 0
    assert len(out.read_text().splitlines()) == 10
    assert "1000000000" in capsys.readouterr().err.replace(",", "")


# --- malformed inputs that gave tracebacks ----------------------------------------------------


def test_a_plain_folder_of_malformed_json_lines_is_one_error(tmp_path, capsys):
    """A folder that is not a saved Dataset (a `datasets` traceback before) exits 2 in one line."""
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "bad.jsonl").write_text('{"instruction": "a", "output": \n')
    out = tmp_path / "o.jsonl"
    assert main(["select", str(folder), "-o", str(out), "-k", "1", "-q"]) == 2
    one_error_line(capsys, "not a saved Dataset", "bad.jsonl")
    assert not out.exists()


def test_json_nested_100000_deep_is_one_error(tmp_path, capsys):
    """A RecursionError traceback before; one line naming the file and line now."""
    src = tmp_path / "deep.jsonl"
    src.write_text('{"instruction": "a", "output": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    assert main(["stats", str(src), "-q"]) == 2
    one_error_line(capsys, "deep.jsonl:1", "nested too deeply")


def test_a_byte_that_is_not_utf8_is_one_error_naming_file_and_line(tmp_path, capsys):
    """The decoder's message named neither the file nor the line."""
    src = tmp_path / "latin.jsonl"
    src.write_bytes(
        b'{"instruction": "a", "output": "b"}\n{"instruction": "caf\xe9", "output": "b"}\n'
    )
    assert main(["stats", str(src), "-q"]) == 2
    one_error_line(capsys, "latin.jsonl:2", "byte offset 56")
