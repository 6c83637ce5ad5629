"""Rate limiting and retry timing for HTTP backends.

Token buckets that meter requests and tokens per minute without polling, the
parsing of ``Retry-After`` (seconds, an HTTP date, or OpenAI's
``retry-after-ms``), and the counters a backend keeps.
"""

from __future__ import annotations

import contextlib
import email.utils
import math
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

__all__ = ["BackendStats", "TokenBucket", "parse_retry_after", "retry_after_seconds"]


@dataclass
class BackendStats:
    """What a backend has done: HTTP attempts, retries, failed calls and token usage."""

    requests_sent: int = 0
    retries: int = 0
    failures: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

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
