"""The HTTP transport of :class:`~sftselect.backends.openai_compat.OpenAICompatibleBackend`.

Which ``httpx`` is used (Pydantic's maintained fork ``httpx2`` when installed,
else ``httpx``), and the clients one event loop sends through: several small
connection pools, each request placed on the least busy, an adaptive limit on
the requests in flight (:class:`~sftselect.backends.throttle.AdaptiveLimit`),
and a task that closes the clients when ``asyncio.run`` shuts the loop down.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field

try:  # Pydantic's maintained fork of httpx (same API), which the environment ships...
    import httpx2 as httpx
except ImportError:  # pragma: no cover - ...or httpx itself.
    import httpx

from .._version import __version__
from .throttle import AdaptiveLimit

__all__ = [
    "CONNECTIONS_PER_POOL",
    "BorrowedTransport",
    "LoopState",
    "Settings",
    "close_at_loop_end",
    "httpx",
    "open_loop_state",
]

# Messages go out under the backend's logger.
logger = logging.getLogger(f"{__package__}.openai_compat")


@dataclass(frozen=True)
class Settings:
    """The backend's validated parameters, read once per event loop. Header and
    query parameter values stay out of ``repr``."""

    url: str
    display_url: str
    max_concurrency: int
    timeout: float
    max_retries: int
    backoff_base: float
    backoff_max: float
    trust_env: bool
    needs_key: bool = False
    deadline: float | None = None
    lacks_version: bool = False
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    params: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def sets_authorization(self) -> bool:
        """Whether ``headers`` holds an Authorization header (the key is then not sent)."""
        return any(name.lower() == "authorization" for name, _ in self.headers)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The header and query parameter values, redacted from messages."""
        return tuple(value for _, value in self.headers + self.params)


#: Connections per HTTP client. httpcore's pool scans all of its connections for
#: every request it places, so one pool of 64 costs the client more CPU than
#: the network; several small pools, each request sent through the least busy,
#: keep that cost flat (benchmarks/bench_judge.py).
CONNECTIONS_PER_POOL = 8


@dataclass
class LoopState:
    """One event loop's clients (small connection pools), limit on requests in
    flight, and the task that closes them at loop end."""

    loop: asyncio.AbstractEventLoop
    clients: list[httpx.AsyncClient]
    limit: AdaptiveLimit
    settings: Settings
    closed: bool = False
    guard: asyncio.Task[None] | None = field(default=None, repr=False)
    in_flight: list[int] = field(default_factory=list)

    @property
    def client(self) -> httpx.AsyncClient:
        """The first client (all share settings; for inspection)."""
        return self.clients[0]

    def borrow(self) -> int:
        """The index of the least busy client, counted as busy until :meth:`give_back`."""
        loads = self.in_flight
        i = loads.index(min(loads))
        loads[i] += 1
        return i

    def give_back(self, i: int) -> None:
        self.in_flight[i] -= 1

    async def close_client(self) -> None:
        self.closed = True
        for client in self.clients:
            try:
                await client.aclose()
            except Exception as exc:  # pragma: no cover - best effort at shutdown
                logger.debug("closing the HTTP client failed: %s", type(exc).__name__)


class BorrowedTransport(httpx.AsyncBaseTransport):
    """Forwards to a caller's transport and leaves closing it to the caller.

    A client closes its transport when it closes; a transport passed in by the
    user must outlive the per-loop clients built around it.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        return None


async def close_at_loop_end(state: LoopState) -> None:
    """Wait until cancelled (``asyncio.run`` cancels leftover tasks at shutdown), then close."""
    try:
        await asyncio.get_running_loop().create_future()
    finally:
        await state.close_client()


def open_loop_state(
    loop: asyncio.AbstractEventLoop,
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None,
) -> LoopState:
    """The clients and in-flight limit for ``loop``, with the task that closes them at loop end.

    Parameters
    ----------
    loop:
        The running event loop the clients serve.
    settings:
        The backend's validated parameters.
    transport:
        The caller's transport, wrapped so that closing a client leaves it open;
        None sends over the network.
    """
    borrowed = BorrowedTransport(transport) if transport is not None else None
    n_pools = math.ceil(settings.max_concurrency / CONNECTIONS_PER_POOL)
    per_pool = math.ceil(settings.max_concurrency / n_pools)
    # One TLS context for every pool (building one reads the CA bundle: 70 ms).
    tls = httpx.create_ssl_context(trust_env=settings.trust_env) if borrowed is None else True
    clients = [
        httpx.AsyncClient(
            verify=tls,
            timeout=httpx.Timeout(settings.timeout),
            limits=httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool),
            transport=borrowed,
            trust_env=settings.trust_env,
            headers={"User-Agent": f"sftselect/{__version__}"},
        )
        for _ in range(n_pools)
    ]
    state = LoopState(
        loop=loop,
        clients=clients,
        limit=AdaptiveLimit(settings.max_concurrency),
        settings=settings,
        in_flight=[0] * n_pools,
    )
    state.guard = loop.create_task(close_at_loop_end(state))
    return state
