"""A chat backend for any OpenAI-compatible ``/v1/chat/completions`` endpoint.

One client serves OpenAI, vLLM's OpenAI server, llama.cpp's server and any
other server that speaks the chat-completions protocol:

.. code-block:: python

    backend = OpenAICompatibleBackend("gpt-4o-mini")               # OPENAI_API_KEY
    local = OpenAICompatibleBackend("qwen", base_url="http://127.0.0.1:8000/v1")
    reply = await backend.chat(ChatRequest.user("Rate this answer ..."))

What it does on its own, so the runner above it need not:

* bounds the requests in flight (``max_concurrency``) and, when asked, meters
  requests and tokens per minute on the client side, sleeping (never polling)
  until a request may go;
* retries 429, 408, 500, 502, 503, 504, timeouts, dropped connections and
  malformed 200 bodies with capped exponential backoff and full jitter,
  honouring ``Retry-After``; other statuses fail at once;
* reads the API key from the environment at each request and keeps it out of
  ``repr``, ``identity``, messages and logs;
* counts what it did in :attr:`OpenAICompatibleBackend.stats`.

The HTTP client is created lazily for each running event loop, so one backend
may serve successive ``asyncio.run(...)`` calls; a loop's client is closed when
``asyncio.run`` shuts that loop down, or by :meth:`OpenAICompatibleBackend.aclose`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import numbers
import os
import random
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .._validation import (
    check_non_negative_int,
    check_non_negative_real,
    check_positive_int,
    check_positive_real,
    param_error,
)
from ._http_pool import LoopState, Settings, httpx, open_loop_state
from ._openai_reply import RETRYABLE_STATUSES, Retryable, read_reply, redact
from .base import BackendError, ChatReply, ChatRequest
from .throttle import BackendStats, TokenBucket, parse_retry_after

__all__ = ["RETRYABLE_STATUSES", "BackendStats", "OpenAICompatibleBackend", "parse_retry_after"]

logger = logging.getLogger(__name__)

_OWNER = "OpenAICompatibleBackend"

#: Output tokens assumed for a request without ``max_tokens`` (token metering only).
DEFAULT_OUTPUT_ESTIMATE = 256


def _check_str(value: Any, name: str, expected: str = "a non-empty str") -> str:
    if not isinstance(value, str) or not value.strip():
        raise param_error(_OWNER, name, expected, value)
    return value


def _display_url(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _needs_key(url: str) -> bool:
    """Whether the endpoint refuses every request without a key (OpenAI's own API)."""
    host = (urlsplit(url).hostname or "").lower()
    return host == "openai.com" or host.endswith(".openai.com")


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in {"localhost", "::1"} or host.startswith("127.")


class OpenAICompatibleBackend:
    """Chat through an OpenAI-compatible ``/chat/completions`` endpoint.

    Parameters
    ----------
    model:
        The model name sent in each request (``"gpt-4o-mini"``, the name vLLM serves...).
    base_url:
        The API root, up to and including ``/v1``; ``/chat/completions`` is appended.
    api_key_env:
        The environment variable holding the API key, read at each request. When
        it is unset or empty no ``Authorization`` header is sent (local servers
        need none), except that a request to OpenAI's own API (``*.openai.com``)
        then fails at once with a :class:`BackendError` naming the variable
        instead of being sent. The key itself is never stored on the backend.
    max_concurrency:
        Requests in flight at once, per event loop.
    requests_per_minute, tokens_per_minute:
        Optional client-side rate limits. Requests are spaced ``60 /
        requests_per_minute`` seconds apart; tokens are metered by a bucket
        holding one second's worth, a request costing ``ceil(prompt chars / 4)
        + (max_tokens or 256)`` before it is sent, corrected by the reply's
        usage. Every HTTP attempt, retries included, is metered.
    timeout:
        Seconds allowed for connecting, and for each read or write of a request.
    max_retries:
        Retries after the first attempt before giving up with a retryable
        :class:`BackendError`.
    backoff_base, backoff_max:
        The n-th retry waits a uniform random time in ``[0, min(backoff_max,
        backoff_base * 2**n)]`` (full jitter), or the server's ``Retry-After``
        capped at ``backoff_max``.
    transport:
        An ``httpx.AsyncBaseTransport`` to send through (e.g. ``MockTransport``
        in tests). It is shared by every event loop's client and never closed
        by the backend. Must come from the same httpx package as this module's
        ``httpx`` (``httpx2`` when installed).
    identity:
        The string that identifies this backend in cache keys; defaults to
        ``"openai-compatible/{model}@{base_url}"`` (the URL without any
        user:password part), so a test server's replies are never read back
        as another endpoint's. Set it to share a cache between endpoints that
        serve the same model (a proxy and the API behind it), or to tell apart
        two models one server serves under the same name.
    retry_seed:
        Seed for the backoff jitter; None draws OS entropy. A private
        ``random.Random`` is used, never the global state.

    Parameters are checked, with one message each, when the backend first sends
    from an event loop (not in ``__init__``, which does no I/O).
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 16,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        timeout: float = 60.0,
        max_retries: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
        identity: str | None = None,
        retry_seed: int | None = None,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.transport = transport
        self.identity = (
            identity
            if identity is not None
            else f"openai-compatible/{model}@{_display_url(str(base_url)).rstrip('/')}"
        )
        self.retry_seed = retry_seed
        self.stats = BackendStats()
        self._rng: random.Random | None = None  # seeded at first use, after validation
        self._lock = threading.Lock()
        self._states: dict[int, LoopState] = {}
        self._rpm: TokenBucket | None = None
        self._tpm: TokenBucket | None = None

    def __repr__(self) -> str:
        return (
            f"{_OWNER}(model={self.model!r}, base_url={_display_url(str(self.base_url))!r}, "
            f"api_key_env={self.api_key_env!r}, max_concurrency={self.max_concurrency!r}, "
            f"requests_per_minute={self.requests_per_minute!r}, "
            f"tokens_per_minute={self.tokens_per_minute!r}, timeout={self.timeout!r}, "
            f"max_retries={self.max_retries!r}, identity={self.identity!r})"
        )

    def __getstate__(self) -> dict[str, Any]:
        """The parameters and counters; clients, locks and rate buckets stay behind
        (a copy in another process opens its own, as on first use)."""
        state = self.__dict__.copy()
        for name in ("_lock", "_states", "_rpm", "_tpm", "_rng"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._rng = None
        self._lock = threading.Lock()
        self._states = {}
        self._rpm = None
        self._tpm = None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> OpenAICompatibleBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP clients (the next request opens a new one)."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - aclose is awaited, so a loop runs
            loop = None
        with self._lock:
            states = list(self._states.values())
            self._states.clear()
        for state in states:
            state.closed = True
            if state.loop is loop:
                if state.guard is not None and not state.guard.done():
                    state.guard.cancel()
                    await asyncio.gather(state.guard, return_exceptions=True)
                else:
                    await state.close_client()
            elif not state.loop.is_closed() and state.guard is not None:
                # A loop alive in another thread closes its own client.
                with contextlib.suppress(RuntimeError):
                    state.loop.call_soon_threadsafe(state.guard.cancel)

    def _validate(self) -> Settings:
        _check_str(self.model, "model")
        base_url = _check_str(self.base_url, "base_url", "an http(s) URL such as 'http://host/v1'")
        if urlsplit(base_url).scheme not in ("http", "https") or not urlsplit(base_url).netloc:
            raise param_error(
                _OWNER, "base_url", "an http(s) URL such as 'http://host/v1'", base_url
            )
        _check_str(self.api_key_env, "api_key_env", "the name of an environment variable")
        max_concurrency = check_positive_int(self.max_concurrency, "max_concurrency", _OWNER)
        rpm = check_positive_real(
            self.requests_per_minute, "requests_per_minute", _OWNER, allow_none=True
        )
        tpm = check_positive_real(
            self.tokens_per_minute, "tokens_per_minute", _OWNER, allow_none=True
        )
        check_positive_real(self.timeout, "timeout", _OWNER)
        max_retries = check_non_negative_int(self.max_retries, "max_retries", _OWNER)
        backoff_base = check_non_negative_real(self.backoff_base, "backoff_base", _OWNER)
        backoff_max = check_non_negative_real(self.backoff_max, "backoff_max", _OWNER)
        if self.transport is not None and not isinstance(self.transport, httpx.AsyncBaseTransport):
            raise param_error(
                _OWNER,
                "transport",
                f"an {httpx.__name__}.AsyncBaseTransport or None",
                type(self.transport).__name__,
            )
        if not isinstance(self.identity, str) or not self.identity:
            raise param_error(_OWNER, "identity", "a non-empty str or None", self.identity)
        if self.retry_seed is not None and (
            isinstance(self.retry_seed, bool) or not isinstance(self.retry_seed, numbers.Integral)
        ):
            raise param_error(_OWNER, "retry_seed", "an int or None", self.retry_seed)
        if self._rng is None:
            self._rng = random.Random(self.retry_seed)
        if rpm is None:
            self._rpm = None
        elif self._rpm is None or self._rpm.per_minute != rpm:
            self._rpm = TokenBucket(rpm, capacity=1.0)
        if tpm is None:
            self._tpm = None
        elif self._tpm is None or self._tpm.per_minute != tpm:
            self._tpm = TokenBucket(tpm, capacity=tpm / 60.0)
        url = base_url.rstrip("/") + "/chat/completions"
        return Settings(
            url=url,
            display_url=_display_url(url),
            max_concurrency=max_concurrency,
            timeout=float(self.timeout),
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            trust_env=not _is_loopback(base_url),
            needs_key=_needs_key(base_url),
        )

    def _state(self) -> LoopState:
        """This event loop's client and semaphore, created on first use."""
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._states.get(id(loop))
            if state is not None and state.loop is loop and not state.closed:
                return state
            for key, old in list(self._states.items()):
                if old.closed or old.loop.is_closed() or old.loop is loop:
                    del self._states[key]
            state = open_loop_state(loop, self._validate(), self.transport)
            self._states[id(loop)] = state
            return state

    # ------------------------------------------------------------------ requests

    def request_body(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body sent for ``request``."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": request.message_dicts(),
            "temperature": request.temperature,
        }
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop"] = list(request.stop)
        if request.seed is not None:
            body["seed"] = request.seed
        body.update(request.extra)
        return body

    @staticmethod
    def estimate_tokens(request: ChatRequest) -> int:
        """Tokens a request is charged before it is sent: prompt chars / 4 plus the output cap."""
        chars = sum(len(content) for _, content in request.messages)
        return math.ceil(chars / 4) + (
            request.max_tokens if request.max_tokens is not None else DEFAULT_OUTPUT_ESTIMATE
        )

    async def chat(self, request: ChatRequest) -> ChatReply:
        """Send ``request``, retrying transient failures; raise :class:`BackendError` otherwise."""
        body = self.request_body(request)
        cost = self.estimate_tokens(request)
        output_allowance = (
            request.max_tokens if request.max_tokens is not None else DEFAULT_OUTPUT_ESTIMATE
        )
        attempt = 0
        while True:
            state = self._state()
            settings = state.settings
            try:
                return await self._attempt(state, body, cost, output_allowance)
            except Retryable as exc:
                failure = exc
            except BackendError:
                self.stats.failures += 1
                raise
            if attempt >= settings.max_retries:
                self.stats.failures += 1
                raise BackendError(
                    f"{_OWNER} gave up on {settings.display_url} after "
                    f"{attempt + 1} attempt(s): {failure}",
                    status=failure.status,
                    retryable=True,
                )
            delay = self._backoff(attempt, failure.retry_after, settings)
            attempt += 1
            self.stats.retries += 1
            logger.debug(
                "%s: retry %d/%d in %.2f s after: %s",
                self.identity,
                attempt,
                settings.max_retries,
                delay,
                failure,
            )
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int, retry_after: float | None, settings: Settings) -> float:
        if retry_after is not None:
            return min(retry_after, settings.backoff_max)
        cap = min(settings.backoff_max, settings.backoff_base * 2.0**attempt)
        assert self._rng is not None  # set by _validate
        return self._rng.uniform(0.0, cap)

    async def _throttle(self, cost: float) -> tuple[float, float]:
        """Wait for the rate limits; return what was drawn from each bucket."""
        rpm, tpm = self._rpm, self._tpm
        delay = 0.0
        drawn_requests = drawn_tokens = 0.0
        if rpm is not None:
            delay = max(delay, rpm.take(1.0))
            drawn_requests = 1.0
        if tpm is not None:
            delay = max(delay, tpm.take(cost))
            drawn_tokens = cost
        if delay > 0:
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                if rpm is not None:
                    rpm.give_back(drawn_requests)
                if tpm is not None:
                    tpm.give_back(drawn_tokens)
                raise
        return drawn_requests, drawn_tokens

    async def _attempt(
        self, state: LoopState, body: dict[str, Any], cost: int, output_allowance: int
    ) -> ChatReply:
        settings = state.settings
        key = os.environ.get(self.api_key_env) or None
        if key is None and settings.needs_key:
            # Fail at once instead of retrying a request that cannot succeed.
            raise BackendError(
                f"{_OWNER}: the environment variable {self.api_key_env} is not set (or is "
                f"empty), and {settings.display_url} needs an API key; set it, or name "
                "another variable with api_key_env (command line: --api-key-env)."
            )
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with state.semaphore:
            pool = state.borrow()
            try:
                response, drawn_tokens = await self._send(
                    state.clients[pool], settings, body, headers, key, cost, output_allowance
                )
            finally:
                state.give_back(pool)
        return self._parse(response, settings, key, drawn_tokens, cost, output_allowance)

    async def _send(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        body: dict[str, Any],
        headers: dict[str, str],
        key: str | None,
        cost: int,
        output_allowance: int,
    ) -> tuple[httpx.Response, float]:
        _, drawn_tokens = await self._throttle(cost)
        self.stats.requests_sent += 1
        # Errors are raised outside the ``except`` blocks, so they carry no
        # ``__context__``: httpx's exceptions hold the request, headers included.
        error: Exception | None = None
        try:
            response = await client.post(settings.url, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            error = Retryable(f"timed out after {settings.timeout:g} s ({type(exc).__name__})")
        except httpx.UnsupportedProtocol as exc:
            error = BackendError(
                f"{_OWNER} cannot send to {settings.display_url}: {redact(str(exc), key)}"
            )
        except (httpx.TransportError, httpx.DecodingError) as exc:
            error = Retryable(f"connection failed ({type(exc).__name__}: {redact(str(exc), key)})")
        except httpx.RequestError as exc:
            error = BackendError(
                f"{_OWNER} request to {settings.display_url} failed "
                f"({type(exc).__name__}: {redact(str(exc), key)})"
            )
        except RuntimeError:
            if not client.is_closed:
                raise
            # aclose() ran while this request waited; the next attempt opens a new client.
            error = Retryable("the HTTP client was closed while the request waited")
        if error is not None:
            if isinstance(error, Retryable):
                self._refund_output(drawn_tokens, output_allowance)
            raise error
        return response, drawn_tokens

    def _refund_output(self, drawn_tokens: float, output_allowance: int) -> None:
        if self._tpm is not None and drawn_tokens:
            self._tpm.give_back(min(drawn_tokens, output_allowance))

    def _parse(
        self,
        response: httpx.Response,
        settings: Settings,
        key: str | None,
        drawn_tokens: float,
        cost: int,
        output_allowance: int,
    ) -> ChatReply:
        if not 200 <= response.status_code < 300:
            self._refund_output(drawn_tokens, output_allowance)
        reply = read_reply(response, settings.display_url, key)
        input_tokens, output_tokens = reply.input_tokens, reply.output_tokens
        if input_tokens is not None:
            self.stats.input_tokens += input_tokens
        if output_tokens is not None:
            self.stats.output_tokens += output_tokens
        if self._tpm is not None and drawn_tokens and input_tokens is not None:
            self._tpm.give_back(cost - (input_tokens + (output_tokens or 0)))
        return reply
