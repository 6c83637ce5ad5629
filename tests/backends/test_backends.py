"""The reply cache and the runner: no request twice, failures reported, resume after a crash."""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sftselect.backends import (
    BackendError,
    CallableBackend,
    ChatReply,
    ChatRequest,
    MemoryCache,
    ReplyCache,
    run_requests,
)
from sftselect.backends.base import request_keys


class Counting:
    """A judge that counts calls and can fail on chosen prompts."""

    def __init__(self, fail_on=()):
        self.calls = []
        self.fail_on = set(fail_on)
        self.lock = threading.Lock()

    def __call__(self, messages):
        text = messages[-1]["content"]
        with self.lock:
            self.calls.append(text)
        if text in self.fail_on:
            raise BackendError("scripted failure")
        return ChatReply(text=f"reply to {text}", input_tokens=len(text), output_tokens=3)


def test_cache_key_depends_on_backend_and_decoding():
    """The same messages with another model or temperature are another cache entry."""
    r1 = ChatRequest.user("hi", temperature=0.0)
    assert r1.cache_key("m1") == ChatRequest.user("hi", temperature=0.0).cache_key("m1")
    assert r1.cache_key("m1") != r1.cache_key("m2")
    assert r1.cache_key("m1") != ChatRequest.user("hi", temperature=0.7).cache_key("m1")
    assert r1.cache_key("m1") != ChatRequest.user("hi", system="be brief").cache_key("m1")


def _reference_key(request: ChatRequest, identity: str) -> str:
    """The documented key: SHA-256 over length-prefixed UTF-8 strings."""
    h = hashlib.sha256(b"sftselect-request-v1")
    params = [
        request.max_tokens,
        request.temperature,
        request.top_p,
        list(request.stop),
        request.seed,
        [list(kv) for kv in request.extra],
    ]
    texts = [identity, str(len(request.messages))]
    texts += [part for message in request.messages for part in message]
    texts.append(json.dumps(params, ensure_ascii=False, separators=(",", ":"), default=str))
    for text in texts:
        data = text.encode("utf-8")
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def test_cache_key_is_stable_across_versions():
    """A key computed today equals the one stored by earlier versions (caches stay valid)."""
    request = ChatRequest.user("hi", system="be brief", max_tokens=5)
    assert request.cache_key("gpt-x") == (
        "8c44bdbaea26e7e448804b11692585004276b6ae67e18c1724d385caabbce2bf"
    )


_messages = st.lists(
    st.tuples(st.sampled_from(["system", "user", "assistant"]), st.text(max_size=20)),
    max_size=3,
).map(tuple)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.builds(
            ChatRequest,
            messages=_messages,
            max_tokens=st.none() | st.integers(1, 9),
            temperature=st.sampled_from([0.0, 0.7]),
            stop=st.lists(st.text(max_size=3), max_size=2).map(tuple),
        ),
        max_size=8,
    ),
    st.text(min_size=1, max_size=10),
)
def test_batch_keys_equal_the_reference_key(requests, identity):
    """request_keys (shared prefix hashing) gives each request its documented key."""
    expected = [_reference_key(r, identity) for r in requests]
    assert request_keys(requests, identity) == expected
    assert [r.cache_key(identity) for r in requests] == expected


def test_second_run_sends_nothing(tmp_path):
    """A second run over the same requests is served from the cache file alone."""
    judge = Counting()
    backend = CallableBackend(judge, identity="count-v1")
    reqs = [ChatRequest.user(f"q{i}") for i in range(30)]
    first = run_requests(backend, reqs, cache=ReplyCache(tmp_path / "c.sqlite"), max_concurrency=4)
    assert first.report.sent == 30 and len(judge.calls) == 30
    second = run_requests(backend, reqs, cache=ReplyCache(tmp_path / "c.sqlite"))
    assert second.report.sent == 0 and second.report.cache_hits == 30 and len(judge.calls) == 30
    assert [r.text for r in second.replies] == [r.text for r in first.replies]


def test_duplicates_in_one_run_are_sent_once():
    """Identical requests in one run cause one backend call and share the reply."""
    judge = Counting()
    reqs = [ChatRequest.user("same")] * 5 + [ChatRequest.user("other")]
    result = run_requests(CallableBackend(judge, identity="c"), reqs, cache=MemoryCache())
    assert sorted(judge.calls) == ["other", "same"]
    assert result.report.unique == 2 and all(r is not None for r in result.replies)


def test_failures_are_reported_not_cached_and_retried_next_run(tmp_path):
    """A failed request has no reply, is counted, is not cached, and is sent again next run."""
    judge = Counting(fail_on={"q3"})
    backend = CallableBackend(judge, identity="c")
    cache = ReplyCache(tmp_path / "c.sqlite")
    reqs = [ChatRequest.user(f"q{i}") for i in range(5)]
    result = run_requests(backend, reqs, cache=cache)
    assert result.replies[3] is None and isinstance(result.errors[3], BackendError)
    assert result.report.failures == 1 and "scripted failure" in result.report.first_errors[0]
    assert len(cache) == 4
    judge.fail_on.clear()
    again = run_requests(backend, reqs, cache=cache)
    assert again.report.sent == 1 and again.replies[3].text == "reply to q3"


def test_token_counts_are_summed():
    """The report adds up the token counts the backend returns."""
    reqs = [ChatRequest.user("abc"), ChatRequest.user("de")]
    report = run_requests(CallableBackend(Counting(), identity="c"), reqs).report
    assert report.input_tokens == 5 and report.output_tokens == 6


def _killed_run(path, n_before_kill):
    """Run 20 requests; the judge kills the process abruptly after n replies."""
    import os

    count = {"n": 0}

    def judge(messages):
        count["n"] += 1
        if count["n"] > n_before_kill:
            os._exit(3)  # a crash: no cleanup, no exception handling
        return "ok " + messages[-1]["content"]

    reqs = [ChatRequest.user(f"q{i}") for i in range(20)]
    run_requests(
        CallableBackend(judge, identity="c"), reqs, cache=ReplyCache(path), max_concurrency=1
    )


def test_killed_run_resumes_and_sends_each_request_once_in_total(tmp_path):
    """A run killed mid-way keeps its replies; the re-run sends only the rest."""
    path = tmp_path / "c.sqlite"
    proc = mp.get_context("fork").Process(target=_killed_run, args=(path, 8))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 3
    stored = len(ReplyCache(path))
    assert stored == 8
    judge = Counting()
    reqs = [ChatRequest.user(f"q{i}") for i in range(20)]
    result = run_requests(CallableBackend(judge, identity="c"), reqs, cache=ReplyCache(path))
    assert result.report.cache_hits == 8 and len(judge.calls) == 12
    assert len(ReplyCache(path)) == 20


def test_export_has_requests_and_raw_replies(tmp_path):
    """The cache exports every request with its raw reply, for audit, and no key material."""
    cache = ReplyCache(tmp_path / "c.sqlite")
    run_requests(CallableBackend(Counting(), identity="c"), [ChatRequest.user("q")], cache=cache)
    n = cache.export_jsonl(tmp_path / "audit.jsonl")
    rec = json.loads((tmp_path / "audit.jsonl").read_text())
    assert n == 1 and rec["reply"] == "reply to q" and rec["request"]["messages"] == [["user", "q"]]


def test_callable_must_return_text():
    """A callable that returns something else is a reported failure, not a reply."""
    result = run_requests(CallableBackend(lambda m: 42, identity="c"), [ChatRequest.user("q")])
    assert result.replies == [None] and result.report.failures == 1


def test_backend_without_identity_is_rejected():
    """An object without an identity cannot be used as a backend."""
    with pytest.raises(TypeError, match="identity"):
        run_requests(object(), [ChatRequest.user("q")])


def test_request_keys_do_not_depend_on_what_was_hashed_before():
    """A request's key is a pure function of it: 0 and 0.0 mean one temperature; extra values keep their type."""
    from sftselect.backends.base import request_keys

    a = ChatRequest.user("hi", max_tokens=10, temperature=0)
    b = ChatRequest.user("hi", max_tokens=10, temperature=0.0)
    alone = request_keys([a], "j")[0]
    assert request_keys([b, a], "j")[1] == alone == request_keys([b], "j")[0]
    c = ChatRequest.user("hi", extra={"presence_penalty": 0})
    d = ChatRequest.user("hi", extra={"presence_penalty": 0.0})
    e = ChatRequest.user("hi", extra={"presence_penalty": False})
    keys = request_keys([d, e, c], "j")
    assert keys[2] == request_keys([c], "j")[0] and len(set(keys)) == 3


class _Instant:
    """A backend that answers without waiting: every reply arrives in the same turn."""

    identity = "instant"

    async def chat(self, request):
        return ChatReply(f"reply to {request.messages[-1][1]}")


def test_replies_arriving_together_are_stored_in_one_transaction(tmp_path):
    """Replies that arrive in one turn of the event loop reach the store in one put_many
    (one commit); a store without put_many gets one put per reply. Every reply is stored."""
    reqs = [ChatRequest.user(f"q{i}") for i in range(40)]
    cache = ReplyCache(tmp_path / "c.sqlite")
    batches = []
    put_many = cache.put_many

    def spy(backend, items):
        items = list(items)
        batches.append(len(items))
        put_many(backend, items)

    cache.put_many = spy
    result = run_requests(_Instant(), reqs, cache=cache, max_concurrency=8)
    assert result.report.sent == 40 and sum(batches) == 40 and len(batches) < 40, batches
    assert len(ReplyCache(tmp_path / "c.sqlite")) == 40

    class PutOnly:
        def __init__(self):
            self.inner, self.puts = MemoryCache(), 0

        def get_many(self, keys):
            return self.inner.get_many(keys)

        def put(self, key, backend, request, reply):
            self.puts += 1
            self.inner.put(key, backend, request, reply)

    store = PutOnly()
    run_requests(_Instant(), reqs, cache=store, max_concurrency=8)
    assert store.puts == 40 and len(store.inner) == 40


def test_the_progress_bar_shows_requests_waiting_on_a_slow_server(capsys, monkeypatch):
    """A slow or hung server shows in the bar as requests in flight and a growing wait,
    not as silence (issue 19: 7 silent minutes behind a hung server)."""
    from sftselect.backends import runner
    from sftselect.backends.openai_compat import OpenAICompatibleBackend
    from sftselect.testing import LoopbackServer

    monkeypatch.setattr(runner, "WAIT_REFRESH_S", 0.2)
    with LoopbackServer(reply=lambda body: "4.5", latency=1.0) as server:
        backend = OpenAICompatibleBackend("m", base_url=server.base_url, api_key_env=None)
        result = runner.run_requests(backend, [ChatRequest.user("Hi")], show_progress=True)
    assert result.report.succeeded == 1
    err = capsys.readouterr().err
    assert "in_flight=1" in err and "oldest_wait=" in err
