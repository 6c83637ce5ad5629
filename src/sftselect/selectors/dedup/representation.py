"""RepresentationFilter: DEITA's greedy filter on embedding similarity.

DEITA (Liu et al., 2024, "What Makes Good Data for Alignment?") sorts the pool
by a score (complexity x quality) and walks it best first, keeping an example
only if it is not too similar to any example already kept. Here:

* the walk order is the dataset's order (``order=None``), a numeric column,
  highest first (``order="score"``), or any selector's ranking
  (``order=LengthSelector()`` walks the longest responses first); rows the order
  does not rank are never walked;
* a row is kept when its largest cosine similarity to the rows kept before it
  is **strictly below** ``max_similarity`` (the first row walked is always
  kept). DEITA's code (``IterativeFilter.filter``) drops a row when a similarity
  is ``> threshold``, i.e. keeps it at equality; ``max_similarity =
  numpy.nextafter(threshold, 2)`` gives that rule exactly. DEITA's default
  threshold is 0.9 with ``batch_size=1``; with a larger batch it also compares
  rows of a batch with rows of the same batch that it has rejected, which this
  filter never does (it is the exact row-by-row rule for any block size);
* with ``k`` the walk stops once ``k`` rows are kept (DEITA's ``data_size``);
  with ``k=None`` the whole walk decides.

The ranking is the kept rows in walk order, so ``select_indices`` with ``k`` is
the first ``k`` rows kept. ``n_eligible`` counts the rows kept by the walk; when
the walk stopped at ``k`` it is a lower bound (``extra["complete"]`` is False).
Similarities are computed in float32 (as DEITA's torch code does) and compared
exactly with ``max_similarity``: two equal vectors may come out at 0.99999994,
so ``max_similarity=1.0`` does not reliably drop exact duplicates (use 0.9999).
"""

from __future__ import annotations

import numbers
import os
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ...core.base import RankResult, Selector
from ...core.constraints import K_CONSTRAINTS, InstanceOf, Interval
from ..coverage import similarity_filter_order
from ..embedded import CACHE_DIR, EMBEDDER, FORMAT, TEXT, embed_rows, refuse_in_memory_vectors
from ._groups import VectorsOrWhole

if TYPE_CHECKING:
    from datasets import Dataset

    from ...data.formats import Format

__all__ = ["RepresentationFilter"]


class RepresentationFilter(Selector):
    """Keep rows whose cosine similarity to every row kept before is below ``max_similarity``.

    Parameters
    ----------
    embedder : Embedder or PrecomputedEmbeddings
        Turns rows into vectors.
    k : int, float or None, default None
        Stop once this many rows are kept (a fraction of the rows is rounded up);
        None keeps every row the walk keeps.
    max_similarity : float in (-1, 1], default 0.9
        A row is kept only if its largest cosine similarity to the kept rows is
        strictly below this; lower values keep fewer, more distinct rows.
    order : None, str or Selector, default None
        The walk order: the dataset's order, a numeric column (highest first,
        ties by row, nulls never walked), or a selector's ``rank_indices``.
    text : {"instruction", "instruction_input", "response", "example"}
    cache_dir : str, path or None
        A folder caching embeddings across runs.
    format : str, Format or None
    show_progress : bool, default False
        A progress bar over the rows walked.
    """

    #: The walk needs every row's vector: ``VECTORS_THEN_GLOBAL`` when it walks in row
    #: order (``order=None``), else ``WHOLE_DATASET`` (the walk order is taken from a
    #: column or a selector over the rows; see :class:`._groups.VectorsOrWhole`).
    engine_kind = VectorsOrWhole()
    _k_optional = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "embedder": EMBEDDER,
        "k": [*K_CONSTRAINTS, None],
        "max_similarity": [Interval(numbers.Real, -1, 1, closed="right")],
        "order": [
            None,
            InstanceOf(str, "a column name"),
            InstanceOf(Selector, "a Selector giving the walk order"),
        ],
        "text": TEXT,
        "cache_dir": CACHE_DIR,
        "format": FORMAT,
        "show_progress": ["boolean"],
    }

    def __init__(
        self,
        embedder: Any,
        k: int | float | None = None,
        *,
        max_similarity: float = 0.9,
        order: Any = None,
        text: str = "instruction_input",
        cache_dir: str | os.PathLike[str] | None = None,
        format: str | Format | None = None,
        show_progress: bool = False,
    ) -> None:
        self.embedder = embedder
        self.k = k
        self.max_similarity = max_similarity
        self.order = order
        self.text = text
        self.cache_dir = cache_dir
        self.format = format
        self.show_progress = show_progress

    def _check_params(self) -> float:
        """The parameters against ``_parameter_constraints``; ``max_similarity`` as a float."""
        self._validate_params()
        return float(self.max_similarity)

    def _walk(self, dataset: Dataset) -> np.ndarray:
        if self.order is None:
            return np.arange(len(dataset), dtype=np.int64)
        if isinstance(self.order, str):
            from ..score import ColumnScoreSelector

            return ColumnScoreSelector(self.order, k=1.0).rank_indices(dataset)
        return self.order.rank_indices(dataset)

    def vectors_suffice(self) -> bool:
        """Whether the global step reads only the vectors: the walk is in row order."""
        return self.order is None

    def check_portable(self) -> None:
        """Refuse ``PrecomputedEmbeddings`` holding an in-memory array: rebuilt in a
        worker that sees a block of rows, it cannot tell which vectors are theirs."""
        refuse_in_memory_vectors(self)

    def embed(self, dataset: Dataset) -> np.ndarray:
        """The float32 ``[len(dataset), d]`` vectors of the rows, each from its row alone."""
        self._check_params()
        return np.asarray(embed_rows(self, dataset), dtype=np.float32)

    def rank_vectors(
        self, vectors: np.ndarray, rng: np.random.Generator, limit: int | None
    ) -> RankResult:
        """The global step over every row's vector (in position order): the greedy walk
        in row order (``order=None``; another order needs the rows)."""
        if self.order is not None:
            raise RuntimeError(f"order={self.order!r} needs the rows, not only their vectors")
        n = np.asarray(vectors).shape[0]
        return self._walk_vectors(vectors, np.arange(n, dtype=np.int64), limit)

    def _rank(self, dataset: Dataset, rng: np.random.Generator, limit: int | None) -> RankResult:
        self._check_params()
        if len(dataset) == 0:
            return RankResult(order=np.empty(0, dtype=np.int64), n_eligible=0)
        return self._walk_vectors(embed_rows(self, dataset), self._walk(dataset), limit)

    def _walk_vectors(self, X: np.ndarray, walk: np.ndarray, limit: int | None) -> RankResult:
        max_similarity = self._check_params()
        if walk.size == 0 and np.asarray(X).shape[0] == 0:
            return RankResult(order=np.empty(0, dtype=np.int64), n_eligible=0)
        bar = None
        if self.show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=int(walk.size), desc="similarity filter", unit="row")
        try:
            kept, walked = similarity_filter_order(
                X,
                walk,
                max_similarity,
                limit=limit,
                on_progress=None if bar is None else bar.update,
            )
        finally:
            if bar is not None:
                bar.close()
        extra = {
            "embedder": getattr(self.embedder, "identity", repr(self.embedder)),
            "walked": walked,
            "walk_length": int(walk.size),
            "kept": int(kept.size),
            "complete": walked == walk.size,
        }
        return RankResult(order=kept, n_eligible=int(kept.size), extra=extra)
