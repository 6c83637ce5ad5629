"""`sftselect select|score --selector quality --judge-scoring expected [--top-logprobs N]`
against the scripted loopback judge."""

from __future__ import annotations

import json
import math

import pytest

from sftselect import load_sample
from sftselect.cli import main
from sftselect.testing import LoopbackServer, ScriptedReply

PROBS = {" 3": 0.1, " 4": 0.6, " 5": 0.2, "The": 0.1}
EXPECTED = (3 * 0.1 + 4 * 0.6 + 5 * 0.2) / 0.9


def reply(body):
    return ScriptedReply.from_tokens(
        [("Score", 0.0), (":", 0.0), (" 4", math.log(0.6)), ("\n", 0.0), "Fine."],
        top={2: {t: math.log(p) for t, p in PROBS.items()}},
    )


@pytest.fixture
def data(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in load_sample().select(range(6))))
    return src


def judge_args(server, tmp_path, *more):
    return [
        "--model", "judge", "--base-url", server.base_url, "--api-key-env", "",
        "--cache", str(tmp_path / "c.sqlite"), *more,
    ]  # fmt: skip


def test_score_writes_expected_scores_and_mass(data, tmp_path, capsys):
    out = tmp_path / "scored.jsonl"
    with LoopbackServer(reply=reply) as server:
        args = ["score", str(data), "-o", str(out), "--keep-replies", "--judge-scoring", "expected"]
        assert main([*args, *judge_args(server, tmp_path, "--top-logprobs", "4")]) == 0
        assert {r.body["top_logprobs"] for r in server.requests} == {4}
    err = capsys.readouterr().err
    assert "expected scores for 6 rows (mean probability on the scale's tokens 0.900)" in err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["quality_score"] for r in rows] == pytest.approx([EXPECTED] * 6)
    assert [r["quality_mass"] for r in rows] == pytest.approx([0.9] * 6)


def test_select_records_the_mode_in_the_provenance(data, tmp_path, capsys):
    out = tmp_path / "sel.json"
    with LoopbackServer(reply=reply) as server:
        args = ["select", str(data), "-o", str(out), "--selector", "quality", "-k", "2"]
        assert main([*args, "--judge-scoring", "expected", *judge_args(server, tmp_path)]) == 0
    record = json.loads((tmp_path / "sel.json.provenance.json").read_text())
    assert record["params"]["scoring"] == "expected" and record["params"]["top_logprobs"] == 20
    assert record["details"]["rating"]["expected"]["rows"] == 6
    assert len(json.loads(out.read_text())) == 2


def test_endpoint_without_logprobs_is_one_error_line(data, tmp_path, capsys):
    out = tmp_path / "scored.jsonl"
    with LoopbackServer(reply=lambda body: "Score: 4") as server:
        args = ["score", str(data), "-o", str(out), "--judge-scoring", "expected", "-q"]
        assert main([*args, *judge_args(server, tmp_path)]) == 2
        assert server.request_count == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("sftselect score: error: QualitySelector(scoring='expected'): the judge")
    assert f"openai-compatible/judge@{server.base_url}" in err and "--judge-scoring rating" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("more", "message"),
    [
        (["--top-logprobs", "5"], "--top-logprobs applies to --judge-scoring expected only"),
        (["--judge-scoring", "expected", "--top-logprobs", "21"], "from 0 to 20; got 21"),
    ],
)
def test_bad_flags_are_one_line(data, tmp_path, capsys, more, message):
    with LoopbackServer(reply=reply) as server:
        args = ["score", str(data), "-o", str(tmp_path / "o.jsonl"), *more]
        assert main([*args, *judge_args(server, tmp_path)]) == 2
        assert server.request_count == 0
    assert message in capsys.readouterr().err


def test_other_selectors_refuse_judge_scoring(data, tmp_path, capsys):
    args = ["select", str(data), "-o", str(tmp_path / "o.json"), "--selector", "length", "-k", "2"]
    assert main([*args, "--judge-scoring", "expected"]) == 2
    assert "--judge-scoring applies to --selector quality only" in capsys.readouterr().err
