"""TargetedSelector: the pool rows most similar to examples of target tasks (RDS+).

RDS+ (Ivison et al., 2025, "Large-Scale Data Selection for Instruction
Tuning"; ``minimal_multitask/compute_influence_cosinesim.py`` and
``get_top_aggregated_influences.py`` of github.com/hamishivi/automated-instruction-selection
at commit ``df71a044d567976e37bebeae53cd59f992b1ea09``):

1. every pool row and every target example is embedded by the base causal
   LM's final hidden states, position-weighted mean pooling (token ``t`` of
   ``T`` weighs ``t / sum(1..T)``), L2-normalised -- :func:`rds_embedder`
   builds that :class:`~sftselect.embedding.HFEmbedder`;
2. the score of pool row ``i`` for task ``t`` is ``max_{e in t} cos(v_i, u_e)``
   (``--selection_method max``);
3. each task ranks the pool by its score (highest first; ties: lower row
   index, as Python's stable sort over rows in order); the tasks then take
   turns, one row a turn, in the order given (``--aggregation_method
   round_robin``); a row another task took already is skipped and the turn
   is spent, as in the reference. Row ``i`` enters the ranking at turn
   ``min_t (r_t(i) * T + t)``, ``r_t(i)`` its place in task ``t``'s ranking.

Targets are one Dataset (one task) or several (a list: one task each; a dict:
named tasks), in any format :func:`~sftselect.embedding.example_texts` reads
(``target_text`` picks the text); a Dataset with a ``prompt`` column and no
``target_format`` (the packaged test sets, :mod:`sftselect.testsets`) is read
from that column. Differences from the reference are listed in
``docs/selectors/targeted.md``.

Engine kind ``VECTORS_THEN_GLOBAL``: :meth:`TargetedSelector.embed` embeds
the pool rows one by one; :meth:`TargetedSelector.rank_vectors` embeds the
targets (few) and ranks, so the selector runs on Ray as DiversitySelector does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..core.base import EngineKind, RankResult, Selector
from ..core.constraints import K_CONSTRAINTS, Satisfies
from ..core.validation import param_error
from ..embedding.base import PrecomputedEmbeddings, as_matrix, example_texts
from .coverage import unit_rows
from .embedded import CACHE_DIR, EMBEDDER, FORMAT, TEXT, embed_rows, refuse_in_memory_vectors

if TYPE_CHECKING:
    from datasets import Dataset

    from ..data.formats import Format

__all__ = ["TargetedSelector", "rds_embedder", "round_robin"]


def rds_embedder(model: Any, **options: Any) -> Any:
    """RDS+'s embedder: ``HFEmbedder(model, layer=-1, pooling="weighted_mean", normalize=True)``.

    ``options`` go to :class:`~sftselect.embedding.HFEmbedder` (``tokenizer``,
    ``max_length``, ``batch_size``, ``device``, ``dtype``, ...).
    """
    from ..embedding.hf import HFEmbedder

    return HFEmbedder(model, layer=-1, pooling="weighted_mean", normalize=True, **options)


def round_robin(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows in RDS+'s round-robin order over tasks, and the task that took each row.

    ``scores`` is ``[T, n]`` (task x row). Task ``t`` ranks rows by score
    (highest first, ties by row index); the ``r``-th row of task ``t`` comes
    at turn ``r * T + t``; a row enters at its first turn.
    """
    T, n = scores.shape
    first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    taker = np.zeros(n, dtype=np.int64)
    rows = np.arange(n)
    for t in range(T):
        ranked = np.lexsort((rows, -scores[t]))
        turn = np.empty(n, dtype=np.int64)
        turn[ranked] = rows * T + t
        better = turn < first
        first[better] = turn[better]
        taker[better] = t
    order = np.argsort(first, kind="stable")
    return order.astype(np.int64), taker[order]


TARGETS_HELP = "a Dataset, a non-empty list of Datasets, or a dict of name -> Dataset"


def _named_tasks(targets: Any) -> dict[str, Dataset] | None:
    """The targets as ``{task name: Dataset}``, or None when they are not of that form."""
    from datasets import Dataset

    if isinstance(targets, Dataset):
        named = {"task_0": targets}
    elif isinstance(targets, Mapping):
        named = {str(name): ds for name, ds in targets.items()}
    elif isinstance(targets, (list, tuple)):
        named = {f"task_{i}": ds for i, ds in enumerate(targets)}
    else:
        return None
    if not named or not all(isinstance(ds, Dataset) for ds in named.values()):
        return None
    return named


def _is_targets(targets: Any) -> bool:
    return _named_tasks(targets) is not None


class TargetedSelector(Selector):
    """``k`` pool rows closest to the target tasks' examples, round-robin over tasks (RDS+).

    Parameters
    ----------
    embedder : Embedder or PrecomputedEmbeddings
        Embeds the pool rows; for RDS+, :func:`rds_embedder` of the base model.
        The targets are embedded by ``target_embedder`` when given, else by
        this one (it must then embed texts: ``PrecomputedEmbeddings`` cannot).
    k : int or float, default 1000
    targets : Dataset, list of Datasets, or dict of name -> Dataset
        One Dataset per task.
    text : {"instruction", "instruction_input", "response", "example"}, default "example"
        The pool text embedded (RDS+ embeds the whole example).
    target_text : same choices, default "example"
    format, target_format : str, Format or None
        The pool's and the targets' formats (None: detected).
    target_embedder : Embedder, PrecomputedEmbeddings or None
        For the targets (``PrecomputedEmbeddings`` only with one task).
    cache_dir : str, path or None
    random_state : accepted for the common signature; nothing is drawn.
    show_progress : bool, default False
    """

    engine_kind = EngineKind.VECTORS_THEN_GLOBAL
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "embedder": EMBEDDER,
        "k": K_CONSTRAINTS,
        "targets": [Satisfies(_is_targets, TARGETS_HELP)],
        "text": TEXT,
        "target_text": TEXT,
        "format": FORMAT,
        "target_format": FORMAT,
        "target_embedder": [*EMBEDDER, None],
        "cache_dir": CACHE_DIR,
        "random_state": ["random_state"],
        "show_progress": ["boolean"],
    }

    def __init__(
        self,
        embedder: Any,
        k: int | float = 1000,
        *,
        targets: Any = None,
        text: str = "example",
        target_text: str = "example",
        format: str | Format | None = None,
        target_format: str | Format | None = None,
        target_embedder: Any = None,
        cache_dir: str | os.PathLike[str] | None = None,
        random_state: Any = None,
        show_progress: bool = False,
    ) -> None:
        self.embedder = embedder
        self.k = k
        self.targets = targets
        self.text = text
        self.target_text = target_text
        self.format = format
        self.target_format = target_format
        self.target_embedder = target_embedder
        self.cache_dir = cache_dir
        self.random_state = random_state
        self.show_progress = show_progress

    def tasks(self) -> dict[str, Dataset]:
        """The targets as ``{task name: Dataset}`` (names ``task_0``, ... for a list)."""
        owner = type(self).__name__
        named = _named_tasks(self.targets)
        if named is None:
            raise param_error(owner, "targets", TARGETS_HELP, self.targets)
        for name, ds in named.items():
            if len(ds) == 0:
                raise param_error(
                    owner, "targets", f"tasks with examples (task {name!r} is empty)", name
                )
        return named

    def check_params(self) -> None:
        """Check the parameters: their declared constraints, then the rules across them."""
        owner = type(self).__name__
        self._validate_params()
        tasks = self.tasks()
        source = self.embedder if self.target_embedder is None else self.target_embedder
        if isinstance(source, PrecomputedEmbeddings) and len(tasks) > 1:
            raise param_error(
                owner,
                "target_embedder",
                "an Embedder when there are several tasks (one PrecomputedEmbeddings cannot "
                "hold the vectors of each)",
                source,
            )

    def check_portable(self) -> None:
        """Refuse ``PrecomputedEmbeddings`` holding an in-memory array for the pool."""
        refuse_in_memory_vectors(self)

    def target_texts(self, ds: Dataset) -> list[str]:
        """The texts of one task (its ``prompt`` column for the packaged test sets)."""
        if self.target_format is None and "prompt" in ds.column_names:
            return [str(p) for p in ds["prompt"]]
        return example_texts(
            ds, self.target_text, self.target_format, owner=f"{type(self).__name__} targets"
        )

    def embed(self, dataset: Dataset) -> np.ndarray:
        """The pool rows' vectors (float32), each from its row alone."""
        self.check_params()
        return embed_rows(self, dataset)

    def target_vectors(self) -> dict[str, np.ndarray]:
        """Each task's example vectors (float32), by the target embedder."""
        owner = f"{type(self).__name__} targets"
        from ..embedding.sentence import as_embedder

        source = as_embedder(
            self.embedder if self.target_embedder is None else self.target_embedder
        )
        out: dict[str, np.ndarray] = {}
        for name, ds in self.tasks().items():
            if hasattr(source, "embed_dataset"):
                out[name] = source.embed_dataset(ds)
                continue
            texts = self.target_texts(ds)
            if self.cache_dir is None:
                out[name] = as_matrix(source.embed(texts), len(texts), owner)
            else:
                from ..embedding.cache import EmbeddingCache

                out[name] = EmbeddingCache(self.cache_dir).get_or_compute(
                    source.identity, texts, lambda t=texts: source.embed(t), owner=owner
                )
        return out

    def rank_vectors(
        self, vectors: np.ndarray, rng: np.random.Generator, limit: int | None
    ) -> RankResult:
        """Score every pool vector against each task, then the round robin."""
        self.check_params()
        V = unit_rows(np.asarray(vectors, dtype=np.float32))
        n = V.shape[0]
        if n == 0:
            return RankResult(order=np.empty(0, dtype=np.int64), n_eligible=0)
        targets = self.target_vectors()
        names = list(targets)
        scores = np.empty((len(names), n), dtype=np.float32)
        for t, name in enumerate(names):
            U = unit_rows(targets[name])
            if U.shape[1] != V.shape[1]:
                raise param_error(
                    type(self).__name__,
                    "targets",
                    f"vectors of the pool's {V.shape[1]} dimensions",
                    f"task {name!r} embedded to {U.shape[1]}",
                )
            best = np.full(n, -np.inf, dtype=np.float32)
            for start in range(0, U.shape[0], 1024):
                np.maximum(best, (V @ U[start : start + 1024].T).max(axis=1), out=best)
            scores[t] = best
        order, taker = round_robin(scores)
        cut = n if limit is None else min(int(limit), n)
        counts = np.bincount(taker[:cut], minlength=len(names))
        extra: dict[str, Any] = {
            "embedder": getattr(self.embedder, "identity", repr(self.embedder)),
            "tasks": names,
            "task_sizes": [int(targets[name].shape[0]) for name in names],
            "selected_per_task": {name: int(c) for name, c in zip(names, counts)},
        }
        return RankResult(order=order, n_eligible=n, scores=scores.max(axis=0), extra=extra)

    def _rank(self, dataset: Dataset, rng: np.random.Generator, limit: int | None) -> RankResult:
        self.check_params()
        if len(dataset) == 0:
            return RankResult(order=np.empty(0, dtype=np.int64), n_eligible=0)
        return self.rank_vectors(self.embed(dataset), rng, limit)
