"""QualitySelector and the CLI through the real HTTP client against a scripted loopback judge."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from sftselect import load_sample
from sftselect.backends import ReplyCache
from sftselect.backends.openai_compat import OpenAICompatibleBackend
from sftselect.cli import main
from sftselect.selectors.quality import QualitySelector
from sftselect.testing import Fault, LoopbackServer, hashed_faults

FAKE_KEY = "sk-test-NEVER-WRITTEN-0123456789"


def rating_reply(body):
    """A deterministic AlpaGasus-style reply: a score from a hash of the prompt, then prose."""
    content = body["messages"][-1]["content"]
    h = int(hashlib.sha256(content.encode()).hexdigest(), 16)
    if h % 17 == 0:
        return "I am unable to provide a rating for this."
    return f"{[3.5, 4.0, 4.5, 5.0][h % 4]}\nThe response is accurate and complete."


def test_rates_real_records_over_http_with_faults_each_once(tmp_path):
    """Under 429/500 faults every record is rated and cached exactly once; a re-run sends nothing."""
    ds = load_sample().select(range(120))
    faults = hashed_faults(
        0.2, [Fault.rate_limit(0), Fault.server_error(500)], random_state=1, max_attempts=1
    )
    with LoopbackServer(reply=rating_reply, faults=faults) as server:
        judge = OpenAICompatibleBackend(
            "judge", base_url=server.base_url, backoff_base=0.01, max_retries=5
        )
        cache = tmp_path / "c.sqlite"
        q = QualitySelector(
            judge, k=30, min_score=4.5, cache=cache, random_state=0, max_concurrency=16
        )
        sel = q.run(ds)
        rating = sel.extra["rating"]
        assert rating["sent"] == 120 and rating["retries"] > 0 and rating["request_failures"] == 0
        assert len(ReplyCache(cache)) == 120
        ok = [r for r in server.requests if r.fault is None]
        assert len(ok) == 120 and len({r.prompt_key for r in ok}) == 120
        assert np.all(sel.scores[sel.indices] >= 4.5) and len(sel.indices) == 30
        before = server.request_count
        again = q.run(ds)
        assert server.request_count == before and again.indices.tolist() == sel.indices.tolist()


def test_cli_score_and_select_quality(tmp_path, monkeypatch, capsys):
    """`sftselect score` writes quality_score (null when unparsable); `select` keeps >= 4.5; no key on disk."""
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in load_sample().select(range(40)).to_list()))
    with LoopbackServer(reply=rating_reply) as server:
        common = [
            "--base-url",
            server.base_url,
            "--model",
            "judge",
            "--cache",
            str(tmp_path / "c.sqlite"),
        ]
        assert (
            main(
                ["score", str(src), "-o", str(tmp_path / "scored.jsonl"), *common, "--keep-replies"]
            )
            == 0
        )
        rows = [json.loads(x) for x in (tmp_path / "scored.jsonl").read_text().splitlines()]
        assert len(rows) == 40 and all("quality_score" in r for r in rows)
        assert {r["quality_score"] for r in rows} <= {None, 3.5, 4.0, 4.5, 5.0}
        for r in rows:
            assert (r["quality_score"] is None) == (r["quality_reason"] == "no score found")
        sent = server.request_count
        out = tmp_path / "sel.json"
        assert (
            main(
                [
                    "select",
                    str(src),
                    "-o",
                    str(out),
                    "--selector",
                    "quality",
                    "--min-score",
                    "4.5",
                    "--seed",
                    "0",
                    *common,
                    "-q",
                ]
            )
            == 0
        )
        assert server.request_count == sent  # every reply came from the cache
        assert server.requests[0].headers.get("authorization") == f"Bearer {FAKE_KEY}"
    chosen = json.loads(out.read_text())
    wanted = {
        r["output"] for r in rows if r["quality_score"] is not None and r["quality_score"] >= 4.5
    }
    assert {r["output"] for r in chosen} == wanted
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path


def test_cli_dry_run_sends_nothing(tmp_path, capsys):
    """--dry-run prints the request count and estimated cost and sends no request."""
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in load_sample().select(range(10)).to_list()))
    with LoopbackServer(reply=rating_reply) as server:
        code = main(
            [
                "select",
                str(src),
                "-o",
                str(tmp_path / "o.json"),
                "--selector",
                "quality",
                "--model",
                "judge",
                "--base-url",
                server.base_url,
                "--cache",
                str(tmp_path / "c.sqlite"),
                "--dry-run",
                "--usd-per-1m-input",
                "0.5",
                "--usd-per-1m-output",
                "1.5",
            ]
        )
        assert code == 0 and server.request_count == 0
    out = capsys.readouterr().out
    assert "10 requests to send" in out and "$" in out
    assert not (tmp_path / "o.json").exists()


def test_cli_quality_needs_model(tmp_path, capsys):
    """--selector quality without --model is a one-line error."""
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"instruction": "a", "input": "", "output": "b"}))
    assert main(["select", str(src), "-o", str(tmp_path / "o.json"), "--selector", "quality"]) == 2
    assert "--model" in capsys.readouterr().err


@pytest.mark.parametrize("status", [401, 400])
def test_judge_request_errors_exit_cleanly(tmp_path, capsys, status):
    """A judge endpoint that refuses every request exits 2 with one line naming the failure."""
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"instruction": "a", "input": "", "output": "b"}))
    with LoopbackServer(reply=lambda body: Fault.status_code(status, "nope")) as server:
        code = main(
            [
                "select",
                str(src),
                "-o",
                str(tmp_path / "o.json"),
                "--selector",
                "quality",
                "--model",
                "judge",
                "--base-url",
                server.base_url,
                "--cache",
                str(tmp_path / "c.sqlite"),
                "-q",
            ]
        )
    err = capsys.readouterr().err
    assert code == 2 and "rating requests failed" in err and len(err.strip().splitlines()) == 1
