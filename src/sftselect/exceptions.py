"""The exceptions and warnings sftselect raises.

Every error derives from :class:`SftSelectError`, so a pipeline can catch the
library's failures in one place, and each also derives from the builtin a
Python user would expect (``ValueError``, ``KeyError``, ``ImportError``).
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


class CacheError(SftSelectError, OSError):
    """A reply cache file cannot be used: it is corrupted or truncated, not a file, or
    cannot be created or written. The message names the file."""
