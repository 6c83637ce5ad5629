"""The ``sftselect`` command line.

``sftselect select INPUT -o OUTPUT --selector length -k 1000`` writes the
selected rows (same columns, the output's file type) and ``OUTPUT.provenance.json``.
``sftselect stats INPUT`` prints the response-length distribution (and, with
``--plot PATH``, writes a histogram PNG).

Each subcommand lives in a module of this package with a ``register(sub)``
function that adds its parser and sets ``handler``. Bad input exits with
status 2 and a one-line message on stderr, never a traceback, and never a
half-written output (``SFTSELECT_DEBUG=1`` shows the traceback); so do
argument errors (``sftselect select: error: ... (see sftselect select --help)``,
not the usage text). Bad input is what raises one of sftselect's own errors
(:class:`~sftselect.exceptions.SftSelectError` and its subclasses) or an
``OSError`` (a path that cannot be read or written). Any other exception is a
bug in sftselect: its traceback is printed, then one line saying so
(``sftselect COMMAND: internal error: ... -- this is a bug in sftselect``), and
the exit status is 70 (``EX_SOFTWARE``), not 2.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from typing import NoReturn

from .._version import __version__
from ..exceptions import SftSelectError
from . import compare, evaluation, selection, stats, training
from ._common import EXIT_BUG, EXIT_USAGE, CliError, cli_wording

__all__ = ["build_parser", "main"]

#: Modules whose ``register(sub)`` adds subcommands, in the order of ``--help``.
COMMAND_MODULES = (selection, stats, compare, evaluation, training)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line with a pointer to ``--help`` (its
    subcommands' parsers are of this class too)."""

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``sftselect`` parser with every subcommand."""
    parser = _Parser(
        prog="sftselect",
        description="Select, score and describe instruction data; train, generate and judge.",
    )
    parser.add_argument("--version", action="version", version=f"sftselect {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


@contextlib.contextmanager
def _library_output(command: str, quiet: bool) -> Iterator[None]:
    """Warnings as one ``sftselect COMMAND: warning: ...`` line each (naming flags
    rather than Python options, see ``_common.cli_wording``); with
    ``quiet``, no progress bars from ``datasets`` either (both restored afterwards)."""

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(
            f"sftselect {command}: warning: {cli_wording(str(message), command)}", file=sys.stderr
        )

    bars_were_on = False
    if quiet:
        from datasets.utils import logging as ds_logging

        bars_were_on = ds_logging.is_progress_bar_enabled()
        ds_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_warning
            yield
    finally:
        if bars_were_on:
            ds_logging.enable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sftselect`` command; returns the exit status.

    Called without ``argv`` (the ``sftselect`` command, ``python -m sftselect.cli``:
    the arguments come from ``sys.argv`` and the process exits next), it keeps the
    garbage collector off the objects that live until the exit anyway, the modules
    imported for a run (``datasets``, pandas, pyarrow...): it freezes (:func:`gc.freeze`)
    what is alive when it starts, and when it ends it collects once, so that every
    unreachable object is finalized as before (a cache file closed...), then freezes
    the rest. The interpreter's exit then skips its own walks of that heap (0.15-0.2 s
    of a 2 s ``score`` run). Called with ``argv`` (tests, scripts), it leaves the
    collector alone.
    """
    if argv is None:
        gc.freeze()
    try:
        return _main(argv)
    finally:
        if argv is None:
            gc.collect()
            gc.freeze()


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _library_output(args.command, bool(getattr(args, "quiet", False))):
            return args.handler(args)
    except KeyboardInterrupt:
        print("sftselect: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (``sftselect stats ... | head``): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (SftSelectError, CliError, OSError) as exc:
        # What the user can fix (our own error types; a path that cannot be read or written):
        # one line, naming what was wrong.
        if os.environ.get("SFTSELECT_DEBUG"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"sftselect {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        # Anything else (a TypeError, ValueError, KeyError... that no check of ours turned
        # into one of the errors above) is a bug: show it as one, with its traceback.
        if os.environ.get("SFTSELECT_DEBUG"):
            raise
        traceback.print_exc()
        print(
            f"sftselect {args.command}: internal error: {type(exc).__name__}: "
            f"{cli_wording(str(exc).strip().splitlines()[0] if str(exc).strip() else '', args.command)}"
            " -- this is a bug in sftselect (the traceback above says where); please report it",
            file=sys.stderr,
        )
        return EXIT_BUG


if __name__ == "__main__":  # pragma: no cover  (python -m sftselect.cli runs __main__.py)
    sys.exit(main())
