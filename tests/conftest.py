"""Shared fixtures: the real data beside the checkout, and small datasets."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from datasets import Dataset

sys.path.insert(0, str(Path(__file__).parent))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def require_shared_data() -> Path:
    """The shared real-data folder, or skip with the reason."""
    if not (SHARED_DATA / "paper" / "filtered_alpaca_1k_longest.json").exists():
        pytest.skip(f"real data not found at {SHARED_DATA} (../shared/data beside the checkout)")
    return SHARED_DATA


@pytest.fixture
def shared_data() -> Path:
    return require_shared_data()


@pytest.fixture
def small_alpaca() -> Dataset:
    rows = [
        {
            "instruction": f"Question {i}?",
            "input": "",
            "output": " ".join(["word"] * (i % 7 + 1)),
            "source": ["flan", "dolly", "sharegpt"][i % 3],
            "score": float(i % 5),
        }
        for i in range(30)
    ]
    return Dataset.from_list(rows)


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path
