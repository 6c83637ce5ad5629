"""A chat backend for any OpenAI-compatible ``/v1/chat/completions`` endpoint.

One client serves OpenAI, vLLM's OpenAI server, llama.cpp's server, Azure OpenAI (with
``headers`` and ``params``) and any other server that speaks the chat-completions protocol:

.. code-block:: python

    backend = OpenAICompatibleBackend("gpt-4o-mini")               # OPENAI_API_KEY
    local = OpenAICompatibleBackend("qwen", base_url="http://127.0.0.1:8000/v1")
    reply = await backend.chat(ChatRequest.user("Rate this answer ..."))

What it does on its own, so the runner above it need not:

* bounds the requests in flight (``max_concurrency``), halving that bound when the server
  answers 429 or leaves a request unanswered past ``timeout`` and raising it again as
  replies come; when asked, meters requests and tokens per minute on the client side,
  sleeping (never polling) until a request may go;
* retries 429, 408, 409, 500, 502, 503, 504, timeouts, dropped connections and malformed
  200 bodies with capped exponential backoff and full jitter, honouring ``Retry-After``,
  within a ``deadline`` per request; other statuses are the server refusing the request,
  and fail at once, as do requests the client cannot send (an illegal header);
* reads the API key from the environment at each request (without the whitespace around
  a pasted key) and keeps it, and the values of ``headers`` and ``params``, out of
  ``repr``, ``identity``, messages and logs;
* counts what it did in :attr:`OpenAICompatibleBackend.stats`;
* asks for log-probabilities when a request sets ``top_logprobs`` and reads them into
  ``ChatReply.logprobs`` (None where the server sends none, as ``transformers serve``).

The HTTP client is created lazily for each running event loop, so one backend may serve
successive ``asyncio.run(...)`` calls; a loop's client is closed when ``asyncio.run``
shuts that loop down, or by :meth:`OpenAICompatibleBackend.aclose`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import threading
from collections.abc import Mapping
from typing import Any

from ._http_pool import LoopState, Settings, httpx, open_loop_state
from ._openai_options import check_settings, display_url, read_api_key
from ._openai_reply import RETRYABLE_STATUSES, Retryable, read_reply
from ._openai_send import post
from .base import BackendError, ChatReply, ChatRequest
from .runner import SLOW_ADVICE
from .throttle import BackendStats, Deadline, RateMeter, parse_retry_after

__all__ = [
    "DEFAULT_DEADLINE",
    "RETRYABLE_STATUSES",
    "TIMEOUTS_ALONE",
    "BackendStats",
    "OpenAICompatibleBackend",
    "parse_retry_after",
]

logger = logging.getLogger(__name__)

_OWNER = "OpenAICompatibleBackend"

#: Output tokens assumed for a request without ``max_tokens`` (token metering only).
DEFAULT_OUTPUT_ESTIMATE = 256

#: Seconds a request may take in all, its retries and the waits between them
#: included, unless ``deadline`` says otherwise.
DEFAULT_DEADLINE = 300.0

#: A request that timed out this many times while alone in flight (the adaptive
#: limit at 1) is not retried further: the server is not slow from load.
TIMEOUTS_ALONE = 2


def _names(mapping: Any) -> Any:
    """The names of ``headers`` / ``params`` for ``repr`` (never the values)."""
    return tuple(mapping) if isinstance(mapping, Mapping) else type(mapping).__name__


class OpenAICompatibleBackend:
    """Chat through an OpenAI-compatible ``/chat/completions`` endpoint.

    Parameters
    ----------
    model:
        The model name sent in each request (``"gpt-4o-mini"``, the name vLLM serves...).
    base_url:
        The API root, up to and including ``/v1``; ``/chat/completions`` is
        appended. An ``http://`` or ``https://`` URL without a user:password
        part (send the key through ``api_key_env`` or ``headers``), query
        string (use ``params``) or fragment.
    api_key_env:
        The environment variable holding the API key, read at each request and
        sent as ``Authorization: Bearer <key>``. Whitespace around the key is
        dropped; a key with whitespace, control or non-ASCII characters inside
        fails with a :class:`BackendError` naming the variable. When it is
        unset or blank no ``Authorization`` header is sent (local servers need
        none), except that a request to OpenAI's own API (``*.openai.com``)
        then fails at once with a :class:`BackendError` naming the variable
        instead of being sent. None: send no key (``headers`` authenticate,
        e.g. Azure OpenAI's ``api-key``). The key itself is never stored on the
        backend.
    max_concurrency:
        The most requests in flight at once, per event loop. A 429 or a timeout
        halves the limit (once per wave of requests sent under it, down to 1);
        each run of as many replies as the limit raises it by one, back up to
        ``max_concurrency``.
    requests_per_minute, tokens_per_minute:
        Optional client-side rate limits. Requests are spaced ``60 /
        requests_per_minute`` seconds apart; tokens are metered by a bucket
        holding one second's worth, a request costing ``ceil(prompt chars / 4)
        + (max_tokens or 256)`` before it is sent, corrected by the reply's
        usage. Every HTTP attempt, retries included, is metered.
    timeout:
        Seconds allowed for connecting, and for each read or write of an attempt.
    deadline:
        Seconds a request may take from the start of its first attempt to giving
        up, its retries and the waits before them included (an attempt near the
        end gets the time left); None: no deadline. At least ``timeout``.
    max_retries:
        Retries after the first attempt before giving up with a retryable
        :class:`BackendError`; a request that timed out :data:`TIMEOUTS_ALONE`
        times while alone in flight, or whose next try would pass the
        deadline, gives up sooner.
    backoff_base, backoff_max:
        The n-th retry waits a uniform random time in ``[0, min(backoff_max,
        backoff_base * 2**n)]`` (full jitter), or the server's ``Retry-After``
        capped at ``backoff_max``.
    headers:
        Extra HTTP headers sent with every request (``{"api-key": ...}`` for
        Azure OpenAI, a gateway's own headers): names are HTTP tokens, values
        printable ASCII strings. An ``Authorization`` header here is sent
        instead of the key (``api_key_env`` is then not read); ``Host``,
        ``Content-Type``, ``Content-Length``, ``Transfer-Encoding`` and
        ``Connection`` are the client's own. Values are treated as secrets:
        redacted from messages, never in ``repr`` or ``identity``.
    params:
        Query parameters added to every request's URL (``{"api-version":
        "2024-06-01"}`` for Azure OpenAI), str names and values; the values are
        treated as secrets, as header values are.
    transport:
        An ``httpx.AsyncBaseTransport`` to send through (e.g. ``MockTransport``
        in tests). It is shared by every event loop's client and never closed
        by the backend. Must come from the same httpx package as this module's
        ``httpx`` (``httpx2`` when installed).
    identity:
        The string that identifies this backend in cache keys; defaults to
        ``"openai-compatible/{model}@{base_url}"`` (the URL without any
        user:password part or query string; ``headers`` and ``params`` are not
        part of it), so a test server's replies are never read back as another
        endpoint's. Set it to share a cache between endpoints that serve the
        same model (a proxy and the API behind it), or to tell apart two
        models one server serves under the same name.
    random_state:
        Seed for the backoff jitter; None draws OS entropy. A private
        ``random.Random`` is used, never the global state.

    Parameters are checked, with one message each, when the backend first sends
    from an event loop (not in ``__init__``, which does no I/O). Messages never
    show the key, a header or parameter value, or the secret parts of a URL.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key_env: str | None = "OPENAI_API_KEY",
        max_concurrency: int = 16,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        timeout: float = 60.0,
        deadline: float | None = DEFAULT_DEADLINE,
        max_retries: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 60.0,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        identity: str | None = None,
        random_state: int | None = None,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.timeout = timeout
        self.deadline = deadline
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.headers = dict(headers) if isinstance(headers, Mapping) else headers
        self.params = dict(params) if isinstance(params, Mapping) else params
        self.transport = transport
        self.identity = (
            identity
            if identity is not None
            else f"openai-compatible/{model}@{display_url(str(base_url)).rstrip('/')}"
        )
        self.random_state = random_state
        self.stats = BackendStats()
        self._rng: random.Random | None = None  # seeded at first use, after validation
        self._lock = threading.Lock()
        self._states: dict[int, LoopState] = {}
        self._meter = RateMeter()

    def __repr__(self) -> str:
        return (
            f"{_OWNER}(model={self.model!r}, base_url={display_url(str(self.base_url))!r}, "
            f"api_key_env={self.api_key_env!r}, max_concurrency={self.max_concurrency!r}, "
            f"requests_per_minute={self.requests_per_minute!r}, "
            f"tokens_per_minute={self.tokens_per_minute!r}, timeout={self.timeout!r}, "
            f"deadline={self.deadline!r}, max_retries={self.max_retries!r}, "
            f"headers={_names(self.headers)!r}, params={_names(self.params)!r}, "
            f"identity={self.identity!r})"
        )

    def __getstate__(self) -> dict[str, Any]:
        """The parameters and counters; clients, locks and rate buckets stay behind
        (a copy in another process opens its own, as on first use)."""
        state = self.__dict__.copy()
        for name in ("_lock", "_states", "_meter", "_rng"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._rng = None
        self._lock = threading.Lock()
        self._states = {}
        self._meter = RateMeter()

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
        """The parameters checked (one message each); sets up the jitter and rate limits."""
        settings = check_settings(self)
        if self._rng is None:
            self._rng = random.Random(self.random_state)
        self._meter.configure(settings.requests_per_minute, settings.tokens_per_minute)
        return settings

    def _state(self) -> LoopState:
        """This event loop's client and in-flight limit, created on first use."""
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
        if request.top_logprobs is not None:
            body["logprobs"] = True
            body["top_logprobs"] = request.top_logprobs
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
        clock = Deadline(self._state().settings.deadline)
        attempt = alone_timeouts = 0
        timed_out = False
        while True:
            state = self._state()
            settings = state.settings
            try:
                return await self._attempt(state, body, cost, output_allowance, clock)
            except Retryable as exc:
                failure = exc
            except BackendError:
                self.stats.failures += 1
                raise
            timed_out = timed_out or failure.timed_out
            if failure.timed_out and failure.alone:
                alone_timeouts += 1
            delay = self._backoff(attempt, failure.retry_after, settings)
            stop = self._stop_reason(attempt, alone_timeouts, delay, clock, settings)
            if stop is not None:
                self.stats.failures += 1
                slow = f"; the server answered too slowly: {SLOW_ADVICE}" if timed_out else ""
                raise BackendError(
                    f"{_OWNER} gave up on {settings.display_url} after {attempt + 1} "
                    f"attempt(s) in {clock.elapsed():.1f} s{stop}: {failure}{slow}",
                    status=failure.status,
                    retryable=True,
                    timed_out=timed_out,
                )
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

    @staticmethod
    def _stop_reason(
        attempt: int, alone_timeouts: int, delay: float, clock: Deadline, settings: Settings
    ) -> str | None:
        """Why the failed ``attempt`` is the last ('' when retries ran out), or None."""
        if attempt >= settings.max_retries:
            return ""
        if alone_timeouts >= TIMEOUTS_ALONE:
            return f" ({alone_timeouts} timed out with no other request in flight)"
        remaining = clock.remaining()
        if remaining is not None and remaining <= delay:
            return f" (a retry would pass the {clock.seconds:g} s deadline)"
        return None

    def _backoff(self, attempt: int, retry_after: float | None, settings: Settings) -> float:
        if retry_after is not None:
            return min(retry_after, settings.backoff_max)
        cap = min(settings.backoff_max, settings.backoff_base * 2.0**attempt)
        assert self._rng is not None  # set by _validate
        return self._rng.uniform(0.0, cap)

    def _headers(self, settings: Settings) -> tuple[dict[str, str], str | None]:
        """This attempt's headers, and the key among them (None when none is sent)."""
        headers = dict(settings.headers)
        if settings.sets_authorization:
            return headers, None
        key = None if self.api_key_env is None else read_api_key(self.api_key_env)
        if key is None and settings.needs_key:
            # Fail at once instead of retrying a request that cannot succeed.
            where = (
                "api_key_env is None"
                if self.api_key_env is None
                else f"the environment variable {self.api_key_env} is not set (or is empty)"
            )
            raise BackendError(
                f"{_OWNER}: {where}, and {settings.display_url} needs an API key; set it, or "
                "name another variable with api_key_env (command line: --api-key-env)."
            )
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return headers, key

    async def _attempt(
        self,
        state: LoopState,
        body: dict[str, Any],
        cost: int,
        output_allowance: int,
        clock: Deadline,
    ) -> ChatReply:
        settings = state.settings
        headers, key = self._headers(settings)
        secrets = (key, *settings.secrets)
        remaining = clock.remaining()  # a retry waits for a place within the deadline
        acquire = state.limit.acquire()
        try:
            slot = await (acquire if remaining is None else asyncio.wait_for(acquire, remaining))
        except asyncio.TimeoutError:
            raise Retryable(
                f"no place in flight came free before the deadline (at most "
                f"{state.limit.limit} in flight after 429s or timeouts)"
            ) from None
        clock.start()
        pool = state.borrow()
        try:
            response, drawn_tokens = await self._send(
                state.clients[pool], settings, body, headers, secrets, cost, output_allowance, clock
            )
            reply = self._parse(response, settings, secrets, drawn_tokens, cost, output_allowance)
        except Retryable as exc:
            exc.alone = slot.alone
            if (exc.timed_out or exc.status == 429) and state.limit.overloaded(slot):
                self.stats.concurrency_lowered += 1
                logger.info(
                    "%s: %s; at most %d requests in flight now",
                    self.identity,
                    exc,
                    state.limit.limit,
                )
            raise
        finally:
            state.give_back(pool)
            state.limit.release()
        state.limit.succeeded()
        return reply

    async def _send(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        body: dict[str, Any],
        headers: dict[str, str],
        secrets: tuple[str | None, ...],
        cost: int,
        output_allowance: int,
        clock: Deadline,
    ) -> tuple[httpx.Response, float]:
        drawn_tokens = await self._meter.take(cost)
        self.stats.requests_sent += 1
        left = clock.remaining()  # near the deadline, an attempt gets the time left
        seconds = None if left is None or left >= settings.timeout else max(0.001, left)
        try:
            response = await post(client, settings, body, headers, secrets, seconds)
        except Retryable as exc:
            if drawn_tokens:
                self._meter.give_back(min(drawn_tokens, output_allowance))
            if exc.timed_out:
                self.stats.timeouts += 1
            raise
        return response, drawn_tokens

    def _parse(
        self,
        response: httpx.Response,
        settings: Settings,
        secrets: tuple[str | None, ...],
        drawn_tokens: float,
        cost: int,
        output_allowance: int,
    ) -> ChatReply:
        if drawn_tokens and not 200 <= response.status_code < 300:
            self._meter.give_back(min(drawn_tokens, output_allowance))
        reply = read_reply(
            response, settings.display_url, secrets, lacks_version=settings.lacks_version
        )
        input_tokens, output_tokens = reply.input_tokens, reply.output_tokens
        if input_tokens is not None:
            self.stats.input_tokens += input_tokens
        if output_tokens is not None:
            self.stats.output_tokens += output_tokens
        if drawn_tokens and input_tokens is not None:
            self._meter.give_back(cost - (input_tokens + (output_tokens or 0)))
        return reply
