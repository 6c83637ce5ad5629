"""A scripted OpenAI-compatible chat server on 127.0.0.1, for tests, benchmarks and notebooks.

.. code-block:: python

    with LoopbackServer(reply=lambda body: "Score: 5", latency=0.1,
                        faults=[Fault.rate_limit(1), None, Fault.drop()]) as server:
        backend = OpenAICompatibleBackend("m", base_url=server.base_url)
        ...
        assert server.request_count == 4
        assert server.max_in_flight <= 16

A real HTTP/1.1 server (``ThreadingHTTPServer``, one thread per connection,
keep-alive, Nagle off) in a daemon thread on an ephemeral port. It serves
``POST /v1/chat/completions`` and ``GET /v1/models``, records every request
(thread-safe), counts requests per prompt, tracks the most requests in flight
at once, and misbehaves on demand:

* ``faults`` as a sequence: the i-th request to arrive gets ``faults[i]``
  (``None``: a normal reply); requests past the end are answered normally;
* ``faults`` as a callable ``(ReceivedRequest) -> Fault | None``, deciding per
  request from its arrival index, its body or how often its prompt was seen
  (:func:`hashed_faults` decides by a seeded hash of the prompt);
* ``reply`` may also return a :class:`Fault`, or a
  :class:`~sftselect.testing.logprobs.ScriptedReply`: a text with its token
  log-probabilities, sent to requests that ask for them.

Everything is bounded: a hang lasts ``Fault.hang(seconds)`` or until the server
stops, connections are shut when the context exits, and idle connections time
out.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .logprobs import ScriptedReply, logprobs_field

__all__ = [
    "Fault",
    "LoopbackServer",
    "ReceivedRequest",
    "default_reply",
    "hashed_faults",
    "prompt_key",
]

CHAT_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Fault:
    """One way to answer a request other than with a normal reply."""

    kind: str  # "status" | "malformed" | "drop" | "hang"
    status: int = 500
    body: str | None = None
    retry_after: str | None = None
    seconds: float = 0.0

    @classmethod
    def status_code(cls, status: int, message: str | None = None) -> Fault:
        """An error status with an OpenAI-style ``{"error": {"message": ...}}`` body."""
        text = message if message is not None else f"injected HTTP {status}"
        body = json.dumps({"error": {"message": text, "type": "injected", "code": status}})
        return cls("status", status=status, body=body)

    @classmethod
    def rate_limit(cls, retry_after: float | str | None = 1) -> Fault:
        """HTTP 429, with ``Retry-After`` (seconds, or an HTTP-date string) unless None."""
        base = cls.status_code(429, "Rate limit reached (injected).")
        header = None if retry_after is None else str(retry_after)
        return cls("status", status=429, body=base.body, retry_after=header)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        """A 5xx (500, 502, 503, 504...)."""
        return cls.status_code(status, f"Server error {status} (injected).")

    @classmethod
    def malformed(cls, body: str = "<html>this is not JSON</html>") -> Fault:
        """HTTP 200 with a body that is not a chat completion (default: not JSON)."""
        return cls("malformed", status=200, body=body)

    @classmethod
    def no_choices(cls) -> Fault:
        """HTTP 200 with valid JSON but no ``choices``."""
        return cls.malformed(json.dumps({"id": "x", "object": "chat.completion"}))

    @classmethod
    def drop(cls) -> Fault:
        """Read the request, then close the connection without answering."""
        return cls("drop")

    @classmethod
    def hang(cls, seconds: float = 10.0) -> Fault:
        """Answer nothing for ``seconds`` (or until the server stops), then drop."""
        return cls("hang", seconds=seconds)


@dataclass
class ReceivedRequest:
    """One request as the server saw it."""

    index: int  # arrival order, from 0
    method: str
    path: str  # without the query string
    query: str  # the query string ("" when none), as sent: e.g. "api-version=2024-06-01"
    headers: dict[str, str]  # lower-case names
    body: Any  # the parsed JSON, or None
    prompt_key: str  # SHA-256 of the messages (see prompt_key)
    attempt: int  # earlier requests with the same prompt_key
    arrived: float  # time.monotonic()
    fault: Fault | None = None  # what the server did instead of replying, if anything

    @property
    def last_user_message(self) -> str | None:
        """The content of the last user message, if any."""
        messages = self.body.get("messages") if isinstance(self.body, dict) else None
        for message in reversed(messages or []):
            if isinstance(message, dict) and message.get("role") == "user":
                return str(message.get("content"))
        return None


def prompt_key(body: Any) -> str:
    """SHA-256 of a request's messages (the whole body when it has none)."""
    material = body.get("messages", body) if isinstance(body, dict) else body
    blob = json.dumps(material, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def default_reply(body: dict[str, Any]) -> str:
    """A deterministic reply: the last user message, echoed."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return f"echo: {message.get('content')}"
    return "echo:"


def hashed_faults(
    rate: float, choices: Sequence[Fault], *, random_state: int = 0, max_attempts: int = 1
) -> Callable[[ReceivedRequest], Fault | None]:
    """Fault a fixed, seeded share of prompts, the same ones on every run.

    A prompt is picked when a hash of ``random_state`` and its messages falls below
    ``rate``; its first ``max_attempts`` requests get a fault (chosen from
    ``choices`` by the same hash) and later ones a normal reply, so a client
    that retries enough always succeeds.
    """

    def decide(request: ReceivedRequest) -> Fault | None:
        if request.attempt >= max_attempts:
            return None
        digest = hashlib.sha256(f"{random_state}:{request.prompt_key}".encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        if draw >= rate:
            return None
        return choices[int.from_bytes(digest[8:12], "big") % len(choices)]

    return decide


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512
    owner: LoopbackServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 30  # an idle keep-alive connection's thread ends after this
    server_version = "LoopbackOpenAI/1.0"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        return None  # quiet

    def do_GET(self) -> None:
        if self.path.partition("?")[0].rstrip("/") == "/v1/models":
            data = {"object": "list", "data": [{"id": self.server.owner.model, "object": "model"}]}
            self._send(200, json.dumps(data).encode())
        else:
            self._send(404, json.dumps({"error": {"message": "not found"}}).encode())

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self.server.owner._serve(self, raw)

    def _send(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('Status',))[0]}"]
        lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
        for name, value in (extra or {}).items():
            lines.append(f"{name}: {value}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + body)  # one write: no Nagle/delayed-ACK stall


class LoopbackServer:
    """A scripted OpenAI-compatible server; a context manager returning itself.

    Parameters
    ----------
    reply:
        ``(request_json) -> str`` (the assistant text), a :class:`ScriptedReply`
        (a text and its token log-probabilities) or a :class:`Fault`.
    latency:
        Seconds each request waits before it is answered (faults included).
    faults:
        A sequence indexed by arrival order, or ``(ReceivedRequest) -> Fault | None``.
    usage:
        Whether replies carry ``usage`` (prompt tokens: message chars / 4).
    model:
        The model name replies report when the request names none.
    """

    def __init__(
        self,
        reply: Callable[[dict[str, Any]], str | Fault] = default_reply,
        *,
        latency: float = 0.0,
        faults: Sequence[Fault | None] | Callable[[ReceivedRequest], Fault | None] | None = None,
        usage: bool = True,
        model: str = "loopback-model",
    ) -> None:
        self.reply: Callable[[dict[str, Any]], str | Fault | ScriptedReply] = reply
        self.latency = latency
        self.faults = faults
        self.usage = usage
        self.model = model
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._requests: list[ReceivedRequest] = []
        self._seen: Counter[str] = Counter()
        self._in_flight = 0
        self._max_in_flight = 0
        self._connections: set[socket.socket] = set()
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> LoopbackServer:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("the server is already running")
        self._stop.clear()
        server = _HTTPServer(("127.0.0.1", 0), _Handler)
        server.owner = self
        self._server = server
        port = server.server_address[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake hanging handlers and shut every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stop.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- records

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        """How many requests arrived."""
        with self._lock:
            return len(self._requests)

    @property
    def max_in_flight(self) -> int:
        """The most requests being handled at the same time."""
        with self._lock:
            return self._max_in_flight

    def count_for(self, body: Any) -> int:
        """How many requests carried the same messages as ``body`` (a body or messages list)."""
        material = body if isinstance(body, dict) else {"messages": body}
        with self._lock:
            return self._seen[prompt_key(material)]

    def counts_by_user_message(self) -> Counter[str]:
        """Requests per last user message."""
        return Counter(r.last_user_message or "" for r in self.requests)

    def reset(self) -> None:
        """Forget the recorded requests and counters (the fault script restarts)."""
        with self._lock:
            self._requests.clear()
            self._seen.clear()
            self._max_in_flight = self._in_flight

    # ---------------------------------------------------------------- serving

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _decide(self, record: ReceivedRequest) -> Fault | None:
        faults = self.faults
        if faults is None:
            return None
        if callable(faults):
            return faults(record)
        return faults[record.index] if record.index < len(faults) else None

    def _serve(self, handler: _Handler, raw: bytes) -> None:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        key = prompt_key(body)
        with self._lock:
            record = ReceivedRequest(
                index=len(self._requests),
                method=handler.command,
                path=handler.path.partition("?")[0],
                query=handler.path.partition("?")[2],
                headers={k.lower(): v for k, v in handler.headers.items()},
                body=body,
                prompt_key=key,
                attempt=self._seen[key],
                arrived=time.monotonic(),
            )
            self._seen[key] += 1
            self._requests.append(record)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            try:
                record.fault = self._decide(record)
            except Exception as exc:  # a broken script answers 500, visibly
                record.fault = Fault.status_code(500, f"fault script failed: {exc!r}")
        try:
            self._answer(handler, record)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _answer(self, handler: _Handler, record: ReceivedRequest) -> None:
        if record.path.rstrip("/") != CHAT_PATH:
            handler._send(404, json.dumps({"error": {"message": "not found"}}).encode())
            return
        if not isinstance(record.body, dict) or not isinstance(record.body.get("messages"), list):
            message = {"error": {"message": "body must be JSON with a 'messages' list"}}
            handler._send(400, json.dumps(message).encode())
            return
        fault = record.fault
        text: str | None = None
        scripted: ScriptedReply | None = None
        if fault is None:
            try:
                produced = self.reply(record.body)
            except Exception as exc:
                produced = Fault.status_code(500, f"reply function failed: {exc!r}")
            if isinstance(produced, Fault):
                fault = record.fault = produced
            elif isinstance(produced, ScriptedReply):
                text, scripted = produced.text, produced
            else:
                text = str(produced)
        if fault is not None and fault.kind == "hang":
            self._stop.wait(fault.seconds)
            handler.close_connection = True
            return
        if self.latency > 0 and self._stop.wait(self.latency):
            handler.close_connection = True
            return
        if fault is None:
            completion = self._completion(record, text or "", scripted)
            handler._send(200, json.dumps(completion).encode())
        elif fault.kind == "drop":
            handler.close_connection = True
        elif fault.kind in ("status", "malformed"):
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
            handler._send(fault.status, (fault.body or "").encode(), extra)
        else:
            raise ValueError(f"unknown fault kind {fault.kind!r}")

    def _completion(
        self, record: ReceivedRequest, text: str, scripted: ScriptedReply | None = None
    ) -> dict[str, Any]:
        body = record.body
        prompt_chars = "".join(
            str(m.get("content", "")) for m in body["messages"] if isinstance(m, dict)
        )
        data: dict[str, Any] = {
            "id": f"chatcmpl-loopback-{record.index}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": logprobs_field(scripted, body),
                    "finish_reason": "stop",
                }
            ],
        }
        if self.usage:
            prompt_tokens, completion_tokens = _tokens(prompt_chars), _tokens(text)
            data["usage"] = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
        return data
