"""The parameters of :class:`~sftselect.backends.openai_compat.OpenAICompatibleBackend`,
checked (:func:`check_settings`), and what it sends besides the body: the base
URL, the API key read from the environment, extra headers and query
parameters; and the URL as messages show it.

Every message here names what is wrong without repeating a secret: no
user:password or query string of a URL, no key, no header or parameter value.
"""

from __future__ import annotations

import numbers
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..core.validation import (
    check_non_negative_int,
    check_non_negative_real,
    check_positive_int,
    check_positive_real,
    param_error,
)
from ..exceptions import InvalidParameterError
from ._http_pool import Settings, httpx
from .base import BackendError

__all__ = [
    "CLIENT_HEADERS",
    "check_headers",
    "check_params",
    "check_settings",
    "display_url",
    "headers_problem",
    "is_loopback",
    "lacks_version",
    "needs_key",
    "read_api_key",
    "url_problem",
]

_OWNER = "OpenAICompatibleBackend"

#: Headers the HTTP client writes itself; ``headers=`` may not set them.
CLIENT_HEADERS = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection"}
)

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_VERSION = re.compile(r"/v\d+(/|\Z)")


def display_url(url: str) -> str:
    """``url`` without a user:password part, a query string or a fragment (for
    messages and identities); a URL that cannot be parsed shows as a placeholder."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a URL that cannot be parsed)"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def url_problem(url: str) -> tuple[str, str] | None:
    """What keeps ``url`` from serving as a base URL: ``(kind, words)``, the words
    continuing "The base URL ..." without repeating any part of it that may be
    secret; None when it is usable. Kinds: ``scheme``, ``space``, ``credentials``,
    ``host``, ``port``, ``query``, ``fragment``."""
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        return "space", "must not contain whitespace or control characters"
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https"):
        return "scheme", "must be an http(s) URL such as 'http://host:port/v1'"
    if "@" in parts.netloc:
        return "credentials", "must not hold credentials (a user:password@ part before the host)"
    if not parts.hostname:
        return "host", "must name a host, as in 'http://host:port/v1'"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        return "port", "has a port that is not a number from 1 to 65535"
    if parts.query:
        return "query", "must not have a query string (a '?...' part)"
    if parts.fragment:
        return "fragment", "must not have a fragment (a '#...' part)"
    return None


def needs_key(url: str) -> bool:
    """Whether the endpoint refuses every request without a key (OpenAI's own API)."""
    host = (urlsplit(url).hostname or "").lower()
    return host == "openai.com" or host.endswith(".openai.com")


def is_loopback(url: str) -> bool:
    """Whether ``url`` names this machine (no proxy, no CA bundle from the environment)."""
    host = (urlsplit(url).hostname or "").lower()
    return host in {"localhost", "::1"} or host.startswith("127.")


def lacks_version(url: str) -> bool:
    """Whether the base URL's path has no version part (``/v1``), a 404 then most
    likely meaning that it was left out; an Azure OpenAI deployment URL
    (``.../openai/deployments/NAME``, versioned by its ``api-version`` query
    parameter) is never said to lack one."""
    path = urlsplit(url).path
    return _VERSION.search(path) is None and "/openai/deployments/" not in path


def read_api_key(variable: str) -> str | None:
    """The API key in the environment variable ``variable``, without surrounding
    whitespace (a pasted key's newline); None when it is unset or blank.

    A key with whitespace, control or non-ASCII characters inside cannot be sent
    in a header: :class:`BackendError` naming the variable, never the value.
    """
    raw = os.environ.get(variable)
    key = raw.strip() if raw is not None else ""
    if not key:
        return None
    if not all("!" <= ch <= "~" for ch in key):
        raise BackendError(
            f"{_OWNER}: the API key in the environment variable {variable} has whitespace, "
            "control or non-ASCII characters inside it (its value is not shown); set the "
            "variable to the key alone"
        )
    return key


def _refuse(name: str, words: str) -> InvalidParameterError:
    return InvalidParameterError(f"The {name!r} parameter of {_OWNER} {words}.")


def headers_problem(headers: Mapping[Any, Any]) -> str | None:
    """What is wrong with ``headers`` (a mapping), in words that continue "The
    headers ..." and name a header but never a value; None when all is well."""
    seen: set[str] = set()
    for i, (name, value) in enumerate(headers.items(), start=1):
        if not isinstance(name, str) or not _TOKEN.match(name):
            return (
                f"has a header name that is not an HTTP token (header {i}: letters, digits "
                "and !#$%&'*+-.^_`|~ only)"
            )
        if name.lower() in CLIENT_HEADERS:
            return f"sets header {name!r}, which the HTTP client sets itself"
        if name.lower() in seen:
            return f"gives header {name!r} twice"
        seen.add(name.lower())
        if not isinstance(value, str):
            return f"must give header {name!r} a str value (got a {type(value).__name__})"
        if not all(" " <= ch <= "~" for ch in value):
            return (
                f"gives header {name!r} a value with control or non-ASCII characters "
                "(its value is not shown)"
            )
        if value != value.strip():
            return f"gives header {name!r} a value with surrounding whitespace"
    return None


def check_headers(headers: Any) -> tuple[tuple[str, str], ...]:
    """``headers`` (None or a mapping of header names to str values) as pairs;
    :class:`InvalidParameterError` naming the header, never its value."""
    if headers is None:
        return ()
    if not isinstance(headers, Mapping):
        raise _refuse(
            "headers",
            "must be a mapping of header names to str values, or None "
            f"(got a {type(headers).__name__})",
        )
    problem = headers_problem(headers)
    if problem is not None:
        raise _refuse("headers", problem)
    return tuple(headers.items())


def check_params(params: Any) -> tuple[tuple[str, str], ...]:
    """``params`` (None or a mapping of query parameter names to str values) as
    pairs; :class:`InvalidParameterError` naming the parameter, never its value."""
    if params is None:
        return ()
    if not isinstance(params, Mapping):
        raise _refuse(
            "params",
            "must be a mapping of query parameter names to str values, or None "
            f"(got a {type(params).__name__})",
        )
    pairs = []
    for i, (name, value) in enumerate(params.items(), start=1):
        if not isinstance(name, str) or not name:
            raise _refuse(
                "params", f"has a query parameter name that is not a non-empty str (parameter {i})"
            )
        if not isinstance(value, str):
            raise _refuse(
                "params",
                f"must give query parameter {name!r} a str value (got a {type(value).__name__})",
            )
        pairs.append((name, value))
    return tuple(pairs)


def _check_str(value: Any, name: str, expected: str = "a non-empty str") -> str:
    if not isinstance(value, str) or not value.strip():
        raise param_error(_OWNER, name, expected, value)
    return value


def _check_base_url(value: Any) -> str:
    base_url = _check_str(value, "base_url", "an http(s) URL such as 'http://host/v1'")
    problem = url_problem(base_url)
    if problem is not None:
        kind, words = problem
        advice = {
            "credentials": "; send the key through api_key_env or headers=",
            "query": "; pass query parameters with params=",
        }.get(kind, "")
        raise _refuse("base_url", words + advice)
    return base_url


def check_settings(backend: Any) -> Settings:
    """The parameters of ``backend`` (an ``OpenAICompatibleBackend``), checked in
    order with one message each, as the :class:`Settings` an event loop sends with."""
    _check_str(backend.model, "model")
    base_url = _check_base_url(backend.base_url)
    if backend.api_key_env is not None:
        _check_str(
            backend.api_key_env, "api_key_env", "the name of an environment variable, or None"
        )
    max_concurrency = check_positive_int(backend.max_concurrency, "max_concurrency", _OWNER)
    rpm = check_positive_real(
        backend.requests_per_minute, "requests_per_minute", _OWNER, allow_none=True
    )
    tpm = check_positive_real(
        backend.tokens_per_minute, "tokens_per_minute", _OWNER, allow_none=True
    )
    timeout = check_positive_real(backend.timeout, "timeout", _OWNER)
    deadline = check_positive_real(backend.deadline, "deadline", _OWNER, allow_none=True)
    if deadline is not None and deadline < timeout:
        raise param_error(
            _OWNER, "deadline", f"None or no shorter than timeout ({timeout:g} s)", deadline
        )
    max_retries = check_non_negative_int(backend.max_retries, "max_retries", _OWNER)
    backoff_base = check_non_negative_real(backend.backoff_base, "backoff_base", _OWNER)
    backoff_max = check_non_negative_real(backend.backoff_max, "backoff_max", _OWNER)
    headers = check_headers(backend.headers)
    params = check_params(backend.params)
    transport = backend.transport
    if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
        raise param_error(
            _OWNER,
            "transport",
            f"an {httpx.__name__}.AsyncBaseTransport or None",
            type(transport).__name__,
        )
    if not isinstance(backend.identity, str) or not backend.identity:
        raise param_error(_OWNER, "identity", "a non-empty str or None", backend.identity)
    seed = backend.random_state
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise param_error(_OWNER, "random_state", "an int or None", seed)
    url = base_url.rstrip("/") + "/chat/completions"
    return Settings(
        url=url,
        display_url=display_url(url),
        max_concurrency=max_concurrency,
        timeout=timeout,
        max_retries=max_retries,
        backoff_base=backoff_base,
        backoff_max=backoff_max,
        trust_env=not is_loopback(base_url),
        needs_key=needs_key(base_url),
        deadline=deadline,
        lacks_version=lacks_version(base_url),
        requests_per_minute=rpm,
        tokens_per_minute=tpm,
        headers=headers,
        params=params,
    )
