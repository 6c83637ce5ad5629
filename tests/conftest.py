"""Shared fixtures: the real data beside the checkout, and small datasets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from datasets import Dataset

from tests.helpers.paths import SHARED_DATA, require_shared_data

# Ray on Linux binds a local instance to the machine's network address; the tests keep
# every connection on loopback (read by Ray when it is first imported, after this).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


# .ci/run's second pass runs the suite from a copy of the tree with no ../shared beside
# it and sets this, so that a path that still reaches the data some other way fails.
if os.environ.get("SFTSELECT_EXPECT_NO_SHARED_DATA") == "1" and SHARED_DATA.exists():
    raise pytest.UsageError(
        f"SFTSELECT_EXPECT_NO_SHARED_DATA=1 but {SHARED_DATA} exists: run from a copy of the tree"
    )


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
