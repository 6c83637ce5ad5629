"""OpenAICompatibleBackend against a scripted OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from sftselect.backends.base import BackendError, ChatBackend, ChatRequest
from sftselect.backends.openai_compat import (
    BackendStats,
    OpenAICompatibleBackend,
    httpx,
    parse_retry_after,
)
from sftselect.exceptions import InvalidParameterError
from sftselect.testing import Fault, LoopbackServer, hashed_faults

FAKE_KEY = "sk-test-SECRET-0123456789abcdef"


@pytest.fixture(autouse=True)
def _no_real_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees a real key from the environment."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("SFTSELECT_TEST_KEY", raising=False)


def make_backend(server: LoopbackServer, **kwargs) -> OpenAICompatibleBackend:
    params = {"base_url": server.base_url, "backoff_base": 0.01, "random_state": 0}
    params.update(kwargs)
    return OpenAICompatibleBackend("test-model", **params)


def chat_all(backend: OpenAICompatibleBackend, requests: list[ChatRequest]) -> list:
    async def main():
        return await asyncio.gather(*(backend.chat(r) for r in requests))

    return asyncio.run(main())


def chat_one(backend: OpenAICompatibleBackend, request: ChatRequest | None = None):
    return chat_all(backend, [request or ChatRequest.user("hello")])[0]


def test_happy_path() -> None:
    """A plain request returns the text, usage, finish reason and model, and counts one request."""
    with LoopbackServer() as server:
        backend = make_backend(server)
        reply = chat_one(backend, ChatRequest.user("What is 2+2?"))
    assert reply.text == "echo: What is 2+2?"
    assert reply.input_tokens == 3  # ceil(12 chars / 4)
    assert reply.output_tokens == 5
    assert reply.finish_reason == "stop"
    assert reply.model == "test-model"
    assert server.request_count == 1
    assert backend.stats == BackendStats(
        requests_sent=1, retries=0, failures=0, input_tokens=3, output_tokens=5
    )
    assert isinstance(backend, ChatBackend)


def test_request_body_contents() -> None:
    """The body carries model, messages and the decoding parameters set, and omits unset ones."""
    full = ChatRequest.user(
        "hi",
        system="be brief",
        max_tokens=32,
        temperature=0.7,
        top_p=0.9,
        stop=["\n\n", "END"],
        seed=123,
        extra={"presence_penalty": 0.5, "logprobs": False},
    )
    bare = ChatRequest.user("plain")
    with LoopbackServer() as server:
        chat_all(make_backend(server), [full])
        chat_all(make_backend(server), [bare])
    first, second = (r.body for r in server.requests)
    assert first == {
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
        ],
        "temperature": 0.7,
        "max_tokens": 32,
        "top_p": 0.9,
        "stop": ["\n\n", "END"],
        "seed": 123,
        "presence_penalty": 0.5,
        "logprobs": False,
    }
    assert second == {
        "model": "test-model",
        "messages": [{"role": "user", "content": "plain"}],
        "temperature": 0.0,
    }
    assert server.requests[0].path == "/v1/chat/completions"
    assert server.requests[0].headers["content-type"] == "application/json"


def test_authorization_header_only_when_env_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Authorization header without the variable; 'Bearer <key>' read at request time with it."""
    with LoopbackServer() as server:
        backend = make_backend(server, api_key_env="SFTSELECT_TEST_KEY")
        chat_one(backend)
        monkeypatch.setenv("SFTSELECT_TEST_KEY", FAKE_KEY)
        chat_one(backend)
        monkeypatch.setenv("SFTSELECT_TEST_KEY", "")
        chat_one(backend)
    headers = [r.headers for r in server.requests]
    assert "authorization" not in headers[0]
    assert headers[1]["authorization"] == f"Bearer {FAKE_KEY}"
    assert "authorization" not in headers[2]


def test_429_retry_after_honoured() -> None:
    """A 429 with Retry-After: 1 is retried after at least one second, then succeeds."""
    with LoopbackServer(faults=[Fault.rate_limit(retry_after=1)]) as server:
        backend = make_backend(server)
        start = time.monotonic()
        reply = chat_one(backend)
        elapsed = time.monotonic() - start
    assert reply.text == "echo: hello"
    assert elapsed >= 1.0
    assert server.request_count == 2
    assert server.requests[1].arrived - server.requests[0].arrived >= 1.0
    assert backend.stats.retries == 1
    assert backend.stats.requests_sent == 2


def test_retry_after_capped_by_backoff_max() -> None:
    """A Retry-After longer than backoff_max waits backoff_max only."""
    with LoopbackServer(faults=[Fault.rate_limit(retry_after=120)]) as server:
        backend = make_backend(server, backoff_max=0.2)
        start = time.monotonic()
        chat_one(backend)
        elapsed = time.monotonic() - start
    assert 0.2 <= elapsed < 5
    assert server.request_count == 2


def test_parse_retry_after_forms() -> None:
    """Retry-After parses delta-seconds and HTTP dates; junk and absence give None."""
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("-4") == 0.0
    date = format_datetime(now + timedelta(seconds=7), usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(7.0)
    past = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None


def test_retry_after_http_date_honoured() -> None:
    """A Retry-After given as an HTTP date is waited for too."""
    when = datetime.now(timezone.utc) + timedelta(seconds=2)
    header = format_datetime(when, usegmt=True)  # whole seconds: waits 1-2 s
    with LoopbackServer(faults=[Fault.rate_limit(retry_after=header)]) as server:
        backend = make_backend(server)
        start = time.monotonic()
        chat_one(backend)
        elapsed = time.monotonic() - start
    assert elapsed >= 0.9
    assert server.request_count == 2


def test_server_errors_then_success() -> None:
    """500, 502, 503 and 504 are retried until the reply comes."""
    faults = [Fault.server_error(s) for s in (500, 502, 503, 504)]
    with LoopbackServer(faults=faults) as server:
        backend = make_backend(server)
        reply = chat_one(backend)
    assert reply.text == "echo: hello"
    assert server.request_count == 5
    assert backend.stats.retries == 4
    assert backend.stats.failures == 0


def test_malformed_bodies_then_success() -> None:
    """A non-JSON 200 and a 200 without choices are retried."""
    with LoopbackServer(faults=[Fault.malformed(), Fault.no_choices()]) as server:
        backend = make_backend(server)
        reply = chat_one(backend)
    assert reply.text == "echo: hello"
    assert server.request_count == 3


def test_dropped_connection_then_success() -> None:
    """A connection closed without an answer is retried."""
    with LoopbackServer(faults=[Fault.drop(), Fault.drop()]) as server:
        backend = make_backend(server)
        reply = chat_one(backend)
    assert reply.text == "echo: hello"
    assert server.request_count == 3
    assert backend.stats.retries == 2


def test_timeout_then_success() -> None:
    """A request that hangs past the timeout is abandoned and retried."""
    with LoopbackServer(faults=[Fault.hang(seconds=10)]) as server:
        backend = make_backend(server, timeout=0.3)
        start = time.monotonic()
        reply = chat_one(backend)
        elapsed = time.monotonic() - start
    assert reply.text == "echo: hello"
    assert 0.3 <= elapsed < 3
    assert server.request_count == 2


def test_exhausted_retries_raise_retryable_error() -> None:
    """After max_retries retries of a 503, BackendError(retryable=True, status=503)."""
    with LoopbackServer(faults=lambda request: Fault.server_error(503)) as server:
        backend = make_backend(server, max_retries=3)
        with pytest.raises(BackendError) as info:
            chat_one(backend)
    assert info.value.retryable is True
    assert info.value.status == 503
    assert "after 4 attempt(s)" in str(info.value)
    assert server.request_count == 4
    assert backend.stats == BackendStats(requests_sent=4, retries=3, failures=1)


def test_connection_refused_exhausts_retries() -> None:
    """A server that is gone gives a retryable BackendError after the retries."""
    with LoopbackServer() as server:
        base_url = server.base_url
    backend = OpenAICompatibleBackend(
        "m", base_url=base_url, max_retries=2, backoff_base=0.01, random_state=1
    )
    with pytest.raises(BackendError) as info:
        chat_one(backend)
    assert info.value.retryable is True
    assert info.value.status is None
    assert backend.stats.requests_sent == 3


def test_400_fails_at_once() -> None:
    """A 400 raises BackendError(status=400) with the server's message after one request."""
    fault = Fault.status_code(400, "'messages' is too long for this model")
    with LoopbackServer(faults=lambda request: fault) as server:
        backend = make_backend(server)
        with pytest.raises(BackendError) as info:
            chat_one(backend)
    assert info.value.status == 400
    assert info.value.retryable is False
    assert "'messages' is too long for this model" in str(info.value)
    assert server.request_count == 1
    assert backend.stats.failures == 1
    assert backend.stats.retries == 0


@pytest.mark.parametrize("status", [401, 403, 404, 422])
def test_other_client_errors_fail_at_once(status: int) -> None:
    """401, 403, 404 and 422 are not retried."""
    with LoopbackServer(faults=lambda request: Fault.status_code(status)) as server:
        backend = make_backend(server)
        with pytest.raises(BackendError) as info:
            chat_one(backend)
    assert info.value.status == status
    assert server.request_count == 1


def test_long_error_message_truncated() -> None:
    """A huge error body is cut short in the exception message."""
    fault = Fault.status_code(400, "x" * 10_000)
    with LoopbackServer(faults=[fault]) as server, pytest.raises(BackendError) as info:
        chat_one(make_backend(server))
    assert len(str(info.value)) < 600


def test_concurrency_bound_respected() -> None:
    """The server never sees more than max_concurrency requests at once."""
    with LoopbackServer(latency=0.05) as server:
        backend = make_backend(server, max_concurrency=4)
        replies = chat_all(backend, [ChatRequest.user(f"q{i}") for i in range(24)])
    assert [r.text for r in replies] == [f"echo: q{i}" for i in range(24)]
    assert server.max_in_flight == 4


def test_server_handles_64_concurrent_requests() -> None:
    """The loopback server answers 64 requests at once: 256 requests of 0.2 s take ~0.8 s."""
    with LoopbackServer(latency=0.2) as server:
        backend = make_backend(server, max_concurrency=64)
        start = time.monotonic()
        chat_all(backend, [ChatRequest.user(f"q{i}") for i in range(256)])
        elapsed = time.monotonic() - start
    assert 48 <= server.max_in_flight <= 64
    assert elapsed < 4.0  # serialised it would take 51 s


def test_requests_per_minute_respected() -> None:
    """rpm=600 spaces requests 0.1 s apart: 20 requests take at least 1.8 s."""
    with LoopbackServer() as server:
        backend = make_backend(server, requests_per_minute=600, max_concurrency=20)
        start = time.monotonic()
        chat_all(backend, [ChatRequest.user(f"q{i}") for i in range(20)])
        elapsed = time.monotonic() - start
    assert elapsed >= 1.8
    arrivals = [r.arrived for r in server.requests]
    assert arrivals[-1] - arrivals[0] >= 1.8


def test_tokens_per_minute_respected() -> None:
    """tpm=3000 (50 tokens/s) with requests costing 25 tokens: 5 requests take over 1.2 s."""
    # cost = ceil(40 chars / 4) + max_tokens 15 = 25; the bucket holds 50 tokens.
    requests = [ChatRequest.user(f"{i:02d}" + "x" * 38, max_tokens=15) for i in range(5)]
    assert OpenAICompatibleBackend.estimate_tokens(requests[0]) == 25
    with LoopbackServer() as server:
        backend = make_backend(server, tokens_per_minute=3000)
        start = time.monotonic()
        chat_all(backend, requests)
        elapsed = time.monotonic() - start
    assert elapsed >= 1.2
    assert server.request_count == 5


def test_usable_across_two_asyncio_runs() -> None:
    """One backend serves two asyncio.run calls; the first loop's client is closed at its end."""
    with LoopbackServer() as server:
        backend = make_backend(server)
        first = chat_one(backend, ChatRequest.user("one"))
        old_states = list(backend._states.values())
        second = chat_one(backend, ChatRequest.user("two"))
    assert (first.text, second.text) == ("echo: one", "echo: two")
    assert len(old_states) == 1
    assert all(c.is_closed for c in old_states[0].clients)
    assert len(backend._states) == 1


def test_aclose_and_async_context_manager() -> None:
    """``async with`` closes the client on exit, and the backend reopens one on next use."""
    with LoopbackServer() as server:
        backend = make_backend(server)

        async def main():
            async with backend as b:
                await b.chat(ChatRequest.user("a"))
                client = next(iter(backend._states.values())).client
            assert client.is_closed
            assert backend._states == {}
            return await backend.chat(ChatRequest.user("b"))

        reply = asyncio.run(main())
    assert reply.text == "echo: b"


def test_identity_default_and_override() -> None:
    """identity names the model and the endpoint (no credentials) by default, and can be overridden."""
    assert (
        OpenAICompatibleBackend("gpt-4o-mini").identity
        == "openai-compatible/gpt-4o-mini@https://api.openai.com/v1"
    )
    local = OpenAICompatibleBackend("gpt-4o-mini", base_url="http://u:secret@127.0.0.1:8000/v1/")
    assert local.identity == "openai-compatible/gpt-4o-mini@http://127.0.0.1:8000/v1"
    custom = OpenAICompatibleBackend("qwen", base_url="http://127.0.0.1:1/v1", identity="vllm/q4")
    assert custom.identity == "vllm/q4"


def test_parameters_checked_at_first_use() -> None:
    """Bad parameters pass __init__ and fail at the first chat with the library's message."""
    backend = OpenAICompatibleBackend("m", base_url="http://127.0.0.1:1/v1", max_concurrency=0)
    with pytest.raises(InvalidParameterError) as info:
        chat_one(backend)
    assert str(info.value) == (
        "The 'max_concurrency' parameter of OpenAICompatibleBackend must be a positive int. "
        "Got 0 instead."
    )
    for name, value in [
        ("requests_per_minute", -1),
        ("timeout", 0),
        ("max_retries", -1),
        ("backoff_base", float("nan")),
        ("base_url", "ftp://x"),
        ("model", ""),
    ]:
        kwargs = {"base_url": "http://127.0.0.1:1/v1", name: value}
        backend = OpenAICompatibleBackend(kwargs.pop("model", "m"), **kwargs)
        with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
            chat_one(backend)


def test_usage_absent_gives_none() -> None:
    """A reply without usage gives None token counts."""
    with LoopbackServer(usage=False) as server:
        backend = make_backend(server)
        reply = chat_one(backend)
    assert (reply.input_tokens, reply.output_tokens) == (None, None)
    assert backend.stats.input_tokens == 0


def test_null_content_fails_without_retry() -> None:
    """A 200 whose message has no text content fails at once (no made-up text)."""
    body = '{"choices": [{"message": {"role": "assistant", "content": null, "refusal": "no"}}]}'
    server = LoopbackServer(faults=lambda request: Fault.malformed(body))
    with server, pytest.raises(BackendError, match="no text content") as info:
        chat_one(make_backend(server))
    assert info.value.retryable is False
    assert server.request_count == 1


def test_mock_transport() -> None:
    """A caller's httpx transport is used as given and survives successive loops."""
    seen = []

    def handler(request):
        seen.append(request.url.path)
        data = {"model": "m", "choices": [{"message": {"content": "mocked"}}]}
        return httpx.Response(200, json=data)

    backend = OpenAICompatibleBackend(
        "m", base_url="https://api.example.invalid/v1", transport=httpx.MockTransport(handler)
    )
    assert chat_one(backend).text == "mocked"
    assert chat_one(backend).text == "mocked"
    assert seen == ["/v1/chat/completions"] * 2


def test_key_never_leaked(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The API key is absent from repr, identity, stats, exception messages and logs."""
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    echo_key = Fault.status_code(401, f"Incorrect API key provided: {FAKE_KEY}.")
    caplog.set_level(logging.DEBUG)
    errors = []
    with LoopbackServer(faults=lambda request: echo_key) as server:
        backend = make_backend(server)
        with pytest.raises(BackendError) as info:
            chat_one(backend)
        errors.append(info.value)
    busy = Fault.server_error(503)
    busy = Fault("status", status=503, body=busy.body.replace("injected", FAKE_KEY))
    with LoopbackServer(faults=lambda request: busy) as server:
        backend = make_backend(server, max_retries=2)
        with pytest.raises(BackendError) as info:
            chat_one(backend)
        errors.append(info.value)
    assert server.requests[0].headers["authorization"] == f"Bearer {FAKE_KEY}"
    for exc in errors:
        assert FAKE_KEY not in str(exc)
        assert FAKE_KEY not in repr(exc)
        assert "[redacted]" in str(exc)
        assert exc.__cause__ is None and exc.__context__ is None
    for text in (repr(backend), backend.identity, repr(backend.stats), str(vars(backend))):
        assert FAKE_KEY not in text
    assert caplog.records  # the retries were logged
    assert all(FAKE_KEY not in record.getMessage() for record in caplog.records)


def test_hashed_faults_deterministic() -> None:
    """hashed_faults picks the same prompts under one seed; retries always get through."""
    requests = [ChatRequest.user(f"prompt {i}") for i in range(40)]
    faulted = []
    for _ in range(2):
        decide = hashed_faults(0.3, [Fault.server_error(503), Fault.drop()], random_state=7)
        with LoopbackServer(faults=decide) as server:
            replies = chat_all(make_backend(server), requests)
        assert [r.text for r in replies] == [f"echo: prompt {i}" for i in range(40)]
        counts = server.counts_by_user_message()
        assert set(counts.values()) <= {1, 2}
        faulted.append(sorted(k for k, n in counts.items() if n == 2))
        assert server.count_for(requests[0].message_dicts()) == counts["prompt 0"]
    assert faulted[0] == faulted[1]
    assert 4 <= len(faulted[0]) <= 20


def test_backend_pickles_and_the_copy_sends() -> None:
    """A pickled backend (for worker processes) keeps its settings and sends on its own client."""
    import pickle

    with LoopbackServer() as server:
        backend = make_backend(server)
        chat_one(backend, ChatRequest.user("before"))
        copy = pickle.loads(pickle.dumps(backend))
        assert (copy.model, copy.base_url, copy.identity) == (
            backend.model,
            backend.base_url,
            backend.identity,
        )
        assert (
            copy._states == {} and chat_one(copy, ChatRequest.user("after")).text == "echo: after"
        )


def test_openai_without_a_key_fails_at_once_without_sending() -> None:
    """OpenAI's own endpoint with no key set fails at once, naming the variable, sending nothing."""
    from sftselect.backends._http_pool import httpx

    sent: list = []

    def handler(request):
        sent.append(request)
        return httpx.Response(200, json={})

    backend = OpenAICompatibleBackend(
        "gpt-4o-mini", transport=httpx.MockTransport(handler), random_state=0
    )
    with pytest.raises(BackendError, match="OPENAI_API_KEY is not set") as info:
        chat_one(backend)
    assert not info.value.retryable
    assert sent == [] and backend.stats.requests_sent == 0 and backend.stats.retries == 0
