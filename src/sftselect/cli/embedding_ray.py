"""``sftselect select --selector diversity|kcenter|facility-location|targeted|repr-filter
--engine ray``: the embedding selectors on a Ray cluster.

The selector is the one the options describe (:func:`described_selector`): it holds
the embedder itself (``--embed-model`` as an ``HFEmbedder``, or ``--embed-column``
as ``PrecomputedEmbeddings`` naming the column), the ``--format`` and the
``--embed-cache`` folder, and :func:`sftselect.distributed.run` sends it to the
embedding actors, which embed their blocks through that cache; the global step
(K-means and the allocation, the k-center or facility-location greedy, the
round robin over target tasks) runs on the driver. One machine records the same
selector parameters (it embeds once in the command line and hands the vectors
over), so the two provenance records agree but for the input's in-memory
fingerprint and content hash (not computed on the cluster), ``seconds``,
``engine`` (what ran where) and, for diversity, ``kmeans_sample_rows``.

The output rows, ``OUTPUT.rows.csv`` (diversity's cluster labels),
``--cluster-column`` and ``--plot`` are those of one machine. The picture needs
every row's vector on the driver: the rows are embedded a second time on the
cluster for it (with ``--embed-cache`` that pass reads the cache).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ._common import CliError, embedder_from_args, format_arg, info, stamp_record

__all__ = ["described_selector", "run_embedded_on_ray"]


def _cache_dir(args: argparse.Namespace) -> str | None:
    """``--embed-cache`` as an absolute path (a Ray worker's folder may not be ours)."""
    return None if args.embed_cache is None else str(Path(args.embed_cache).resolve())


def described_selector(args: argparse.Namespace) -> Any:
    """The selector the embedding options describe, holding the embedder itself (not
    vectors), the data format and the embedding cache folder: what runs on Ray, and
    what the provenance of either engine records."""
    from .embedding import embedding_selector

    selector = embedding_selector(args, embedder_from_args(args))
    return selector.set_params(format=format_arg(args), cache_dir=_cache_dir(args))


def run_embedded_on_ray(args: argparse.Namespace) -> int:
    """Run the embedding selector ``args`` describe on Ray and write what one machine
    writes; the exit status. The options were checked (``check_embed_args``) and the
    output paths refused when they would overwrite an input."""
    from ..distributed import connect, read, run

    if args.workers is not None and args.workers <= 0:
        raise CliError(f"--workers must be a positive int; got {args.workers}")
    selector = described_selector(args)
    started = connect(args.address)
    try:
        t0 = time.perf_counter()
        dataset = read(args.input, split=args.split)
        result = run(
            selector,
            dataset,
            workers=args.workers,
            num_gpus=args.num_gpus,
            show_progress=not args.quiet,
        )
        elapsed = time.perf_counter() - t0
        X = _plot_vectors(args, selector, result) if args.plot else None
        _write(args, selector, result, elapsed, X)  # the rows are read from the cluster
    finally:
        if started:
            import ray

            ray.shutdown()
    info(result.summary.describe(), args.quiet)
    return 0


def _plot_vectors(args: argparse.Namespace, selector: Any, result: Any) -> Any:
    """Every row's vector for ``--plot``, embedded on the cluster: the embedder's own
    vectors, as one machine plots them (the ``text`` field under the selector's
    ``embedder``, ``format`` and ``cache_dir``), whatever the selector adds to them
    (facility location's weights column) and whether or not it embeds on the cluster
    itself (``repr-filter`` ranks the gathered rows on the driver)."""
    from ..distributed.diversity import gather_vectors
    from ..selectors import KCenterSelector

    if result.selection.n_input == 0:
        return None
    t0 = time.perf_counter()
    rows = KCenterSelector(  # its embed() is exactly those vectors (selectors/embedded.py)
        selector.embedder,
        1,
        text=selector.text,
        format=selector.format,
        cache_dir=selector.cache_dir,
    )
    X = gather_vectors(rows, result.dataset, workers=args.workers, num_gpus=args.num_gpus)
    info(
        f"embedded {X.shape[0]:,} rows again for --plot in {time.perf_counter() - t0:.1f}s",
        args.quiet,
    )
    return X


def _write(args: argparse.Namespace, selector: Any, result: Any, elapsed: float, X: Any) -> None:
    from datasets import Dataset

    from ..core.provenance import provenance_path, write_json_atomic
    from ..core.row_tables import write_row_tables
    from ..data.io import save_data
    from .coverage import COVERAGE_SELECTORS, coverage_plot
    from .embedding import plot_title
    from .plots import plot_embedding

    output = Path(args.output)
    subset = Dataset(result.to_arrow())
    indices = result.indices
    labels = result.extra.get("labels")
    if args.selector == "diversity" and args.cluster_column is not None and labels is not None:
        if args.cluster_column in subset.column_names:
            raise CliError(f"--cluster-column {args.cluster_column!r} is already a column")
        subset = subset.add_column(args.cluster_column, labels[indices].tolist())
    record = result.provenance()
    stamp_record(record, args, output, elapsed)
    prov_path = provenance_path(output)
    save_data(subset, output)
    write_json_atomic(record, prov_path)
    for path in write_row_tables(result.extra, output):
        info(f"per-row details: {path}", args.quiet)
    if X is not None and args.selector in COVERAGE_SELECTORS:
        coverage_plot(args, selector, X, indices)
        info(f"plot: {args.plot}", args.quiet)
    elif X is not None:
        plot_embedding(X, labels, indices, Path(args.plot), plot_title(args, X))
        info(f"plot: {args.plot}", args.quiet)
    info(
        f"selected {len(subset):,} of {result.selection.n_input:,} rows in {elapsed:.1f}s "
        f"-> {output} (provenance: {prov_path})",
        args.quiet,
    )
