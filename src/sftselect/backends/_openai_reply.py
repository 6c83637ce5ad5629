"""Reading an OpenAI-compatible ``/chat/completions`` response.

What :class:`~sftselect.backends.openai_compat.OpenAICompatibleBackend` makes
of a response: a :class:`~sftselect.backends.base.ChatReply`, a
:class:`Retryable` failure (rate limits, transient server errors, malformed
bodies) or a final :class:`~sftselect.backends.base.BackendError`; and the
server's error message in the shapes OpenAI, vLLM and llama.cpp send, with the
API key redacted from anything that reaches a message.
"""

from __future__ import annotations

from typing import Any

from ._http_pool import httpx
from .base import BackendError, ChatReply
from .throttle import retry_after_seconds

__all__ = ["RETRYABLE_STATUSES", "Retryable", "error_detail", "read_reply", "redact"]

#: Statuses worth another try: rate limits, request timeouts and transient server errors.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

MAX_ERROR_CHARS = 300

_OWNER = "OpenAICompatibleBackend"
_NOT_JSON = object()


class Retryable(Exception):
    """One attempt failed in a way another attempt may not."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def redact(text: str, key: str | None) -> str:
    """``text`` with every occurrence of the API key replaced."""
    if key and key in text:
        return text.replace(key, "[redacted]")
    return text


def error_detail(response: httpx.Response) -> str:
    """The server's error message (OpenAI, vLLM and llama.cpp shapes), or the body's start."""
    text = response.text
    try:
        data = response.json()
    except ValueError:
        data = None
    message: Any = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message = error.get("message")
        elif isinstance(error, str):
            message = error
        if message is None:
            message = data.get("message", data.get("detail"))
    detail = str(message) if message is not None else text
    detail = " ".join(detail.split())
    if len(detail) > MAX_ERROR_CHARS:
        detail = detail[:MAX_ERROR_CHARS] + "..."
    return detail or "(empty body)"


def _token_count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def read_reply(response: httpx.Response, display_url: str, key: str | None) -> ChatReply:
    """The reply in ``response``; :class:`Retryable` or :class:`BackendError` otherwise.

    Parameters
    ----------
    response:
        The server's response to one attempt.
    display_url:
        The endpoint as messages name it (no user:password part).
    key:
        The API key sent, redacted from every message; None when none was sent.
    """
    status = response.status_code
    if not 200 <= status < 300:
        detail = redact(error_detail(response), key)
        if status in RETRYABLE_STATUSES:
            retry_after = retry_after_seconds(response)
            raise Retryable(f"HTTP {status}: {detail}", status=status, retry_after=retry_after)
        raise BackendError(
            f"{_OWNER} got HTTP {status} from {display_url}: {detail}", status=status
        )
    try:
        data = response.json()
    except ValueError:
        data = _NOT_JSON
    if data is _NOT_JSON:
        start = redact(" ".join(response.text[:80].split()), key)
        raise Retryable(f"malformed reply (HTTP {status}, not JSON: {start!r})", status=status)
    choices = data.get("choices") if isinstance(data, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        raise Retryable(f"malformed reply (HTTP {status}, no choices[0].message)", status=status)
    finish_reason = first.get("finish_reason")  # type: ignore[union-attr]
    finish_reason = finish_reason if isinstance(finish_reason, str) else None
    content = message.get("content")
    if not isinstance(content, str):
        refusal = message.get("refusal")
        extra = f", refusal: {redact(str(refusal)[:MAX_ERROR_CHARS], key)}" if refusal else ""
        raise BackendError(
            f"{_OWNER} got a reply with no text content from {display_url} "
            f"(finish_reason={finish_reason!r}{extra})",
            status=status,
        )
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    model = data.get("model")
    return ChatReply(
        text=content,
        input_tokens=_token_count(usage.get("prompt_tokens")),
        output_tokens=_token_count(usage.get("completion_tokens")),
        finish_reason=finish_reason,
        model=model if isinstance(model, str) else None,
    )
