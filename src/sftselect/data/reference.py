"""The paper's released subsets, and checks of a selection against them.

*Long Is More for Alignment* released its 1k subsets in FastChat format: the
human turn is the Alpaca prompt with the instruction (and input) inside, the
``gpt`` turn is the response, and ``id`` is ``identity_N`` with N the 0-based
index into ``alpaca_data.json``. These helpers turn such files back into Alpaca
records, rebuild the offline Alpaca pool used in the faithfulness test, and
count how many released records a selection reproduces.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import DataFormatError

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = [
    "PROMPT_NO_INPUT",
    "PROMPT_WITH_INPUT",
    "alpaca_from_fastchat",
    "build_alpaca_pool",
    "load_released",
    "record_key",
    "reproduced",
]

PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request. ### Instruction: "
)
PROMPT_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request. ### Instruction: "
)
_INPUT_MARK = " ### Input: "


def alpaca_from_fastchat(record: dict[str, Any], where: str = "record") -> dict[str, Any]:
    """One released FastChat record as ``{instruction, input, output, alpaca_index}``."""
    try:
        human, gpt = record["conversations"][0]["value"], record["conversations"][1]["value"]
    except (KeyError, IndexError, TypeError):
        raise DataFormatError(
            f"{where}: expected 'conversations' with a human and a gpt turn."
        ) from None
    if human.startswith(PROMPT_WITH_INPUT):
        body = human[len(PROMPT_WITH_INPUT) :]
        if _INPUT_MARK not in body:
            raise DataFormatError(
                f"{where}: the prompt announces an input but has no '### Input:'."
            )
        instruction, inp = body.split(_INPUT_MARK, 1)
    elif human.startswith(PROMPT_NO_INPUT):
        instruction, inp = human[len(PROMPT_NO_INPUT) :], ""
    else:
        raise DataFormatError(f"{where}: the human turn does not start with the Alpaca prompt.")
    rid = str(record.get("id", ""))
    index = int(rid.split("_", 1)[1]) if rid.startswith("identity_") else None
    return {"instruction": instruction, "input": inp, "output": gpt, "alpaca_index": index}


def load_released(path: str | os.PathLike[str]) -> Dataset:
    """A released FastChat subset (e.g. ``filtered_alpaca_1k_longest.json``) as Alpaca rows."""
    from datasets import Dataset

    records = json.loads(Path(path).read_text(encoding="utf-8"))
    rows = [alpaca_from_fastchat(r, f"{path}: record {i}") for i, r in enumerate(records)]
    return Dataset.from_list(rows)


def record_key(row: dict[str, Any]) -> tuple[str, str, str]:
    """The identity of an Alpaca record: (instruction, input, output)."""
    return (row["instruction"], row.get("input") or "", row["output"])


def build_alpaca_pool(data_dir: str | os.PathLike[str]) -> Dataset:
    """The offline Alpaca pool: the AlpaGasus pool files plus the paper's two Alpaca
    subsets, de-duplicated on (instruction, input, output) in order of first appearance.

    On the data beside this project (``shared/data``) this gives 16,437 records.
    """
    from datasets import Dataset

    data_dir = Path(data_dir)
    rows: list[dict[str, Any]] = []
    for name in ("random_9k", "claude_t45", "helpfulness_t45"):
        for r in json.loads(
            (data_dir / "alpaca_pool" / f"{name}.json").read_text(encoding="utf-8")
        ):
            rows.append(
                {"instruction": r["instruction"], "input": r["input"], "output": r["output"]}
            )
    for name in ("filtered_alpaca_1k_longest", "filtered_alpaca_1k_score"):
        for r in load_released(data_dir / "paper" / f"{name}.json").to_list():
            rows.append(
                {"instruction": r["instruction"], "input": r["input"], "output": r["output"]}
            )
    seen: set[tuple[str, str, str]] = set()
    unique = []
    for r in rows:
        key = record_key(r)
        if key not in seen:
            seen.add(key)
            unique.append(r)
    return Dataset.from_list(unique)


def reproduced(selected: Dataset | Iterable[dict[str, Any]], released: Dataset) -> int:
    """How many released records the selection contains (matched on the record's text)."""
    wanted = {record_key(r) for r in released}
    return sum(record_key(r) in wanted for r in selected)
