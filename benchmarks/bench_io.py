"""Benchmark ``load_data`` on a large JSON Lines file: peak memory and wall time.

Run from the repository root::

    python benchmarks/bench_io.py                      # 500,000 rows (about 30 s)
    python benchmarks/bench_io.py --rows 50000 --keep-file
    python benchmarks/bench_io.py --chunk-size 50000   # records per chunk (default: load_data's)

The file (built untimed): the real Alpaca-format records of ``--pool``/*.json
(as they are, Dolly's ``category`` field included), or the bundled 2,000-record
sample (``sftselect.load_sample()``) when that folder is absent, repeated and
shuffled (seed 0) to ``--rows`` rows, one ``json.dumps(record,
ensure_ascii=False)`` a line (what ``save_data`` writes), in a temporary folder
(removed at the end unless ``--keep-file``).

Each method loads it once in its own fresh subprocess, so that its peak RSS is
its own: the child imports everything first, resets its resident-set
high-water mark (``/proc/self/clear_refs``; where the kernel does not allow
that, RSS is polled every 5 ms), then loads the file:

(a) **previous** -- the loader ``load_data`` had before (copied below):
    ``read_text``, ``json.loads`` of every line, column lists over the union of
    the fields, one ``Dataset.from_dict``. The baseline.
(b) **load_data** -- ``sftselect.load_data(path)``: records parsed and turned
    into Arrow a chunk at a time (``--chunk-size`` calls the same loader with
    that many records per chunk).
(c) **datasets.load_dataset** -- ``load_dataset("json", data_files=path)``,
    with its cache folder in a temporary folder, for reference (it writes an
    Arrow file and memory-maps it).

Peak extra memory = peak RSS minus the RSS of the interpreter with its imports,
just before the load. Targets for (b) against (a), measured in the same run:
peak extra memory at most 0.5x, wall time at most 1.2x. (a) and (b) must give
the same dataset: the same features and number of rows, the same SHA-256 of
the Arrow data (``sftselect.core.provenance.content_sha256``: schema and values,
whatever the chunking) and the same ``to_list()`` of 500 sampled rows (exit
status 1 if not; otherwise 0 whatever the figures).
"""

from __future__ import annotations

import argparse
import gc
import glob
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _memory import RssSampler, reset_peak, vm

DEFAULT_POOL = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca_pool")
METHODS = {
    "previous": "(a) previous (json.loads all + from_dict)",
    "load_data": "(b) load_data (chunked)",
    "load_dataset": "(c) datasets.load_dataset('json')",
}
MEMORY_TARGET = 0.5
TIME_TARGET = 1.2
SAMPLE_ROWS = 500


# -- the baseline: load_data's JSON Lines path before the chunked loader -----------------------
def previous_load_jsonl(path: Path) -> Any:
    """What ``load_data`` did for ``.jsonl`` before: every record parsed, then one
    ``Dataset.from_dict`` over the union of the fields (error reporting left out:
    the file is valid)."""
    from datasets import Dataset

    text = path.read_text(encoding="utf-8")
    records = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        rec = json.loads(line)
        if not isinstance(rec, dict):
            raise ValueError(f"{path}:{lineno}: not an object")
        records.append(rec)
    names: dict[str, None] = {}
    for rec in records:
        if len(rec) != len(names) or any(name not in names for name in rec):
            names.update(dict.fromkeys(rec))
    columns = {name: [rec.get(name) for rec in records] for name in names}
    return Dataset.from_dict(columns)


# -- data ----------------------------------------------------------------------------------------
def load_records(pool_dir: str) -> tuple[list[dict[str, Any]], str]:
    """Real Alpaca-format records from ``pool_dir``/*.json, else the bundled sample."""
    files = sorted(glob.glob(os.path.join(pool_dir, "*.json")))
    records: list[dict[str, Any]] = []
    for name in files:
        with open(name, encoding="utf-8") as fh:
            records.extend(rec for rec in json.load(fh) if isinstance(rec, dict))
    if records:
        names = ", ".join(os.path.basename(p) for p in files)
        return records, f"{len(records):,} records from {pool_dir} ({names})"
    import sftselect

    records = sftselect.load_sample().to_list()
    return records, f"{len(records):,} records from the bundled sample (no {pool_dir})"


def write_jsonl(records: list[dict[str, Any]], rows: int, seed: int, path: Path) -> None:
    """``rows`` records: the pool repeated to that count, shuffled with ``seed``."""
    order = [i % len(records) for i in range(rows)]
    random.Random(seed).shuffle(order)
    lines = [json.dumps(rec, ensure_ascii=False) for rec in records]
    with open(path, "w", encoding="utf-8") as fh:
        for i in order:
            fh.write(lines[i])
            fh.write("\n")


# -- measuring, in the child ---------------------------------------------------------------------
def child(args: argparse.Namespace) -> None:
    """Load the file once with ``args.method`` and print a JSON line of figures."""
    import resource

    import datasets
    import pyarrow  # noqa: F401  (imported before the baseline RSS, as the loaders use it)

    import sftselect
    from sftselect.core.provenance import content_sha256
    from sftselect.data.io import _load_json_file

    path = Path(args.path)
    datasets.disable_progress_bars()
    cache = tempfile.mkdtemp(prefix="bench_io_cache_")
    if args.method == "previous":
        load = lambda: previous_load_jsonl(path)  # noqa: E731
    elif args.method == "load_data" and args.chunk_size:
        load = lambda: _load_json_file(path, jsonl=True, chunk_rows=args.chunk_size)  # noqa: E731
    elif args.method == "load_data":
        load = lambda: sftselect.load_data(path)  # noqa: E731
    else:
        load = lambda: datasets.load_dataset(  # noqa: E731
            "json", data_files=str(path), split="train", cache_dir=cache
        )
    gc.collect()
    base = vm("VmRSS")
    hwm_reset = reset_peak()
    t0 = time.perf_counter()
    c0 = time.process_time()
    with RssSampler() as sampler:
        ds = load()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    hwm = max(vm("VmHWM"), sampler.peak) if hwm_reset else sampler.peak
    after = vm("VmRSS")
    # Checks, after the measurement.
    n = ds.num_rows
    idx = sorted({0, n - 1, *random.Random(1).sample(range(n), min(SAMPLE_ROWS, n))})
    result = {
        "method": args.method,
        "seconds": wall,
        "cpu_seconds": cpu,
        "rss_before": base,
        "peak_rss": hwm,
        "peak_extra": hwm - base,
        "rss_after": after,
        "peak_source": "VmHWM" if hwm_reset else "VmRSS polled every 5 ms",
        "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "num_rows": n,
        "column_names": ds.column_names,
        "features": ds.features.to_dict(),
        "arrow_bytes": ds.data.nbytes,
        "chunks": ds.data.table.column(0).num_chunks if ds.num_columns else 0,
        "content_sha256": content_sha256(ds),
        "sample": ds.select(idx).to_list(),
    }
    del ds
    shutil.rmtree(cache, ignore_errors=True)
    print(json.dumps(result, ensure_ascii=False))


def run_method(args: argparse.Namespace, method: str, path: Path) -> dict[str, Any] | None:
    cmd = [sys.executable, __file__, "--child", method, "--path", str(path)]
    if args.chunk_size:
        cmd += ["--chunk-size", str(args.chunk_size)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        print(f"  {method}: failed ({tail})")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def mib(n: float) -> str:
    return f"{n / (1 << 20):,.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument(
        "--chunk-size", type=int, default=None, help="records per chunk (default: load_data's)"
    )
    ap.add_argument("--keep-file", action="store_true", help="keep the JSONL file (path printed)")
    ap.add_argument("--pool", default=DEFAULT_POOL, help="folder of Alpaca-format *.json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", choices=list(METHODS), help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.method = args.child
        child(args)
        return

    import datasets
    import pyarrow

    from sftselect.data.io import _CHUNK_CHARS, _CHUNK_ROWS

    records, source = load_records(args.pool)
    folder = Path(tempfile.mkdtemp(prefix="bench_io_"))
    path = folder / "pool.jsonl"
    t0 = time.perf_counter()
    write_jsonl(records, args.rows, args.seed, path)
    del records
    size = path.stat().st_size
    print(f"data: {source}; {args.rows:,} rows repeated and shuffled (seed {args.seed})")
    print(f"file: {path}, {mib(size)} MiB, written in {time.perf_counter() - t0:.1f} s (untimed)")
    chunk = args.chunk_size or _CHUNK_ROWS
    print(
        f"chunk: {chunk:,} records or {_CHUNK_CHARS:,} characters of JSON, whichever first"
        f"{'' if args.chunk_size else ' (load_data default)'}"
    )
    print(
        f"Python {platform.python_version()}, pyarrow {pyarrow.__version__}, "
        f"datasets {datasets.__version__}, {os.cpu_count()} CPUs"
    )
    loads = [os.getloadavg()[0]]
    results: dict[str, dict[str, Any]] = {}
    try:
        for method in METHODS:
            res = run_method(args, method, path)
            loads.append(os.getloadavg()[0])
            if res is not None:
                results[method] = res
    finally:
        if args.keep_file:
            print(f"kept {path}")
        else:
            shutil.rmtree(folder, ignore_errors=True)

    base = results.get("previous")
    print()
    print(
        "| method | wall s | CPU s | peak RSS MiB | peak extra MiB | extra vs (a) | wall vs (a) |"
    )
    print("|---|---|---|---|---|---|---|")
    for method, label in METHODS.items():
        res = results.get(method)
        if res is None:
            print(f"| {label} | failed | | | | | |")
            continue
        ratios = ("", "")
        if base is not None:
            ratios = (
                f"{res['peak_extra'] / base['peak_extra']:.2f}x",
                f"{res['seconds'] / base['seconds']:.2f}x",
            )
        print(
            f"| {label} | {res['seconds']:.2f} | {res['cpu_seconds']:.2f} | "
            f"{mib(res['peak_rss'])} | {mib(res['peak_extra'])} | {ratios[0]} | {ratios[1]} |"
        )
    any_res = next(iter(results.values()), None)
    if any_res is not None:
        print(
            f"\nbaseline RSS (interpreter + imports) {mib(any_res['rss_before'])} MiB; "
            f"peak from {any_res['peak_source']}; file {mib(size)} MiB"
        )
    for method, res in results.items():
        print(
            f"  {method}: {res['num_rows']:,} rows, {len(res['column_names'])} columns "
            f"{res['column_names']}, Arrow data {mib(res['arrow_bytes'])} MiB in "
            f"{res['chunks']} chunk(s) per column"
        )
    print(f"1-minute load average: {', '.join(f'{x:.2f}' for x in loads)} (start, after each)")

    ok = True
    new = results.get("load_data")
    if base is None or new is None:
        print("FAIL: (a) or (b) did not run")
        sys.exit(1)
    checks = {
        "features": base["features"] == new["features"],
        "column order": base["column_names"] == new["column_names"],
        "num_rows": base["num_rows"] == new["num_rows"],
        "content SHA-256 (schema and every value)": base["content_sha256"] == new["content_sha256"],
        f"to_list() of {len(base['sample'])} sampled rows": base["sample"] == new["sample"],
    }
    for name, same in checks.items():
        print(f"(a) and (b) same {name}: {'yes' if same else 'NO'}")
        ok &= same
    ref = results.get("load_dataset")
    if ref is not None:
        same = ref["content_sha256"] == base["content_sha256"]
        print(
            f"(c) same as (a): features {'yes' if ref['features'] == base['features'] else 'no'}, "
            f"content {'yes' if same else 'no'} (reference only)"
        )
    mem = new["peak_extra"] / base["peak_extra"]
    wall = new["seconds"] / base["seconds"]
    print(
        f"peak extra memory (b)/(a) = {mem:.2f}x (target <= {MEMORY_TARGET}x): "
        f"{'PASS' if mem <= MEMORY_TARGET else 'FAIL'}"
    )
    print(
        f"wall time (b)/(a) = {wall:.2f}x (target <= {TIME_TARGET}x): "
        f"{'PASS' if wall <= TIME_TARGET else 'FAIL'}"
    )
    print(f"identical datasets: {'PASS' if ok else 'FAIL'}")
    if max(loads) > 1.0:
        print("note: other processes were using the CPUs (load average above 1 on 2 cores)")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
