"""ExactDedup: one row of each group whose normalised text is the same.

The compared text is the fields the user names (:mod:`._texts`: instruction,
input, response, the whole conversation, or any string column), each
normalised -- Unicode NFKC, case folding, whitespace collapsed, each step an
option -- and joined with a NUL character, so ``("ab", "c")`` and ``("a",
"bc")`` never match. Rows are grouped by the exact joined string (Arrow's
hash-based ``dictionary_encode``: equal strings, not equal hashes, so no
collision can merge two different texts; on Ray the strings travel to one
place by their xxh3-64 hash and are compared there the same way). Of each group the keep policy
(:mod:`._groups`) keeps one row; the removed rows are in
``extra["removed_rows"]`` with similarity 1.0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...core.base import EngineKind, RankResult, Selector
from ...core.constraints import K_CONSTRAINTS
from ...data.formats import FORMAT_CONSTRAINTS
from ._groups import KeepPolicy, dedup_result, group_representatives, keep_constraints
from ._texts import FIELDS_CONSTRAINTS, check_fields, field_texts, normalise
from .grouping import DuplicateCandidates, candidates_in_one_process

if TYPE_CHECKING:
    from datasets import Dataset

    from ...data.formats import Format

__all__ = ["ExactDedup"]


class ExactDedup(KeepPolicy, Selector):
    """Keep one row of each group of rows whose normalised text is identical.

    Parameters
    ----------
    k : int, float or None, default None
        None keeps every group's kept row; a number keeps the first ``k`` of
        them (in row order).
    fields : sequence of str, str or None, default None
        What is compared: names among ``instruction``, ``input``, ``response``,
        ``conversation`` or string columns (``"instruction,output"`` is split at
        commas). None compares the whole example.
    nfkc, casefold, collapse_whitespace : bool, default True
        The normalisation steps (Unicode NFKC; :meth:`str.casefold`; runs of
        whitespace to one space, ends trimmed).
    keep : str or Selector, default "first"
        Which row of a group is kept: ``"first"``, ``"longest"`` (response
        characters), ``"random"``, a numeric column (highest), or a selector's
        ranking (``keep=QualitySelector(judge)`` keeps the best-rated copy).
    format : str, Format or None
        The data format; None detects it.
    random_state : int, numpy Generator or None
        Seeds ``keep="random"`` and a random keep selector.

    Examples
    --------
    >>> from datasets import Dataset
    >>> from sftselect import ExactDedup
    >>> pool = Dataset.from_dict({
    ...     "instruction": ["Name a colour.", "name a  COLOUR.", "Say hi."],
    ...     "input": ["", "", ""],
    ...     "output": ["Blue.", "Blue.", "Hi!"],
    ... })
    >>> ExactDedup().select_indices(pool).tolist()
    [0, 2]
    >>> ExactDedup(casefold=False).select_indices(pool).tolist()
    [0, 1, 2]
    >>> run = ExactDedup().run(pool)
    >>> run.extra["removed_rows"]["position"].tolist(), run.extra["removed_rows"]["kept"].tolist()
    ([1], [0])
    """

    engine_kind = EngineKind.DUPLICATE_GROUPS
    _k_optional = True
    _uses_random_state = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "k": [*K_CONSTRAINTS, None],
        "fields": FIELDS_CONSTRAINTS,
        "nfkc": ["boolean"],
        "casefold": ["boolean"],
        "collapse_whitespace": ["boolean"],
        "keep": keep_constraints(),
        "format": FORMAT_CONSTRAINTS,
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        k: int | float | None = None,
        *,
        fields: Any = None,
        nfkc: bool = True,
        casefold: bool = True,
        collapse_whitespace: bool = True,
        keep: Any = "first",
        format: str | Format | None = None,
        random_state: Any = None,
    ) -> None:
        self.k = k
        self.fields = fields
        self.nfkc = nfkc
        self.casefold = casefold
        self.collapse_whitespace = collapse_whitespace
        self.keep = keep
        self.format = format
        self.random_state = random_state

    def _check_params(self) -> tuple[str, ...] | None:
        """The parameters against ``_parameter_constraints``; ``fields`` as a tuple."""
        self._validate_params()
        return check_fields(self.fields, type(self).__name__)

    def text_keys(self, dataset: Dataset) -> Any:
        """The normalised, joined text of every row (an Arrow string array)."""
        fields = self._check_params()
        parts = [
            normalise(
                t, nfkc=self.nfkc, casefold=self.casefold, whitespace=self.collapse_whitespace
            )
            for t in field_texts(dataset, fields, self.format, type(self).__name__)
        ]
        if len(parts) == 1:
            return parts[0]
        return pc.binary_join_element_wise(*parts, "\x00")

    # -- the DUPLICATE_GROUPS contract (see :mod:`.grouping`) ---------------------
    def duplicate_keys(self, dataset: Dataset) -> pa.Table:
        """Per row: its normalised text (``identity``), the text's xxh3-64 hash, and
        ``active`` (every row: an empty text is a text like any other)."""
        import xxhash

        keys = self.text_keys(dataset)
        if isinstance(keys, pa.ChunkedArray):
            keys = keys.combine_chunks()
        hashes = np.fromiter(
            (xxhash.xxh3_64_intdigest(t.encode("utf-8")) for t in keys.to_pylist()),
            dtype=np.uint64,
            count=len(keys),
        )
        return pa.table(
            {
                "identity": keys,
                "identity_hash": pa.array(hashes, pa.uint64()),
                "active": pa.array(np.ones(len(keys), dtype=bool)),
            }
        )

    def pair_values(self, dataset: Dataset) -> pa.Array:
        """Nothing: rows of one class are identical, their similarity 1.0."""
        return pa.nulls(len(dataset))

    def pair_measure(self, values: pa.Array, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """1.0 for every pair (the rows of a group have the same normalised text)."""
        return np.ones(np.asarray(a).size, dtype=np.float64)

    def resolve_duplicates(
        self,
        candidates: DuplicateCandidates,
        measure: Callable[[np.ndarray, np.ndarray], np.ndarray],
        priority: np.ndarray,
    ) -> RankResult:
        """The identity classes are the groups; ``priority`` picks the row kept of each."""
        self._check_params()
        labels = np.arange(candidates.n, dtype=np.int64)
        labels[candidates.members] = candidates.heads
        rep = group_representatives(labels, priority)
        return dedup_result(rep, np.ones(candidates.n), {"measure": "exact normalised text"})

    def _rank(self, dataset: Dataset, rng: np.random.Generator, limit: int | None) -> RankResult:
        self._check_params()
        n = len(dataset)
        if n == 0:
            return RankResult(order=np.empty(0, dtype=np.int64), n_eligible=0)
        candidates = candidates_in_one_process(self.duplicate_keys(dataset))
        priority = self.keep_priority(
            n, dataset.column_names, lambda selector: selector.rank_indices(dataset), rng
        )
        return self.resolve_duplicates(candidates, self.pair_measure, priority)
