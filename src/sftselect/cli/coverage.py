"""``sftselect select --selector facility-location`` and ``--selector targeted``.

Both embed the rows once (the embedding options of :mod:`sftselect.cli.embedding`)
and hand the vectors to the selector. ``targeted`` also needs ``--embed-model``
(the targets are embedded by the same model: for RDS+ give the base LM with
``--pooling weighted_mean --normalize``) and ``--targets FILE...``, one file per
task (any format ``load_data`` reads, or ``testset:NAME`` for a packaged test
set). ``--plot`` draws a 2-D PCA of the pool, the selected rows and, for
``targeted``, the target examples.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from ._common import CliError, info

__all__ = [
    "COVERAGE_SELECTORS",
    "add_coverage_options",
    "check_coverage_args",
    "coverage_plot",
    "coverage_selector",
]

COVERAGE_SELECTORS = ("facility-location", "targeted")


def add_coverage_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("coverage (--selector facility-location, targeted)")
    g.add_argument(
        "--kernel",
        choices=["cosine", "cosine_squared", "dot"],
        default="cosine",
        help="facility-location: the similarity (cosine_squared: apricot's 'cosine')",
    )
    g.add_argument(
        "--optimizer", choices=["lazy", "stochastic"], default="lazy", help="facility-location"
    )
    g.add_argument(
        "--refine",
        choices=["swap"],
        default=None,
        help="facility-location: k-medoids swaps after the greedy (dense matrix only)",
    )
    g.add_argument(
        "--graph",
        choices=["auto", "dense", "knn"],
        default="auto",
        help="facility-location: dense n x n similarities or a k-NN graph (auto: dense up to "
        "16,384 rows)",
    )
    g.add_argument("--n-neighbors", type=int, default=100, help="facility-location: knn graph")
    g.add_argument(
        "--weights-column", default=None, help="facility-location: per-row weights (>= 0)"
    )
    g.add_argument(
        "--targets",
        nargs="+",
        default=None,
        metavar="FILE",
        help="targeted: one file per target task (or testset:NAME, a packaged test set)",
    )


def check_coverage_args(args: argparse.Namespace) -> None:
    if args.selector == "targeted":
        if not args.targets:
            raise CliError("--selector targeted needs --targets FILE...")
        if args.embed_model is None:
            raise CliError(
                "--selector targeted needs --embed-model (the targets are embedded by it)"
            )
    elif args.targets:
        raise CliError("--targets needs --selector targeted")


def _load_targets(args: argparse.Namespace) -> dict[str, Any]:
    from ..data.io import load_data

    tasks: dict[str, Any] = {}
    for spec in args.targets:
        if spec.startswith("testset:"):
            from .. import testsets

            name = spec.split(":", 1)[1]
            ds = testsets.load(name)
        else:
            name = Path(spec).stem
            ds = load_data(spec)
        if name in tasks:
            raise CliError(f"--targets: two tasks are named {name!r}; give files distinct names")
        tasks[name] = ds
        info(f"target task {name}: {len(ds):,} examples from {spec}", args.quiet)
    return tasks


def _model_embedder(args: argparse.Namespace) -> Any:
    from ._common import hf_embedder

    return hf_embedder(args)


def coverage_selector(args: argparse.Namespace, embedder: Any):
    """The FacilityLocationSelector or TargetedSelector the options ask for."""
    from ..selectors import FacilityLocationSelector, TargetedSelector

    if args.selector == "facility-location":
        return FacilityLocationSelector(
            embedder,
            args.k,
            kernel=args.kernel,
            weights=args.weights_column,
            optimizer=args.optimizer,
            refine=args.refine,
            graph=args.graph,
            n_neighbors=args.n_neighbors,
            text=args.embed_text,
            random_state=args.seed,
            show_progress=not args.quiet,
        )
    return TargetedSelector(
        embedder,
        args.k,
        targets=_load_targets(args),
        text=args.embed_text,
        target_text=args.embed_text,
        target_embedder=_model_embedder(args),
        cache_dir=args.embed_cache,
        show_progress=not args.quiet,
    )


def coverage_plot(
    args: argparse.Namespace, selector: Any, X: np.ndarray, chosen: np.ndarray
) -> None:
    """The ``--plot`` PNG: pool, selection and (targeted) the target examples."""
    from .plots import plot_embedding

    path = Path(args.plot)
    if args.selector == "facility-location":
        title = f"{Path(args.input).name}: {X.shape[0]:,} rows, facility location ({args.kernel})"
        plot_embedding(X, None, chosen, path, title)
        return
    targets = selector.target_vectors()
    title = f"{Path(args.input).name}: {X.shape[0]:,} rows, targeted ({len(targets)} tasks)"
    plot_embedding(X, None, chosen, path, title, targets=targets)
