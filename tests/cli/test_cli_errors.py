"""What the command line does with what it cannot use (issue 21).

Options that the chosen selector does not read are refused, naming the option and the
selectors it applies to (``sftselect.cli.applicability``). Errors the user can fix (our
own error types, OS errors) are one line with exit status 2; anything else is a bug in
sftselect and shows itself as one: its traceback, a line saying so, exit status 70.
"""

from __future__ import annotations

import json

import pytest

import sftselect.cli.selection
from sftselect.cli import applicability, build_parser, main
from sftselect.cli._common import EXIT_BUG

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


# -- options that do not apply to the chosen selector ---------------------------------------


@pytest.mark.parametrize(
    ("extra", "flag", "applies_to"),
    [
        (["--selector", "random", "-k", "3", "--drop-echo"], "--drop-echo", "length only"),
        (["--selector", "random", "-k", "3", "--unit", "chars"], "--unit", "length or repr-filter"),
        (["--selector", "length", "-k", "3", "--stratify", "x"], "--stratify", "random only"),
        (
            ["--selector", "length", "-k", "3", "--min-score", "4"],
            "--min-score",
            "column, quality, deita, reward, ifd, superfiltering or perplexity",
        ),
        (
            ["--selector", "column", "--score-column", "s", "--model", "m"],
            "--model",
            "quality, deita, reward, ifd, superfiltering or perplexity",
        ),
        (
            ["--selector", "random", "-k", "3", "--n-clusters", "5"],
            "--n-clusters",
            "diversity or semdedup",
        ),
        (
            ["--selector", "repr-filter", "--embed-column", "v", "--seed", "1"],
            "--seed",
            "length, random, column, quality, diversity, kcenter, facility-location, exact-dedup, "
            "minhash, semdedup, ifd, superfiltering or perplexity",
        ),
    ],
)
def test_an_option_the_selector_does_not_read_is_refused(
    data, tmp_path, capsys, extra, flag, applies_to
):
    """One line naming the option and the selectors it applies to; nothing is written."""
    out = tmp_path / "out.json"
    assert main(["select", str(data), "-o", str(out), *extra]) == 2
    one_error_line(capsys, f"{flag} applies to --selector {applies_to}", "does not read it")
    assert list(tmp_path.iterdir()) == [data]


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--selector", "length", "--local-judge", "judge.gguf"], "--local-judge"),
        (["--selector", "length", "--model", "m"], "--model"),
        (["--selector", "quality", "--unit", "chars"], "--unit"),
        (["--selector", "ifd", "--model", "m", "--deita-by", "quality"], "--deita-by"),
    ],
)
def test_score_refuses_an_option_its_scorer_does_not_read(data, tmp_path, capsys, extra, flag):
    """`score` checks the options as `select` does: one line, nothing written (it ignored
    them in silence)."""
    out = tmp_path / "out.json"
    assert main(["score", str(data), "-o", str(out), *extra]) == 2
    one_error_line(capsys, f"{flag} applies to --selector", "does not read it")
    assert list(tmp_path.iterdir()) == [data]


def test_options_the_selector_reads_are_accepted(data, tmp_path):
    """The same options with a selector that reads them run as before."""
    out = tmp_path / "out.json"
    argv = ["select", str(data), "-o", str(out), "--unit", "chars", "--drop-echo", "-k", "3"]
    assert main([*argv, "--seed", "1", "--ties", "random", "-q"]) == 0
    argv = ["select", str(data), "-o", str(tmp_path / "r.json"), "--selector", "random", "-k", "3"]
    assert main([*argv, "--seed", "1", "-q"]) == 0


def test_an_option_given_its_default_value_is_not_refused(data, tmp_path):
    """Giving an option its default changes nothing, so it is not told apart from leaving it."""
    argv = ["select", str(data), "-o", str(tmp_path / "o.json"), "--selector", "random", "-k", "3"]
    assert main([*argv, "--turns", "last", "-q"]) == 0


def test_a_selector_without_a_row_is_not_checked(data, tmp_path, monkeypatch):
    """A selector nobody registered in the table yet is left alone (the table is additive)."""
    rows = dict(applicability.SELECTOR_OPTIONS)
    del rows["random"]
    monkeypatch.setattr(applicability, "SELECTOR_OPTIONS", rows)
    argv = ["select", str(data), "-o", str(tmp_path / "o.json"), "--selector", "random", "-k", "3"]
    assert main([*argv, "--drop-echo", "-q"]) == 0


def test_the_table_names_only_real_options_and_selectors():
    """Every flag of the table is an option of `select`, every row a --selector choice."""
    select = build_parser()._subparsers._group_actions[0].choices["select"]
    flags = {flag for action in select._actions for flag in action.option_strings}
    assert flags >= applicability.RESTRICTED, applicability.RESTRICTED - flags
    choices = next(a.choices for a in select._actions if a.dest == "selector")
    assert set(applicability.SELECTOR_OPTIONS) <= set(choices)


# -- user errors are one line; internal bugs show themselves ------------------------------------


@pytest.mark.parametrize("error", [TypeError("a bad call"), KeyError("oops"), ValueError("bad")])
def test_an_internal_bug_shows_its_traceback_and_exits_70(
    data, tmp_path, capsys, monkeypatch, error
):
    """A TypeError, KeyError or ValueError that no check turned into one of our errors is a
    bug: the traceback, then one line saying so, exit status 70 (not 2, not one line)."""

    def broken(args):
        raise error

    monkeypatch.setattr(sftselect.cli.selection, "load_input", broken)
    assert main(["select", str(data), "-o", str(tmp_path / "o.json"), "-k", "3"]) == EXIT_BUG == 70
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "in broken" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"sftselect select: internal error: {type(error).__name__}")
    assert "this is a bug in sftselect" in last


def test_an_internal_bug_is_raised_with_sftselect_debug(data, tmp_path, monkeypatch):
    monkeypatch.setenv("SFTSELECT_DEBUG", "1")
    monkeypatch.setattr(sftselect.cli.selection, "load_input", lambda args: {}["missing"])
    with pytest.raises(KeyError):
        main(["select", str(data), "-o", str(tmp_path / "o.json"), "-k", "3"])


def test_an_unknown_tiktoken_encoding_is_one_line(data, capsys):
    """tiktoken's ValueError for an encoding name the user gave is an InvalidParameterError."""
    pytest.importorskip("tiktoken")
    assert main(["stats", str(data), "--unit", "tiktoken:no_such_encoding", "-q"]) == 2
    one_error_line(capsys, "'tiktoken:no_such_encoding' names no tiktoken encoding", "known:")


def test_a_folder_without_a_tokenizer_is_one_line(data, tmp_path, capsys):
    """A tokenizer unit, an embedding model or a model to generate with, given as a folder
    transformers cannot load (its ValueError), is a one-line error naming what was given."""
    pytest.importorskip("transformers")
    folder = tmp_path / "no_tokenizer"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    assert main(["stats", str(data), "--unit", f"hf:{folder}", "-q"]) == 2
    one_error_line(capsys, f"'hf:{folder}' is no tokenizer transformers can load")
    out = tmp_path / "o.json"
    argv = ["select", str(data), "-o", str(out), "--selector", "kcenter", "-k", "2"]
    assert main([*argv, "--embed-model", str(folder), "-q"]) == 2
    one_error_line(capsys, "'model' parameter of HFEmbedder names nothing transformers can load")
    argv = [
        "generate",
        "--model",
        str(folder),
        "--testset",
        "vicuna",
        "-o",
        str(tmp_path / "g.jsonl"),
    ]
    assert main([*argv, "--limit", "1", "-q"]) == 2
    one_error_line(capsys, "'model' parameter of generate", "holds no AutoTokenizer")
