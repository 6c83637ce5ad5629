"""Selectors ranked in one process on Ray: a seeded draw, or the whole-dataset fallback.

``SEEDED_DRAW`` (:class:`~sftselect.selectors.random.RandomSelector`): a seeded
draw over positions depends only on the number of rows ``n`` and the columns the
selector names (:meth:`~sftselect.core.base.Selector.input_columns`; for a
stratified random subset, the stratify column), never on the data's blocks or
workers. So the driver gathers the positions and those columns alone, in row
order, and calls the selector's own ranking
(:meth:`~sftselect.core.base.Selector.rank`) on a stand-in dataset holding only
them: the result is the single-machine selection for the same seed, identical
for any number of blocks, workers or nodes. The driver holds the permutation
of ``n`` positions (8 bytes a row), as one machine does.

``WHOLE_DATASET`` (the fallback every selector may declare): the same, with
every column (or the columns the selector names): the rows are gathered on the
driver and ranked there by the one-process code. It gives the single-machine
answer and does not scale beyond what the driver holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from ..core.base import RankResult, Selector
from ..core.validation import check_columns
from .indexing import ROW_COLUMN
from .scoring import check_positions

if TYPE_CHECKING:
    from ray.data import Dataset

__all__ = ["gather_rows", "rank_gathered"]

#: The column of the stand-in dataset when no column is needed.
_PLACEHOLDER = "__sftselect_placeholder"


def _empty(dataset: Dataset, columns: Sequence[str] | None) -> pa.Table:
    """No rows: the wanted columns with the dataset's types when Ray knows them."""
    schema = getattr(dataset.schema(), "base_schema", None) if columns != [] else None
    if isinstance(schema, pa.Schema):
        names = [n for n in schema.names if n != ROW_COLUMN and (columns is None or n in columns)]
        return (
            schema.empty_table().select(names) if names else pa.table({_PLACEHOLDER: pa.nulls(0)})
        )
    return pa.table({_PLACEHOLDER: pa.nulls(0)})


def gather_rows(dataset: Dataset, columns: Sequence[str] | None) -> pa.Table:
    """The rows of ``dataset`` in position order, with ``columns`` only (None: all).

    With an empty list of columns, a null column of the right length (no data
    is moved beyond the row positions). The position column is dropped.
    """
    source = dataset if columns is None else dataset.select_columns([ROW_COLUMN, *columns])
    parts = list(source.iter_batches(batch_size=None, batch_format="pyarrow"))
    if not parts:
        return _empty(dataset, columns)
    table = pa.concat_tables(parts, promote_options="default")
    rows = table.column(ROW_COLUMN).to_numpy()
    check_positions(rows)
    if columns is not None and not columns:
        return pa.table({_PLACEHOLDER: pa.nulls(rows.size)})
    order = np.argsort(rows, kind="stable")
    return table.take(pa.array(order)).drop_columns([ROW_COLUMN])


def rank_gathered(
    selector: Selector,
    dataset: Dataset,
    rng: np.random.Generator,
    k: int | float | None,
) -> tuple[RankResult, int]:
    """The selector's own ranking of the gathered rows; also returns ``n``.

    Gathers the columns :meth:`~sftselect.core.base.Selector.input_columns` names
    (every column when it names none), then calls
    :meth:`~sftselect.core.base.Selector.rank` with the limit one machine uses.
    """
    from datasets import Dataset as HFDataset

    from ..core.validation import resolve_k

    columns = selector.input_columns()
    if columns:
        check_columns(dataset.columns(), list(columns), type(selector).__name__)
    table = gather_rows(dataset, None if columns is None else list(columns))
    n = table.num_rows
    limit = None if k is None else min(resolve_k(k, n), n)
    return selector.rank(HFDataset(table), rng, limit), n
