"""Run many chat requests through a backend: cache first, bounded concurrency,
each reply stored as it arrives (those arriving in the same turn of the event
loop in one transaction), and a report of what happened.

Identical requests in one run are sent once. The cache is read for every
request at the start and again, for each request, just before it is sent (one
indexed lookup), so runs sharing a cache file, e.g. a resumed run started
beside a live one, pay for each request about once. A request whose backend
call fails is reported (its error kept, its reply None), never given a made-up
reply, and not cached, so a re-run retries it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..core.validation import check_positive_int
from .base import BackendError, ChatBackend, ChatReply, ChatRequest, request_keys

__all__ = [
    "SLOW_ADVICE",
    "ReplyStore",
    "RunReport",
    "RunResult",
    "arun_requests",
    "failure_message",
    "run_requests",
]


class ReplyStore(Protocol):
    """What the runner needs of a cache (``ReplyCache``, ``MemoryCache``)."""

    def get_many(self, keys: Sequence[str]) -> dict[str, ChatReply]: ...

    def put(self, key: str, backend: str, request: ChatRequest, reply: ChatReply) -> None: ...


# A store may also keep plans (see :mod:`sftselect.backends.plans`):
#   plan_replies(digest) -> (keys, replies aligned with keys, None where missing) | None
#   put_plan(digest, keys) -> None
# Stores without them work; their re-runs take the normal (rendering) path.
# And it may store several replies at once, in one transaction:
#   put_many(backend, [(key, request, reply), ...]) -> None
# Without it the runner calls put once per reply.


@dataclass
class RunReport:
    """Counts for one run: what was asked, found, sent, failed and spent.

    ``cache_hits`` counts the requests found in the cache, at the start or just
    before sending; of the ``failures``, ``not_retried`` failed at once because
    retrying could not help (the server refused them with a 4xx, or they could
    not be sent: a malformed key...), and ``timed_out`` had attempts the server
    left unanswered.
    """

    requests: int = 0
    unique: int = 0
    cache_hits: int = 0
    sent: int = 0
    succeeded: int = 0
    failures: int = 0
    not_retried: int = 0
    timed_out: int = 0
    retries: int | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    first_errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def summary(self) -> str:
        retries = "" if self.retries is None else f", {self.retries} retries"
        return (
            f"{self.requests} requests ({self.unique} unique): {self.cache_hits} from cache, "
            f"{self.sent} sent, {self.failures} failed{retries}; tokens in {self.input_tokens:,}, "
            f"out {self.output_tokens:,}; {self.seconds:.1f}s"
        )


@dataclass
class RunResult:
    """Replies aligned with the requests (None where the call failed), the report,
    and each request's cache key."""

    replies: list[ChatReply | None]
    errors: list[BaseException | None]
    report: RunReport
    keys: list[str] = field(default_factory=list)

    def __repr__(self) -> str:  # short: asyncio may format the result of its main task
        return f"RunResult({len(self.replies)} replies; {self.report.summary()})"


#: How often the progress bar's count of waiting requests is refreshed (seconds).
WAIT_REFRESH_S = 1.0


def backend_retries(backend: Any) -> int | None:
    stats = getattr(backend, "stats", None)
    return getattr(stats, "retries", None) if stats is not None else None


async def arun_requests(
    backend: ChatBackend,
    requests: Sequence[ChatRequest],
    *,
    cache: ReplyStore | None = None,
    max_concurrency: int = 64,
    show_progress: bool = False,
    desc: str = "requests",
    on_reply: Callable[[int, ChatReply], None] | None = None,
) -> RunResult:
    """Send ``requests`` through ``backend`` (see the module docstring)."""
    check_positive_int(max_concurrency, "max_concurrency", "run_requests")
    identity = getattr(backend, "identity", None)
    if not isinstance(identity, str) or not identity:
        raise TypeError(f"{backend!r} is not a chat backend: it needs a non-empty 'identity' str.")
    t0 = time.perf_counter()
    retries_before = backend_retries(backend)
    keys = request_keys(requests, identity)
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    report = RunReport(requests=len(requests), unique=len(first))
    found: dict[str, ChatReply] = cache.get_many(list(first)) if cache is not None else {}
    report.cache_hits = len(found)
    by_key: dict[str, ChatReply] = dict(found)
    errors_by_key: dict[str, BaseException] = {}
    todo = [k for k in first if k not in found]

    bar = None
    if show_progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=desc, unit="req")

    queue: asyncio.Queue[str] = asyncio.Queue()
    for key in todo:
        queue.put_nowait(key)

    # When each request in flight was sent: the progress bar shows how many wait, and
    # for how long the oldest has (a hung server shows as a growing wait, not silence).
    sent_at: dict[str, float] = {}

    async def show_waiting() -> None:
        while True:
            await asyncio.sleep(WAIT_REFRESH_S)
            now = time.monotonic()
            oldest = max((now - t for t in sent_at.values()), default=0.0)
            retries = backend_retries(backend)
            postfix = {"in_flight": len(sent_at), "oldest_wait": f"{oldest:.0f}s"}
            if retries is not None and retries_before is not None:
                postfix["retries"] = retries - retries_before
            bar.set_postfix(postfix, refresh=True)  # type: ignore[union-attr]

    # Replies that arrive in the same turn of the event loop are stored together, in one
    # transaction where the store has ``put_many``: the first of them waits that turn out.
    unstored: list[tuple[str, ChatRequest, ChatReply]] = []
    put_many = getattr(cache, "put_many", None)

    def store_unstored() -> None:
        batch = unstored[:]
        unstored.clear()
        if put_many is not None:
            put_many(identity, batch)
        elif cache is not None:
            for key, request, reply in batch:
                cache.put(key, identity, request, reply)

    async def store(key: str, request: ChatRequest, reply: ChatReply) -> None:
        unstored.append((key, request, reply))
        if len(unstored) == 1:
            try:
                await asyncio.sleep(0)
            finally:
                store_unstored()

    async def worker() -> None:
        while True:
            try:
                key = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            request = requests[first[key]]
            if cache is not None:
                # Another run sharing the cache may have stored it since the start.
                stored = cache.get_many([key]).get(key)
                if stored is not None:
                    by_key[key] = stored
                    report.cache_hits += 1
                    if bar is not None:
                        bar.update(1)
                    continue
            report.sent += 1
            sent_at[key] = time.monotonic()
            try:
                reply = await backend.chat(request)
                if not isinstance(reply, ChatReply):
                    raise BackendError(f"backend returned {type(reply).__name__}, not a ChatReply")
            except (BackendError, OSError, TimeoutError) as exc:
                errors_by_key[key] = exc
                report.failures += 1
                if isinstance(exc, BackendError):
                    report.not_retried += not exc.retryable
                    report.timed_out += exc.timed_out
                if len(report.first_errors) < 5:
                    report.first_errors.append(f"{type(exc).__name__}: {exc}")
            else:
                by_key[key] = reply
                report.succeeded += 1
                report.input_tokens += reply.input_tokens or 0
                report.output_tokens += reply.output_tokens or 0
                if cache is not None:
                    await store(key, request, reply)
                if on_reply is not None:
                    on_reply(first[key], reply)
            finally:
                sent_at.pop(key, None)
            if bar is not None:
                bar.update(1)

    ticker = asyncio.ensure_future(show_waiting()) if bar is not None else None
    try:
        await asyncio.gather(*(worker() for _ in range(min(max_concurrency, max(len(todo), 1)))))
    finally:
        if ticker is not None:
            ticker.cancel()
        if unstored:  # a worker cancelled before its turn came
            store_unstored()
        if bar is not None:
            bar.close()
    replies = [by_key.get(k) for k in keys]
    errors = [errors_by_key.get(k) for k in keys]
    retries_after = backend_retries(backend)
    if retries_before is not None and retries_after is not None:
        report.retries = retries_after - retries_before
    report.seconds = time.perf_counter() - t0
    return RunResult(replies=replies, errors=errors, report=report, keys=keys)


#: What helps when a server answers too slowly (an OpenAI-compatible backend's settings).
SLOW_ADVICE = (
    "allow each attempt more time with timeout=, each request more with deadline=, or send "
    "fewer at once with max_concurrency= (command line: --timeout, --deadline, --max-concurrency)"
)


def failure_message(report: RunReport, failed: int, total: int, what: str, keep_going: str) -> str:
    """The error for a run in which ``failed`` of ``total`` requests (``what``:
    "rating requests"...) failed: how (at once, since retrying could not help,
    or after their retries), the first error, the replies the cache holds, a way
    to go on without the failed requests (``keep_going``; none when no request
    succeeded and none was retried: a wrong model, URL or key is to be fixed),
    and, when requests timed out, :data:`SLOW_ADVICE`.
    """
    first = report.first_errors[0] if report.first_errors else "none kept"
    stored = report.cache_hits + report.succeeded
    if report.not_retried >= failed:
        how = " at once, not retried (retrying could not help)"
    elif report.not_retried:
        how = f" ({report.not_retried} at once, not retried; the others after their retries)"
    else:
        how = " after their retries"
    text = f"{failed} of {total} {what} failed{how}; the first: {first}. "
    if report.not_retried >= failed and not report.succeeded:
        text += (
            f"No request succeeded: fix what the error names, then run again ({stored} "
            "replies are cached)."
        )
    else:
        text += (
            f"{stored} replies are cached, so running again resumes. To continue without "
            f"them, pass {keep_going}."
        )
    if report.timed_out and SLOW_ADVICE not in first:
        text += f" {report.timed_out} timed out: {SLOW_ADVICE}."
    return text


def run_requests(
    backend: ChatBackend,
    requests: Sequence[ChatRequest],
    *,
    cache: ReplyStore | None = None,
    max_concurrency: int = 64,
    show_progress: bool = False,
    desc: str = "requests",
    on_reply: Callable[[int, ChatReply], None] | None = None,
) -> RunResult:
    """Synchronous :func:`arun_requests` (works inside Jupyter's running loop too)."""
    coro = arun_requests(
        backend,
        requests,
        cache=cache,
        max_concurrency=max_concurrency,
        show_progress=show_progress,
        desc=desc,
        on_reply=on_reply,
    )
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # A loop is already running (a notebook): run ours in a worker thread.
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="sftselect-runner")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]
