"""The deduplication options of ``sftselect select``: ``--selector exact-dedup``,
``minhash`` or ``semdedup``, ``--dedup NAME`` in front of any other selector,
and ``--report`` (the number of groups and the ten largest).

``--dedup minhash --selector length -k 1000`` runs ``Chain(MinHashDedup(...),
LengthSelector(1000))``. With ``--engine ray``, ``exact-dedup`` and ``minhash``
(alone or with ``--dedup`` in front of a selector that runs on Ray) run on the
cluster (:func:`dedup_on_ray`, :mod:`sftselect.distributed.dedup`) and write
the same files as one machine. In front of an embedding selector (diversity, kcenter,
repr-filter) the rows are embedded once: a SemDeDup stage uses every row's
vector, the selector after it the vectors of the rows kept. The removed rows go
beside the output as ``OUTPUT.removed.csv`` (:mod:`sftselect.core.row_tables`).
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from ._common import CliError, format_arg, info

__all__ = [
    "DEDUP_SELECTORS",
    "add_dedup_options",
    "build_with_dedup",
    "check_dedup_args",
    "dedup_on_ray",
    "dedup_report",
    "rename_deprecated_selector",
]

DEDUP_SELECTORS = ("exact-dedup", "minhash", "semdedup")


def add_dedup_options(p: argparse.ArgumentParser) -> None:
    """The deduplication options (``--selector exact-dedup|minhash|semdedup``, ``--dedup``)."""
    g = p.add_argument_group("deduplication (--selector exact-dedup, minhash, semdedup; --dedup)")
    g.add_argument(
        "--dedup",
        choices=DEDUP_SELECTORS,
        default=None,
        help="deduplicate first, then run --selector on the rows kept",
    )
    g.add_argument(
        "--fields",
        default=None,
        help="what is compared: comma-separated instruction, input, response, conversation "
        "or column names (default: the whole example)",
    )
    g.add_argument(
        "--threshold", type=float, default=0.7, help="minhash: shingle Jaccard (default 0.7)"
    )
    g.add_argument("--ngram", type=int, default=5, help="minhash: words per shingle")
    g.add_argument("--num-perm", type=int, default=128, help="minhash: permutations")
    g.add_argument(
        "--eps",
        type=float,
        default=0.01,
        help="semdedup: remove a row whose cosine similarity exceeds 1 - eps (default 0.01)",
    )
    g.add_argument(
        "--keep",
        default=None,
        help="which row of a group is kept: first (default), longest, random, a numeric "
        "column (highest); semdedup also hard (default), easy",
    )
    g.add_argument(
        "--report",
        action="store_true",
        help="print the number of duplicate groups and the ten largest",
    )


def rename_deprecated_selector(args: argparse.Namespace) -> None:
    """``--selector dedup`` (DEITA's representation filter) is now ``repr-filter``: warn, rename."""
    if args.selector == "dedup":
        warnings.warn(
            "--selector dedup is deprecated and will be removed in the next release: it is "
            "DEITA's representation filter, now --selector repr-filter (for deduplication "
            "see exact-dedup, minhash, semdedup)",
            FutureWarning,  # shown to command-line users (a DeprecationWarning is hidden)
            stacklevel=3,
        )
        args.selector = "repr-filter"


def check_dedup_args(args: argparse.Namespace) -> None:
    """One-line errors for deduplication options that cannot work."""
    if args.engine == "ray":
        from .embedding import EMBED_SELECTORS

        if "semdedup" in (args.selector, args.dedup):
            raise CliError(
                "--engine ray runs exact-dedup and minhash; semdedup runs on this machine "
                "(drop --engine ray)"
            )
        if args.dedup is not None and args.selector in EMBED_SELECTORS:
            raise CliError(
                f"--engine ray runs --dedup {args.dedup} in front of the length, random, "
                f"column and quality selectors; --selector {args.selector} after --dedup "
                "runs on this machine (drop --engine ray)"
            )
    if getattr(args, "dry_run", False):
        raise CliError("--dry-run estimates a judge's cost; drop --dedup to use it")
    if args.dedup is not None and args.cluster_column is not None:
        raise CliError("--cluster-column is written without --dedup only")
    uses_semdedup = "semdedup" in (args.selector, args.dedup)
    if uses_semdedup and (args.embed_model is None) == (args.embed_column is None):
        raise CliError("semdedup needs --embed-model or --embed-column (one)")
    if args.keep in ("hard", "easy") and not uses_semdedup:
        raise CliError(f"--keep {args.keep} is a semdedup rule; use first, longest or random")


def _dedup(args: argparse.Namespace, name: str, embedder: Any = None):
    from ..selectors.dedup import ExactDedup, MinHashDedup, SemDeDup

    k = args.k if args.selector == name else None
    if name == "exact-dedup":
        return ExactDedup(
            k,
            fields=args.fields,
            keep=args.keep or "first",
            format=format_arg(args),
            random_state=args.seed,
        )
    if name == "minhash":
        return MinHashDedup(
            k,
            fields=args.fields,
            threshold=args.threshold,
            ngram=args.ngram,
            num_perm=args.num_perm,
            keep=args.keep or "first",
            num_proc=args.num_proc,
            format=format_arg(args),
            random_state=args.seed,
            show_progress=not args.quiet,
        )
    return SemDeDup(
        embedder,
        k,
        eps=args.eps,
        n_clusters=args.n_clusters,
        keep=args.keep or "hard",
        text=args.embed_text,
        kmeans_backend=args.kmeans_backend,
        format=format_arg(args),
        random_state=args.seed,
    )


def dedup_on_ray(args: argparse.Namespace, main: Callable[[], Any]) -> Any:
    """The selector ``select --engine ray`` runs: ``--selector exact-dedup|minhash`` alone
    (after ``--dedup`` when both are given), or ``Chain(dedup, main())``. Nothing is
    embedded (:func:`check_dedup_args` refused semdedup and the embedding selectors)."""
    from ..core.compose import Chain

    first = _dedup(args, args.dedup) if args.dedup else None
    last = _dedup(args, args.selector) if args.selector in DEDUP_SELECTORS else main()
    return last if first is None else Chain(first, last)


def build_with_dedup(
    args: argparse.Namespace,
    dataset: Any,
    main: Callable[[], Any],
    embedded_main: Callable[[Any], Any],
    embed: Callable[[Any], tuple[Any, str]],
) -> tuple[Any, Any]:
    """The selector ``select`` runs when deduplication is asked, and the vectors of every
    row when some were computed (for ``--plot``), else None.

    ``main()`` builds a selector that needs no embedding, ``embedded_main(embedder)``
    one that does, and ``embed(dataset)`` gives ``(vectors, identity)``.
    """
    from ..core.compose import Chain
    from ..embedding import PrecomputedEmbeddings
    from .embedding import EMBED_SELECTORS

    X = identity = None
    if "semdedup" in (args.selector, args.dedup) or args.selector in EMBED_SELECTORS:
        X, identity = embed(dataset)
    every_row = None if X is None else PrecomputedEmbeddings(X, identity=identity)
    if args.selector in DEDUP_SELECTORS:
        first = _dedup(args, args.dedup, every_row) if args.dedup else None
        last = _dedup(args, args.selector, every_row if first is None else None)
        if first is not None and args.selector == "semdedup":
            kept = first.select_indices(dataset)
            last = last.set_params(embedder=PrecomputedEmbeddings(X[kept], identity=identity))
        return (last if first is None else Chain(first, last)), X
    first = _dedup(args, args.dedup, every_row)
    if args.selector not in EMBED_SELECTORS:
        return Chain(first, main()), X
    kept = first.select_indices(dataset)  # the rows the embedding selector will see
    info(f"--dedup {args.dedup}: {len(kept):,} of {len(dataset):,} rows kept", args.quiet)
    second = embedded_main(PrecomputedEmbeddings(X[kept], identity=identity))
    return Chain(first, second), X


def _reports(extra: Mapping[str, Any], where: str) -> list[tuple[str, Mapping[str, Any]]]:
    found = []
    if "largest_groups" in extra:
        found.append((where, extra))
    for i, stage in enumerate(extra.get("stages", ()) or ()):
        details = stage.get("details", {})
        found += _reports(details, f"stage {i} ({stage.get('selector')})")
    return found


def dedup_report(extra: Mapping[str, Any]) -> list[str]:
    """Lines describing each deduplication in a selection's ``extra``: rows kept and
    removed, groups, and the ten largest groups (kept row, size)."""
    lines = []
    for where, d in _reports(extra, "deduplication"):
        lines.append(
            f"{where}: {d['rows']:,} rows, {d['kept']:,} kept, {d['removed']:,} removed "
            f"in {d['groups']:,} groups of duplicates"
        )
        for g in d["largest_groups"]:
            lines.append(f"  group {g['group']}: {g['size']} rows, kept row {g['kept']}")
    return lines
