"""``sftselect judge`` and ``sftselect report``: pairwise LLM-as-judge
evaluation in both answer orders, and its Markdown table and W/T/L figure.

``judge`` exits 0 when at least one pair was judged (pairs left out for an
unparsable reply or, with ``--on-request-error omit``, a failed request are
counted in the result and named in a warning), and 2 with a one-line error
when none was: the result file is still written, holding every raw reply, but
its win score is null, and a pipeline must not go on to report it as a result.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
from pathlib import Path

from ._common import (
    CliError,
    add_backend_options,
    check_price_flags,
    info,
    refuse_overwriting_inputs,
)
from .local_judge import add_local_judge_option, check_judge_flags, judge_from_args

__all__ = ["register"]


def _non_negative_int(text: str) -> int:
    """``--seed``, ``--n-bootstrap``: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative int; got {text!r}")
    return value


def _fraction(text: str) -> float:
    """``--confidence``: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1); got {text!r}")
    return value


def _check_flags(args: argparse.Namespace) -> None:
    """The shared judge-backend options (or ``--local-judge`` and the HTTP options it
    refuses) and the prices, named by their flags (the library would name its Python
    parameters)."""
    check_judge_flags(args)
    check_price_flags(args)


def _dry_run(args: argparse.Namespace, pairs) -> int:
    from ..evaluate import estimate_judge_cost

    estimate = estimate_judge_cost(
        pairs,
        judge_from_args(args, "sftselect judge"),
        protocol=args.protocol,
        cache=args.cache,
        max_tokens=args.max_tokens,
        usd_per_1m_input=args.usd_per_1m_input,
        usd_per_1m_output=args.usd_per_1m_output,
    )
    print(estimate.summary())
    return 0


def _judge(args: argparse.Namespace) -> int:
    from ..evaluate import judge_pairs, load_pairs

    _check_flags(args)
    refuse_overwriting_inputs(
        {"--answers-a": args.answers_a, "--answers-b": args.answers_b},
        [
            ("-o", "the result", None if args.dry_run else args.output),
            ("--cache", "the reply cache", None if args.dry_run else args.cache),
        ],
    )
    pairs = load_pairs(
        args.answers_a,
        args.answers_b,
        format=args.input_format,
        prompt_field=args.prompt_field,
        answer_a_field=args.answer_a_field,
        answer_b_field=args.answer_b_field,
        model_a=args.model_a,
        model_b=args.model_b,
        later_turns="skip" if args.skip_later_turns else "refuse",
    )
    info(
        f"{'dry run, nothing sent: ' if args.dry_run else ''}judging {len(pairs):,} pairs "
        f"({pairs.model_a} vs {pairs.model_b}) in both orders: {2 * len(pairs):,} requests, "
        f"protocol {args.protocol}",
        args.quiet,
    )
    if args.dry_run:
        return _dry_run(args, pairs)
    backend = judge_from_args(args, "sftselect judge")
    try:
        result = judge_pairs(
            pairs,
            backend,
            protocol=args.protocol,
            cache=args.cache,
            max_concurrency=args.max_concurrency,
            max_tokens=args.max_tokens,
            n_bootstrap=args.n_bootstrap,
            confidence=args.confidence,
            random_state=args.seed,
            on_request_error=args.on_request_error,
            show_progress=not args.quiet,
        )
    finally:
        if args.local_judge is not None:
            backend.close()  # the in-process model: free it (and its worker thread) now
    out = result.save(args.output)
    info(f"run: {result.report.summary()}", args.quiet)
    o = result.summary["overall"]
    if o["scored"] == 0:
        raise CliError(
            f"no pair could be judged: all {o['pairs']} were left out ({o['parse_failures']} "
            f"with an unparsable reply, {o['request_failures']} with a failed request), so "
            f"there is no win score; {out} holds the raw replies (does --protocol match how "
            "the judge replies?)"
        )
    info(
        f"wrote {out}: W/T/L {o['win']}/{o['tie']}/{o['lose']}, win score {o['win_score']}, "
        f"parse failures {o['parse_failures']}",
        args.quiet,
    )
    if not args.quiet:
        sys.stdout.write(result.markdown())
    return 0


def _report(args: argparse.Namespace) -> int:
    from ..evaluate import load_result, markdown_table, plot_wtl

    figure = Path(args.figure) if args.figure else Path(args.result).with_suffix(".png")
    refuse_overwriting_inputs(
        {"RESULT": args.result},
        [("--markdown", "the table", args.markdown), ("--figure", "the figure", figure)],
    )
    doc = load_result(args.result)
    table = markdown_table(doc)
    sys.stdout.write(table)
    if args.markdown:
        Path(args.markdown).write_text(table, encoding="utf-8")
    if not args.figure and importlib.util.find_spec("matplotlib") is None:
        # The table is the report; the default figure needs the plot extra. Say so.
        sys.stderr.write('no figure drawn: pip install "sftselect[plot]" for RESULT.png\n')
        return 0
    plot_wtl(doc, figure)
    info(f"wrote {figure}", args.quiet)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``judge`` and ``report`` to the ``sftselect`` parser."""
    from ..evaluate.inputs import FORMATS
    from ..evaluate.protocols import protocol_names

    j = sub.add_parser(
        "judge", help="pairwise LLM-as-judge of two models' answers, both answer orders"
    )
    j.add_argument(
        "--answers-a",
        required=True,
        help="model A's answers (sftselect.generate JSONL, AlpacaEval model_outputs.json), "
        "or one file of prompts with two answers",
    )
    j.add_argument(
        "--answers-b", default=None, help="model B's answers (omit for a one-file pairs input)"
    )
    j.add_argument("-o", "--output", required=True, help="result JSON (judgments and summary)")
    j.add_argument("--protocol", choices=protocol_names(), default="paper")
    j.add_argument("--input-format", choices=list(FORMATS), default="auto")
    j.add_argument("--prompt-field", default="prompt", help="pairs file: the prompt field")
    j.add_argument("--answer-a-field", default="answer_a", help="pairs file: A's answer field")
    j.add_argument("--answer-b-field", default="answer_b", help="pairs file: B's answer field")
    j.add_argument("--model-a", default=None, help="name of side A (default: from the file)")
    j.add_argument("--model-b", default=None, help="name of side B (default: from the file)")
    j.add_argument(
        "--skip-later-turns",
        action="store_true",
        help="leave out the later turns of multi-turn answers (generate --turns all) and judge "
        "the first turns (default: refuse such files)",
    )
    j.add_argument(
        "--n-bootstrap", type=_non_negative_int, default=1000, help="bootstrap resamples (0: none)"
    )
    j.add_argument(
        "--confidence", type=_fraction, default=0.95, help="bootstrap interval coverage, in (0, 1)"
    )
    j.add_argument(
        "--seed", type=_non_negative_int, default=0, help="bootstrap seed (recorded in the result)"
    )
    j.add_argument(
        "--on-request-error",
        choices=["raise", "omit"],
        default="raise",
        help="a request failing after retries: exit with an error (replies kept in the cache) "
        "or leave its pair out, counted",
    )
    j.add_argument(
        "--dry-run",
        action="store_true",
        help="count the requests not yet cached and their prompt tokens, bound the cost; "
        "send nothing, write nothing",
    )
    j.add_argument("--usd-per-1m-input", type=float, default=None, help="price, for --dry-run")
    j.add_argument("--usd-per-1m-output", type=float, default=None, help="price, for --dry-run")
    j.add_argument("-q", "--quiet", action="store_true")
    add_local_judge_option(add_backend_options(j, "judge backend"))
    j.set_defaults(handler=_judge)

    r = sub.add_parser("report", help="Markdown table and W/T/L figure of a judge result")
    r.add_argument("result", help="a result JSON written by `sftselect judge`")
    r.add_argument(
        "--figure",
        default=None,
        help='PNG path (default: RESULT with .png, when matplotlib is installed: pip install "sftselect[plot]")',
    )
    r.add_argument("--markdown", default=None, help="also write the table to this file")
    r.add_argument("-q", "--quiet", action="store_true")
    r.set_defaults(handler=_report)
