"""Ray Datasets with a stable global row index, read in parallel.

Every distributed selection needs to know each row's position in the pool, so
that ties are broken as on one machine (earlier row first) and the provenance
lists the same positions. Ray Data does not guarantee row order (``zip`` is
deprecated for that reason), so the position is attached as a column,
:data:`ROW_COLUMN`, when the data enters Ray:

* :func:`read_parquet` -- one read task per group of row groups; the row
  counts come from the files' footers, so each task knows its first row;
* :func:`read_jsonl` -- files cut into byte ranges at line ends; one parallel
  pass counts the records of each range, a second parses them;
* :func:`from_huggingface` -- contiguous slices of the Arrow table;
* :func:`with_row_index` -- any other Ray Dataset, indexed in the order it
  yields with ``preserve_order`` (it is materialized once to do so).

Files are taken in sorted path order, and rows in file order, which is the
order :func:`sftselect.data.io.load_data` gives for one file.
"""

from __future__ import annotations

import io
import itertools
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..core.validation import check_positive_int, param_error
from ..exceptions import DataFormatError, RowIndexMissingError
from .engine import own_context, require_ray

if TYPE_CHECKING:
    from datasets import Dataset as HFDataset
    from ray.data import Dataset

__all__ = [
    "ROW_COLUMN",
    "RowIndexMissingError",
    "from_huggingface",
    "read",
    "read_jsonl",
    "read_parquet",
    "with_row_index",
]

#: The column holding each row's position in the pool (int64, 0..n-1).
ROW_COLUMN = "__sftselect_row"


def row_positions(table: pa.Table) -> np.ndarray:
    """The positions of a block's rows, or :class:`RowIndexMissingError`."""
    if ROW_COLUMN not in table.column_names:
        raise RowIndexMissingError(
            f"The Ray Dataset has no {ROW_COLUMN!r} column of row positions; build it with "
            "sftselect.distributed.read, read_parquet, read_jsonl, from_huggingface or "
            "with_row_index."
        )
    return table.column(ROW_COLUMN).to_numpy()


_ROW_IN_MESSAGE = re.compile(r"^Row (\d+)\b")


@contextmanager
def rows_named_in_pool(rows: np.ndarray) -> Iterator[None]:
    """Name a block's bad row by its position in the pool.

    The library's data errors begin "Row N" with N the row's position in the data
    set they were given; on a worker that is a block, so a
    :class:`~sftselect.exceptions.DataFormatError` raised inside is raised again with
    ``rows[N]`` (the block's positions in the pool) in place of N.
    """
    try:
        yield
    except DataFormatError as exc:
        message = str(exc)
        match = _ROW_IN_MESSAGE.match(message)
        if match is None or int(match.group(1)) >= rows.size:
            raise
        raise DataFormatError(
            f"Row {int(rows[int(match.group(1))])}" + message[match.end() :]
        ) from None


#: Rows per read task for Parquet (row groups are never split).
PARQUET_ROWS_PER_TASK = 100_000

#: Bytes per read task for JSON Lines.
JSONL_BYTES_PER_TASK = 32 * 1024 * 1024


def _with_row_column(table: pa.Table, first_row: int) -> pa.Table:
    rows = pa.array(np.arange(first_row, first_row + table.num_rows, dtype=np.int64))
    if ROW_COLUMN in table.column_names:
        table = table.drop_columns([ROW_COLUMN])
    return table.append_column(ROW_COLUMN, rows)


def _list_files(
    paths: str | os.PathLike[str] | Sequence[Any], suffixes: tuple[str, ...]
) -> list[str]:
    """The files named by ``paths`` (files or folders), folders expanded and sorted."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise param_error("read", "paths", "a file, a folder or a non-empty list of them", paths)
    files: list[str] = []
    for item in items:
        path = os.fspath(item)
        if os.path.isdir(path):
            found = sorted(
                os.path.join(root, name)
                for root, _, names in os.walk(path)
                for name in names
                if name.lower().endswith(suffixes) and not name.startswith((".", "_"))
            )
            if not found:
                raise FileNotFoundError(f"No {'/'.join(suffixes)} files under {path}")
            files.extend(found)
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"No such file or folder: {path}")
    return files


# -- Hugging Face ---------------------------------------------------------------


def default_num_blocks(n_rows: int) -> int:
    """Blocks for an in-memory pool: four per CPU of the cluster, at least one row each."""
    ray = require_ray()
    cpus = int(ray.cluster_resources().get("CPU", 1)) if ray.is_initialized() else 1
    return max(1, min(n_rows, 4 * max(cpus, 1)))


def from_huggingface(dataset: HFDataset, *, num_blocks: int | None = None) -> Dataset:
    """A Ray Dataset of the rows of a ``datasets.Dataset``, in ``num_blocks`` blocks.

    Unlike ``ray.data.from_huggingface`` (one block unless repartitioned), the
    rows are cut into ``num_blocks`` contiguous slices, each carrying its
    positions in :data:`ROW_COLUMN`.

    Parameters
    ----------
    dataset : datasets.Dataset
        The pool, as the single-machine selectors take it.
    num_blocks : int or None
        Blocks to cut it into (None: four per CPU of the cluster).
    """
    from ..data.formats import check_dataset

    check_dataset(dataset, "from_huggingface")
    ray = require_ray()
    n = len(dataset)
    if num_blocks is None:
        num_blocks = default_num_blocks(n)
    num_blocks = check_positive_int(num_blocks, "num_blocks", "from_huggingface")
    table = dataset.with_format("arrow")[:]
    bounds = np.linspace(0, n, min(num_blocks, max(n, 1)) + 1).astype(np.int64)
    pieces = [
        _with_row_column(table.slice(a, b - a), a) for a, b in itertools.pairwise(bounds.tolist())
    ]
    return ray.data.from_arrow(pieces)


# -- Parquet ----------------------------------------------------------------------


@dataclass(frozen=True)
class _ParquetUnit:
    path: str
    row_groups: tuple[int, ...]
    first_row: int


def _parquet_units(files: list[str], rows_per_task: int) -> tuple[list[_ParquetUnit], int]:
    import pyarrow.parquet as pq

    units: list[_ParquetUnit] = []
    offset = 0
    for path in files:
        try:
            meta = pq.ParquetFile(path).metadata
        except Exception as exc:  # pyarrow raises several types for bad files
            raise DataFormatError(f"{path}: not a readable Parquet file ({exc}).") from None
        groups: list[int] = []
        start, rows = offset, 0
        for g in range(meta.num_row_groups):
            groups.append(g)
            rows += meta.row_group(g).num_rows
            if rows >= rows_per_task:
                units.append(_ParquetUnit(path, tuple(groups), start))
                start, groups, rows = start + rows, [], 0
        if groups:
            units.append(_ParquetUnit(path, tuple(groups), start))
        offset += meta.num_rows
    return units, offset


def _read_parquet_units(batch: pa.Table, columns: list[str] | None) -> pa.Table:
    import pyarrow.parquet as pq

    tables = []
    for path, groups, first in zip(
        batch.column("path").to_pylist(),
        batch.column("row_groups").to_pylist(),
        batch.column("first_row").to_pylist(),
    ):
        part = pq.ParquetFile(path).read_row_groups(groups, columns=columns)
        tables.append(_with_row_column(part, first))
    return pa.concat_tables(tables, promote_options="default")


def read_parquet(
    paths: str | os.PathLike[str] | Sequence[Any],
    *,
    columns: list[str] | None = None,
    rows_per_task: int = PARQUET_ROWS_PER_TASK,
) -> Dataset:
    """Read Parquet files (or folders of them) into a Ray Dataset, in parallel.

    Each read task reads consecutive row groups of one file (about
    ``rows_per_task`` rows) and attaches their positions in :data:`ROW_COLUMN`;
    only the footers are read on the driver.
    """
    ray = require_ray()
    rows_per_task = check_positive_int(rows_per_task, "rows_per_task", "read_parquet")
    files = _list_files(paths, (".parquet",))
    units, _ = _parquet_units(files, rows_per_task)
    if not units:
        raise DataFormatError(f"{files[0]}: the Parquet input has no rows.")
    items = [
        {"path": u.path, "row_groups": list(u.row_groups), "first_row": u.first_row} for u in units
    ]
    plan = ray.data.from_items(items, override_num_blocks=len(items))
    return plan.map_batches(
        _read_parquet_units,
        batch_size=1,
        batch_format="pyarrow",
        fn_kwargs={"columns": columns},
    )


# -- JSON Lines -------------------------------------------------------------------


def _jsonl_ranges(files: list[str], bytes_per_task: int) -> list[tuple[str, int, int]]:
    """Byte ranges ``[start, end)`` of each file, cut just after a newline."""
    ranges = []
    for path in files:
        size = os.path.getsize(path)
        start = 0
        with open(path, "rb") as fh:
            while start < size:
                end = min(start + bytes_per_task, size)
                if end < size:
                    fh.seek(end)
                    fh.readline()
                    end = fh.tell()
                ranges.append((path, start, end))
                start = end
    return ranges


def _read_range(path: str, start: int, end: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(start)
        return fh.read(end - start)


def _count_records(batch: pa.Table) -> dict[str, np.ndarray]:
    counts = []
    for path, start, end in zip(
        batch.column("path").to_pylist(),
        batch.column("start").to_pylist(),
        batch.column("end").to_pylist(),
    ):
        data = _read_range(path, start, end)
        counts.append(sum(1 for line in data.split(b"\n") if line.strip()))
    return {"unit": batch.column("unit").to_numpy(), "records": np.asarray(counts, np.int64)}


def _parse_records(batch: pa.Table) -> pa.Table:
    import pyarrow.json as pj

    tables = []
    for path, start, end, first, expected in zip(
        batch.column("path").to_pylist(),
        batch.column("start").to_pylist(),
        batch.column("end").to_pylist(),
        batch.column("first_row").to_pylist(),
        batch.column("records").to_pylist(),
    ):
        data = _read_range(path, start, end)
        try:
            table = pj.read_json(io.BytesIO(data)) if expected else pa.table({})
        except pa.ArrowInvalid as exc:
            raise DataFormatError(
                f"{path} (bytes {start}-{end}): malformed JSON Lines ({exc})."
            ) from None
        if table.num_rows != expected:
            raise DataFormatError(
                f"{path} (bytes {start}-{end}): parsed {table.num_rows} records from "
                f"{expected} non-blank lines; expected one JSON object per line."
            )
        if expected:
            tables.append(_with_row_column(table, first))
    if not tables:
        return pa.table({ROW_COLUMN: pa.array([], pa.int64())})
    return pa.concat_tables(tables, promote_options="default")


def read_jsonl(
    paths: str | os.PathLike[str] | Sequence[Any],
    *,
    bytes_per_task: int = JSONL_BYTES_PER_TASK,
) -> Dataset:
    """Read JSON Lines files (or folders of them) into a Ray Dataset, in parallel.

    Files are cut into byte ranges of about ``bytes_per_task`` at line ends. A
    first parallel pass counts the records (non-blank lines) of each range, so
    that each parsing task knows the position of its first row.
    """
    ray = require_ray()
    bytes_per_task = check_positive_int(bytes_per_task, "bytes_per_task", "read_jsonl")
    files = _list_files(paths, (".jsonl",))
    ranges = _jsonl_ranges(files, bytes_per_task)
    if not ranges:
        raise DataFormatError(f"{files[0]}: the JSON Lines input is empty.")
    items = [{"unit": i, "path": p, "start": s, "end": e} for i, (p, s, e) in enumerate(ranges)]
    counted = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        _count_records, batch_size=1, batch_format="pyarrow"
    )
    counts = np.zeros(len(items), dtype=np.int64)
    for part in counted.iter_batches(batch_size=None, batch_format="numpy"):
        counts[part["unit"]] = part["records"]
    firsts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    for item, first, count in zip(items, firsts.tolist(), counts.tolist()):
        item.update(first_row=first, records=count)
    plan = ray.data.from_items(items, override_num_blocks=len(items))
    return plan.map_batches(_parse_records, batch_size=1, batch_format="pyarrow")


# -- any Ray Dataset --------------------------------------------------------------


def with_row_index(dataset: Dataset) -> Dataset:
    """``dataset`` with :data:`ROW_COLUMN`, positions in its ``preserve_order`` order.

    A dataset that already has the column is returned as it is. Otherwise the
    dataset is executed once with ``preserve_order`` and its blocks are kept in
    the object store (spilled to disk when larger than memory); prefer
    :func:`read_parquet`, :func:`read_jsonl` or :func:`from_huggingface`, which
    attach the index while reading.
    """
    ray = require_ray()
    if ROW_COLUMN in dataset.columns():  # runs a lazy dataset's first block
        return dataset
    ordered = own_context(dataset)
    ordered.context.execution_options.preserve_order = True
    refs = ordered.to_arrow_refs()
    count = ray.remote(_num_rows)
    counts = ray.get([count.remote(ref) for ref in refs])
    firsts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    attach = ray.remote(_with_row_column)
    return ray.data.from_arrow_refs(
        [attach.remote(ref, int(first)) for ref, first in zip(refs, firsts)]
    )


def _num_rows(table: pa.Table) -> int:
    return int(table.num_rows)


# -- by path ----------------------------------------------------------------------


def read(source: str | os.PathLike[str], *, split: str = "train") -> Dataset:
    """A Ray Dataset with row positions from a path, as ``sftselect select`` reads it.

    ``.parquet`` files or folders of them are read by :func:`read_parquet` and
    ``.jsonl`` by :func:`read_jsonl`, in parallel; anything else that
    :func:`sftselect.data.io.load_data` accepts (a ``.json`` array, a saved Dataset
    folder, ``sample:NAME``, a hub name) is loaded on the driver and cut into
    blocks by :func:`from_huggingface`.
    """
    path = os.fspath(source)
    lower = path.lower()
    if os.path.isdir(path):
        names = [n.lower() for _, _, files in os.walk(path) for n in files]
        if any(n.endswith(".parquet") for n in names) and not os.path.exists(
            os.path.join(path, "state.json")
        ):
            return read_parquet(path)
        if names and all(n.endswith(".jsonl") for n in names if not n.startswith((".", "_"))):
            return read_jsonl(path)
    elif os.path.isfile(path) and lower.endswith(".parquet"):
        return read_parquet(path)
    elif os.path.isfile(path) and lower.endswith(".jsonl"):
        return read_jsonl(path)
    from ..data.io import load_data

    return from_huggingface(load_data(source, split=split))
