"""The chat-backend protocol: one small async method, as httpx transports have.

A backend turns one :class:`ChatRequest` into one :class:`ChatReply`:

.. code-block:: python

    class ChatBackend(Protocol):
        identity: str                       # model + decoding-relevant settings; no secrets
        async def chat(self, request: ChatRequest) -> ChatReply: ...

Backends are objects passed to selectors and judges, never names resolved deep
inside. Concurrency, caching, retries of *unparsable* replies and reporting are
the runner's job (:mod:`sftselect.backends.runner`); transport-level retries
(429, 5xx, timeouts) are the backend's own. A backend that cannot produce a
reply raises :class:`BackendError`; it never returns a made-up text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

from ..exceptions import BackendError

__all__ = [
    "MAX_TOP_LOGPROBS",
    "BackendError",
    "ChatBackend",
    "ChatReply",
    "ChatRequest",
    "Message",
    "TokenLogprob",
    "request_keys",
]

#: The most alternatives per token OpenAI's chat API returns (``top_logprobs``).
MAX_TOP_LOGPROBS = 20

#: One chat message: ``{"role": "system" | "user" | "assistant", "content": str}``.
Message = Mapping[str, str]


@dataclass(frozen=True)
class ChatRequest:
    """Messages plus the decoding parameters that change the reply.

    Everything here goes into the cache key (with the backend's ``identity``),
    so two requests share a cached reply only when they would be sent alike.

    ``top_logprobs``: None (the default) asks for no log-probabilities; an int
    ``N`` (0 to :data:`MAX_TOP_LOGPROBS`) asks for each reply token's
    log-probability and its ``N`` most likely alternatives (OpenAI's
    ``logprobs: true, top_logprobs: N``). It is part of the key only when set,
    so the keys of requests without it are those of earlier versions, and a
    reply cached without log-probabilities never answers a request for them.
    """

    messages: tuple[tuple[str, str], ...]
    max_tokens: int | None = None
    temperature: float = 0.0
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    extra: tuple[tuple[str, Any], ...] = field(default=())
    top_logprobs: int | None = None

    @classmethod
    def from_messages(cls, messages: Sequence[Message], **params: Any) -> ChatRequest:
        """Build a request from ``[{"role": ..., "content": ...}, ...]``."""
        msgs = tuple((str(m["role"]), str(m["content"])) for m in messages)
        if "stop" in params and params["stop"] is not None:
            params["stop"] = tuple(params["stop"])
        if "extra" in params and isinstance(params["extra"], Mapping):
            params["extra"] = tuple(sorted(params["extra"].items()))
        return cls(messages=msgs, **params)

    @classmethod
    def user(cls, content: str, *, system: str | None = None, **params: Any) -> ChatRequest:
        """A one-turn request with an optional system message."""
        msgs = [{"role": "system", "content": system}] if system else []
        msgs.append({"role": "user", "content": content})
        return cls.from_messages(msgs, **params)

    @classmethod
    def from_checked_parts(
        cls,
        messages: tuple[tuple[str, str], ...],
        max_tokens: int | None,
        temperature: float,
        top_p: float | None,
        top_logprobs: int | None = None,
    ) -> ChatRequest:
        """A request from parts the caller has already checked, without the
        dataclass's per-field ``object.__setattr__`` (the cached path of a judge
        run builds thousands).

        ``messages`` is a tuple of ``(role, content)`` string pairs, ``max_tokens``
        a positive int or None, ``temperature`` a float, ``top_logprobs`` None or
        an int from 0 to :data:`MAX_TOP_LOGPROBS`; nothing is validated, so
        build anything else with :meth:`from_messages` or the constructor.
        """
        request = object.__new__(cls)
        request.__dict__.update(
            messages=messages,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            stop=(),
            seed=None,
            extra=(),
            top_logprobs=top_logprobs,
        )
        return request

    def message_dicts(self) -> list[dict[str, str]]:
        """The messages as OpenAI-style dicts."""
        return [{"role": r, "content": c} for r, c in self.messages]

    def key_material(self) -> dict[str, Any]:
        """The JSON-able content that identifies this request (``top_logprobs``
        only when set)."""
        material = {
            "messages": [list(m) for m in self.messages],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": list(self.stop),
            "seed": self.seed,
            "extra": [list(kv) for kv in self.extra],
        }
        if self.top_logprobs is not None:
            material["top_logprobs"] = self.top_logprobs
        return material

    def cache_key(self, backend_identity: str) -> str:
        """SHA-256 of the backend identity and the request content.

        Every string is fed to the hash with its length in front, so no two
        different requests can produce the same byte stream.
        """
        return request_keys([self], backend_identity)[0]


def _framed(texts: Sequence[str]) -> bytes:
    buf = bytearray()
    for text in texts:
        data = text.encode("utf-8")
        buf += len(data).to_bytes(8, "little")
        buf += data
    return bytes(buf)


def request_keys(requests: Sequence[ChatRequest], backend_identity: str) -> list[str]:
    """:meth:`ChatRequest.cache_key` of each request, computed in one pass.

    Requests that share every message but the last (a rating prompt's system
    message) share the hash state of that prefix, hashed once; the framed role
    and decoding parameters are built once per distinct value.
    """
    prefixes: dict[tuple[int, tuple[tuple[str, str], ...]], Any] = {}
    tails: dict[str, bytes] = {}  # repr of the decoding parameters -> their framed JSON
    roles: dict[str, bytes] = {}  # role -> its framed bytes
    keys = []
    append = keys.append
    for r in requests:
        messages = r.messages
        head = messages[:-1]
        state = prefixes.get((len(messages), head))
        if state is None:
            texts = [backend_identity, str(len(messages))]
            for role, content in head:
                texts.append(role)
                texts.append(content)
            state = hashlib.sha256(b"sftselect-request-v1" + _framed(texts))
            prefixes[len(messages), head] = state
        h = state.copy()
        params = (r.max_tokens, _real(r.temperature), _real(r.top_p), r.stop, r.seed, r.extra)
        if r.top_logprobs is not None:  # a new parameter: the keys without it stay as they were
            params += (r.top_logprobs,)
        # Memoised by repr, not by equality: 0 == 0.0 == False, yet they are
        # different JSON, and a key must not depend on which came first.
        memo = repr(params)
        tail = tails.get(memo)
        if tail is None:
            tail = tails[memo] = _framed([_dump_params(*params)])
        if messages:
            role, content = messages[-1]
            role_bytes = roles.get(role)
            if role_bytes is None:
                role_bytes = roles[role] = _framed([role])
            data = content.encode("utf-8")
            h.update(b"".join((role_bytes, len(data).to_bytes(8, "little"), data, tail)))
        else:
            h.update(tail)
        append(h.hexdigest())
    return keys


def _dump_params(max_tokens, temperature, top_p, stop, seed, extra, *top_logprobs) -> str:
    params = [max_tokens, temperature, top_p, list(stop), seed, [list(kv) for kv in extra]]
    params.extend(top_logprobs)
    return json.dumps(params, ensure_ascii=False, separators=(",", ":"), default=str)


def _real(value: Any) -> Any:
    """A sampling parameter as the float it means (``temperature=0`` is ``0.0``)."""
    return float(value) if type(value) is int else value


class TokenLogprob(NamedTuple):
    """One reply token with its log-probability and the most likely alternatives at
    its position, as OpenAI's ``choices[0].logprobs.content[i]`` gives them.

    ``top_logprobs`` holds ``(token, logprob)`` pairs, as the server listed them
    (most likely first); it is empty when ``top_logprobs=0`` was asked. A plain
    tuple, so the scorers below the backends read it without importing them.
    """

    token: str
    logprob: float
    top_logprobs: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ChatReply:
    """A backend's reply: the text, and token counts when the backend knows them.

    ``logprobs``: the reply's tokens with their log-probabilities when the
    request asked for them (``ChatRequest.top_logprobs``) and the backend
    returned them; None otherwise (not asked, or an endpoint that gives none:
    ``transformers serve``, the callable backend). The local
    ``TransformersChatBackend`` computes them from the model's logits.
    """

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None
    model: str | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None


@runtime_checkable
class ChatBackend(Protocol):
    """Anything with an ``identity`` string and ``async chat(request) -> ChatReply``."""

    identity: str

    async def chat(self, request: ChatRequest) -> ChatReply:
        """Send one request and return its reply, or raise :class:`BackendError`."""
