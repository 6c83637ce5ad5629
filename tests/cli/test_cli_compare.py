"""``sftselect compare``: a report from output files and provenance files, and one-line
errors naming the file for selections that do not belong to the pool."""

from __future__ import annotations

import json

import pytest

from sftselect.cli import main

ROWS = [
    {
        "instruction": f"q{i}",
        "input": "",
        "output": " ".join(["w"] * (i + 1)),
        "source": "ab"[i % 2],
    }
    for i in range(12)
]


@pytest.fixture
def made(tmp_path):
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(ROWS))
    for name, extra in (
        ("long", ["--unit", "words"]),
        ("rand", ["--selector", "random", "--seed", "0"]),
    ):
        out = tmp_path / f"{name}.jsonl"
        assert main(["select", str(pool), "-o", str(out), "-k", "4", "-q", *extra]) == 0
    return tmp_path, pool


def test_compare_writes_the_report(made, capsys):
    tmp, pool = made
    out = tmp / "r.html"
    argv = [
        "compare",
        str(pool),
        str(tmp / "long.jsonl"),
        f"R={tmp / 'rand.jsonl.provenance.json'}",
        "-o",
        str(out),
    ]
    assert main(argv) == 0
    html = out.read_text(encoding="utf-8")
    long = set(json.loads((tmp / "long.jsonl.provenance.json").read_text())["indices"])
    rand = set(json.loads((tmp / "rand.jsonl.provenance.json").read_text())["indices"])
    assert long == {8, 9, 10, 11}
    assert f'data-a="long" data-b="R" data-count="{len(long & rand)}"' in html
    assert "long, source = a: 50.0%" in html  # the source column found and broken down
    assert "compared 2 selections of 12 rows" in capsys.readouterr().err


def _error(argv, capsys) -> str:
    assert main([*argv, "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    return err[0]


def test_provenance_from_another_pool(made, capsys):
    tmp, _ = made
    other = tmp / "other.json"
    other.write_text(json.dumps([{**r, "output": r["output"] + "!"} for r in ROWS]))
    err = _error(
        ["compare", str(other), str(tmp / "long.jsonl"), "-o", str(tmp / "r.html")], capsys
    )
    assert err.startswith(
        f"sftselect compare: error: {tmp / 'long.jsonl.provenance.json'}: was selected from another pool"
    )
    assert not (tmp / "r.html").exists()


def test_positions_out_of_range(made, capsys):
    tmp, pool = made
    record = json.loads((tmp / "rand.jsonl.provenance.json").read_text())
    record["indices"][-1] = 12
    bad = tmp / "bad.provenance.json"
    bad.write_text(json.dumps(record))
    err = _error(["compare", str(pool), str(bad), "-o", str(tmp / "r.html")], capsys)
    assert f"{bad}: position 12 (entry 3) is out of range for a pool of 12 rows" in err


def test_usage_errors(made, capsys):
    tmp, pool = made
    sel = str(tmp / "long.jsonl")
    assert "give a .html path" in _error(
        ["compare", str(pool), sel, "-o", str(tmp / "r.txt")], capsys
    )
    assert "two selections are named 'long'" in _error(
        [
            "compare",
            str(pool),
            sel,
            str(tmp / "long.jsonl.provenance.json"),
            "-o",
            str(tmp / "r.html"),
        ],
        capsys,
    )
    missing = tmp / "gone.jsonl"
    assert f"{missing}: no such file" in _error(
        ["compare", str(pool), str(missing), "-o", str(tmp / "r.html")], capsys
    )
    lone = tmp / "lone.jsonl"
    lone.write_text("{}\n")
    assert "no provenance record beside it" in _error(
        ["compare", str(pool), str(lone), "-o", str(tmp / "r.html")], capsys
    )
