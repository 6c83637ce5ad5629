"""Benchmark count_nltk_words against NLTK's own tokenizers, row by row.

Run from the repository root (with sftselect installed)::

    python benchmarks/bench_nltk_words.py
    python benchmarks/bench_nltk_words.py --data-dir /path/to/shared/data --repeats 5

The texts are the responses of the real Alpaca pool (``alpaca_pool/random_9k``,
``claude_t45``, ``helpfulness_t45``: ``output``) and of the paper's two Alpaca
files (``paper/filtered_alpaca_1k_longest``, ``filtered_alpaca_1k_score``: the
``gpt`` turn), de-duplicated as strings in order of first appearance.

In one run it times, best of ``--repeats`` with the three interleaved so that
background load hits them alike:

* the baseline: ``[len(reference_word_tokens(t)) for t in texts]``, i.e. NLTK's
  Punkt (English ``punkt_tab``) and ``NLTKWordTokenizer``, one process;
* ``count_nltk_words(texts, num_proc=1)``;
* ``count_nltk_words(texts, num_proc=2)`` (process start-up included);

checks that the three give identical counts on every text, and prints the times
and the speed-ups over the baseline (target: at least 3x). Exits 1 if any count
differs, else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sftselect.scoring.nltk_words import count_nltk_words, reference_word_tokens

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
POOL_FILES = ("random_9k", "claude_t45", "helpfulness_t45")
PAPER_FILES = ("filtered_alpaca_1k_longest", "filtered_alpaca_1k_score")
TARGET = 3.0


def load_responses(data_dir: Path) -> list[str]:
    """The distinct response strings of the pool and paper Alpaca files."""
    texts: dict[str, None] = {}
    for name in POOL_FILES:
        for record in json.loads((data_dir / "alpaca_pool" / f"{name}.json").read_text("utf-8")):
            texts.setdefault(record["output"], None)
    for name in PAPER_FILES:
        for record in json.loads((data_dir / "paper" / f"{name}.json").read_text("utf-8")):
            for turn in record["conversations"]:
                if turn["from"] == "gpt":
                    texts.setdefault(turn["value"], None)
    return list(texts)


def baseline(texts: list[str]) -> np.ndarray:
    """NLTK's tokenizers, row by row, in one process."""
    return np.array([len(reference_word_tokens(t)) for t in texts], dtype=np.int64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"the shared data directory (default: {DEFAULT_DATA_DIR})",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (default: 3)")
    args = parser.parse_args(argv)

    texts = load_responses(args.data_dir)
    print(
        f"{len(texts):,} distinct responses, {sum(map(len, texts)):,} characters ({args.data_dir})"
    )
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"nltk {__import__('nltk').__version__}"
    )

    # Build both tokenizers before timing (each is built once per process).
    start = time.perf_counter()
    reference_word_tokens("Warm up.")
    reference_build = time.perf_counter() - start
    start = time.perf_counter()
    count_nltk_words(["Warm up."])
    fast_build = time.perf_counter() - start
    print(f"one-off set-up: reference {reference_build:.3f} s, fast counter {fast_build:.3f} s")

    runs: dict[str, Callable[[], np.ndarray]] = {
        "baseline (NLTK row by row)": lambda: baseline(texts),
        "count_nltk_words(num_proc=1)": lambda: count_nltk_words(texts, num_proc=1),
        "count_nltk_words(num_proc=2)": lambda: count_nltk_words(texts, num_proc=2),
    }
    best = dict.fromkeys(runs, float("inf"))
    counts: dict[str, np.ndarray] = {}
    for repeat in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            result = run()
            elapsed = time.perf_counter() - start
            best[name] = min(best[name], elapsed)
            if name in counts and not np.array_equal(counts[name], result):
                print(f"FAIL: {name} gave different counts on repeat {repeat + 1}")
                return 1
            counts[name] = result

    reference = counts["baseline (NLTK row by row)"]
    identical = True
    for name, result in counts.items():
        differ = np.flatnonzero(result != reference)
        if differ.size:
            identical = False
            print(
                f"FAIL: {name} differs from the baseline on {differ.size} texts, e.g. {differ[:5]}"
            )

    base = best["baseline (NLTK row by row)"]
    print(f"\nbest of {args.repeats}:")
    for name, seconds in best.items():
        ratio = base / seconds
        verdict = (
            "" if name.startswith("baseline") else f"  {'PASS' if ratio >= TARGET else 'FAIL'}"
        )
        print(f"  {name:<30} {seconds:8.3f} s   {ratio:5.2f}x the baseline{verdict}")
    print(
        f"counts identical on all {len(texts):,} texts: {identical} (total {int(reference.sum()):,})"
    )
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
