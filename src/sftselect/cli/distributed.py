"""``sftselect select --engine ray [--address ADDR]``: the same selection on Ray.

Wired into ``select`` by :mod:`sftselect.cli.selection`: :func:`add_engine_options`
adds the options, and :func:`run_on_ray` replaces the single-machine run when
``--engine ray`` is given. Parquet and JSON Lines inputs are read in parallel
by the cluster (:func:`sftselect.distributed.read`); the output and its
provenance file are those of a single-machine run, with an ``engine`` entry
saying what ran where, and the per-row tables (``OUTPUT.removed.csv`` of a
deduplication) beside them. Ray is imported only when ``--engine ray`` runs.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

from ..core.provenance import provenance_path
from ._common import CliError, info, rating_line, refuse_overwriting_inputs, stamp_record

__all__ = ["ENGINES", "add_engine_options", "check_engine_options", "run_on_ray"]

ENGINES = ("local", "ray")


def add_engine_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add ``--engine``, ``--address`` and ``--workers`` to a subcommand's parser."""
    g = parser.add_argument_group("engine")
    g.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="where to run: this process (local, default) or a Ray cluster (ray; "
        "the length, random, column, quality and model-scored selectors, and the "
        "embedding selectors diversity, kcenter, facility-location, targeted, repr-filter; "
        'needs pip install "sftselect[ray]")',
    )
    g.add_argument(
        "--address",
        default=None,
        help="--engine ray: the cluster's address (auto, HOST:6379 or ray://HOST:10001; "
        "default: start a local Ray instance)",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=None,
        help="--engine ray: concurrent workers (rating and embedding actors, default 2; "
        "length tasks, default: as many as Ray schedules)",
    )
    g.add_argument(
        "--num-gpus",
        type=float,
        default=0.0,
        help="--engine ray, --selector diversity, kcenter, facility-location, targeted, ifd, "
        "superfiltering, perplexity, deita, reward: GPUs each embedding or scoring actor "
        "reserves (default 0: the actors run on CPUs, Ray hides the GPUs from them; 1: one "
        "model on each GPU)",
    )
    return g


def run_on_ray(args: argparse.Namespace, selector: Any) -> int:
    """Run ``selector`` on Ray for ``sftselect select`` and write the output; the exit status.

    Expects the ``select`` options (``input``, ``output``, ``split``, ``quiet``,
    and ``dry_run`` when the judge options are present) and those of
    :func:`add_engine_options`.
    """
    from ..core.row_tables import row_table_path, write_row_tables
    from ..distributed import connect, read, run
    from .dedup import dedup_report

    output = Path(args.output)
    refuse_overwriting_inputs(
        {"INPUT": args.input},
        [
            ("-o", "the output", output),
            ("-o", "the provenance record", provenance_path(output)),
            ("-o", "the removed-rows table", row_table_path(output, "removed")),
            ("-o", "the per-row table", row_table_path(output, "rows")),
        ],
    )
    if getattr(args, "dry_run", False):
        raise CliError("--dry-run counts requests on this machine; drop --engine ray")
    if args.workers is not None and args.workers <= 0:
        raise CliError(f"--workers must be a positive int; got {args.workers}")
    started = connect(args.address)
    try:
        t0 = time.perf_counter()
        dataset = read(args.input, split=getattr(args, "split", "train"))
        result = run(
            selector,
            dataset,
            workers=args.workers,
            num_gpus=getattr(args, "num_gpus", 0.0),
            show_progress=not args.quiet,
        )
        elapsed = time.perf_counter() - t0
        record = stamp_record(result.provenance(), args, output, elapsed)
        result.write(output, provenance=record)
        tables = write_row_tables(result.extra, output)
    finally:
        if started:
            import ray

            ray.shutdown()
    for path in tables:
        info(f"per-row details: {path}", args.quiet)
    if getattr(args, "report", False):
        print("\n".join(dedup_report(result.extra)) or "no deduplication in this run")
    if "rating" in result.extra:
        info("judge: " + rating_line(result.extra["rating"]), args.quiet)
    prov_path = provenance_path(output)
    info(
        f"selected {result.indices.size:,} of {result.selection.n_input:,} rows in "
        f"{elapsed:.1f}s -> {output} (provenance: {prov_path})",
        args.quiet,
    )
    info(result.summary.describe(), args.quiet)
    return 0


def check_engine_options(args: argparse.Namespace) -> None:
    """``--num-gpus``, ``--workers`` and ``--address``: only with ``--engine ray``;
    ``--local-judge`` not with it;
    ``--num-gpus`` a finite number >= 0, and given when
    ``--device cuda`` asks for a GPU on Ray (Ray hides the GPUs from an actor that reserves
    none: it would fail there)."""
    gpus = getattr(args, "num_gpus", 0.0)
    if gpus and args.engine != "ray":
        raise CliError("--num-gpus reserves GPUs for Ray's actors; it needs --engine ray")
    if args.engine != "ray":
        for flag, value in (("--workers", args.workers), ("--address", args.address)):
            if value is not None:
                raise CliError(f"{flag} applies to --engine ray; add --engine ray or drop {flag}")
        return
    if not (math.isfinite(gpus) and gpus >= 0):
        raise CliError(f"--num-gpus must be a number >= 0; got {gpus}")
    if getattr(args, "local_judge", None) is not None:
        raise CliError(
            "--local-judge runs the judge in this process; with --engine ray each actor "
            "would load its own copy of the model on a CPU (Ray hides the GPUs): drop "
            "--engine ray, or serve the model and give its endpoint with --base-url"
        )
    device = getattr(args, "device", None) or ""
    if device.startswith("cuda") and gpus == 0:
        raise CliError(
            f"--device {device} with --engine ray needs --num-gpus (the GPUs each "
            "actor reserves; Ray hides the GPUs from actors that reserve none): "
            "add --num-gpus 1, or drop --device to run on the actors' CPUs"
        )
