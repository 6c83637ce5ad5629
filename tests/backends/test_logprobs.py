"""Token log-probabilities through the backends: the request option and its cache key, the
OpenAI-compatible client's body and parsing, and the reply cache's storage of them (files
written before the log-probabilities table existed included)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import sqlite3

import pytest

from sftselect.backends import ReplyCache
from sftselect.backends.base import ChatReply, ChatRequest, TokenLogprob, request_keys
from sftselect.backends.cache import MemoryCache, stored_keys
from sftselect.backends.openai_compat import OpenAICompatibleBackend
from sftselect.exceptions import BackendError
from sftselect.testing import Fault, LoopbackServer, ScriptedReply

LOGPROBS = (
    TokenLogprob("Score", -0.25, (("Score", -0.25), ("Rating", -1.5))),
    TokenLogprob(":", 0.0, ()),
    TokenLogprob(" 4", math.log(0.6), ((" 4", math.log(0.6)), (" 5", -math.inf))),
)


def reference_key(request: ChatRequest, identity: str) -> str:
    """The documented key: version tag, then framed identity, message count, messages and the
    decoding parameters as JSON, ``top_logprobs`` appended to them only when set."""
    h = hashlib.sha256(b"sftselect-request-v1")
    params = [
        request.max_tokens,
        request.temperature,
        request.top_p,
        list(request.stop),
        request.seed,
        [list(kv) for kv in request.extra],
    ]
    if request.top_logprobs is not None:
        params.append(request.top_logprobs)
    texts = [identity, str(len(request.messages))]
    texts += [part for message in request.messages for part in message]
    texts.append(json.dumps(params, ensure_ascii=False, separators=(",", ":"), default=str))
    for text in texts:
        data = text.encode("utf-8")
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def test_top_logprobs_is_part_of_the_key_only_when_set():
    plain = ChatRequest.user("rate", system="judge", max_tokens=5)
    asked = ChatRequest.user("rate", system="judge", max_tokens=5, top_logprobs=5)
    fast = ChatRequest.from_checked_parts(asked.messages, 5, 0.0, None, 5)
    assert fast == asked
    keys = request_keys([plain, asked, fast, plain], "m")
    assert keys == [reference_key(r, "m") for r in (plain, asked, fast, plain)]
    assert keys[0] != keys[1] == keys[2]
    assert asked.cache_key("m") != ChatRequest.user(
        "rate", system="judge", max_tokens=5, top_logprobs=0
    ).cache_key("m")
    # The keys of requests without it are those earlier versions stored (pinned there).
    assert ChatRequest.user("hi", system="be brief", max_tokens=5).cache_key("gpt-x") == (
        "8c44bdbaea26e7e448804b11692585004276b6ae67e18c1724d385caabbce2bf"
    )
    assert "top_logprobs" not in plain.key_material()
    assert asked.key_material()["top_logprobs"] == 5


def test_request_body_asks_for_logprobs_only_when_set():
    backend = OpenAICompatibleBackend("m", api_key_env=None)
    assert "logprobs" not in backend.request_body(ChatRequest.user("x"))
    body = backend.request_body(ChatRequest.user("x", top_logprobs=7))
    assert (body["logprobs"], body["top_logprobs"]) == (True, 7)


def chat(server, request):
    backend = OpenAICompatibleBackend(
        "m", base_url=server.base_url, api_key_env=None, max_retries=1, backoff_base=0.01
    )
    return asyncio.run(backend.chat(request))


def test_client_reads_the_logprobs_the_server_sends():
    """The scripted server cuts each position's alternatives to top_logprobs, most likely
    first; the client reads them into TokenLogprob tuples, and none when not asked."""
    scripted = ScriptedReply.from_tokens(
        [("4", math.log(0.5)), ("\n", 0.0)],
        top={0: {"5": math.log(0.3), " 4": math.log(0.15), "3": math.log(0.05)}},
    )
    with LoopbackServer(reply=lambda body: scripted) as server:
        reply = chat(server, ChatRequest.user("rate", top_logprobs=2))
        assert reply.text == "4\n"
        assert reply.logprobs == (
            TokenLogprob("4", math.log(0.5), (("4", math.log(0.5)), ("5", math.log(0.3)))),
            TokenLogprob("\n", 0.0, (("\n", 0.0),)),
        )
        assert chat(server, ChatRequest.user("rate")).logprobs is None
        zero = chat(server, ChatRequest.user("rate", top_logprobs=0)).logprobs
        assert zero is not None and [t.top_logprobs for t in zero] == [(), ()]
    with LoopbackServer(reply=lambda body: "4\n") as server:  # an endpoint without them
        assert chat(server, ChatRequest.user("rate", top_logprobs=5)).logprobs is None


@pytest.mark.parametrize(
    "content",
    [
        [{"token": 4, "logprob": -0.1, "top_logprobs": []}],
        [{"token": "4", "logprob": "-0.1", "top_logprobs": []}],
        [{"token": "4", "logprob": 0.5, "top_logprobs": []}],
        [{"token": "4", "logprob": -0.1, "top_logprobs": [{"token": "5"}]}],
        ["4"],
    ],
)
def test_malformed_logprobs_are_a_malformed_reply(content):
    """A content list that is there but not as OpenAI documents it is never read in part:
    the body is malformed (retried, then a BackendError naming the field)."""
    body = {
        "choices": [
            {
                "message": {"role": "assistant", "content": "4"},
                "logprobs": {"content": content},
                "finish_reason": "stop",
            }
        ]
    }
    with LoopbackServer(reply=lambda b: Fault.malformed(json.dumps(body))) as server:
        with pytest.raises(BackendError, match=r"choices\[0\]\.logprobs\.content\[0\]"):
            chat(server, ChatRequest.user("rate", top_logprobs=1))
        assert server.request_count == 2  # the first attempt and one retry


def request(text, top=5):
    return ChatRequest.user(text, max_tokens=8, top_logprobs=top)


@pytest.mark.parametrize("store", ["file", "memory"])
def test_cache_round_trips_logprobs(store, tmp_path):
    cache = ReplyCache(tmp_path / "c.sqlite") if store == "file" else MemoryCache()
    items = [
        ("k1", request("a"), ChatReply("Score: 4", 10, 3, "stop", "m", LOGPROBS)),
        ("k2", request("b"), ChatReply("none asked", 10, 2)),
        ("k3", request("c"), ChatReply("", 10, 0, logprobs=())),
    ]
    cache.put_many("m", items)
    got = cache.get_many(["k1", "k2", "k3", "missing"])
    assert got == {k: r for k, _, r in items}
    assert got["k1"].logprobs[2].top_logprobs[1] == (" 5", -math.inf)
    assert got["k2"].logprobs is None and got["k3"].logprobs == ()
    cache.put_plan("plan", ["k3", "k1", "k2"])
    assert cache.plan_replies("plan") == (
        ["k3", "k1", "k2"],
        [items[2][2], items[0][2], items[1][2]],
    )
    records = {r["key"]: r for r in cache.records()}
    assert records["k1"]["logprobs"][0] == ["Score", -0.25, [["Score", -0.25], ["Rating", -1.5]]]
    assert records["k1"]["request"]["top_logprobs"] == 5
    assert records["k2"]["logprobs"] is None


def test_first_reply_stored_keeps_its_own_logprobs(tmp_path):
    """The first reply stored for a key wins, and a later one's log-probabilities never
    attach to it (two processes that raced on one request)."""
    cache = ReplyCache(tmp_path / "c.sqlite")
    cache.put("k", "m", request("a"), ChatReply("Score: 5"))
    cache.put("k", "m", request("a"), ChatReply("Score: 4", logprobs=LOGPROBS))
    assert cache.get("k") == ChatReply("Score: 5")
    cache.put("j", "m", request("b"), ChatReply("Score: 4", logprobs=LOGPROBS))
    cache.put("j", "m", request("b"), ChatReply("Score: 5", logprobs=LOGPROBS[:1]))
    assert cache.get("j") == ChatReply("Score: 4", logprobs=LOGPROBS)


# The reply cache's tables as sftselect wrote them before log-probabilities were stored
# (src/sftselect/backends/cache.py, _SCHEMA, up to the commit that added reply_logprobs).
SCHEMA_BEFORE_LOGPROBS = (
    "CREATE TABLE replies (key TEXT PRIMARY KEY, backend TEXT NOT NULL, request TEXT NOT NULL, "
    "text TEXT NOT NULL, input_tokens INTEGER, output_tokens INTEGER, finish_reason TEXT, "
    "model TEXT, created REAL NOT NULL)",
    "CREATE TABLE plans (id INTEGER PRIMARY KEY, digest TEXT NOT NULL UNIQUE, "
    "size INTEGER NOT NULL, created REAL NOT NULL)",
    "CREATE TABLE plan_keys (plan INTEGER NOT NULL, pos INTEGER NOT NULL, key TEXT NOT NULL, "
    "PRIMARY KEY (plan, pos)) WITHOUT ROWID",
)


def test_cache_file_written_before_logprobs_is_read_and_extended(tmp_path):
    """A file with the earlier schema (built here with its DDL, in WAL as that version left
    it) is read as it is: its replies, without log-probabilities, and its plans; a reply
    with log-probabilities is then stored beside them, and the earlier schema's own query
    still reads every reply of the file."""
    path = tmp_path / "old.sqlite"
    old_request = ChatRequest.user("rate this", max_tokens=8)
    key = old_request.cache_key("m")
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        for statement in SCHEMA_BEFORE_LOGPROBS:
            db.execute(statement)
        db.execute(
            "INSERT INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, "m", json.dumps(old_request.key_material()), "Score: 3", 20, 2, "stop", "m", 1.0),
        )
        db.execute("INSERT INTO plans (digest, size, created) VALUES ('d', 1, 1.0)")
        db.execute("INSERT INTO plan_keys VALUES (1, 0, ?)", (key,))
    db.close()
    assert stored_keys(ReplyCache(path), [key, "other"]) == {key}  # the dry run's read-only path

    cache = ReplyCache(path)
    assert cache.get(key) == ChatReply("Score: 3", 20, 2, "stop", "m")
    assert cache.plan_replies("d") == ([key], [ChatReply("Score: 3", 20, 2, "stop", "m")])
    asked = request("rate this", top=5)
    assert asked.cache_key("m") != key  # a request for log-probabilities is another request
    assert cache.get(asked.cache_key("m")) is None
    cache.put(asked.cache_key("m"), "m", asked, ChatReply("Score: 4", logprobs=LOGPROBS))
    cache.close()

    reopened = ReplyCache(path)
    assert reopened.get(asked.cache_key("m")).logprobs == LOGPROBS
    assert reopened.get(key).logprobs is None
    reopened.close()
    with sqlite3.connect(path) as db:  # what the earlier version selects still works
        rows = db.execute(
            "SELECT key, text, input_tokens, output_tokens, finish_reason, model FROM replies"
        ).fetchall()
    db.close()
    assert sorted(r[1] for r in rows) == ["Score: 3", "Score: 4"]
