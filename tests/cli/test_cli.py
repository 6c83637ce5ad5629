"""The command line: select and stats, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sftselect.cli import main

ROWS = [
    {"instruction": f"q{i}", "input": "", "output": " ".join(["w"] * (i + 1))} for i in range(10)
]


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "in.json"
    path.write_text(json.dumps(ROWS))
    return path


def test_select_writes_subset_and_provenance(data, tmp_path):
    """select writes the subset (same columns) and a provenance record beside it."""
    out = tmp_path / "out.jsonl"
    assert main(["select", str(data), "-o", str(out), "-k", "3", "--unit", "words", "-q"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == ROWS[7:]
    prov = json.loads((tmp_path / "out.jsonl.provenance.json").read_text())
    assert prov["indices"] == [7, 8, 9] and prov["selector"] == "LengthSelector"
    assert len(prov["input"]["sha256"]) == 64


def test_select_random_with_seed_is_reproducible(data, tmp_path):
    """--selector random --seed S gives the same rows twice."""
    outs = []
    for name in ("a.json", "b.json"):
        main(
            [
                "select",
                str(data),
                "-o",
                str(tmp_path / name),
                "--selector",
                "random",
                "-k",
                "4",
                "--seed",
                "5",
                "-q",
            ]
        )
        outs.append(json.loads((tmp_path / name).read_text()))
    assert outs[0] == outs[1] and len(outs[0]) == 4


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ('[{"instruction": "a", "output": "b"},\n{oops}]', [], "in.json:2: malformed JSON"),
        (
            json.dumps([{"question": "a", "answer": "b"}]),
            [],
            "Columns found: ['question', 'answer']",
        ),
        (
            json.dumps([{"instruction": "a", "output": "b"}, {"instruction": "a", "output": None}]),
            [],
            "Row 1",
        ),
        (
            json.dumps(ROWS),
            ["-k", "0"],
            "The 'k' parameter of LengthSelector must be a positive int",
        ),
        (json.dumps(ROWS), ["-k", "-3"], "Got -3 instead"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path, capsys, content, args, message
):
    """Bad input: exit status 2, one line on stderr naming the problem, no output file."""
    src = tmp_path / "in.json"
    src.write_text(content)
    out = tmp_path / "out.json"
    assert main(["select", str(src), "-o", str(out), "-q", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert "Traceback" not in err
    assert not out.exists() and not (tmp_path / "out.json.provenance.json").exists()


def test_missing_input_file(tmp_path, capsys):
    """A missing input file is a one-line error."""
    assert main(["select", str(tmp_path / "none.json"), "-o", str(tmp_path / "o.json")]) == 2
    assert "No such file" in capsys.readouterr().err


def test_stats_prints_distribution_and_writes_png(data, tmp_path, capsys):
    """stats prints percentiles and writes a PNG histogram."""
    png = tmp_path / "h.png"
    assert main(["stats", str(data), "--unit", "words", "--plot", str(png), "-q"]) == 0
    out = capsys.readouterr().out
    assert "rows: 10" in out and "p50=" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_console_script_runs_as_module(data, tmp_path):
    """python -m sftselect.cli works as a real process and exits 0."""
    out = tmp_path / "o.parquet"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sftselect.cli",
            "select",
            str(data),
            "-o",
            str(out),
            "-k",
            "2",
            "--unit",
            "chars",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "selected 2 of 10 rows" in proc.stderr


def test_output_folder_of_other_files_is_refused_before_the_run(data, tmp_path, capsys):
    """-o naming a folder of other files exits 2 with one line and leaves the folder as it was."""
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    assert main(["select", str(data), "-o", str(folder), "-k", "2", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a saved Dataset" in err
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    assert not (tmp_path / "precious.provenance.json").exists()


def test_os_errors_are_one_line(data, tmp_path, capsys):
    """An OS error on the way (an output under a plain file) is one line, exit 2, no traceback."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["select", str(data), "-o", str(blocker / "out.jsonl"), "-k", "2", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "file" in err


def test_quality_refuses_turns_it_cannot_rate(data, tmp_path, capsys):
    """--selector quality with --turns sum is an error, not silently the last turn."""
    args = ["select", str(data), "-o", str(tmp_path / "o.jsonl"), "--selector", "quality"]
    args += ["--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--turns", "sum", "-q"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "'turns' parameter of QualitySelector" in err and "'sum'" in err


def test_quiet_silences_the_datasets_progress_bars(data, tmp_path, capsys):
    """-q writes nothing on stderr, saving a Dataset folder included, and restores the bars."""
    from datasets.utils.logging import is_progress_bar_enabled

    before = is_progress_bar_enabled()
    assert main(["select", str(data), "-o", str(tmp_path / "folder"), "-k", "2", "-q"]) == 0
    assert capsys.readouterr().err == ""
    assert is_progress_bar_enabled() == before


def test_closed_pipe_ends_quietly(data):
    """stats piped into a reader that stops early exits without a traceback."""
    proc = subprocess.run(
        f"{sys.executable} -m sftselect.cli stats {data} --unit words | true",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_score_length_writes_integer_counts(data, tmp_path):
    """score --selector length writes each row's length as an int, every input row kept."""
    out = tmp_path / "scored.jsonl"
    args = ["score", str(data), "-o", str(out), "--selector", "length", "--unit", "words", "-q"]
    assert main(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["response_length"] for r in rows] == [i + 1 for i in range(10)]
    assert all(type(r["response_length"]) is int for r in rows)


def test_judge_backend_options_are_named_by_their_flags(data, tmp_path, capsys):
    """select --selector quality --rpm 0 names --rpm, not the backend's Python parameter."""
    args = ["select", str(data), "-o", str(tmp_path / "o.jsonl"), "--selector", "quality"]
    args += ["--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--rpm", "0", "-q"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--rpm must be a positive number" in err and "requests_per_minute" not in err


def test_prices_are_checked_by_flag_for_the_quality_dry_run(data, tmp_path, capsys):
    """select --selector quality checks its prices as judge does: both, non-negative, with --dry-run."""
    base = ["select", str(data), "-o", str(tmp_path / "o.jsonl"), "--selector", "quality"]
    base += ["--model", "m", "--base-url", "http://127.0.0.1:9/v1", "-q"]
    assert main([*base, "--usd-per-1m-input", "1"]) == 2
    assert "is a price for --dry-run" in capsys.readouterr().err
    assert main([*base, "--dry-run", "--usd-per-1m-input", "1"]) == 2
    assert "needs --usd-per-1m-output too" in capsys.readouterr().err


def test_warnings_print_as_one_line_naming_the_command(data, tmp_path, capsys):
    """A library warning (k above the row count) is one 'sftselect select: warning:' line."""
    out = tmp_path / "o.jsonl"
    assert main(["select", str(data), "-o", str(out), "-k", "50", "--unit", "words", "-q"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sftselect select: warning: LengthSelector")


def test_judge_identity_names_the_backend_in_cache_keys():
    """--judge-identity sets the backend's identity; without it the identity names the endpoint."""
    from sftselect.cli import build_parser
    from sftselect.cli._common import backend_from_args

    parser = build_parser()
    base = ["judge", "--answers-a", "a.jsonl", "-o", "r.json", "--model", "gpt-4"]
    base += ["--base-url", "http://127.0.0.1:8000/v1"]
    plain = backend_from_args(parser.parse_args(base), "judge")
    assert plain.identity == "openai-compatible/gpt-4@http://127.0.0.1:8000/v1"
    named = backend_from_args(parser.parse_args([*base, "--judge-identity", "gpt-4-0613"]), "judge")
    assert named.identity == "gpt-4-0613"


@pytest.mark.parametrize("command", ["select", "score"])
def test_quality_dry_run_creates_no_cache(command, data, tmp_path, monkeypatch, capsys):
    """select/score --dry-run create no reply cache: neither --cache PATH nor the default one."""
    monkeypatch.chdir(tmp_path)
    args = [command, str(data), "-o", str(tmp_path / "o.jsonl"), "--selector", "quality"]
    args += ["--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--dry-run", "-q"]
    assert main([*args, "--cache", str(tmp_path / "c" / "r.sqlite")]) == 0
    assert main(args) == 0
    assert "10 requests to send (0 cached)" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.json"]


def test_stats_writes_no_picture_unless_asked(tmp_path, monkeypatch, capsys):
    """stats writes no PNG by default (sample:alpaca_2k wrote 'sample:alpaca_2k.lengths.png');
    --plot PATH writes one, and --no-plot (now the default) is still accepted."""
    monkeypatch.chdir(tmp_path)
    assert main(["stats", "sample:alpaca_2k", "--unit", "words", "-q"]) == 0
    assert main(["stats", "sample:alpaca_2k", "--unit", "words", "--no-plot", "-q"]) == 0
    assert "warning: --no-plot is deprecated" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    assert main(["stats", "sample:alpaca_2k", "--unit", "words", "--plot", "x.png", "-q"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]
    assert "histogram: x.png" in capsys.readouterr().out


@pytest.mark.parametrize(("command", "default"), [("select", "length"), ("score", "quality")])
def test_help_names_sample_inputs_and_the_default_selector(command, default, capsys):
    """select/score --help say INPUT may be sample:NAME and list the selectors with the default."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "sample:alpaca_2k" in text
    assert f"(default: {default})" in text and "--selector {" in text
