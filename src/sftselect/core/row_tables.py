"""Per-row details too large for the provenance record: written beside the output.

A selector that explains itself row by row (which rows a deduplication filter
removed and which kept row covers each, the K-means cluster of every row) puts
the explanation in its ``extra`` as a :class:`RowTable` (several columns of
equal length) or a :class:`RowArray` (one value per input row). The provenance
record (:mod:`sftselect.core.provenance`) then holds only their name, length
and columns; ``sftselect select`` writes each table beside the output as
``OUTPUT.<name>.csv`` (:func:`write_row_tables`), so a run over 500,000 rows
does not inline megabytes of numbers into its JSON.

From Python the values stay where they were: ``selection.extra["labels"]`` is
an array (a :class:`RowArray` is a NumPy array), and a :class:`RowTable`'s
columns are NumPy arrays (``table["kept"]``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_file

__all__ = ["RowArray", "RowTable", "find_row_tables", "row_table_path", "write_row_tables"]


class RowArray(np.ndarray):
    """A NumPy array with one value per input row, summarised (not inlined) in provenance.

    ``RowArray(values)`` views ``values`` as this class; it behaves as any
    array. ``sftselect select`` writes the row arrays of a selection's
    ``extra`` into ``OUTPUT.rows.csv`` (a ``position`` column, then one column
    per array, named by its key).
    """

    def __new__(cls, values: Any) -> RowArray:
        return np.asarray(values).view(cls)

    def summary(self, key: str) -> dict[str, Any]:
        """What the provenance record holds instead of the values."""
        return {"row_table": "rows", "column": key, "rows": int(self.size)}


class RowTable(Mapping[str, np.ndarray]):
    """Named columns of equal length, written as ``OUTPUT.<name>.csv``.

    Parameters
    ----------
    name : str
        The file name part (letters, digits, ``-`` and ``_``).
    columns : mapping of str to array
        The columns, in order; each a 1-D array of the same length.
    """

    def __init__(self, name: str, columns: Mapping[str, Any]) -> None:
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            raise ValueError(f"a row table name holds letters, digits, '-' and '_'; got {name!r}")
        cols = {str(k): np.asarray(v) for k, v in columns.items()}
        lengths = {v.shape for v in cols.values()}
        if len(lengths) > 1 or any(len(s) != 1 for s in lengths):
            raise ValueError(f"row table {name!r}: columns must be 1-D and of one length")
        self.name = name
        self._columns = cols

    def __getitem__(self, key: str) -> np.ndarray:
        return self._columns[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    @property
    def n_rows(self) -> int:
        """The number of rows of the table."""
        return int(next(iter(self._columns.values())).size) if self._columns else 0

    def __repr__(self) -> str:
        return f"RowTable({self.name!r}, rows={self.n_rows}, columns={list(self._columns)})"

    def summary(self) -> dict[str, Any]:
        """What the provenance record holds instead of the values."""
        return {"row_table": self.name, "rows": self.n_rows, "columns": list(self._columns)}

    def to_arrow(self) -> Any:
        """The table as a ``pyarrow.Table``."""
        import pyarrow as pa

        return pa.table({k: pa.array(v) for k, v in self._columns.items()})


def row_table_path(output: str | os.PathLike[str], name: str) -> Path:
    """Where row table ``name`` of an output goes: ``OUTPUT.<name>.csv`` beside it."""
    output = Path(output)
    return output.with_name(f"{output.name}.{name}.csv")


def find_row_tables(extra: Mapping[str, Any]) -> list[RowTable]:
    """Every table in ``extra``: its :class:`RowTable` values (also inside the stage and
    operand records of a composite), then one ``rows`` table of its :class:`RowArray`
    values. A name met twice gets the stage number in front (``stage0-removed``)."""
    found: list[tuple[str, RowTable]] = []

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, RowTable):
            found.append((prefix, value))
        elif isinstance(value, Mapping):
            for v in value.values():
                walk(v, prefix)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{prefix}{i}-")

    walk({k: v for k, v in extra.items() if not isinstance(v, RowArray)}, "")
    names = [t.name for _, t in found]
    tables = [t if names.count(t.name) == 1 else RowTable(f"stage{p}{t.name}", t) for p, t in found]
    arrays = {k: np.asarray(v) for k, v in extra.items() if isinstance(v, RowArray)}
    if arrays:
        n = next(iter(arrays.values())).size
        tables.append(RowTable("rows", {"position": np.arange(n, dtype=np.int64), **arrays}))
    return tables


def write_row_tables(extra: Mapping[str, Any], output: str | os.PathLike[str]) -> list[Path]:
    """Write every table of ``extra`` (:func:`find_row_tables`) beside ``output``,
    each atomically; returns the paths written."""
    import pyarrow.csv as pcsv

    paths = []
    for table in find_row_tables(extra):
        path = row_table_path(output, table.name)
        with atomic_file(path, "wb") as fh:
            pcsv.write_csv(table.to_arrow(), fh)
        paths.append(path)
    return paths
