"""FacilityLocationSelector: the rows that best cover the pool (facility location).

The selection maximises the facility-location objective

    f(S) = sum_i w_i * max(0, max_{j in S} s(i, j))

over all rows ``i`` of the pool: every row counts by how similar it is to its
most similar selected row. With the cosine kernel and unit weights, maximising
``f`` is minimising the *coverage* ``mean_i (1 - max_{j in S} cos(i, j))``
(:func:`~sftselect.selectors.facility_greedy.coverage`) up to the clip at 0.
``f`` is monotone submodular, so the greedy picks reach ``(1 - 1/e)`` of the
best ``k``-set. apricot-select's ``FacilityLocationSelection`` is the reference:
with ``kernel="cosine_squared"`` (what apricot's ``metric="cosine"`` computes)
the greedy order is apricot's.

Options, and the objective each optimises (all the same ``f``):

* ``optimizer="lazy"`` (default) -- exact greedy, evaluated lazily: the
  greedy's picks, ties to the lowest row index;
* ``optimizer="stochastic"`` -- stochastic greedy: each pick the best of
  ``ceil(n / k * ln(1 / epsilon))`` rows drawn from ``random_state``;
* ``refine="swap"`` -- after the greedy, k-medoids swaps (FasterPAM's eager
  rule) that raise ``f`` until no single swap does (dense similarities only);
  the ``k`` rows are then ranked in greedy order among themselves, and rows
  beyond ``k`` continue the greedy;
* ``graph="knn"`` -- each row sees only its ``n_neighbors`` most similar rows
  (a similarity outside them counts as 0): ``f`` on that graph, the
  approximation for pools too large for the dense ``n x n`` matrix
  (``graph="auto"`` switches above ``max_dense_rows`` rows).

See :mod:`sftselect.selectors.facility_graph` and
:mod:`sftselect.selectors.facility_greedy` for the algorithms, and
``docs/selectors/facility-location.md`` for measurements.

The ranking: the first ``k`` rows are the selection (with ``refine`` the
refined set, which depends on ``k``); the rest continue the greedy from them,
so ``select_indices`` is always the sorted prefix of ``rank_indices``. The
full ranking makes ``n`` greedy picks: ask for it only on pools where that is
affordable.

Engine kind: ``VECTORS_THEN_GLOBAL``. :meth:`FacilityLocationSelector.embed`
gives each row's vector from that row alone -- with ``weights`` set, the row's
weight is appended as a last column -- and :meth:`rank_vectors` is the global
step, so the selector runs on Ray as :class:`DiversitySelector` does.
"""

from __future__ import annotations

import numbers
import os
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..core.base import EngineKind, RankResult, Selector
from ..core.constraints import K_CONSTRAINTS, InstanceOf, Interval, Options
from ..core.validation import check_columns, param_error, resolve_k
from ..exceptions import DataFormatError
from .embedded import CACHE_DIR, EMBEDDER, FORMAT, TEXT, embed_rows, refuse_in_memory_vectors
from .facility_graph import KERNELS, DenseSimilarities, KnnSimilarities, prepare
from .facility_greedy import OPTIMIZERS, facility_value, greedy_order, sample_size, swap_refine

if TYPE_CHECKING:
    from datasets import Dataset

    from ..data.formats import Format

__all__ = ["GRAPHS", "REFINES", "FacilityLocationSelector"]

GRAPHS: tuple[str, ...] = ("auto", "dense", "knn")
REFINES: tuple[str | None, ...] = (None, "swap")


class FacilityLocationSelector(Selector):
    """``k`` rows maximising facility-location coverage of the pool's embeddings.

    Parameters
    ----------
    embedder : Embedder or PrecomputedEmbeddings
    k : int or float, default 1000
        Rows to keep: a positive int, or a fraction in (0, 1] (rounded up).
    kernel : {"cosine", "cosine_squared", "dot"} or callable, default "cosine"
        The similarity ``s(i, j)``; a callable gets two float32 blocks of rows
        ``(A, B)`` and returns ``[len(A), len(B)]`` similarities. Values below
        0 count as 0.
    weights : str or None
        A column of non-negative per-row weights ``w_i`` (e.g. a quality
        score): how much covering each row counts. None: all 1. Carried as
        float32 beside the vectors (see :meth:`embed`).
    optimizer : {"lazy", "stochastic"}, default "lazy"
    epsilon : float, default 0.01
        Stochastic greedy's ``epsilon`` (in (0, 1)).
    refine : {None, "swap"}, default None
    max_swap_passes : int, default 10
    graph : {"auto", "dense", "knn"}, default "auto"
    n_neighbors : int, default 100
        Neighbours per row of the ``"knn"`` graph.
    max_dense_rows : int, default 16384
        ``graph="auto"`` uses the dense matrix up to this many rows
        (``n * n * 4`` bytes: 1 GiB at 16,384).
    text, cache_dir, format
        As for :class:`~sftselect.selectors.diversity.DiversitySelector`.
    random_state : int, numpy Generator or None
        Draws the stochastic greedy's samples (the lazy greedy draws nothing).
    show_progress : bool, default False
    """

    engine_kind = EngineKind.VECTORS_THEN_GLOBAL
    _uses_random_state = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "embedder": EMBEDDER,
        "k": K_CONSTRAINTS,
        "kernel": [Options(*KERNELS), "callable"],
        "weights": [InstanceOf(str, "a column name"), None],
        "optimizer": [Options(*OPTIMIZERS)],
        "epsilon": [
            Interval(numbers.Real, 0, 1, closed="neither", description="a number in (0, 1)")
        ],
        "refine": [Options(*REFINES)],
        "max_swap_passes": [Interval(numbers.Integral, 1, None)],
        "graph": [Options(*GRAPHS)],
        "n_neighbors": [Interval(numbers.Integral, 1, None)],
        "max_dense_rows": [Interval(numbers.Integral, 1, None)],
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
        kernel: Any = "cosine",
        weights: str | None = None,
        optimizer: str = "lazy",
        epsilon: float = 0.01,
        refine: str | None = None,
        max_swap_passes: int = 10,
        graph: str = "auto",
        n_neighbors: int = 100,
        max_dense_rows: int = 16384,
        text: str = "instruction_input",
        cache_dir: str | os.PathLike[str] | None = None,
        format: str | Format | None = None,
        random_state: Any = None,
        show_progress: bool = False,
    ) -> None:
        self.embedder = embedder
        self.k = k
        self.kernel = kernel
        self.weights = weights
        self.optimizer = optimizer
        self.epsilon = epsilon
        self.refine = refine
        self.max_swap_passes = max_swap_passes
        self.graph = graph
        self.n_neighbors = n_neighbors
        self.max_dense_rows = max_dense_rows
        self.text = text
        self.cache_dir = cache_dir
        self.format = format
        self.random_state = random_state
        self.show_progress = show_progress

    def check_params(self) -> None:
        """Check the parameters that need no data (``k`` aside: see :meth:`check_k`)."""
        owner = type(self).__name__
        self._validate_params()
        if self.refine == "swap" and self.graph == "knn":
            raise param_error(
                owner, "refine", "None with graph='knn' (swaps need the dense matrix)", "swap"
            )

    def check_portable(self) -> None:
        """Refuse ``PrecomputedEmbeddings`` holding an in-memory array (see DiversitySelector)."""
        refuse_in_memory_vectors(self)

    def input_columns(self) -> list[str] | None:
        return None

    def embed(self, dataset: Dataset) -> np.ndarray:
        """Each row's vector (float32), its weight appended as a last column when
        ``weights`` names one."""
        self.check_params()
        owner = type(self).__name__
        X = embed_rows(self, dataset)
        if self.weights is None:
            return X
        check_columns(dataset.column_names, [self.weights], owner)
        w = _weights(dataset[self.weights], owner, self.weights)
        if X.shape[0] == 0:
            return np.zeros((0, 1), dtype=np.float32)
        return np.hstack([X, w[:, None].astype(np.float32)])

    def rank_vectors(
        self, vectors: np.ndarray, rng: np.random.Generator, limit: int | None
    ) -> RankResult:
        """The global step on every row's vector (what :meth:`embed` gives)."""
        self.check_params()
        V = np.asarray(vectors, dtype=np.float32)
        n = V.shape[0]
        if n == 0:
            return RankResult(order=np.empty(0, dtype=np.int64), n_eligible=0)
        if self.weights is None:
            X, w = V, np.ones(n, dtype=np.float64)
        else:
            X, w = V[:, :-1], V[:, -1].astype(np.float64)
        K = min(resolve_k(self.k, n), n)
        steps = n if limit is None else min(int(limit), n)
        dense = self.graph == "dense" or (self.graph == "auto" and n <= self.max_dense_rows)
        if self.refine == "swap" and not dense:
            raise param_error(
                type(self).__name__,
                "refine",
                f"None above max_dense_rows={self.max_dense_rows} rows (swaps need the dense "
                f"matrix; this pool has {n:,}); raise max_dense_rows or drop refine",
                self.refine,
            )
        bar = self._bar(steps)
        try:
            return self._rank_arrays(X, w, K, steps, dense, rng, bar)
        finally:
            if bar is not None:
                bar.close()

    def _rank_arrays(
        self,
        X: np.ndarray,
        w: np.ndarray,
        K: int,
        steps: int,
        dense: bool,
        rng: np.random.Generator,
        bar: Any,
    ) -> RankResult:
        n = X.shape[0]
        P = prepare(X, self.kernel)
        sims: Any
        if dense:
            sims = DenseSimilarities(P, self.kernel)
        else:
            sims = KnnSimilarities(P, self.kernel, int(self.n_neighbors))
        update = None if bar is None else bar.update
        opts: dict[str, Any] = {"optimizer": self.optimizer, "on_progress": update}
        if self.optimizer == "stochastic":
            opts.update(sample_size=sample_size(n, K, float(self.epsilon)), rng=rng)
        swaps, converged = 0, None
        if self.refine == "swap":
            first, _ = greedy_order(sims, w, K, **opts)
            medoids, swaps, converged = swap_refine(
                sims, w, first, max_passes=int(self.max_swap_passes)
            )
            mask = np.zeros(n, dtype=bool)
            mask[medoids] = True
            head, cur = greedy_order(sims, w, K, candidates=mask)
            order = head[:steps]
            if steps > K:
                rest, _ = greedy_order(sims, w, steps - K, candidates=~mask, cur=cur, **opts)
                order = np.concatenate([head, rest])
        else:
            order, _ = greedy_order(sims, w, steps, **opts)
        extra: dict[str, Any] = {
            "embedder": getattr(self.embedder, "identity", repr(self.embedder)),
            "kernel": self.kernel if isinstance(self.kernel, str) else repr(self.kernel),
            "graph": "dense" if dense else f"knn({sims.m})",
            "optimizer": self.optimizer,
            "refine": self.refine,
            "swaps": int(swaps),
            "swap_converged": converged,
            "objective": facility_value(sims, w, order[: min(K, order.size)]),
        }
        return RankResult(order=order, n_eligible=n, extra=extra)

    def _bar(self, total: int) -> Any:
        if not self.show_progress:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc="facility location", unit="pick")

    def _rank(self, dataset: Dataset, rng: np.random.Generator, limit: int | None) -> RankResult:
        self.check_params()
        if len(dataset) == 0:
            return RankResult(order=np.empty(0, dtype=np.int64), n_eligible=0)
        return self.rank_vectors(self.embed(dataset), rng, limit)


def _weights(values: Any, owner: str, column: str) -> np.ndarray:
    """The weight column as float64, every value finite and >= 0 (else one line naming the row)."""
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v) or v < 0:
            raise DataFormatError(
                f"Row {i}: {owner}'s weights column {column!r} must hold a finite number "
                f">= 0; got {v!r}."
            )
        out[i] = float(v)
    return out
