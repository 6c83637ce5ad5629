"""The result of a pairwise run: :class:`PairwiseResult`, and the JSON document it
saves (format :data:`RESULT_FORMAT`), which ``sftselect report`` reads."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._version import __version__
from ..backends.runner import RunReport
from ..core.provenance import write_json_atomic
from .inputs import Pairs
from .protocols import PairwiseProtocol
from .report import RESULT_FORMAT, markdown_table, plot_wtl

__all__ = ["RESULT_FORMAT", "PairwiseResult"]

#: The ``format`` tag of a saved result file.


@dataclass
class PairwiseResult:
    """Everything a pairwise run produced.

    Attributes
    ----------
    pairs : Pairs
        What was judged.
    protocol : PairwiseProtocol
    judge : str
        The backend's ``identity``.
    judgments : list of dict
        One record per pair: both raw replies, the parsed verdicts, scores and
        reasons per order, A's outcome per order and combined, and a ``status``
        (``"scored"``, ``"parse_failure"`` or ``"request_failure"``).
    summary : dict
        ``{"overall": ..., "by_testset": {...}}`` (:mod:`sftselect.evaluate.summary`).
    report : RunReport
        Requests, cache hits, sent, failures, tokens and seconds of the run.
    decoding : dict
        ``max_tokens``, ``temperature``, ``top_p`` as sent.
    bootstrap : dict
        ``n_resamples``, ``confidence`` and the ``seed`` of the intervals.
    """

    pairs: Pairs
    protocol: PairwiseProtocol
    judge: str
    judgments: list[dict[str, Any]]
    summary: dict[str, Any]
    report: RunReport
    decoding: dict[str, Any]
    bootstrap: dict[str, Any]

    def __repr__(self) -> str:
        o = self.summary["overall"]
        return (
            f"PairwiseResult({self.pairs.model_a} vs {self.pairs.model_b}, {o['pairs']} pairs, "
            f"W/T/L {o['win']}/{o['tie']}/{o['lose']}, win score {o['win_score']}, "
            f"parse failures {o['parse_failures']})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON document :meth:`save` writes (and ``sftselect report`` reads)."""
        return {
            "format": RESULT_FORMAT,
            "sftselect_version": __version__,
            "model_a": self.pairs.model_a,
            "model_b": self.pairs.model_b,
            "judge": self.judge,
            "protocol": self.protocol.describe(),
            "decoding": dict(self.decoding),
            "bootstrap": dict(self.bootstrap),
            "inputs": dict(self.pairs.sources),
            "summary": self.summary,
            "run": self.report.as_dict(),
            "judgments": self.judgments,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dict` as JSON, atomically (a temporary file, then a rename)."""
        path = Path(path)
        write_json_atomic(self.to_dict(), path, indent=1)
        return path

    def markdown(self) -> str:
        """The summary as a Markdown table (:func:`sftselect.evaluate.report.markdown_table`)."""
        return markdown_table(self.to_dict())

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """Stacked win/tie/lose bars per test set as a PNG (:func:`~.report.plot_wtl`)."""
        return plot_wtl(self.to_dict(), path)
