"""OpenAICompatibleBackend faults from issue 19: keys with stray whitespace, credentials
in the base URL, hanging servers, refused requests, extra headers and query parameters."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from sftselect.backends.base import BackendError, ChatRequest
from sftselect.backends.cache import ReplyCache
from sftselect.backends.openai_compat import OpenAICompatibleBackend, httpx
from sftselect.backends.runner import run_requests
from sftselect.exceptions import InvalidParameterError
from sftselect.testing import Fault, LoopbackServer

VAR = "SFTSELECT_TEST_KEY"
KEY = "sk-test-SECRET-0123456789abcdef"


@pytest.fixture(autouse=True)
def _no_real_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv(VAR, raising=False)


def make_backend(base_url: str, **params) -> OpenAICompatibleBackend:
    options = {"base_url": base_url, "backoff_base": 0.01, "random_state": 0, "api_key_env": VAR}
    options.update(params)
    return OpenAICompatibleBackend("test-model", **options)


def chat_all(backend: OpenAICompatibleBackend, requests: list[ChatRequest]) -> list:
    async def main():
        return await asyncio.gather(*(backend.chat(r) for r in requests), return_exceptions=True)

    return asyncio.run(main())


def chat_one(backend: OpenAICompatibleBackend, request: ChatRequest | None = None):
    result = chat_all(backend, [request or ChatRequest.user("hello")])[0]
    if isinstance(result, BaseException):
        raise result
    return result


def one_line(text: str) -> bool:
    return "\n" not in text and "\r" not in text


# -- 1. API keys ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["\r", "\n", "\r\n", " ", "\t\n"])
def test_key_with_surrounding_whitespace_is_stripped(monkeypatch, suffix) -> None:
    """A key pasted with a trailing newline is sent without it (it used to fail on every try)."""
    monkeypatch.setenv(VAR, " " + KEY + suffix)
    with LoopbackServer() as server:
        backend = make_backend(server.base_url)
        assert chat_one(backend).text == "echo: hello"
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert backend.stats.retries == 0


@pytest.mark.parametrize(
    "bad",
    ["sk-SECRETPART1 SECRETPART2", "sk-SECRETPART1\nSECRETPART2", "sk-SECRETPART1\x07SECRETPART2"],
)
def test_key_with_inner_whitespace_or_control_characters_is_refused(monkeypatch, bad) -> None:
    """Such a key is refused before sending: one line naming the variable, never the value."""
    monkeypatch.setenv(VAR, bad)
    with LoopbackServer() as server:
        backend = make_backend(server.base_url)
        with pytest.raises(BackendError) as info:
            chat_one(backend)
    message = str(info.value)
    assert VAR in message and one_line(message)
    assert "SECRETPART1" not in message and "SECRETPART2" not in message
    assert info.value.retryable is False
    assert server.request_count == 0 and backend.stats.retries == 0


def test_local_protocol_error_is_not_retried_and_every_form_of_the_key_is_redacted(
    monkeypatch,
) -> None:
    """An error the client raises before sending fails at once, with the key redacted in
    each form it can take: as is, stripped, its repr, its bytes repr, after 'Bearer '."""
    raw = KEY + "\r"
    monkeypatch.setenv(VAR, raw)
    sent: list = []

    def handler(request):
        sent.append(request)
        forms = [raw, KEY, repr(raw), repr(raw.encode()), f"Bearer {KEY}", repr(f"Bearer {raw}")]
        raise httpx.LocalProtocolError("Illegal header value " + " / ".join(forms))

    backend = make_backend("http://judge.example/v1", transport=httpx.MockTransport(handler))
    with pytest.raises(BackendError) as info:
        chat_one(backend)
    message = str(info.value)
    assert "SECRET" not in message and "0123456789abcdef" not in message
    assert "[redacted]" in message and one_line(message)
    assert info.value.retryable is False
    assert len(sent) == 1 and backend.stats.retries == 0


def test_key_echoed_by_the_server_is_redacted_in_its_stripped_form(monkeypatch) -> None:
    """A server echoing the (stripped) key sent never puts it in the error."""
    monkeypatch.setenv(VAR, KEY + "\n")
    fault = Fault.status_code(401, f"Incorrect API key provided: {KEY}.")
    with (
        LoopbackServer(faults=lambda request: fault) as server,
        pytest.raises(BackendError) as info,
    ):
        chat_one(make_backend(server.base_url))
    assert KEY not in str(info.value) and "[redacted]" in str(info.value)


# -- 3. base URLs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "secret", "says"),
    [
        ("http://user:pa55word-SECRET@127.0.0.1:9/v1", "pa55word-SECRET", "user:password"),
        ("http://token-SECRET@127.0.0.1:9/v1", "token-SECRET", "user:password"),
        ("ftp://user:pa55word-SECRET@example.com/v1", "pa55word-SECRET", "http(s)"),
        ("http://127.0.0.1:9/v1?key=sk-SECRET", "sk-SECRET", "query"),
        ("http://127.0.0.1:99999/v1", None, "port"),
        ("http://127.0.0.1:abc/v1", None, "port"),
    ],
)
def test_bad_base_url_is_one_line_without_its_secret_parts(url, secret, says) -> None:
    """Credentials, another scheme, a query string or a bad port: refused, nothing sent."""
    sent: list = []
    backend = OpenAICompatibleBackend(
        "m", base_url=url, transport=httpx.MockTransport(lambda r: sent.append(r))
    )
    with pytest.raises(InvalidParameterError) as info:
        chat_one(backend)
    message = str(info.value)
    assert "base_url" in message and says in message and one_line(message)
    assert sent == []
    if secret is not None:
        for text in (message, repr(backend), backend.identity):
            assert secret not in text


def test_query_string_key_never_reaches_the_cache(tmp_path) -> None:
    """A key in the base URL's query string is refused before anything is stored."""
    backend = OpenAICompatibleBackend(
        "m", base_url="http://127.0.0.1:9/v1?api_key=sk-SECRET", max_retries=0
    )
    cache = ReplyCache(tmp_path / "c.sqlite")
    with pytest.raises(InvalidParameterError):
        run_requests(backend, [ChatRequest.user("hi")], cache=cache)
    assert all("sk-SECRET" not in record["backend"] for record in cache.records())
    assert b"sk-SECRET" not in (tmp_path / "c.sqlite").read_bytes()


# -- 4. hanging servers ----------------------------------------------------------------------


def test_deadline_bounds_a_request_across_its_retries() -> None:
    """With a deadline, a hanging server costs about the deadline, not (retries+1) * timeout;
    the error names the settings that would help."""
    with LoopbackServer(faults=lambda request: Fault.hang(5)) as server:
        backend = make_backend(server.base_url, timeout=0.3, deadline=1.0, max_retries=20)
        start = time.monotonic()
        with pytest.raises(BackendError) as info:
            chat_one(backend)
        elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 2.0
    message = str(info.value)
    assert info.value.timed_out is True and info.value.retryable is True
    for flag in ("--timeout", "--deadline", "--max-concurrency"):
        assert flag in message
    assert one_line(message)


def test_deadline_is_checked() -> None:
    """deadline: a positive number no shorter than timeout, or None."""
    for bad in (0, -1.0, float("inf"), "60", 0.5):
        backend = make_backend("http://127.0.0.1:9/v1", timeout=1.0, deadline=bad)
        with pytest.raises(InvalidParameterError, match="deadline"):
            chat_one(backend)
    backend = make_backend("http://127.0.0.1:9/v1", timeout=1.0, deadline=None, max_retries=0)
    with pytest.raises(BackendError):  # nothing listens there, but the settings pass
        chat_one(backend)


def _peak_counter():
    """A reply function taking 0.2 s that records the most replies being made at once."""
    lock = threading.Lock()
    box = {"now": 0, "peak": 0}

    def reply(body):
        with lock:
            box["now"] += 1
            box["peak"] = max(box["peak"], box["now"])
        time.sleep(0.2)
        with lock:
            box["now"] -= 1
        return "ok"

    return reply, box


@pytest.mark.parametrize("kind", ["timeout", "429"])
def test_timeouts_and_429s_lower_the_requests_in_flight(kind) -> None:
    """After a wave of timeouts (or 429s), the retries go out at a lower concurrency."""
    reply, box = _peak_counter()
    fault = Fault.hang(0.6) if kind == "timeout" else Fault.rate_limit(0)

    def faults(request):
        return fault if request.attempt == 0 else None

    with LoopbackServer(reply=reply, faults=faults) as server:
        backend = make_backend(server.base_url, timeout=0.3, max_concurrency=8)
        replies = chat_all(backend, [ChatRequest.user(f"q{i}") for i in range(8)])
    assert [r.text for r in replies] == ["ok"] * 8
    assert server.request_count == 16
    assert box["peak"] <= 5  # 8 halved to 4, plus at most one step back up
    if kind == "timeout":
        assert backend.stats.timeouts == 8


def test_no_more_retries_after_timeouts_at_the_minimum_concurrency() -> None:
    """A request that timed out twice while alone in flight is not retried further."""
    with LoopbackServer(faults=lambda request: Fault.hang(5)) as server:
        backend = make_backend(
            server.base_url, timeout=0.2, max_concurrency=1, max_retries=10, deadline=None
        )
        with pytest.raises(BackendError) as info:
            chat_one(backend)
    assert server.request_count == 2
    assert "after 2 attempt(s)" in str(info.value) and info.value.timed_out


# -- 5. refused requests ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 404])
def test_refused_request_is_not_retried_and_says_so(monkeypatch, status) -> None:
    """A wrong model (400/404) fails after one request, quoting the server, with no 'after'."""
    monkeypatch.setenv(VAR, KEY)
    fault = Fault.status_code(status, f"The model `nope` does not exist ({KEY})")
    with (
        LoopbackServer(faults=lambda request: fault) as server,
        pytest.raises(BackendError) as info,
    ):
        chat_one(make_backend(server.base_url))
    message = str(info.value)
    assert "refused" in message and "The model `nope` does not exist" in message
    assert f"HTTP {status}" in message and "after" not in message and KEY not in message
    assert server.request_count == 1 and info.value.retryable is False


def test_409_is_retried() -> None:
    """409 (a conflict the server may resolve) is retried like 408 and 429."""
    with LoopbackServer(faults=[Fault.status_code(409)]) as server:
        assert chat_one(make_backend(server.base_url)).text == "echo: hello"
    assert server.request_count == 2


def test_404_without_v1_in_the_base_url_hints_at_it() -> None:
    """A base URL without /v1 that gets a 404 is told to add /v1; one with /v1 is not."""
    with LoopbackServer() as server:
        root = server.base_url.removesuffix("/v1")
        with pytest.raises(BackendError) as bare:
            chat_one(make_backend(root))
    not_found = Fault.status_code(404, "The model `x` does not exist")
    with (
        LoopbackServer(faults=lambda request: not_found) as server,
        pytest.raises(BackendError) as wrong_model,
    ):
        chat_one(make_backend(server.base_url))
    assert "HTTP 404" in str(bare.value) and "add /v1" in str(bare.value)
    assert "add /v1" not in str(wrong_model.value)


# -- 6. headers and query parameters ---------------------------------------------------------


def test_extra_headers_and_query_parameters_are_sent() -> None:
    """Azure-style: an api-key header and an api-version query parameter reach the server."""
    with LoopbackServer() as server:
        backend = make_backend(
            server.base_url,
            headers={"api-key": "AZ-SECRET-VALUE", "X-Gateway-Route": "route-SECRET"},
            params={"api-version": "2024-06-01", "tenant": "tenant-SECRET"},
        )
        assert chat_one(backend).text == "echo: hello"
    seen = server.requests[0].headers
    assert seen["api-key"] == "AZ-SECRET-VALUE" and seen["x-gateway-route"] == "route-SECRET"
    assert "authorization" not in seen  # no key in the environment
    assert [f"{r.path}?{r.query}" for r in server.requests] == [
        "/v1/chat/completions?api-version=2024-06-01&tenant=tenant-SECRET"
    ]
    for text in (repr(backend), backend.identity):
        assert "SECRET" not in text and "2024-06-01" not in text


def test_header_and_parameter_values_are_redacted_from_errors(tmp_path) -> None:
    """A server echoing a header or query value never puts it in an error, nor the cache."""
    secrets = {"headers": {"api-key": "AZ-SECRET-VALUE"}, "params": {"tenant": "tenant-SECRET"}}
    fault = Fault.status_code(401, "bad key AZ-SECRET-VALUE for tenant tenant-SECRET")
    with (
        LoopbackServer(faults=lambda request: fault) as server,
        pytest.raises(BackendError) as info,
    ):
        chat_one(make_backend(server.base_url, **secrets))
    assert "SECRET" not in str(info.value) and "[redacted]" in str(info.value)
    cache = ReplyCache(tmp_path / "c.sqlite")
    with LoopbackServer() as server:
        backend = make_backend(server.base_url, **secrets)
        result = run_requests(backend, [ChatRequest.user("hi")], cache=cache)
    assert result.report.succeeded == 1
    assert [r["backend"] for r in cache.records()] == [backend.identity]
    cache.close()
    assert b"SECRET" not in (tmp_path / "c.sqlite").read_bytes()


def test_authorization_header_replaces_the_key(monkeypatch) -> None:
    """An Authorization header given in headers= is sent instead of the key's."""
    monkeypatch.setenv(VAR, KEY)
    with LoopbackServer() as server:
        backend = make_backend(server.base_url, headers={"Authorization": "Token gateway-1"})
        chat_one(backend)
    assert server.requests[0].headers["authorization"] == "Token gateway-1"


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("bad name", "v-SECRET", "header name"),
        ("api-key", "v-SECRET\r\nX-Injected: 1", "control"),
        ("api-key", 12345, "str"),
        ("Content-Length", "12", "client sets"),
        ("api-key", " v-SECRET", "whitespace"),
    ],
)
def test_bad_headers_are_refused_without_their_values(name, value, says) -> None:
    backend = make_backend("http://127.0.0.1:9/v1", headers={name: value})
    with pytest.raises(InvalidParameterError) as info:
        chat_one(backend)
    message = str(info.value)
    assert "headers" in message and says in message and one_line(message)
    assert "SECRET" not in message and "12345" not in message


@pytest.mark.parametrize(
    ("params", "says"),
    [({"": "v-SECRET"}, "name"), ({"n": 5}, "str"), (["a", "b"], "mapping")],
)
def test_bad_params_are_refused_without_their_values(params, says) -> None:
    backend = make_backend("http://127.0.0.1:9/v1", params=params)
    with pytest.raises(InvalidParameterError) as info:
        chat_one(backend)
    message = str(info.value)
    assert "params" in message and says in message and one_line(message)
    assert "SECRET" not in message


def test_adaptive_limit_halves_once_per_wave_grows_back_and_survives_cancellation() -> None:
    from sftselect.backends.throttle import AdaptiveLimit

    async def main() -> None:
        limit = AdaptiveLimit(8)
        slots = [await limit.acquire() for _ in range(8)]
        assert limit.overloaded(slots[0]) and limit.limit == 4
        assert not any(limit.overloaded(s) for s in slots[1:])  # the same wave: once
        for _ in slots:
            limit.release()
        again = [await limit.acquire() for _ in range(4)]
        assert all(not s.alone for s in again)
        waiter = asyncio.ensure_future(limit.acquire())  # a fifth must wait
        await asyncio.sleep(0.01)
        assert not waiter.done()
        waiter.cancel()  # a cancelled waiter leaves no stale place behind
        await asyncio.gather(waiter, return_exceptions=True)
        for _ in again:
            limit.release()
            limit.succeeded()
        assert limit.limit == 5 and limit.in_flight == 0  # four successes: one more place
        for _ in range(3):  # each in a new wave: 5 -> 2 -> 1 -> 1
            slot = await limit.acquire()
            limit.overloaded(slot)
            limit.release()
        assert limit.limit == 1
        assert (await limit.acquire()).alone

    asyncio.run(main())


def test_api_key_env_none_sends_no_key(monkeypatch) -> None:
    """api_key_env=None: only the headers authenticate (Azure's api-key), no Bearer key."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with LoopbackServer() as server:
        backend = OpenAICompatibleBackend(
            "m", base_url=server.base_url, api_key_env=None, headers={"api-key": "azure-key"}
        )
        chat_one(backend)
    seen = server.requests[0].headers
    assert "authorization" not in seen and seen["api-key"] == "azure-key"
    with pytest.raises(BackendError, match="api_key_env is None"):
        chat_one(
            OpenAICompatibleBackend("m", api_key_env=None, transport=httpx.MockTransport(None))
        )
