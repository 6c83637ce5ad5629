"""A small real sample bundled with the package, so examples run offline."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["SAMPLES", "load_sample", "sample_path"]

SAMPLES = {"alpaca_2k": "alpaca_sample_2k.jsonl"}


def sample_path(name: str = "alpaca_2k") -> Path:
    """Path of a bundled sample file (see ``data/LICENSE-DATA.md`` for its licence)."""
    if name not in SAMPLES:
        raise ValueError(f"Unknown sample {name!r}; bundled samples: {sorted(SAMPLES)}.")
    return Path(str(resources.files("sftselect") / "data" / SAMPLES[name]))


def load_sample(name: str = "alpaca_2k") -> Dataset:
    """2,000 real Alpaca records (CC BY-NC 4.0), as a ``datasets.Dataset``."""
    from .io import load_data

    return load_data(sample_path(name))
