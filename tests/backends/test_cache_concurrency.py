"""The SQLite reply cache shared by several processes, and cache files that cannot be used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sftselect.backends.base import ChatReply, ChatRequest
from sftselect.backends.cache import ReplyCache
from sftselect.backends.runner import run_requests
from sftselect.cli import main
from sftselect.exceptions import CacheError, SftSelectError
from sftselect.testing import LoopbackServer
from tests.helpers.paths import REPO

SRC = str(REPO / "src")

#: One run in its own process: send prompts (argv[3], JSON) one at a time through the
#: cache (argv[2]) to the server (argv[1]); print the run's report as JSON.
RUN = r"""
import json, sys
from sftselect.backends import ChatRequest, OpenAICompatibleBackend, ReplyCache, run_requests
base_url, cache, prompts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
judge = OpenAICompatibleBackend("judge", base_url=base_url, max_concurrency=1, timeout=30)
requests = [ChatRequest.user(p) for p in prompts]
result = run_requests(judge, requests, cache=ReplyCache(cache), max_concurrency=1)
print(json.dumps(result.report.as_dict()))
"""

#: Open fresh caches at agreed moments: argv[1] a start time, argv[2:] the paths, one
#: every 0.25 s, so that every process opens each new file at the same moment.
OPEN = r"""
import os, sys, time
from sftselect.backends import ChatReply, ChatRequest, ReplyCache
from tests.helpers.paths import REPO
start = float(sys.argv[1])
for i, path in enumerate(sys.argv[2:]):
    time.sleep(max(0.0, start + 0.25 * i - time.time()))
    cache = ReplyCache(path)
    cache.put(str(os.getpid()), "b", ChatRequest.user("x"), ChatReply("y"))
    cache.close()
"""


def _python(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for(predicate, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_a_run_started_beside_a_live_one_does_not_resend_what_it_cached(tmp_path) -> None:
    """Process B starts once A has cached rows 0-4; A caches rows 5-9 while B waits on its
    own first request; B then finds rows 5-9 in the cache just before sending them."""
    cache = str(tmp_path / "c.sqlite")
    rows = [f"row {i}" for i in range(10)]
    b_sent_x, a_done = threading.Event(), threading.Event()

    def reply(body):
        content = body["messages"][-1]["content"]
        if content == "row 5":  # A waits here until B has read the cache and sent "X"
            b_sent_x.wait(60)
        if content == "X":  # B waits here until A has finished
            b_sent_x.set()
            a_done.wait(60)
        return f"reply to {content}"

    with LoopbackServer(reply=reply) as server:
        a = _python(RUN, server.base_url, cache, json.dumps(rows))
        _wait_for(lambda: server.counts_by_user_message()["row 5"] == 1)
        b = _python(RUN, server.base_url, cache, json.dumps(["X", *rows]))
        a_out, a_err = a.communicate(timeout=120)
        a_done.set()
        b_out, b_err = b.communicate(timeout=120)
    assert a.returncode == 0, a_err
    assert b.returncode == 0, b_err
    counts = server.counts_by_user_message()
    assert {row: counts[row] for row in rows} == dict.fromkeys(rows, 1)
    assert counts["X"] == 1
    report_a, report_b = json.loads(a_out), json.loads(b_out)
    assert report_a["sent"] == 10 and report_a["cache_hits"] == 0
    assert report_b["sent"] == 1 and report_b["cache_hits"] == 10 and report_b["failures"] == 0


def test_the_runner_checks_the_cache_again_before_each_request() -> None:
    """A reply stored by someone else while the run goes on is read, not paid for again."""
    from sftselect.backends.cache import MemoryCache

    store = MemoryCache()
    requests = [ChatRequest.user(f"q{i}") for i in range(4)]
    keys = [r.cache_key("judge") for r in requests]
    sent: list[str] = []

    class Judge:
        identity = "judge"

        async def chat(self, request):
            sent.append(request.messages[-1][1])
            # another process stores the last request's reply meanwhile
            store.put(keys[3], "judge", requests[3], ChatReply("stored elsewhere"))
            return ChatReply(f"reply {request.messages[-1][1]}")

    result = run_requests(Judge(), requests, cache=store, max_concurrency=1)
    assert sent == ["q0", "q1", "q2"]
    assert [r.text for r in result.replies][3] == "stored elsewhere"
    assert result.report.cache_hits == 1 and result.report.sent == 3


def test_processes_opening_a_new_cache_at_once_all_succeed(tmp_path) -> None:
    """Four processes open each of eight new cache files at the same moment: none fails with
    'database is locked' (the journal-mode switch waits and retries)."""
    paths = [str(tmp_path / f"c{i}.sqlite") for i in range(8)]
    start = f"{time.time() + 3.0:.3f}"
    procs = [_python(OPEN, start, *paths) for _ in range(4)]
    outcomes = [p.communicate(timeout=120) for p in procs]
    for proc, (_, err) in zip(procs, outcomes):
        assert proc.returncode == 0, err
    for path in paths:
        assert len(ReplyCache(path)) == 4


def _real_cache(path: Path) -> Path:
    cache = ReplyCache(path)
    for i in range(200):
        cache.put(f"k{i}", "b", ChatRequest.user("x" * 400 + str(i)), ChatReply("y" * 200))
    cache.close()
    return path


def _bad_caches(tmp_path: Path) -> dict[str, Path]:
    corrupted = tmp_path / "corrupted.sqlite"
    corrupted.write_bytes(b"this is not an SQLite database at all\n" * 20)
    data = _real_cache(tmp_path / "whole.sqlite").read_bytes()
    truncated = tmp_path / "truncated.sqlite"
    truncated.write_bytes(data[: len(data) // 3])
    folder = tmp_path / "folder.sqlite"
    folder.mkdir()
    under_file = tmp_path / "plain-file" / "c.sqlite"
    (tmp_path / "plain-file").write_text("x")
    return {
        "corrupted": corrupted,
        "truncated": truncated,
        "folder": folder,
        "under a file": under_file,
    }


def _check_one_line(exc: BaseException, path: Path) -> None:
    message = str(exc)
    assert isinstance(exc, CacheError) and isinstance(exc, SftSelectError)
    assert str(path) in message and "\n" not in message


def test_unusable_cache_files_are_one_line_errors_naming_the_file(tmp_path) -> None:
    """Corrupted, truncated, a folder, or under a plain file: CacheError naming the path."""
    for path in _bad_caches(tmp_path).values():
        for use in (len, lambda c: c.get_many(["k1"])):
            with pytest.raises(CacheError) as info:
                use(ReplyCache(path))
            _check_one_line(info.value, path)


@pytest.mark.skipif(sys.platform != "linux", reason="/proc is Linux's")
def test_cache_where_no_file_can_be_written_is_refused_at_open() -> None:
    """A cache path in a place no file can be created is refused before anything is sent."""
    path = Path("/proc/sftselect-cache-test/c.sqlite")
    with pytest.raises(CacheError) as info:
        ReplyCache(path).get_many(["k"])
    _check_one_line(info.value, path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes read-only files")
def test_read_only_cache_file_is_refused_at_open(tmp_path) -> None:
    """A cache file that cannot be written is refused at open, not after paying for a reply."""
    path = _real_cache(tmp_path / "ro.sqlite")
    path.chmod(0o444)
    with pytest.raises(CacheError) as info:
        ReplyCache(path).get_many(["k1"])
    _check_one_line(info.value, path)


def test_cli_unusable_cache_is_one_line_exit_2(tmp_path, capsys) -> None:
    """The command line prints the cache error as one line, exit status 2, nothing sent."""
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"instruction": "a", "input": "", "output": "b"}) + "\n")
    with LoopbackServer(reply=lambda body: "4.5") as server:
        for name, path in _bad_caches(tmp_path).items():
            code = main(
                ["score", str(src), "-o", str(tmp_path / "o.jsonl"), "--model", "judge",
                 "--base-url", server.base_url, "--cache", str(path), "-q"]
            )  # fmt: skip
            err = capsys.readouterr().err
            assert code == 2, name
            assert len(err.strip().splitlines()) == 1 and str(path) in err, err
            assert "Traceback" not in err
        assert server.request_count == 0
