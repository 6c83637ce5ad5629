"""The data files bundled with the package (a real sample, so examples run offline)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..exceptions import InvalidParameterError

__all__ = ["SAMPLES", "sample_path"]

SAMPLES = {"alpaca_2k": "alpaca_sample_2k.jsonl"}


def sample_path(name: str = "alpaca_2k") -> Path:
    """Path of a bundled sample file (see ``data/LICENSE-DATA.md`` for its licence)."""
    if name not in SAMPLES:
        raise InvalidParameterError(f"Unknown sample {name!r}; bundled samples: {sorted(SAMPLES)}.")
    return Path(str(resources.files("sftselect") / "data" / SAMPLES[name]))
