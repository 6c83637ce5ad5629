"""The outcome of a distributed selection: the core record, the rows, the output."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..core.base import Selection
from .indexing import ROW_COLUMN
from .summary import RunSummary

if TYPE_CHECKING:
    from ray.data import Dataset

__all__ = ["DistributedSelection", "keep_positions"]


def keep_positions(table: pa.Table, positions: np.ndarray) -> pa.Table:
    """The rows of ``table`` whose position is in the sorted array ``positions``."""
    rows = table.column(ROW_COLUMN).to_numpy()
    if positions.size == 0:
        return table.slice(0, 0)
    at = np.searchsorted(positions, rows).clip(0, positions.size - 1)
    return table.filter(pa.array(positions[at] == rows))


@dataclass(frozen=True)
class DistributedSelection:
    """A selection made on Ray.

    ``selection`` is the same :class:`~sftselect.core.base.Selection` record one
    machine produces (positions, ranking, scores, seed, diagnostics) without
    the in-memory dataset; ``dataset`` is the indexed Ray Dataset it was made
    from and ``summary`` says what ran where.
    """

    selection: Selection
    dataset: Dataset
    summary: RunSummary

    # -- the core record's fields ----------------------------------------------
    @property
    def indices(self) -> np.ndarray:
        """Selected positions, ascending."""
        return self.selection.indices

    @property
    def ranked(self) -> np.ndarray:
        """Selected positions, most preferred first."""
        return self.selection.ranked

    @property
    def scores(self) -> np.ndarray | None:
        """One score per row (scoring selectors), else None."""
        return self.selection.scores

    @property
    def extra(self) -> Any:
        """The selector's diagnostics."""
        return self.selection.extra

    def provenance(self) -> dict[str, Any]:
        """The single-machine provenance record, plus ``engine`` (what ran where).

        ``input.content_sha256`` is None: it hashes the whole table in one
        process. The command line records the input file's SHA-256 instead,
        as on one machine.
        """
        from ..core.provenance import build_provenance

        record = build_provenance(self.selection, content_hash=False)
        record["engine"] = self.summary.as_dict()
        return record

    # -- the rows -----------------------------------------------------------------
    def rows(self) -> Dataset:
        """A Ray Dataset of the selected rows (with the position column), unordered."""
        return self.dataset.map_batches(
            keep_positions,
            fn_kwargs={"positions": np.asarray(self.indices, dtype=np.int64)},
            batch_format="pyarrow",
        )

    def to_arrow(self) -> pa.Table:
        """The selected rows in position order, gathered on the driver, input columns only."""
        parts = list(self.rows().iter_batches(batch_size=None, batch_format="pyarrow"))
        parts = [p for p in parts if p.num_rows]
        if not parts:
            schema = self.dataset.schema()
            names = [n for n in (schema.names if schema else []) if n != ROW_COLUMN]
            return pa.table({n: pa.array([]) for n in names})
        table = pa.concat_tables(parts, promote_options="default")
        order = np.argsort(table.column(ROW_COLUMN).to_numpy(), kind="stable")
        return table.take(pa.array(order)).drop_columns([ROW_COLUMN])

    def write(
        self, path: str | os.PathLike[str], *, provenance: dict[str, Any] | None = None
    ) -> Path:
        """Write the selected rows and ``PATH.provenance.json``, as one machine does.

        The suffix picks the type (``.parquet``, ``.jsonl``, ``.json``, or a
        saved-Dataset folder), through :func:`sftselect.data.io.save_data` (atomic),
        so the output is the single-machine output. The rows are gathered on
        the driver; ``rows().write_parquet(folder)`` writes them from the
        workers instead, one file per block. ``provenance`` replaces the
        default record (:meth:`provenance`); ``output`` is set to ``path``.
        """
        from datasets import Dataset as HFDataset

        from ..core.provenance import write_json_atomic
        from ..data.io import save_data

        out = Path(path)
        record = dict(self.provenance() if provenance is None else provenance)
        record["output"] = str(out)
        save_data(HFDataset(self.to_arrow()), out)
        write_json_atomic(record, out.with_name(out.name + ".provenance.json"))
        return out
