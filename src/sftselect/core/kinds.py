"""What a selector needs from an engine: the kinds of work an engine implements once each."""

from __future__ import annotations

import enum

__all__ = ["EngineKind"]


class EngineKind(str, enum.Enum):
    """What a selector needs from an engine: the shape of its work.

    A selector declares one as its :attr:`Selector.engine_kind` class attribute.
    An engine that runs selectors elsewhere than in one process (the Ray engine,
    :func:`sftselect.distributed.run`) picks its path from this declaration alone,
    never from the selector's class, so a selector of your own runs there as soon
    as its declaration is true. Each kind promises the public methods named here:

    ``ROW_SCORE``
        A score per row computed from that row alone, then the shared rule
        (``min <= score <= max``, then top-k with the ``ties`` rule). The selector
        is a :class:`~sftselect.selectors.score.ScoreSelector`: an engine calls
        ``score_with_rules`` on blocks of rows in parallel, ``bounds()``, and reads
        ``largest`` and ``ties``; it merges the blocks' top-k candidates exactly.
        Every ``ScoreSelector`` declares it: a subclass whose score of a row
        depends on other rows must declare ``WHOLE_DATASET`` instead.
    ``VECTORS_THEN_GLOBAL``
        A vector per row computed from that row alone (``embed(dataset)``, a
        float ``[len(dataset), d]`` array), then one global step over every
        row's vector (``rank_vectors(vectors, rng, limit)``, a
        :class:`RankResult`); ``_rank(ds, rng, limit)`` must equal
        ``rank_vectors(embed(ds), rng, limit)``. An engine embeds blocks in
        parallel and runs the global step in one process.
    ``SEEDED_DRAW``
        A seeded draw over row positions: the ranking depends only on the
        number of rows, the generator and the columns :meth:`Selector.input_columns`
        names. An engine gathers the positions and those columns alone and
        calls :meth:`Selector.rank` once.
    ``COMPOSITE``
        Other selectors combined by positions (:mod:`sftselect.core.compose`):
        the selector promises ``rank_pool(pool, rng, limit)`` over a
        :class:`~sftselect.core.pool.Pool`, and an engine passes the pool of its
        own rows, on which each operand runs by its own kind.
    ``DUPLICATE_GROUPS``
        One row kept of each group of duplicates, the groups found through keys
        computed per row: ``duplicate_keys(dataset)`` (per row, from that row
        alone: an ``identity``, its 64-bit ``identity_hash``, an ``active`` flag
        and optional LSH ``buckets``; rows of equal identity are one class, heads
        of classes sharing a bucket are candidate pairs),
        ``pair_values(dataset)`` (per row, from that row alone) and
        ``pair_measure(values, a, b)`` (the similarity of pairs of those rows),
        ``keep_priority(n, column_names, rank, rng)`` (the keep policy; ``rank``
        ranks the rows by a selector) and ``resolve_duplicates(candidates,
        measure, priority)`` (verification, union-find, the kept rows: one
        process, over pairs and a few numbers per row).
        :mod:`sftselect.selectors.dedup.grouping` holds the grouping rules an
        engine shares with one process, so any partition of the rows gives the
        same candidates; ``_rank`` must run exactly these steps.
    ``WHOLE_DATASET``
        The fallback, and the default of :class:`Selector`: the ranking needs
        every row at once. An engine gathers the rows (only the columns
        :meth:`Selector.input_columns` names, when it names some) into one
        process and calls :meth:`Selector.rank` there. This does not scale
        beyond what one machine holds; it only lets the selector run.
    """

    ROW_SCORE = "row_score"
    VECTORS_THEN_GLOBAL = "vectors_then_global"
    SEEDED_DRAW = "seeded_draw"
    COMPOSITE = "composite"
    DUPLICATE_GROUPS = "duplicate_groups"
    WHOLE_DATASET = "whole_dataset"

    def __str__(self) -> str:
        return self.name
