"""The exceptions and warnings sftselect raises, all defined here.

Every error derives from :class:`SftSelectError`, so a pipeline can catch the
library's failures in one place, and each also derives from the builtin a
Python user would expect::

    SftSelectError
    ├── InvalidParameterError (ValueError)     a hyper-parameter outside what it accepts
    ├── MissingColumnError (KeyError)          a column the selector needs is absent
    ├── DataFormatError (ValueError)           a row or file of the wrong shape
    │   └── RowIndexMissingError               a Ray block without its row positions
    ├── MissingExtraError (ImportError)        an optional dependency is not installed
    ├── JudgeParseError (ValueError)           a judge reply could not be parsed (when asked)
    ├── JudgeRequestError (RuntimeError)       requests to a backend failed; replies cached
    ├── JudgeLogprobsError (RuntimeError)      a judge gave no log-probabilities where needed
    ├── BackendError (RuntimeError)            a backend could not produce one reply
    ├── CacheError (OSError)                   a reply cache file cannot be used
    ├── ModelNotFoundError (OSError)           a model or tokenizer that is nowhere
    └── FingerprintError (ValueError)          weights that cannot be fingerprinted

    SftSelectWarning (UserWarning)
    ├── KTooLargeWarning                       k above the (eligible) rows
    └── JudgeFailureWarning                    judge replies unparsed or requests failed

The modules that raise them re-export them where they were first defined
(``sftselect.backends.BackendError``, ...), and ``sftselect`` exports them all.
"""

from __future__ import annotations


class SftSelectError(Exception):
    """Base class of every error raised by sftselect."""


class InvalidParameterError(SftSelectError, ValueError):
    """A hyper-parameter has a value outside what it accepts."""


class MissingColumnError(SftSelectError, KeyError):
    """A column the selector needs is not in the dataset."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the plain message.
        return str(self.args[0]) if self.args else ""


class DataFormatError(SftSelectError, ValueError):
    """A row or a file does not have the shape its format requires."""


class MissingExtraError(SftSelectError, ImportError):
    """An optional dependency is not installed."""


class SftSelectWarning(UserWarning):
    """Base class of every warning emitted by sftselect."""


class KTooLargeWarning(SftSelectWarning):
    """``k`` asked for more rows than the dataset (or the eligible rows) holds."""


class JudgeFailureWarning(SftSelectWarning):
    """Some LLM-judge replies could not be parsed, or some requests failed: a
    quality judge scored those rows NaN (``on_parse_error="nan"`` /
    ``on_request_error="nan"``), a pairwise judge left those pairs out of W/T/L."""


class JudgeParseError(SftSelectError, ValueError):
    """An LLM judge's reply could not be parsed (raised only when asked to)."""


class JudgeRequestError(SftSelectError, RuntimeError):
    """Requests to an LLM backend failed (after their retries, or refused by the server);
    the replies received are cached."""


class JudgeLogprobsError(SftSelectError, RuntimeError):
    """An LLM judge returned no token log-probabilities where a score needs them (the
    expected score of ``QualitySelector(scoring="expected")``); the message names the
    endpoint."""


class CacheError(SftSelectError, OSError):
    """A reply cache file cannot be used: it is corrupted or truncated, not a file, or
    cannot be created or written. The message names the file."""


class RowIndexMissingError(DataFormatError):
    """A Ray block reached a worker without the row-position column (the dataset needs
    indexing: ``sftselect.distributed.read`` or ``from_huggingface`` add it)."""


class BackendError(SftSelectError, RuntimeError):
    """A backend could not produce a reply (after its own retries, or at once when
    retrying cannot help).

    ``status``: the last HTTP status, if any; ``retryable``: whether the request
    was retried and a later run may succeed (a 4xx refusal, a request that
    cannot be sent, is not); ``timed_out``: whether the server left an attempt
    unanswered within the timeout.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        timed_out: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.timed_out = timed_out


class ModelNotFoundError(SftSelectError, OSError):
    """A model or tokenizer name that is no local folder or file, and does not load as a hub
    name (or looks like a path, so is not tried as one)."""


class FingerprintError(SftSelectError, ValueError):
    """The weights cannot be fingerprinted (e.g. they are on the meta device)."""
