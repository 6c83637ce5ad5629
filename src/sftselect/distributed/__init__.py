"""Run sftselect's selectors on a Ray Data cluster (``pip install "sftselect[ray]"``).

.. code-block:: python

    import sftselect.distributed as sd
    from sftselect import LengthSelector

    pool = sd.read("pool/")                       # Parquet or JSON Lines, read in parallel
    result = sd.run(LengthSelector(k=1000), pool)  # the same selector object as on one machine
    result.write("longest_1k.jsonl")              # rows + longest_1k.jsonl.provenance.json
    print(result.summary.describe())              # what ran where

The result equals the single-machine selection on the same rows: the same
positions, ranking, scores and provenance record (see ``docs/scaling.md``).
:func:`run` picks its path from the selector's declared
:attr:`~sftselect.core.base.Selector.engine_kind` (:data:`KINDS`), so a selector of
your own runs here too.
Nothing here imports Ray until a function runs; the core of sftselect never
imports it.
"""

from __future__ import annotations

from .engine import INSTALL_HINT, ClusterInfo, cluster_info, connect, require_ray
from .indexing import (
    ROW_COLUMN,
    from_huggingface,
    read,
    read_jsonl,
    read_parquet,
    with_row_index,
)
from .runner import KINDS, SUPPORTED, run
from .selection import DistributedSelection
from .summary import RunSummary, Stage

__all__ = [
    "INSTALL_HINT",
    "KINDS",
    "ROW_COLUMN",
    "SUPPORTED",
    "ClusterInfo",
    "DistributedSelection",
    "RunSummary",
    "Stage",
    "cluster_info",
    "connect",
    "from_huggingface",
    "read",
    "read_jsonl",
    "read_parquet",
    "require_ray",
    "run",
    "with_row_index",
]
