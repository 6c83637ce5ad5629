"""``--local-judge`` of ``sftselect select|score --selector quality`` and of
``sftselect judge``: the judge run in-process by
:class:`~sftselect.backends.transformers_chat.TransformersChatBackend`.

``--local-judge PATH`` names a transformers model folder, a hub name or a
``.gguf`` file; the model loads on the first request (device and dtype: the
backend's defaults, CUDA in bfloat16 where there is one, else the CPU in
float32). No server is involved, so the HTTP judge's options (``--model``,
``--base-url``, ``--api-key-env``, ``--header``, ``--query``, ``--rpm``,
``--tpm``, ``--timeout``, ``--deadline``) are refused with it rather than
ignored. ``--judge-scoring expected`` works with it (the backend returns the
tokens' log-probabilities); ``--cache``, ``--max-tokens``, ``--judge-identity``
and ``--max-concurrency`` (requests queued at once; the backend generates 16 at
most together) apply as for an HTTP judge, and so does ``--dry-run`` (it
counts the requests not yet cached, loads no model and sends nothing). The
judge's name (the cache key, and ``sftselect judge``'s result file) is the
backend's ``identity``: ``transformers/<model>[;gguf=<file>][;files=<fp>];dtype=<dtype>``
(a local model by its absolute path and a fingerprint of its files) unless
``--judge-identity`` is given.

Refused in one line before any input is read: an empty ``--judge-identity``, and
a ``PATH`` that can only be a local path (absolute, starting with ``./``,
``../`` or ``~``, ending in ``.gguf``, or with two ``/`` or more) and does not
exist (it would otherwise be tried as a hub name once the input was read).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ._common import CliError, backend_from_args, check_backend_flags

__all__ = ["add_local_judge_option", "check_judge_flags", "judge_from_args"]

_HTTP_FLAGS = (
    ("--model", "model"),
    ("--base-url", "base_url"),
    ("--api-key-env", "api_key_env"),
    ("--header", "header"),
    ("--query", "query"),
    ("--rpm", "rpm"),
    ("--tpm", "tpm"),
    ("--timeout", "timeout"),
    ("--deadline", "deadline"),
)


_DEFAULTS = "_http_judge_defaults"


def add_local_judge_option(g: argparse._ArgumentGroup) -> None:
    """Add ``--local-judge`` to the judge's option group (after the HTTP judge's options,
    whose defaults it records to tell which were given)."""
    g.set_defaults(**{_DEFAULTS: {dest: g.get_default(dest) for _, dest in _HTTP_FLAGS}})
    g.add_argument(
        "--local-judge",
        default=None,
        metavar="PATH",
        help="run the judge in-process with transformers instead of an HTTP endpoint: a "
        "model folder, a hub name or a .gguf file (replaces --model and --base-url)",
    )


def check_judge_flags(args: argparse.Namespace) -> None:
    """The judge's options, named by their flags, before anything is read or loaded:
    a non-empty ``--judge-identity``; with ``--local-judge``, no HTTP option, positive
    ``--max-tokens`` and ``--max-concurrency``, and a local-looking path that exists;
    without it, :func:`~sftselect.cli._common.check_backend_flags`."""
    if args.judge_identity is not None and not args.judge_identity.strip():
        raise CliError(f"--judge-identity must be a non-empty name; got {args.judge_identity!r}")
    if args.local_judge is None:
        check_backend_flags(args)
        return
    if not args.local_judge:
        raise CliError("--local-judge needs a model folder, a hub name or a .gguf file")
    for flag, dest in _HTTP_FLAGS:
        if getattr(args, dest) != getattr(args, _DEFAULTS)[dest]:
            raise CliError(
                f"{flag} is an option of an HTTP judge; --local-judge runs the model in-process "
                f"(drop {flag})"
            )
    for flag, value in (
        ("--max-tokens", args.max_tokens),
        ("--max-concurrency", args.max_concurrency),
    ):
        if value is not None and value <= 0:
            raise CliError(f"{flag} must be a positive int; got {value}")
    path = args.local_judge
    if _looks_local(path) and not os.path.exists(path):
        raise CliError(
            f"--local-judge names a local path that does not exist: {path} (a hub name is org/name)"
        )


def _looks_local(path: str) -> bool:
    """Whether ``path`` can only be a local path, never a hub name (``org/name``): absolute,
    starting with ``./``, ``../`` or ``~``, ending in ``.gguf``, or with two ``/`` or more."""
    p = path.replace(os.sep, "/")
    return (
        os.path.isabs(path)
        or p in (".", "..")
        or p.startswith(("./", "../", "~"))
        or p.lower().endswith(".gguf")
        or p.rstrip("/").count("/") > 1
    )


def judge_from_args(args: argparse.Namespace, what: str) -> Any:
    """The local backend when ``--local-judge`` is given (the HTTP options refused), else
    the HTTP judge of :func:`~sftselect.cli._common.backend_from_args`."""
    check_judge_flags(args)
    if args.local_judge is None:
        return backend_from_args(args, what)
    from ..backends.transformers_chat import TransformersChatBackend

    return TransformersChatBackend(args.local_judge, identity=args.judge_identity)
