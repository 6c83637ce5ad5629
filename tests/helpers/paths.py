"""Where the tests find things: the repository, the real data beside it, the fixtures."""

from __future__ import annotations

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
