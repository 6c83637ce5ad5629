"""Count the exact and near duplicates of the shared Alpaca and Dolly pools (for the docs).

Run from the repository root (needs ../shared/data)::

    python benchmarks/count_duplicates.py

For each pool: rows; rows ExactDedup removes with no normalisation (byte-identical
instruction, input and output), with its default normalisation (NFKC, case
folding, whitespace), and on the instruction alone; rows MinHashDedup removes
(word 5-gram Jaccard >= 0.7 on the whole example, verified), and how many of
those are not exact duplicates after normalisation; and the largest group.
The numbers are what ``docs/selectors/dedup.md`` quotes.
"""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "alpaca_pool"

POOLS = {
    "alpaca_pool (random_9k + claude_t45 + helpfulness_t45)": [
        "random_9k",
        "claude_t45",
        "helpfulness_t45",
    ],
    "random_9k": ["random_9k"],
    "claude_t45": ["claude_t45"],
    "helpfulness_t45": ["helpfulness_t45"],
    "dolly_3k (Dolly)": ["dolly_3k"],
}


def main() -> None:
    from datasets import Dataset

    from sftselect import ExactDedup, MinHashDedup

    print(
        "| pool | rows | exact (raw) | exact (normalised) | same instruction | "
        "MinHash >= 0.7 | of which near only | largest group |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, files in POOLS.items():
        rows = []
        for f in files:
            for r in json.loads((DATA / f"{f}.json").read_text("utf-8")):
                rows.append({k: r.get(k, "") for k in ("instruction", "input", "output")})
        ds = Dataset.from_list(rows)
        raw = ExactDedup(nfkc=False, casefold=False, collapse_whitespace=False).run(ds)
        norm = ExactDedup().run(ds)
        instr = ExactDedup(fields="instruction").run(ds)
        near = MinHashDedup(threshold=0.7).run(ds)
        near_only = len(set(norm.indices.tolist()) - set(near.indices.tolist()))
        largest = near.extra["largest_groups"][0]["size"] if near.extra["largest_groups"] else 1
        print(
            f"| {name} | {len(ds):,} | {raw.extra['removed']:,} | {norm.extra['removed']:,} | "
            f"{instr.extra['removed']:,} | {near.extra['removed']:,} | {near_only:,} | {largest} |"
        )


if __name__ == "__main__":
    main()
