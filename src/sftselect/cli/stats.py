"""``sftselect stats``: the response-length distribution of a data set (and a histogram PNG)."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from ._common import length_scorer, positive_int, refuse_overwriting_inputs
from .plots import plot_histogram
from .selection import INPUT_HELP, add_length_options, load_input

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``stats`` to the ``sftselect`` parser."""
    st = sub.add_parser(
        "stats", help="print the response-length distribution (and a histogram PNG with --plot)"
    )
    st.add_argument("input", help=INPUT_HELP)
    add_length_options(st)
    plot = st.add_mutually_exclusive_group()
    plot.add_argument(
        "--plot", default=None, metavar="PATH", help="write a histogram PNG to PATH (default: none)"
    )
    plot.add_argument(
        "--no-plot",
        action="store_true",
        help="deprecated, removed in the next release: no PNG is written unless --plot is given",
    )
    st.add_argument("--bins", type=positive_int, default=50, help="histogram bins (the PNG)")
    st.add_argument("-q", "--quiet", action="store_true")
    st.set_defaults(handler=_cmd_stats)


def _cmd_stats(args: argparse.Namespace) -> int:
    refuse_overwriting_inputs({"INPUT": args.input}, [("--plot", "the picture", args.plot)])
    dataset = load_input(args)
    selector = length_scorer(args)
    lengths = selector.score(dataset)
    finite = lengths[~np.isnan(lengths)]
    unit = selector.unit if isinstance(selector.unit, str) else repr(selector.unit)
    print(f"rows: {len(dataset):,}   unit: {unit}   unscorable: {len(lengths) - finite.size:,}")
    if finite.size:
        qs = [0, 1, 5, 25, 50, 75, 95, 99, 100]
        values = np.percentile(finite, qs)
        print(
            f"mean: {finite.mean():.1f}   std: {finite.std():.1f}   empty: {int((finite == 0).sum()):,}"
        )
        print("  ".join(f"p{q}={v:.0f}" for q, v in zip(qs, values)))
        counts, edges = np.histogram(finite, bins=min(args.bins, 20))
        width = max(counts.max(), 1)
        for c, lo, hi in zip(counts, edges[:-1], edges[1:]):
            print(f"{lo:9.0f}-{hi:<9.0f} {c:9,d} {'#' * round(40 * c / width)}")
    if args.no_plot:
        warnings.warn(
            "--no-plot is deprecated and will be removed: no histogram is written unless "
            "--plot PATH is given",
            FutureWarning,
            stacklevel=2,
        )
    if args.plot is not None and finite.size:
        plot = Path(args.plot)
        plot_histogram(
            finite, plot, args.bins, f"{Path(args.input).name}: response length ({unit})"
        )
        print(f"histogram: {plot}")
    elif args.plot is not None:
        print(f"histogram: not written to {args.plot} (no row has a measurable response)")
    return 0
