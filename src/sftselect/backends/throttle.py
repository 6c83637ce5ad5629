"""Rate limiting, adaptive concurrency and retry timing for HTTP backends.

Token buckets that meter requests and tokens per minute without polling, the
limit on requests in flight that overload (429s, timeouts) lowers, the parsing
of ``Retry-After`` (seconds, an HTTP date, or OpenAI's ``retry-after-ms``), and
the counters a backend keeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple

__all__ = [
    "AdaptiveLimit",
    "BackendStats",
    "Deadline",
    "RateMeter",
    "Slot",
    "TokenBucket",
    "parse_retry_after",
    "retry_after_seconds",
]


@dataclass
class BackendStats:
    """What a backend has done: HTTP attempts, retries, failed calls, token usage,
    attempts that timed out, and how often overload lowered the requests in flight."""

    requests_sent: int = 0
    retries: int = 0
    failures: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    timeouts: int = 0
    concurrency_lowered: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict (for reports)."""
        return asdict(self)


class TokenBucket:
    """A token bucket whose level may go negative.

    A taker draws its cost at once and sleeps for as long as the debt it leaves
    takes to refill, so takers are served in arrival order without polling and
    the long-run rate never exceeds ``per_minute``. Plain arithmetic under a
    lock: not bound to any event loop.
    """

    def __init__(self, per_minute: float, capacity: float) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.capacity = capacity
        self._level = capacity
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate)
        self._stamp = now

    def take(self, amount: float) -> float:
        """Draw ``amount`` and return the seconds to wait before using it."""
        with self._lock:
            self._refill()
            self._level -= amount
            return 0.0 if self._level >= 0 else -self._level / self.rate

    def give_back(self, amount: float) -> None:
        """Return ``amount`` (negative: draw more), e.g. to correct an estimate."""
        with self._lock:
            self._refill()
            self._level = min(self.capacity, self._level + amount)


class RateMeter:
    """A backend's client-side rate limits, shared by all its event loops: a bucket
    of requests per minute (one request at a time) and one of tokens per minute
    (one second's worth), either absent."""

    def __init__(self) -> None:
        self.requests: TokenBucket | None = None
        self.tokens: TokenBucket | None = None

    def configure(self, requests_per_minute: float | None, tokens_per_minute: float | None) -> None:
        """Set the limits, keeping a bucket (and its level) whose rate is unchanged."""
        rpm, tpm = requests_per_minute, tokens_per_minute
        if rpm is None:
            self.requests = None
        elif self.requests is None or self.requests.per_minute != rpm:
            self.requests = TokenBucket(rpm, capacity=1.0)
        if tpm is None:
            self.tokens = None
        elif self.tokens is None or self.tokens.per_minute != tpm:
            self.tokens = TokenBucket(tpm, capacity=tpm / 60.0)

    async def take(self, cost: float) -> float:
        """Wait until one request of ``cost`` tokens may go; returns the tokens drawn
        (0 without a token limit). Cancelled while waiting, it draws nothing."""
        requests, tokens = self.requests, self.tokens
        delay = drawn_requests = drawn_tokens = 0.0
        if requests is not None:
            delay = max(delay, requests.take(1.0))
            drawn_requests = 1.0
        if tokens is not None:
            delay = max(delay, tokens.take(cost))
            drawn_tokens = cost
        if delay > 0:
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                if requests is not None:
                    requests.give_back(drawn_requests)
                if tokens is not None:
                    tokens.give_back(drawn_tokens)
                raise
        return drawn_tokens

    def give_back(self, tokens: float) -> None:
        """Return ``tokens`` to the token bucket (negative: draw more), if there is one."""
        if self.tokens is not None and tokens:
            self.tokens.give_back(tokens)


class Deadline:
    """One request's time budget, counted from its first attempt, retries included."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.started: float | None = None

    def start(self) -> None:
        """Start the clock (later calls do nothing)."""
        if self.started is None:
            self.started = time.monotonic()

    def elapsed(self) -> float:
        return 0.0 if self.started is None else time.monotonic() - self.started

    def remaining(self) -> float | None:
        """Seconds left; None without a deadline or before the clock starts."""
        if self.seconds is None or self.started is None:
            return None
        return self.seconds - self.elapsed()


class Slot(NamedTuple):
    """A place in flight: the :class:`AdaptiveLimit` wave it was taken in, and
    whether the limit allowed only one request in flight then."""

    wave: int
    alone: bool


class AdaptiveLimit:
    """How many requests one event loop may have in flight: ``maximum`` at first,
    halved (down to 1) when a request meets overload, a 429 or a timeout, and
    raised by one after as many successes as the limit.

    Requests in flight when the limit is lowered went out under the old limit,
    and their own overload says nothing new: only a request taken in the current
    wave lowers it again, so a burst of timeouts halves the limit once, not once
    per request. Waiters are woken without polling; not thread-safe (one loop).
    """

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.limit = maximum
        self.in_flight = 0
        self._wave = 0
        self._successes = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> Slot:
        """Wait for a place under the limit and take it."""
        while self.in_flight >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # pass on a wake-up this task will not use
                else:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                raise
        self.in_flight += 1
        return Slot(self._wave, self.limit == 1)

    def release(self) -> None:
        """Give a place back."""
        self.in_flight -= 1
        self._wake()

    def overloaded(self, slot: Slot) -> bool:
        """A request sent in ``slot`` met a 429 or a timeout: halve the limit if that
        slot was taken in the current wave. Returns whether the limit was lowered."""
        if slot.wave != self._wave or self.limit <= 1:
            return False
        self.limit = max(1, self.limit // 2)
        self._wave += 1
        self._successes = 0
        return True

    def succeeded(self) -> None:
        """A request got its reply: after ``limit`` of them, one more place."""
        if self.limit >= self.maximum:
            return
        self._successes += 1
        if self._successes >= self.limit:
            self.limit += 1
            self._successes = 0
            self._wake()

    def _wake(self) -> None:
        free = self.limit - self.in_flight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP date).

    Returns None for a missing or unreadable value, and 0 for a date in the past.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:  # pragma: no cover - Python < 3.10 returned None
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def retry_after_seconds(response: Any) -> float | None:
    """The wait a response asks for: ``retry-after-ms`` (OpenAI) or ``Retry-After``."""
    millis = response.headers.get("retry-after-ms")
    if millis is not None:
        with contextlib.suppress(ValueError):
            value = float(millis) / 1000.0
            if math.isfinite(value):
                return max(0.0, value)
    return parse_retry_after(response.headers.get("retry-after"))
