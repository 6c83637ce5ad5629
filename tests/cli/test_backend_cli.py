"""The judge's command-line options and messages (issue 19): keys, base URLs, deadlines,
refused requests, the cache count, flag names in warnings, headers and query parameters."""

from __future__ import annotations

import json

import pytest

from sftselect.backends import ReplyCache
from sftselect.backends.openai_compat import OpenAICompatibleBackend
from sftselect.cli import main
from sftselect.exceptions import JudgeRequestError
from sftselect.selectors.quality import QualitySelector
from sftselect.testing import Fault, LoopbackServer

VAR = "SFTSELECT_TEST_KEY"
KEY = "sk-test-SECRET-0123456789abcdef"
ROWS = [{"instruction": f"question {i}", "input": "", "output": f"answer {i}"} for i in range(3)]


@pytest.fixture(autouse=True)
def _no_real_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv(VAR, raising=False)


@pytest.fixture
def data(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return src


def score(tmp_path, data, base_url: str, *extra: str) -> int:
    return main(
        ["score", str(data), "-o", str(tmp_path / "out.jsonl"), "--model", "judge",
         "--base-url", base_url, "--cache", str(tmp_path / "c.sqlite"), "--api-key-env", VAR,
         "-q", *extra]
    )  # fmt: skip


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def no_secret_on_disk(tmp_path, secret: str) -> None:
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


# -- 1 --------------------------------------------------------------------------------------


def test_cli_key_with_a_trailing_carriage_return_works_and_is_never_written(
    tmp_path, data, monkeypatch, capsys
) -> None:
    """A pasted key ending in '\\r' is sent stripped; --keep-replies writes no key anywhere."""
    monkeypatch.setenv(VAR, KEY + "\r")
    with LoopbackServer(reply=lambda body: "4.5") as server:
        assert score(tmp_path, data, server.base_url, "--keep-replies") == 0
    assert {r.headers["authorization"] for r in server.requests} == {f"Bearer {KEY}"}
    assert KEY not in capsys.readouterr().err
    no_secret_on_disk(tmp_path, KEY)


def test_cli_key_with_inner_whitespace_is_one_line_naming_the_variable(
    tmp_path, data, monkeypatch, capsys
) -> None:
    monkeypatch.setenv(VAR, "sk-SECRETPART1 SECRETPART2")
    with LoopbackServer(reply=lambda body: "4.5") as server:
        assert score(tmp_path, data, server.base_url, "--keep-replies") == 2
    line = error_line(capsys)
    assert VAR in line and "SECRETPART" not in line
    assert server.request_count == 0
    no_secret_on_disk(tmp_path, "SECRETPART")


# -- 3 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://user:pa55word-SECRET@127.0.0.1:9/v1", "credentials"),
        ("ftp://user:pa55word-SECRET@example.com/v1", "http(s)"),
        ("http://127.0.0.1:9/v1?api_key=sk-SECRET", "--query"),
        ("http://127.0.0.1:99999/v1", "port"),
    ],
)
def test_cli_bad_base_url_is_one_line_without_secrets(tmp_path, data, capsys, url, says) -> None:
    assert score(tmp_path, data, url) == 2
    line = error_line(capsys)
    assert "--base-url" in line and says in line and "SECRET" not in line
    assert not (tmp_path / "c.sqlite").exists()


# -- 4 --------------------------------------------------------------------------------------


def test_cli_deadline_and_the_final_error_names_the_flags_that_help(tmp_path, data, capsys):
    """A hanging judge: each request gives up at --deadline; the error names the flags."""
    with LoopbackServer(faults=lambda request: Fault.hang(10)) as server:
        code = score(tmp_path, data, server.base_url, "--timeout", "0.3", "--deadline", "0.8")
    line = error_line(capsys)
    assert code == 2 and "rating requests failed" in line
    for flag in ("--timeout", "--deadline", "--max-concurrency"):
        assert flag in line
    assert server.request_count <= 3 * 4


@pytest.mark.parametrize(
    ("extra", "flag"),
    [(["--deadline", "0"], "--deadline"), (["--timeout", "10", "--deadline", "5"], "--deadline")],
)
def test_cli_bad_deadline_names_the_flag(tmp_path, data, capsys, extra, flag) -> None:
    assert score(tmp_path, data, "http://127.0.0.1:9/v1", *extra) == 2
    line = error_line(capsys)
    assert flag in line and "'deadline'" not in line


# -- 5 --------------------------------------------------------------------------------------


def test_cli_wrong_model_says_refused_without_after_retries(tmp_path, data, capsys) -> None:
    """A 404 for a wrong model: one request per row, 'refused', the server's words, no
    'after retries' and no --on-request-error nan."""
    fault = Fault.status_code(404, "The model `judge` does not exist")
    with LoopbackServer(faults=lambda request: fault) as server:
        assert score(tmp_path, data, server.base_url) == 2
    line = error_line(capsys)
    assert "refused" in line and "The model `judge` does not exist" in line
    assert "after retries" not in line and "after their retries" not in line
    assert "--on-request-error" not in line
    assert server.request_count == 3


def test_the_command_closes_the_cache_file_before_it_exits(tmp_path, data) -> None:
    """`python -m sftselect.cli score` (the command line's exit path, see cli.main) after a
    run and after a refused one: the cache file is closed, no -wal or -shm file is left."""
    import subprocess
    import sys

    def reply(body):
        refused = "question 2" in body["messages"][-1]["content"]
        return Fault.status_code(400, "context too long") if refused else "4.5"

    with LoopbackServer(reply=reply) as server:
        for name, rows in (("ok", 2), ("refused", 3)):
            src = tmp_path / f"{name}.jsonl"
            src.write_text("".join(json.dumps(r) + "\n" for r in ROWS[:rows]))
            cache = tmp_path / f"{name}.sqlite"
            proc = subprocess.run(
                [sys.executable, "-m", "sftselect.cli", "score", str(src), "-o",
                 str(tmp_path / f"{name}-out.jsonl"), "--base-url", server.base_url,
                 "--model", "judge", "--api-key-env", "", "--cache", str(cache), "-q"],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert proc.returncode == (0 if name == "ok" else 2), proc.stderr
            assert sorted(p.name for p in tmp_path.glob(f"{name}.sqlite*")) == [cache.name]
            assert len(ReplyCache(cache)) == 2


def test_cli_base_url_without_v1_gets_the_hint(tmp_path, data, capsys) -> None:
    with LoopbackServer(reply=lambda body: "4.5") as server:
        assert score(tmp_path, data, server.base_url.removesuffix("/v1")) == 2
    line = error_line(capsys)
    assert "HTTP 404" in line and "add /v1" in line and "--base-url" in line


def test_request_error_counts_the_replies_the_cache_holds(tmp_path) -> None:
    """A re-run whose replies came from the cache says how many the cache holds (not 0)."""
    from datasets import Dataset

    ds = Dataset.from_list(ROWS)

    def reply(body):
        refused = "question 2" in body["messages"][-1]["content"]
        return Fault.status_code(400, "context too long") if refused else "4.5"

    with LoopbackServer(reply=reply) as server:
        judge = OpenAICompatibleBackend("judge", base_url=server.base_url)
        selector = QualitySelector(judge, k=None, cache=tmp_path / "c.sqlite")
        messages = []
        for _ in range(2):
            with pytest.raises(JudgeRequestError) as info:
                selector.rate(ds)
            messages.append(str(info.value))
    assert all("2 replies are cached" in m for m in messages), messages
    assert all("refused" in m and "after retries" not in m for m in messages)


def test_cli_warnings_name_flags_not_python_options(tmp_path, data, capsys) -> None:
    """Unparsable replies: score's warning names --reask and --keep-replies; select's
    names --reask and the provenance; neither names reask=N or Ratings.reasons."""
    with LoopbackServer(reply=lambda body: "no score here") as server:
        assert score(tmp_path, data, server.base_url) == 0
        warning = capsys.readouterr().err
        code = main(
            ["select", str(data), "-o", str(tmp_path / "sel.json"), "--selector", "quality",
             "--model", "judge", "--base-url", server.base_url, "--cache",
             str(tmp_path / "c.sqlite"), "-k", "1", "-q"]
        )  # fmt: skip
        select_warning = capsys.readouterr().err
    assert code == 0
    assert "warning:" in warning and "--reask N" in warning and "--keep-replies" in warning
    assert "warning:" in select_warning and "--reask N" in select_warning
    assert "provenance" in select_warning
    for text in (warning, select_warning):
        assert "reask=N" not in text and "Ratings.reasons" not in text


# -- 6 --------------------------------------------------------------------------------------


def test_cli_header_and_query_reach_the_server_and_nothing_keeps_their_values(
    tmp_path, data, capsys
) -> None:
    with LoopbackServer(reply=lambda body: "4.5") as server:
        code = score(
            tmp_path, data, server.base_url,
            "--header", "api-key: AZ-SECRET-VALUE", "--header", "X-Route:route-SECRET",
            "--query", "api-version=2024-06-01", "--query", "tenant=tenant-SECRET",
            "--keep-replies",
        )  # fmt: skip
    assert code == 0
    assert {r.headers["api-key"] for r in server.requests} == {"AZ-SECRET-VALUE"}
    assert {r.headers["x-route"] for r in server.requests} == {"route-SECRET"}
    assert {f"{r.path}?{r.query}" for r in server.requests} == {
        "/v1/chat/completions?api-version=2024-06-01&tenant=tenant-SECRET"
    }
    assert "SECRET" not in capsys.readouterr().err
    no_secret_on_disk(tmp_path, "SECRET")


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--header", "api-key AZ-SECRET"], "NAME:VALUE"),
        (["--header", "bad name:AZ-SECRET"], "--header"),
        (["--header", "api-key:AZ-SECRET", "--header", "API-Key:AZ-SECRET"], "twice"),
        (["--query", "AZ-SECRET"], "NAME=VALUE"),
        (["--query", "=AZ-SECRET"], "NAME=VALUE"),
        (["--query", "v=1", "--query", "v=AZ-SECRET"], "twice"),
    ],
)
def test_cli_bad_header_or_query_is_one_line_without_the_value(
    tmp_path, data, capsys, extra, says
) -> None:
    assert score(tmp_path, data, "http://127.0.0.1:9/v1", *extra) == 2
    line = error_line(capsys)
    assert says in line and "SECRET" not in line


def test_cli_default_deadline_is_the_backends_or_the_timeout_when_longer() -> None:
    """Without --deadline a request gets the backend's default deadline, or --timeout."""
    from sftselect.backends import openai_compat
    from sftselect.cli import _common, build_parser

    assert _common.DEFAULT_DEADLINE == openai_compat.DEFAULT_DEADLINE
    parser = build_parser()
    for timeout, deadline in (("60", 300.0), ("900", 900.0)):
        args = parser.parse_args(["score", "x.jsonl", "-o", "y.jsonl", "--model", "m",
                                  "--timeout", timeout])  # fmt: skip
        assert _common.backend_from_args(args, "score").deadline == deadline
    args = parser.parse_args(["score", "x.jsonl", "-o", "y.jsonl", "--model", "m",
                              "--deadline", "1000"])  # fmt: skip
    backend = _common.backend_from_args(args, "score")
    assert backend.deadline == 1000.0 and backend.headers is None and backend.params is None
