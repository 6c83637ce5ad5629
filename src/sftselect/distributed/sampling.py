"""RandomSelector on Ray: the single-machine draw, on the driver, from the row count.

A uniform random subset depends only on the number of rows ``n`` (and, when
stratified, on each row's stratum), never on the data's blocks or workers. So
the driver counts the rows (and gathers the stratify column alone, in row
order) and calls the selector's own ranking on a stand-in dataset holding only
that column: the result is the single-machine selection for the same seed,
identical for any number of blocks, workers or nodes. The driver holds the
permutation of ``n`` positions (8 bytes a row), as one machine does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from ..core.base import RankResult
from ..core.validation import check_columns
from .indexing import ROW_COLUMN
from .scoring import check_positions

if TYPE_CHECKING:
    from ray.data import Dataset

    from ..selectors.random import RandomSelector

__all__ = ["rank_random", "stand_in"]

#: The column of the stand-in dataset when no stratify column is needed.
_PLACEHOLDER = "__sftselect_placeholder"


def stand_in(dataset: Dataset, column: str | None) -> pa.Table:
    """A table with the rows of ``dataset`` in position order and only ``column``.

    Without a column, a null column of the right length (no data is moved
    beyond the row positions).
    """
    wanted = [ROW_COLUMN] if column is None else [ROW_COLUMN, column]
    parts = list(
        dataset.select_columns(wanted).iter_batches(batch_size=None, batch_format="pyarrow")
    )
    if not parts:
        return pa.table({_PLACEHOLDER: pa.nulls(0)})
    table = pa.concat_tables(parts, promote_options="default")
    rows = table.column(ROW_COLUMN).to_numpy()
    check_positions(rows)
    if column is None:
        return pa.table({_PLACEHOLDER: pa.nulls(rows.size)})
    order = np.argsort(rows, kind="stable")
    return table.take(pa.array(order)).select([column])


def rank_random(
    selector: RandomSelector, dataset: Dataset, rng: np.random.Generator, limit: int | None
) -> tuple[RankResult, int]:
    """The selector's own ranking over a stand-in of ``dataset``; also returns ``n``."""
    from datasets import Dataset as HFDataset

    if selector.stratify is not None:
        check_columns(dataset.columns(), [selector.stratify], type(selector).__name__)
    table = stand_in(dataset, selector.stratify)
    result = selector._rank(HFDataset(table), rng, limit)
    return result, table.num_rows
