"""A small real sample bundled with the package, so examples run offline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .bundled import SAMPLES, sample_path
from .io import load_data

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["SAMPLES", "load_sample", "sample_path"]


def load_sample(name: str = "alpaca_2k") -> Dataset:
    """2,000 real Alpaca records (CC BY-NC 4.0), as a ``datasets.Dataset``."""
    return load_data(sample_path(name))
