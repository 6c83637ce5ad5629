"""The embedding options of ``sftselect select`` (``--selector diversity``,
``kcenter``, ``repr-filter``; ``dedup`` is its deprecated name): checking them,
embedding the rows once, and building the selector over those vectors."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._common import CliError, embedder_from_args, format_arg, info, length_scorer

__all__ = [
    "EMBED_SELECTORS",
    "add_embed_options",
    "check_embed_args",
    "embed",
    "embedding_selector",
    "plot_title",
]

EMBED_SELECTORS = ("diversity", "kcenter", "repr-filter", "facility-location", "targeted")


def add_embed_options(p: argparse.ArgumentParser) -> None:
    """The embedding, clustering and plot options."""
    g = p.add_argument_group("embeddings (--selector diversity, kcenter, repr-filter, semdedup)")
    g.add_argument("--embed-model", default=None, help="transformers model folder (or hub name)")
    g.add_argument(
        "--embed-column", default=None, help="use this column of precomputed vectors instead"
    )
    g.add_argument("--embed-layer", type=int, default=-1, help="hidden layer to pool (default -1)")
    g.add_argument(
        "--pooling",
        choices=["mean", "last", "cls", "weighted_mean"],
        default="mean",
        help="weighted_mean: position-weighted (RDS+); default mean",
    )
    g.add_argument("--normalize", action="store_true", help="L2-normalise each vector")
    g.add_argument(
        "--embed-text",
        choices=["instruction", "instruction_input", "response", "example"],
        default="instruction_input",
        help="which text of a row is embedded (default: instruction_input)",
    )
    g.add_argument("--embed-max-length", type=int, default=512, help="tokens kept per text")
    g.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="texts (rows) per forward pass (default: the library's own for the selector: "
        "embeddings 32, ifd/superfiltering/perplexity 16, deita/reward 8)",
    )
    g.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best found)")
    g.add_argument(
        "--embed-cache", default=None, help="folder caching embeddings: a re-run does not embed"
    )
    g.add_argument(
        "--n-clusters",
        type=_n_clusters,
        default=100,
        help='diversity: K-means clusters (an int, or "k": as many as rows kept)',
    )
    g.add_argument("--allocation", choices=["equal", "proportional"], default="equal")
    g.add_argument("--within", choices=["random", "centroid"], default="random")
    g.add_argument(
        "--kmeans-backend", choices=["auto", "sklearn", "minibatch", "faiss"], default="auto"
    )
    g.add_argument(
        "--cluster-column",
        default=None,
        help="diversity: also write each selected row's cluster label in this column",
    )
    g.add_argument("--metric", choices=["cosine", "euclidean"], default="cosine", help="kcenter")
    g.add_argument(
        "--max-similarity",
        type=float,
        default=0.9,
        help="repr-filter: keep a row only if its cosine similarity to every kept row is "
        "below this",
    )
    g.add_argument(
        "--order",
        choices=["input", "length", "score"],
        default="input",
        help="repr-filter: walk order (input order, longest response first, or --score-column)",
    )
    g.add_argument(
        "--plot", default=None, help="PNG of a 2-D PCA of the embeddings with the selection"
    )


def _n_clusters(text: str) -> int | str:
    if text == "k":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an int or "k", got {text!r}') from None


def check_embed_args(args: argparse.Namespace) -> None:
    """One-line errors for option combinations that cannot work."""
    if (args.embed_model is None) == (args.embed_column is None):
        raise CliError(f"--selector {args.selector} needs --embed-model or --embed-column (one)")
    if args.selector != "repr-filter" and args.k is None:
        raise CliError(f"--selector {args.selector} needs -k")
    if args.selector == "repr-filter" and args.order == "score" and args.score_column is None:
        raise CliError("--order score needs --score-column")
    if args.cluster_column is not None and args.selector != "diversity":
        raise CliError("--cluster-column needs --selector diversity")
    from .coverage import check_coverage_args

    check_coverage_args(args)


def embed(args: argparse.Namespace, dataset: Any) -> tuple[np.ndarray, str]:
    """The vectors of every row (through the cache when asked) and their identity."""
    from ..embedding import embed_dataset

    t0 = time.perf_counter()
    source = embedder_from_args(args)
    X = embed_dataset(
        source,
        dataset,
        text=args.embed_text,
        format=format_arg(args),
        cache_dir=args.embed_cache,
        owner=f"--selector {args.selector}",
    )
    info(
        f"embedded {X.shape[0]:,} rows -> {X.shape[1]} dims in {time.perf_counter() - t0:.1f}s",
        args.quiet,
    )
    return X, source.identity


def embedding_selector(args: argparse.Namespace, embedder: Any):
    """The DiversitySelector, KCenterSelector or RepresentationFilter the options ask for."""
    from ..selectors import DiversitySelector, KCenterSelector, RepresentationFilter
    from .coverage import COVERAGE_SELECTORS, coverage_selector

    if args.selector in COVERAGE_SELECTORS:
        return coverage_selector(args, embedder)
    if args.selector == "diversity":
        return DiversitySelector(
            embedder,
            args.k,
            text=args.embed_text,
            n_clusters=args.n_clusters,
            allocation=args.allocation,
            within=args.within,
            kmeans_backend=args.kmeans_backend,
            random_state=args.seed,
            show_progress=not args.quiet,
        )
    if args.selector == "kcenter":
        return KCenterSelector(
            embedder,
            args.k,
            metric=args.metric,
            text=args.embed_text,
            random_state=args.seed,
            show_progress=not args.quiet,
        )
    order: Any = None
    if args.order == "length":
        order = length_scorer(args).clone(k=1.0)
    elif args.order == "score":
        order = args.score_column
    return RepresentationFilter(
        embedder,
        args.k,
        max_similarity=args.max_similarity,
        order=order,
        text=args.embed_text,
        show_progress=not args.quiet,
    )


def plot_title(args: argparse.Namespace, X: np.ndarray) -> str:
    """The title of the PCA picture."""
    what = {
        "diversity": f"K-means, {args.n_clusters} clusters",
        "kcenter": f"k-center greedy ({args.metric})",
        "repr-filter": f"representation filter (similarity < {args.max_similarity})",
    }[args.selector]
    return f"{Path(args.input).name}: {X.shape[0]:,} rows, {what}"
