"""ExactDedup: one row of each group whose normalised text is the same.

The compared text is the fields the user names (:mod:`._texts`: instruction,
input, response, the whole conversation, or any string column), each
normalised -- Unicode NFKC, case folding, whitespace collapsed, each step an
option -- and joined with a NUL character, so ``("ab", "c")`` and ``("a",
"bc")`` never match. Rows are grouped by the exact joined string (Arrow's
hash-based ``dictionary_encode``: equal strings, not equal hashes, so no
collision can merge two different texts). Of each group the keep policy
(:mod:`._groups`) keeps one row; the removed rows are in
``extra["removed_rows"]`` with similarity 1.0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.compute as pc

from ...core.base import EngineKind, RankResult, Selector
from ...core.validation import param_error
from ._groups import check_keep, dedup_result, group_representatives, keep_priority
from ._texts import check_fields, field_texts, normalise

if TYPE_CHECKING:
    from datasets import Dataset

    from ...data.formats import Format

__all__ = ["ExactDedup"]


class ExactDedup(Selector):
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

    engine_kind = EngineKind.WHOLE_DATASET
    _k_optional = True
    _uses_random_state = True

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
        owner = type(self).__name__
        for name in ("nfkc", "casefold", "collapse_whitespace"):
            if not isinstance(getattr(self, name), bool):
                raise param_error(owner, name, "a bool", getattr(self, name))
        check_keep(self.keep, owner)
        return check_fields(self.fields, owner)

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

    def _rank(self, dataset: Dataset, rng: np.random.Generator, limit: int | None) -> RankResult:
        self._check_params()
        n = len(dataset)
        if n == 0:
            return RankResult(order=np.empty(0, dtype=np.int64), n_eligible=0)
        keys = self.text_keys(dataset)
        labels = pc.dictionary_encode(keys).indices.to_numpy(zero_copy_only=False)
        priority = keep_priority(self.keep, dataset, rng, self.format, type(self).__name__)
        rep = group_representatives(labels.astype(np.int64), priority)
        return dedup_result(rep, np.ones(n), {"measure": "exact normalised text"})
