"""``sftselect compare POOL SEL1 SEL2 ... -o report.html``: selections from one pool side
by side in one self-contained HTML page (:func:`sftselect.report.compare`).

Each SEL is a selection's output file (its ``.provenance.json`` read from beside it) or
the provenance file alone, optionally named ``NAME=PATH`` (default: the file name
without its suffixes, ``out/longest.jsonl`` -> ``longest``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ._common import CliError, info, positive_int, refuse_overwriting_inputs

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``compare`` to the ``sftselect`` parser."""
    from .selection import INPUT_HELP

    p = sub.add_parser(
        "compare",
        help="compare selections from one pool in a self-contained HTML report",
        description="Write one HTML page that puts selections from one pool side by side: "
        "parameters and seeds, response lengths and scores against the pool's, pairwise "
        "overlap, category shares, a 2-D map (with embeddings) and sampled rows.",
    )
    p.add_argument("pool", help="the pool the selections were made from: " + INPUT_HELP)
    p.add_argument(
        "selections",
        nargs="+",
        metavar="[NAME=]SELECTION",
        help="a selection's output file (its .provenance.json beside it) or the provenance "
        "file alone; NAME defaults to the file name without its suffixes",
    )
    p.add_argument("-o", "--output", required=True, help="the report to write (.html)")
    p.add_argument("--title", default=None, help="the page title")
    p.add_argument(
        "--unit",
        default="words",
        help="response length unit: chars, words (default), nltk_words, tiktoken:<encoding>, "
        "hf:<tokenizer path>",
    )
    p.add_argument(
        "--format",
        choices=["alpaca", "dolly", "sharegpt", "openai"],
        default=None,
        help="data format (default: detected from the columns)",
    )
    p.add_argument("--split", default="train", help="split to read from a hub name or DatasetDict")
    p.add_argument(
        "--column",
        action="append",
        default=None,
        help="a source or category column to break down (repeatable; default: every column "
        "with 2 to 30 distinct values)",
    )
    p.add_argument(
        "--sample-size", type=positive_int, default=20, help="rows shown per strategy (default 20)"
    )
    p.add_argument(
        "--max-points",
        type=positive_int,
        default=2000,
        help="rows drawn per strategy on the map (a seeded sample beyond; default 2000)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the samples (default 0)")
    g = p.add_argument_group("the map (embeddings; none given: no map)")
    g.add_argument("--embed-model", default=None, help="transformers model folder (or hub name)")
    g.add_argument("--embed-column", default=None, help="a column of precomputed vectors")
    g.add_argument(
        "--embed-text",
        choices=["instruction", "instruction_input", "response", "example"],
        default="instruction_input",
        help="which text of a row is embedded (default: instruction_input)",
    )
    g.add_argument(
        "--embed-cache",
        default=None,
        help="embedding cache folder (the one given to select: vectors there are not recomputed)",
    )
    g.add_argument("--embed-layer", type=int, default=-1, help="hidden layer to pool (default -1)")
    g.add_argument("--pooling", choices=["mean", "last", "cls"], default="mean")
    g.add_argument("--normalize", action="store_true", help="L2-normalise each vector")
    g.add_argument("--embed-max-length", type=int, default=512, help="tokens kept per text")
    g.add_argument("--batch-size", type=int, default=32, help="texts per forward pass")
    g.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best found)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(handler=_cmd_compare)


def _named(selections: list[str]) -> dict[str, Path]:
    """``[NAME=]PATH`` arguments as {name: path}; a path that exists is never split."""
    from ..report.inputs import strategy_name_from_path

    named: dict[str, Path] = {}
    for arg in selections:
        name, sep, path = arg.partition("=")
        if not sep or Path(arg).exists() or not name:
            name, path = strategy_name_from_path(arg), arg
        if name in named:
            raise CliError(
                f"two selections are named {name!r} ({named[name]} and {path}); name them NAME=PATH"
            )
        named[name] = Path(path)
    return named


def _embedder(args: argparse.Namespace) -> Any:
    if args.embed_model is not None and args.embed_column is not None:
        raise CliError("--embed-model and --embed-column are alternatives; give one")
    from ._common import embedder_from_args

    return embedder_from_args(args)


def _cmd_compare(args: argparse.Namespace) -> int:
    from ..core.provenance import provenance_path
    from ..data.io import load_data
    from ..report import compare

    output = Path(args.output)
    if output.suffix.lower() not in (".html", ".htm"):
        raise CliError(f"-o {output}: the report is an HTML page; give a .html path")
    if output.is_dir():
        raise CliError(f"-o {output}: is a folder; give a .html file path")
    named = _named(args.selections)
    for path in named.values():
        if not path.exists():
            raise CliError(f"{path}: no such file")
    inputs: dict[str, Any] = {"POOL": args.pool}
    for name, path in named.items():
        inputs[f"SELECTION {name}"] = path
        inputs[f"the provenance of {name}"] = provenance_path(path)
    refuse_overwriting_inputs(inputs, [("-o", "the report", output)])
    embedder = _embedder(args)
    t0 = time.perf_counter()
    pool = load_data(args.pool, split=args.split)
    info(
        f"loaded {len(pool):,} rows from {args.pool} in {time.perf_counter() - t0:.1f}s", args.quiet
    )
    report = compare(
        pool,
        {name: path for name, path in named.items()},
        embeddings=embedder,
        embed_text=args.embed_text,
        embed_cache=args.embed_cache,
        unit=args.unit,
        format=args.format,
        columns=args.column,
        sample_size=args.sample_size,
        max_points=args.max_points,
        random_state=args.seed,
        title=args.title,
    )
    report.save(output)
    info(
        f"compared {len(named)} selections of {len(pool):,} rows in {report.seconds:.1f}s -> "
        f"{output} ({len(report.html.encode()):,} bytes)",
        args.quiet,
    )
    return 0
