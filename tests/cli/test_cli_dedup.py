"""`sftselect select --selector exact-dedup|minhash|semdedup`, `--dedup` and `--report`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from sftselect import Chain, ExactDedup, LengthSelector, MinHashDedup, SemDeDup
from sftselect.cli import main
from sftselect.embedding import PrecomputedEmbeddings

TEXT = "the quick brown fox jumps over the lazy dog near the quiet river bank today"


@pytest.fixture
def pool(tmp_path) -> tuple[Path, list[dict]]:
    rows = []
    for i in range(12):
        rows.append(
            {"instruction": f"Task number {i} about {TEXT}", "input": "", "output": "w " * (i + 1)}
        )
    rows.append(dict(rows[3], instruction=rows[3]["instruction"].upper() + "  "))
    rows.append(dict(rows[5], output="a much longer answer than before " * 3))
    rows.append(dict(rows[3]))
    for i, r in enumerate(rows):
        angle = 0.3 * (i % 12)
        r["vec"] = [float(np.cos(angle)), float(np.sin(angle))]
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path, rows


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def removed_table(out: Path) -> list[dict]:
    with open(out.with_name(out.name + ".removed.csv"), newline="") as fh:
        return list(csv.DictReader(fh))


def test_exact_dedup_writes_the_removed_rows_beside_the_output(pool, tmp_path, capsys):
    path, rows = pool
    out = tmp_path / "out.jsonl"
    assert main(["select", str(path), "-o", str(out), "--selector", "exact-dedup", "--report"]) == 0
    got = read_jsonl(out)
    assert len(got) == 13
    expected = ExactDedup().select_indices(Dataset.from_list(rows)).tolist()
    assert [r["instruction"] for r in got] == [rows[i]["instruction"] for i in expected]
    table = removed_table(out)
    assert [(int(t["position"]), int(t["kept"])) for t in table] == [(12, 3), (14, 3)]
    record = json.loads(out.with_name("out.jsonl.provenance.json").read_text())
    assert record["details"]["removed_rows"]["rows"] == 2  # a summary, not the rows
    report = capsys.readouterr().out
    assert "15 rows, 13 kept, 2 removed in 1 groups" in report
    assert "group 0: 3 rows, kept row 3" in report


def test_minhash_options_and_keep_longest(pool, tmp_path):
    path, rows = pool
    out = tmp_path / "m.jsonl"
    argv = ["select", str(path), "-o", str(out), "--selector", "minhash", "-q"]
    argv += ["--fields", "instruction", "--threshold", "0.8", "--keep", "longest"]
    assert main(argv) == 0
    ds = Dataset.from_list(rows)
    expected = MinHashDedup(fields="instruction", threshold=0.8, keep="longest").select_indices(ds)
    assert [r["output"] for r in read_jsonl(out)] == [rows[i]["output"] for i in expected]
    assert 13 in expected  # the longest copy of row 5 is the one kept


def test_dedup_in_front_of_another_selector(pool, tmp_path):
    path, rows = pool
    out = tmp_path / "c.jsonl"
    argv = ["select", str(path), "-o", str(out), "--dedup", "minhash", "--selector", "length"]
    argv += ["-k", "4", "--unit", "words", "-q"]
    assert main(argv) == 0
    ds = Dataset.from_list(rows)
    expected = Chain(MinHashDedup(), LengthSelector(4, unit="words")).select_indices(ds)
    assert [r["output"] for r in read_jsonl(out)] == [rows[i]["output"] for i in expected]
    record = json.loads(out.with_name("c.jsonl.provenance.json").read_text())
    assert record["selector"] == "Chain"
    assert out.with_name("c.jsonl.removed.csv").exists()


def test_semdedup_on_an_embedding_column(pool, tmp_path):
    path, rows = pool
    out = tmp_path / "s.jsonl"
    argv = ["select", str(path), "-o", str(out), "--selector", "semdedup", "--embed-column", "vec"]
    argv += ["--n-clusters", "2", "--eps", "0.01", "--seed", "0", "-q"]
    assert main(argv) == 0
    ds = Dataset.from_list(rows)
    vectors = np.array([r["vec"] for r in rows], dtype=np.float32)
    emb = PrecomputedEmbeddings(vectors)
    expected = SemDeDup(emb, eps=0.01, n_clusters=2, text="instruction_input", random_state=0)
    idx = expected.select_indices(ds)
    assert len(read_jsonl(out)) == idx.size == 12  # rows 12-14 repeat the vectors of 0-2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--selector", "minhash", "--keep", "hard"], "semdedup rule"),
        (["--selector", "semdedup"], "needs --embed-model or --embed-column"),
        (["--selector", "semdedup", "--embed-column", "vec", "--engine", "ray"], "runs on this"),
        (
            ["--dedup", "minhash", "--selector", "kcenter", "-k", "3", "--engine", "ray"],
            "--selector kcenter after --dedup runs on this machine",
        ),
    ],
)
def test_bad_dedup_options_exit_2(pool, tmp_path, capsys, extra, message):
    path, _ = pool
    out = tmp_path / "never.jsonl"
    assert main(["select", str(path), "-o", str(out), *extra]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_dedup_in_front_of_an_embedding_selector(pool, tmp_path):
    """The rows are embedded once; the selector after the filter sees the kept rows' vectors."""
    from sftselect import KCenterSelector

    path, rows = pool
    out = tmp_path / "k.jsonl"
    argv = ["select", str(path), "-o", str(out), "--dedup", "exact-dedup", "--selector", "kcenter"]
    argv += ["-k", "3", "--embed-column", "vec", "--seed", "0", "-q"]
    assert main(argv) == 0
    ds = Dataset.from_list(rows)
    kept = ExactDedup().select_indices(ds)
    vectors = np.array([r["vec"] for r in rows], dtype=np.float32)
    second = KCenterSelector(PrecomputedEmbeddings(vectors[kept]), 3, random_state=0)
    expected = kept[second.select_indices(ds.select(kept))]
    assert [r["instruction"] for r in read_jsonl(out)] == [rows[i]["instruction"] for i in expected]
    # SemDeDup after an exact filter gets the kept rows' vectors too.
    out2 = tmp_path / "s2.jsonl"
    argv = [
        "select",
        str(path),
        "-o",
        str(out2),
        "--dedup",
        "exact-dedup",
        "--selector",
        "semdedup",
    ]
    argv += ["--embed-column", "vec", "--n-clusters", "2", "--seed", "0", "-q"]
    assert main(argv) == 0
    assert len(read_jsonl(out2)) == 12
