"""What the ``sftselect`` subcommands share: the error type, messages on
stderr (library warnings in the command line's terms), the options that build
an OpenAI-compatible chat backend, and the data-format and length-scorer
options."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Collection, Sequence
from typing import Any

#: ``OpenAICompatibleBackend``'s default deadline (kept here so that ``--help``
#: imports no HTTP client); a test checks that the two agree.
DEFAULT_DEADLINE = 300.0

__all__ = [
    "EXIT_BUG",
    "EXIT_USAGE",
    "WARNING_WORDING",
    "CliError",
    "add_backend_options",
    "backend_from_args",
    "batch_size_arg",
    "check_backend_flags",
    "check_price_flags",
    "cli_wording",
    "embedder_from_args",
    "format_arg",
    "hf_embedder",
    "info",
    "length_scorer",
    "parse_k",
    "positive_int",
    "rating_line",
    "refuse_overwriting_inputs",
    "stamp_record",
]

EXIT_USAGE = 2
EXIT_BUG = 70  # EX_SOFTWARE (sysexits.h): an internal error, not the user's input


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def parse_k(text: str) -> int | float:
    """``-k``: a row count (``1000``, or a whole number above 1 written as a float:
    ``1e9``, ``2.0``) or a fraction of the pool in (0, 1] (``0.02``; ``1.0`` is every
    row, as ``k=1.0`` is in the Python API).

    An int is passed on as it is (the selector refuses one below 1, naming ``k``); any
    other float is refused here.
    """
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if 0 < value <= 1:
        return value
    if math.isfinite(value) and value > 1 and value.is_integer():
        return int(value)
    raise argparse.ArgumentTypeError(
        "expected a count (a whole number: 1000, 1e9) or a fraction in (0, 1] "
        f"(0.02; 1.0 is every row); got {text!r}"
    )


def positive_int(text: str) -> int:
    """An option that takes a positive whole number (``--bins``, ``--max-steps``...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive int; got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive int; got {text!r}")
    return value


def _same_file(a: str, b: str) -> bool:
    """``a`` and ``b`` name one file: the same path once symbolic links, ``..`` and the
    working folder are resolved, or two hard links of one file."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path != folder and os.path.commonpath([path, folder]) == folder


def refuse_overwriting_inputs(
    inputs: dict[str, Any],
    writes: Sequence[tuple[str, str, Any]],
    *,
    replaced_folders: Collection[Any] = (),
) -> None:
    """Refuse, in one line, a run that would write over one of its inputs, or write two
    of its files to one path, before anything is read or written.

    ``inputs`` maps how the command line names each input (``INPUT``, ``--answers-a``)
    to its path; ``writes`` lists every file the run writes as ``(flag, what, path)``
    (``("-o", "the provenance record", "out.jsonl.provenance.json")``); a path of None
    is not used. Paths are compared after resolving symbolic links, ``..`` and the
    working folder, and by identity (hard links) where both exist; an input inside one of
    ``replaced_folders`` (an output folder replaced whole) counts as overwritten.
    """
    written = [(flag, what, os.fspath(p)) for flag, what, p in writes if p is not None]
    folders = {os.fspath(p) for p in replaced_folders}
    for name, source in inputs.items():
        if source is None or not os.path.lexists(os.fspath(source)):
            continue  # a hub name, sample:NAME, or a file that is not there to lose
        source = os.fspath(source)
        for flag, what, path in written:
            if _same_file(source, path) or (path in folders and _inside(source, path)):
                raise CliError(
                    f"{name} {source} is also {what} this run would write ({path}), so the "
                    f"run would overwrite its input; choose another {flag}"
                )
    for j, (flag, _, path) in enumerate(written):
        for other_flag, other_what, other in written[:j]:
            if _same_file(path, other):
                raise CliError(
                    f"{flag} {path} is also {other_what} ({other_flag}), which this run "
                    f"writes too; choose another {flag}"
                )


def stamp_record(
    record: dict[str, Any], args: argparse.Namespace, output: Any, elapsed: float
) -> dict[str, Any]:
    """A provenance record with the command line's fields: the input's path (and SHA-256
    when it is a file), the output path and the seconds the selection took."""
    from pathlib import Path

    from ..core.provenance import file_sha256

    record["input"]["path"] = str(args.input)
    if Path(args.input).exists():
        record["input"]["sha256"] = file_sha256(args.input)
    record["output"] = str(output)
    record["seconds"] = round(elapsed, 3)
    return record


def info(message: str, quiet: bool) -> None:
    """A progress line on stderr, unless ``-q``."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)


#: Python options named in library warnings, and the command line's words for them,
#: per subcommand: ``(library words, {command: command-line words})``.
WARNING_WORDING = (
    ("reask=N asks again", {"score": "--reask N asks again", "select": "--reask N asks again"}),
    (
        "Ratings.reasons and the provenance list them",
        {
            "score": "--keep-replies writes the reasons (column quality_reason)",
            "select": "the provenance lists the reasons",
        },
    ),
)


def cli_wording(message: str, command: str) -> str:
    """A library warning as ``sftselect COMMAND`` prints it: flags, not Python options."""
    for words, by_command in WARNING_WORDING:
        if words in message and command in by_command:
            message = message.replace(words, by_command[command])
    return message


def add_backend_options(p: argparse.ArgumentParser, title: str) -> argparse._ArgumentGroup:
    """The endpoint, model, key, cache and rate-limit options of an LLM judge."""
    g = p.add_argument_group(title)
    g.add_argument(
        "--base-url",
        default="https://api.openai.com/v1",
        help="OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp server, ...)",
    )
    g.add_argument("--model", default=None, help="the judge model name")
    g.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        help="environment variable holding the API key (never printed or stored); '': "
        "send no key (a --header authenticates)",
    )
    g.add_argument(
        "--cache",
        default=".sftselect/replies.sqlite",
        help="SQLite reply cache: a re-run sends nothing already answered",
    )
    g.add_argument("--max-concurrency", type=int, default=64)
    g.add_argument("--rpm", type=float, default=None, help="client-side requests-per-minute limit")
    g.add_argument("--tpm", type=float, default=None, help="client-side tokens-per-minute limit")
    g.add_argument(
        "--max-tokens", type=int, default=None, help="judge reply length (default: the prompt's)"
    )
    g.add_argument(
        "--timeout", type=float, default=60.0, help="seconds allowed each attempt of a request"
    )
    g.add_argument(
        "--deadline",
        type=float,
        default=None,
        help="seconds a request may take in all, its retries included (default: "
        f"{DEFAULT_DEADLINE:g}, or --timeout when longer)",
    )
    g.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="an HTTP header sent with every request, e.g. 'api-key: ...' for Azure OpenAI "
        "(repeatable; values are never printed or stored)",
    )
    g.add_argument(
        "--query",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a query parameter added to every request, e.g. api-version=2024-06-01 "
        "(repeatable; values are never printed or stored)",
    )
    g.add_argument(
        "--judge-identity",
        default=None,
        help="the judge's name in cache keys (default: model@base-url); give two endpoints "
        "serving the same model one name to share their cached replies",
    )
    return g


def check_backend_flags(args: argparse.Namespace) -> None:
    """The options above, named by their flags (the backend would name its Python
    parameters): positive ``--max-tokens`` and ``--max-concurrency``, positive
    finite ``--rpm``, ``--tpm``, ``--timeout`` and ``--deadline`` (no shorter
    than ``--timeout``), a usable ``--base-url``, and well-formed ``--header``
    and ``--query`` values (never shown)."""
    from ..backends._openai_options import url_problem

    for flag, value in (
        ("--max-tokens", args.max_tokens),
        ("--max-concurrency", args.max_concurrency),
    ):
        if value is not None and value <= 0:
            raise CliError(f"{flag} must be a positive int; got {value}")
    for flag, value in (
        ("--rpm", args.rpm),
        ("--tpm", args.tpm),
        ("--timeout", args.timeout),
        ("--deadline", args.deadline),
    ):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise CliError(f"{flag} must be a positive number; got {value}")
    if args.deadline is not None and args.deadline < args.timeout:
        raise CliError(
            f"--deadline must be at least --timeout ({args.timeout:g} s); got {args.deadline:g}"
        )
    problem = url_problem(args.base_url)
    if problem is not None:
        kind, words = problem
        advice = {
            "credentials": "; put the key in the environment variable --api-key-env names, "
            "or send it with --header NAME:VALUE",
            "query": "; pass query parameters with --query NAME=VALUE",
        }.get(kind, "")
        raise CliError(f"--base-url {words}{advice}")
    _headers(args)
    _query(args)


def _pairs(values: list[str], flag: str, sep: str) -> dict[str, str]:
    """``NAME<sep>VALUE`` options as a dict; errors name the option, never a value."""
    form = f"NAME{sep}VALUE"
    pairs: dict[str, str] = {}
    seen: set[str] = set()
    for i, text in enumerate(values, start=1):
        name, found, value = text.partition(sep)
        name = name.strip()
        if not found or not name:
            raise CliError(
                f"{flag} takes {form}; {flag} number {i} is not of that form (its text is "
                "not shown)"
            )
        folded = name.lower() if flag == "--header" else name
        if folded in seen:
            raise CliError(f"{flag} {name} is given twice")
        seen.add(folded)
        pairs[name] = value.strip() if flag == "--header" else value
    return pairs


def _headers(args: argparse.Namespace) -> dict[str, str]:
    from ..backends._openai_options import headers_problem

    headers = _pairs(args.header, "--header", ":")
    problem = headers_problem(headers)
    if problem is not None:
        raise CliError(f"--header {problem}")
    return headers


def _query(args: argparse.Namespace) -> dict[str, str]:
    return _pairs(args.query, "--query", "=")


def check_price_flags(args: argparse.Namespace) -> None:
    """``--usd-per-1m-input`` / ``--usd-per-1m-output``: non-negative, both or neither, and
    only with ``--dry-run`` (they bound its cost estimate)."""
    prices = {
        "--usd-per-1m-input": args.usd_per_1m_input,
        "--usd-per-1m-output": args.usd_per_1m_output,
    }
    for flag, value in prices.items():
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise CliError(f"{flag} must be a non-negative number (USD); got {value}")
    given = [flag for flag, value in prices.items() if value is not None]
    if given and not args.dry_run:
        raise CliError(f"{given[0]} is a price for --dry-run, which was not given")
    if len(given) == 1:
        other = next(flag for flag in prices if flag not in given)
        raise CliError(f"{given[0]} needs {other} too (both prices bound the cost)")


def backend_from_args(args: argparse.Namespace, what: str) -> Any:
    """An :class:`~sftselect.backends.OpenAICompatibleBackend` from the options above."""
    from ..backends.openai_compat import OpenAICompatibleBackend

    check_backend_flags(args)
    if not args.model:
        raise CliError(f"{what} needs --model (the judge model name)")
    deadline = args.deadline if args.deadline is not None else max(DEFAULT_DEADLINE, args.timeout)
    return OpenAICompatibleBackend(
        args.model,
        base_url=args.base_url,
        api_key_env=args.api_key_env or None,
        max_concurrency=args.max_concurrency,
        requests_per_minute=args.rpm,
        tokens_per_minute=args.tpm,
        timeout=args.timeout,
        deadline=deadline,
        headers=_headers(args) or None,
        params=_query(args) or None,
        identity=args.judge_identity,
    )


def rating_line(r: dict[str, Any]) -> str:
    """One line from a rating report: requests, cache hits, retries, failures, tokens;
    with expected scoring, the rows scored, the mean mass found and the rows without."""
    retries = "" if r.get("retries") is None else f", {r['retries']} retries"
    line = (
        f"{r['sent']} requests sent, {r['cache_hits']} cache hits{retries}, "
        f"{r['parse_failures']} unparsable, {r['request_failures']} failed; "
        f"tokens in {r['input_tokens']:,} out {r['output_tokens']:,}"
    )
    expected = r.get("expected")
    if expected:
        mean = expected["mass_sum"] / expected["rows"] if expected["rows"] else float("nan")
        line += (
            f"; expected scores for {expected['rows']} rows (mean probability on the scale's "
            f"tokens {mean:.3f}), {r['expected_failures']} without"
        )
    return line


def format_arg(args: argparse.Namespace) -> Any:
    """The --format or --response-column choice, as load and selectors take it."""
    if args.response_column:
        from ..data.formats import Format

        return Format.custom(args.response_column)
    return args.format


def length_scorer(args: argparse.Namespace):
    """A LengthSelector that only scores (unmeasurable rows give NaN)."""
    from ..selectors import LengthSelector

    return LengthSelector(
        k=None,
        unit=args.unit,
        format=format_arg(args),
        turns=args.turns,
        on_invalid="nan",
        num_proc=args.num_proc,
        show_progress=not args.quiet,
    )


def hf_embedder(args: argparse.Namespace) -> Any:
    """The ``HFEmbedder`` the ``--embed-*`` options describe (``--embed-model`` given)."""
    from ..embedding import HFEmbedder

    return HFEmbedder(
        args.embed_model,
        layer=args.embed_layer,
        pooling=args.pooling,
        normalize=args.normalize,
        max_length=args.embed_max_length,
        device=args.device,
        show_progress=not args.quiet,
        **batch_size_arg(args),
    )


def batch_size_arg(args: argparse.Namespace) -> dict[str, Any]:
    """``{"batch_size": --batch-size}`` when the option was given, else ``{}``: each
    library class then keeps its own default (an embedder's 32, a log-prob selector's
    16, a DEITA or reward engine's 8), so ``select``, ``score`` and Python agree."""
    value = getattr(args, "batch_size", None)
    return {} if value is None else {"batch_size": value}


def embedder_from_args(args: argparse.Namespace) -> Any:
    """``--embed-column`` as ``PrecomputedEmbeddings``, else ``--embed-model`` as an
    ``HFEmbedder``, else None (a subcommand without those options gives None too)."""
    from ..embedding import PrecomputedEmbeddings

    if getattr(args, "embed_column", None) is not None:
        return PrecomputedEmbeddings(args.embed_column)
    if getattr(args, "embed_model", None) is not None:
        return hf_embedder(args)
    return None
