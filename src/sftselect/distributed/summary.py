"""What ran where: the stages of a distributed selection and their timings."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from .engine import ClusterInfo

__all__ = ["RunSummary", "Stage"]


@dataclass(frozen=True)
class Stage:
    """One stage: its name, where it ran, and how long it took."""

    name: str
    where: str
    seconds: float
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "where": self.where,
            "seconds": round(self.seconds, 3),
            "detail": self.detail,
        }


@dataclass
class RunSummary:
    """The cluster a selection ran on and its stages, in order.

    ``echo`` prints each stage to stderr as it ends (the progress lines of
    ``show_progress=True``).
    """

    cluster: ClusterInfo
    stages: list[Stage] = field(default_factory=list)
    echo: bool = False

    def add(self, name: str, where: str, seconds: float, detail: str = "") -> None:
        stage = Stage(name, where, seconds, detail)
        self.stages.append(stage)
        if self.echo:
            print(f"[sftselect on ray] {_line(stage)}", file=sys.stderr, flush=True)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    def as_dict(self) -> dict[str, Any]:
        return {
            "engine": "ray",
            "cluster": self.cluster.as_dict(),
            "stages": [s.as_dict() for s in self.stages],
            "seconds": round(self.seconds, 3),
        }

    def describe(self) -> str:
        """A few lines: the cluster, then one line per stage."""
        head = f"ray: {self.cluster.describe()}, {self.seconds:.1f}s in all"
        return "\n".join([head, *(f"  {_line(s)}" for s in self.stages)])


def _line(stage: Stage) -> str:
    detail = f"; {stage.detail}" if stage.detail else ""
    return f"{stage.name}: {stage.seconds:.2f}s on {stage.where}{detail}"
