"""Reading an OpenAI-compatible ``/chat/completions`` response.

What :class:`~sftselect.backends.openai_compat.OpenAICompatibleBackend` makes
of a response: a :class:`~sftselect.backends.base.ChatReply`, a
:class:`Retryable` failure (rate limits, transient server errors, malformed
bodies) or a final :class:`~sftselect.backends.base.BackendError` (the server
refused the request); and the server's error message in the shapes OpenAI,
vLLM and llama.cpp send, with every secret (the API key in each form it can
take, header and query parameter values) redacted from anything that reaches a
message.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from ._http_pool import httpx
from .base import BackendError, ChatReply, TokenLogprob
from .throttle import retry_after_seconds

__all__ = [
    "MIN_SECRET_CHARS",
    "RETRYABLE_STATUSES",
    "Retryable",
    "error_detail",
    "read_logprobs",
    "read_reply",
    "redact",
]

#: Statuses worth another try: rate limits, request timeouts, conflicts and transient
#: server errors. Any other status is the server refusing the request: not retried.
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})

MAX_ERROR_CHARS = 300

#: Secrets shorter than this are not redacted (replacing every "1" would garble
#: messages, and so short a value hides nothing).
MIN_SECRET_CHARS = 4

_OWNER = "OpenAICompatibleBackend"
_NOT_JSON = object()


class Retryable(Exception):
    """One attempt failed in a way another attempt may not.

    ``timed_out``: the server did not answer within the timeout. ``alone``: the
    attempt went out while the adaptive limit allowed one request in flight
    (set by the backend).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        timed_out: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.timed_out = timed_out
        self.alone = False


def _forms(secret: str) -> set[str]:
    """The ways ``secret`` can appear in an error text."""
    forms = set()
    for value in {secret, secret.strip()}:
        if len(value) < MIN_SECRET_CHARS:
            continue
        forms.update(
            (
                value,
                repr(value)[1:-1],
                repr(value.encode("utf-8", "backslashreplace"))[2:-1],
                f"Bearer {value}",
                quote(value, safe=""),
                quote_plus(value, safe=""),
            )
        )
    return forms


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every form of each secret replaced by ``[redacted]``: as is,
    without surrounding whitespace, its ``repr``, its bytes ``repr`` (``b'...'``),
    after ``Bearer``, and URL-encoded. None and secrets under
    :data:`MIN_SECRET_CHARS` characters are skipped."""
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms |= _forms(secret)
    for form in sorted(forms, key=len, reverse=True):
        if form in text:
            text = text.replace(form, "[redacted]")
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


def read_reply(
    response: httpx.Response,
    display_url: str,
    secrets: Iterable[str | None],
    *,
    lacks_version: bool = False,
) -> ChatReply:
    """The reply in ``response``; :class:`Retryable` or :class:`BackendError` otherwise.

    Parameters
    ----------
    response:
        The server's response to one attempt.
    display_url:
        The endpoint as messages name it (no user:password part, no query).
    secrets:
        The API key sent (None when none was) and the header and query parameter
        values, redacted from every message.
    lacks_version:
        Whether the base URL has no ``/v1``: a 404 then says to add it.
    """
    status = response.status_code
    secrets = tuple(secrets)
    if not 200 <= status < 300:
        detail = redact(error_detail(response), secrets)
        if status in RETRYABLE_STATUSES:
            retry_after = retry_after_seconds(response)
            raise Retryable(f"HTTP {status}: {detail}", status=status, retry_after=retry_after)
        hint = ""
        if status == 404 and lacks_version:
            hint = (
                "; the base URL does not end in /v1, under which OpenAI-compatible servers "
                "answer: add /v1 to base_url (command line: --base-url)"
            )
        raise BackendError(
            f"{_OWNER}: the server at {display_url} refused the request (HTTP {status}, not "
            f"retried): {detail.rstrip('. ')}{hint}",  # callers end the sentence
            status=status,
        )
    try:
        data = response.json()
    except ValueError:
        data = _NOT_JSON
    if data is _NOT_JSON:
        start = redact(" ".join(response.text[:80].split()), secrets)
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
        extra = f", refusal: {redact(str(refusal)[:MAX_ERROR_CHARS], secrets)}" if refusal else ""
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
        logprobs=read_logprobs(first.get("logprobs"), status),  # type: ignore[union-attr]
    )


def _logprob(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if value <= 0.0 or math.isnan(value) else None


def read_logprobs(value: Any, status: int = 200) -> tuple[TokenLogprob, ...] | None:
    """``choices[0].logprobs`` as :class:`TokenLogprob` tuples; None when the server
    sent none (no field, ``null``, or no ``content`` list).

    A ``content`` list that is there but malformed (an entry without a string
    ``token``, a ``logprob`` that is not a number <= 0, a ``top_logprobs`` entry
    likewise) is a malformed body: :class:`Retryable`, never a reply read in part.
    A ``-inf`` or NaN log-probability (vLLM sends ``-9999.0`` instead) is kept as
    sent; the scorer counts it.
    """
    content = value.get("content") if isinstance(value, dict) else None
    if not isinstance(content, list):
        return None
    tokens = []
    for i, entry in enumerate(content):
        read = _entry(entry)
        if read is None:
            raise Retryable(
                f"malformed reply (HTTP {status}, choices[0].logprobs.content[{i}] is not "
                "{token: str, logprob: number <= 0, top_logprobs: [{token, logprob}, ...]})",
                status=status,
            )
        tokens.append(read)
    return tuple(tokens)


def _entry(entry: Any) -> TokenLogprob | None:
    """One ``content`` entry read, or None when it is malformed."""
    if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
        return None
    logprob = _logprob(entry.get("logprob"))
    top = entry.get("top_logprobs")
    top = [] if top is None else top
    if logprob is None or not isinstance(top, list):
        return None
    pairs = []
    for alt in top:
        alt_logprob = _logprob(alt.get("logprob")) if isinstance(alt, dict) else None
        if alt_logprob is None or not isinstance(alt.get("token"), str):
            return None
        pairs.append((alt["token"], alt_logprob))
    return TokenLogprob(entry["token"], logprob, tuple(pairs))
