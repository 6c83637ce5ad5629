"""KCenterSelector: k-center greedy coverage of the embedding space.

The greedy 2-approximation of the k-center problem (Gonzalez, 1985; the
"core-set" selection of Sener & Savarese, 2018): a first centre drawn uniformly
from ``random_state``, then repeatedly the row farthest from its nearest
centre (ties: the lowest row index). The ranking is the pick order, so a larger
``k`` extends a smaller one and the first ``k`` rows minimise, within a factor
of 2, the largest distance from any row to its nearest selected row.

Distances: ``metric="cosine"`` is ``1 - cosine similarity`` (a zero vector has
similarity 0 with everything); ``"euclidean"`` is the Euclidean distance. Each
pick costs one matrix-vector product over all rows, so ``k`` picks from ``n``
rows cost ``O(n k d)``; ``k`` close to ``n`` and ``rank_indices`` (every row)
cost ``O(n^2 d)`` (200,000 x 64: about 1 ms a pick on 2 cores, 210 s for
every row). Only the end of a ``"euclidean"`` order, once every unpicked row
is at distance 0 from a pick, is cheaper (see
:func:`~sftselect.selectors.coverage.kcenter_order`).
``run(ds).extra["radius"]`` is the covering radius reached by the picks made.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..core.base import EngineKind, RankResult, Selector
from ..core.constraints import K_CONSTRAINTS, Options
from .coverage import METRICS, kcenter_order
from .embedded import CACHE_DIR, EMBEDDER, FORMAT, TEXT, embed_rows, refuse_in_memory_vectors

if TYPE_CHECKING:
    from datasets import Dataset

    from ..data.formats import Format

__all__ = ["KCenterSelector"]


class KCenterSelector(Selector):
    """``k`` rows picked by farthest-point traversal of their embeddings.

    Parameters
    ----------
    embedder : Embedder or PrecomputedEmbeddings
    k : int or float, default 1000
        Rows to keep: a positive int, or a fraction in (0, 1] (rounded up).
    metric : {"cosine", "euclidean"}, default "cosine"
    text : {"instruction", "instruction_input", "response", "example"}
    cache_dir : str, path or None
    format : str, Format or None
    random_state : int, numpy Generator or None
        Draws the first centre.
    show_progress : bool, default False
        A progress bar over the picks.
    """

    #: A vector per row from that row alone, then farthest-point traversal over
    #: every row's vector in one process (:meth:`embed`, :meth:`rank_vectors`).
    engine_kind = EngineKind.VECTORS_THEN_GLOBAL
    _uses_random_state = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "embedder": EMBEDDER,
        "k": K_CONSTRAINTS,
        "metric": [Options(*METRICS)],
        "text": TEXT,
        "cache_dir": CACHE_DIR,
        "format": FORMAT,
        "random_state": ["random_state"],
        "show_progress": ["boolean"],
    }

    def __init__(
        self,
        embedder: Any,
        k: int | float = 1000,
        *,
        metric: str = "cosine",
        text: str = "instruction_input",
        cache_dir: str | os.PathLike[str] | None = None,
        format: str | Format | None = None,
        random_state: Any = None,
        show_progress: bool = False,
    ) -> None:
        self.embedder = embedder
        self.k = k
        self.metric = metric
        self.text = text
        self.cache_dir = cache_dir
        self.format = format
        self.random_state = random_state
        self.show_progress = show_progress

    def check_params(self) -> None:
        """Check the parameters against ``_parameter_constraints`` (no data needed)."""
        self._validate_params()

    def check_portable(self) -> None:
        """Refuse ``PrecomputedEmbeddings`` holding an in-memory array: rebuilt in a
        worker that sees a block of rows, it cannot tell which vectors are theirs."""
        refuse_in_memory_vectors(self)

    def embed(self, dataset: Dataset) -> np.ndarray:
        """The float32 ``[len(dataset), d]`` vectors of the rows, each from its row alone
        (the ``text`` field under ``embedder``, through ``cache_dir``)."""
        self.check_params()
        return embed_rows(self, dataset)

    def _rank(self, dataset: Dataset, rng: np.random.Generator, limit: int | None) -> RankResult:
        self.check_params()
        if len(dataset) == 0:
            return RankResult(order=np.empty(0, dtype=np.int64), n_eligible=0)
        return self.rank_vectors(self.embed(dataset), rng, limit)

    def rank_vectors(
        self, vectors: np.ndarray, rng: np.random.Generator, limit: int | None
    ) -> RankResult:
        """The global step: farthest-point traversal over every row's vector.

        ``vectors`` holds one row per dataset row, in position order (what
        :meth:`embed` gives); ``rng`` draws the first centre.
        """
        self.check_params()
        X = vectors
        n = X.shape[0]
        if n == 0:
            return RankResult(order=np.empty(0, dtype=np.int64), n_eligible=0)
        first = int(rng.integers(n))
        bar = None
        if self.show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n if limit is None else limit, desc="k-center greedy", unit="pick")
        try:
            order, radius = kcenter_order(
                X, first, self.metric, limit=limit, on_progress=None if bar is None else bar.update
            )
        finally:
            if bar is not None:
                bar.close()
        extra = {
            "embedder": getattr(self.embedder, "identity", repr(self.embedder)),
            "metric": self.metric,
            "first_center": first,
            "radius": radius,
        }
        return RankResult(order=order, n_eligible=n, extra=extra)
