"""One HTTP attempt of :class:`~sftselect.backends.openai_compat.OpenAICompatibleBackend`:
the POST, and what its failures mean.

A timeout, a dropped or refused connection and a body that cannot be decoded
are :class:`~sftselect.backends._openai_reply.Retryable`; a request the client
cannot write (an illegal header), an unsupported scheme and other request
errors are final :class:`~sftselect.backends.base.BackendError`. Every message
is one line with the secrets redacted, and no error is chained to httpx's,
which hold the request and its headers.
"""

from __future__ import annotations

from typing import Any

from ._http_pool import Settings, httpx
from ._openai_reply import Retryable, redact
from .base import BackendError

__all__ = ["post"]

_OWNER = "OpenAICompatibleBackend"


def _text(exc: BaseException, secrets: tuple[str | None, ...]) -> str:
    """``exc`` as one redacted line, named by its type."""
    return f"{type(exc).__name__}: {redact(' '.join(str(exc).split()), secrets)}"


async def post(
    client: httpx.AsyncClient,
    settings: Settings,
    body: dict[str, Any],
    headers: dict[str, str],
    secrets: tuple[str | None, ...],
    seconds: float | None,
) -> httpx.Response:
    """POST ``body`` to the endpoint and return the response, whatever its status.

    Parameters
    ----------
    client:
        The HTTP client (connection pool) to send through.
    settings:
        The backend's checked parameters (URL, query parameters, timeout).
    body, headers:
        The JSON body and this attempt's headers.
    secrets:
        What to redact from messages: the key sent (or None) and the header and
        query parameter values.
    seconds:
        This attempt's timeout when shorter than ``settings.timeout`` (the
        request's deadline is near); None for the client's own.
    """
    timeout: Any = httpx.USE_CLIENT_DEFAULT if seconds is None else httpx.Timeout(seconds)
    error: Exception
    try:
        return await client.post(
            settings.url,
            json=body,
            headers=headers,
            params=settings.params or None,
            timeout=timeout,
        )
    except httpx.TimeoutException as exc:
        waited = settings.timeout if seconds is None else seconds
        error = Retryable(f"timed out after {waited:g} s ({type(exc).__name__})", timed_out=True)
    except httpx.UnsupportedProtocol as exc:
        error = BackendError(
            f"{_OWNER} cannot send to {settings.display_url}: {_text(exc, secrets)}"
        )
    except httpx.LocalProtocolError as exc:
        # The request cannot be written (an illegal header): every try would fail alike.
        error = BackendError(
            f"{_OWNER} could not send the request to {settings.display_url} "
            f"({_text(exc, secrets)}); not retried"
        )
    except (httpx.TransportError, httpx.DecodingError) as exc:
        error = Retryable(f"connection failed ({_text(exc, secrets)})")
    except httpx.RequestError as exc:
        error = BackendError(
            f"{_OWNER} request to {settings.display_url} failed ({_text(exc, secrets)})"
        )
    except RuntimeError:
        if not client.is_closed:
            raise
        # aclose() ran while this request waited; the next attempt opens a new client.
        error = Retryable("the HTTP client was closed while the request waited")
    raise error
