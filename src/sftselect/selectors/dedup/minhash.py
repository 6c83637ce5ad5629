"""MinHashDedup: one row of each group of near-duplicates by MinHash-LSH.

The steps (the machinery is in :mod:`._minhash`):

1. the compared text of each row (``fields``, see :mod:`._texts`, joined by a
   space) is cut into word ``ngram`` shingles;
2. each row gets a ``num_perm`` MinHash signature;
3. LSH: the signature is cut into ``bands`` bands of ``rows`` values, chosen for
   ``threshold`` as datasketch's ``MinHashLSH`` chooses them (the bands that
   minimise the weighted false-positive and false-negative areas), or given. The
   default ``weights=(0.1, 0.9)`` favours recall, since verification removes
   false positives: for 0.7 and 128 permutations it gives 20 bands of 6 rows
   (a pair at Jaccard 0.7 becomes a candidate with probability 0.92), where
   datasketch's default weights ``(0.5, 0.5)`` give 14 bands of 9 (0.44), which
   found only 94% of the pairs of the near-copy test set; two rows
   that agree on a whole band are a candidate pair (rows with identical
   signatures go through LSH once, as one row; a bucket of more than 64 rows
   pairs each row with its first 64 only);
4. with ``verify=True`` (the default) each candidate pair is kept only if the
   true Jaccard similarity of the two shingle sets (64-bit shingle hashes) is at
   least ``threshold``, so no false positive survives; a pair already joined
   through others is not verified again;
5. the verified pairs are joined into groups (union-find: a group is a
   connected component, so two rows of a group may be less similar than
   ``threshold`` when a chain of similar rows joins them);
6. of each group the keep policy keeps one row (see :mod:`._groups`).

A row with no word token has no shingle and is never a near-duplicate
(:class:`~sftselect.selectors.dedup.ExactDedup` groups empty rows). The
``similarity`` of a removed row in ``extra["removed_rows"]`` is its shingle
Jaccard with the kept row of its group (with ``verify=False``: the fraction of
equal signature values, the MinHash estimate).
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...core.base import EngineKind, RankResult, Selector
from ...core.constraints import K_CONSTRAINTS, Interval, Satisfies
from ...core.validation import param_error
from ...data.formats import FORMAT_CONSTRAINTS
from ._groups import (
    KeepPolicy,
    UnionFind,
    dedup_result,
    group_representatives,
    keep_constraints,
)
from ._minhash import (
    band_keys,
    lsh_params,
    pair_jaccard,
    shingle_set_arrays,
    signature_hashes,
    signatures,
)
from ._texts import FIELDS_CONSTRAINTS, check_fields, field_texts
from .grouping import DuplicateCandidates, candidates_in_one_process

if TYPE_CHECKING:
    from datasets import Dataset

    from ...data.formats import Format

__all__ = ["MinHashDedup"]

_EMPTY = np.uint32(0xFFFFFFFF)


_POSITIVE_INT = Interval(numbers.Integral, 1, None)


def _two_weights(w: Any) -> bool:
    return (
        isinstance(w, (tuple, list))
        and len(w) == 2
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in w)
        and min(w) >= 0
        and sum(w) > 0
    )


class MinHashDedup(KeepPolicy, Selector):
    """Keep one row of each group of near-duplicates (word-shingle Jaccard >= ``threshold``).

    Parameters
    ----------
    k : int, float or None, default None
        None keeps every group's kept row; a number keeps the first ``k`` (row order).
    fields : sequence of str, str or None, default None
        What is compared (see :class:`~sftselect.selectors.dedup.ExactDedup`);
        ``fields="instruction"`` and ``fields="response"`` deduplicate the two
        separately. None compares the whole example.
    threshold : float in (0, 1], default 0.7
        The Jaccard similarity of shingle sets from which two rows are duplicates.
    ngram : int, default 5
        Words per shingle.
    num_perm : int, default 128
        MinHash permutations.
    bands : int or None, default None
        LSH bands; None chooses ``(bands, rows)`` for ``threshold`` (datasketch's
        rule). Given, ``rows = num_perm // bands``.
    weights : (float, float), default (0.1, 0.9)
        The false-positive and false-negative weights of the band choice
        (datasketch's ``MinHashLSH(weights=...)``); ignored when ``bands`` is given.
    verify : bool, default True
        Check each candidate pair against the true shingle Jaccard.
    keep : str or Selector, default "first"
        Which row of a group is kept (see :class:`~sftselect.selectors.dedup.ExactDedup`).
    hash_seed : int, default 1
        Seeds the permutations (signatures are comparable only under one seed).
    num_proc : int, default 1
        Threads computing signatures.
    batch_size : int, default 10000
        Rows shingled at a time (memory: the signature matrix plus one batch).
    format : str, Format or None
    random_state : int, numpy Generator or None
        Seeds ``keep="random"``.
    show_progress : bool, default False

    Examples
    --------
    >>> from datasets import Dataset
    >>> from sftselect import MinHashDedup
    >>> text = "the quick brown fox jumps over the lazy dog near the quiet river bank today"
    >>> pool = Dataset.from_dict({
    ...     "instruction": [text, text.replace("today", "tonight"), "Say hi."],
    ...     "output": ["", "", "Hi!"],
    ... })
    >>> MinHashDedup().select_indices(pool).tolist()
    [0, 2]
    >>> round(float(MinHashDedup().run(pool).extra["removed_rows"]["similarity"][0]), 3)
    0.833
    """

    engine_kind = EngineKind.DUPLICATE_GROUPS
    _k_optional = True
    _uses_random_state = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "k": [*K_CONSTRAINTS, None],
        "fields": FIELDS_CONSTRAINTS,
        "threshold": [Interval(numbers.Real, 0, 1, closed="right")],
        "ngram": [_POSITIVE_INT],
        "num_perm": [_POSITIVE_INT],
        "bands": [_POSITIVE_INT, None],
        "weights": [Satisfies(_two_weights, "two non-negative floats, not both 0", invalid=(0, 0))],
        "verify": ["boolean"],
        "keep": keep_constraints(),
        "hash_seed": [Interval(numbers.Integral, 0, None)],
        "num_proc": [_POSITIVE_INT],
        "batch_size": [_POSITIVE_INT],
        "format": FORMAT_CONSTRAINTS,
        "random_state": ["random_state"],
        "show_progress": ["boolean"],
    }

    def __init__(
        self,
        k: int | float | None = None,
        *,
        fields: Any = None,
        threshold: float = 0.7,
        ngram: int = 5,
        num_perm: int = 128,
        bands: int | None = None,
        weights: tuple[float, float] = (0.1, 0.9),
        verify: bool = True,
        keep: Any = "first",
        hash_seed: int = 1,
        num_proc: int = 1,
        batch_size: int = 10_000,
        format: str | Format | None = None,
        random_state: Any = None,
        show_progress: bool = False,
    ) -> None:
        self.k = k
        self.fields = fields
        self.threshold = threshold
        self.ngram = ngram
        self.num_perm = num_perm
        self.bands = bands
        self.weights = weights
        self.verify = verify
        self.keep = keep
        self.hash_seed = hash_seed
        self.num_proc = num_proc
        self.batch_size = batch_size
        self.format = format
        self.random_state = random_state
        self.show_progress = show_progress

    def check_params(self) -> tuple[int, int]:
        """Check the parameters that need no data; return ``(bands, rows)``."""
        owner = type(self).__name__
        self._validate_params()
        t, w = self.threshold, self.weights
        if self.bands is None:
            return lsh_params(float(t), int(self.num_perm), (float(w[0]), float(w[1])))
        bands = int(self.bands)
        if bands > self.num_perm:
            raise param_error(owner, "bands", f"an int in [1, num_perm={self.num_perm}]", bands)
        return bands, int(self.num_perm) // bands

    def texts(self, dataset: Dataset) -> Any:
        """The compared text of every row (an Arrow string array)."""
        parts = field_texts(
            dataset,
            check_fields(self.fields, type(self).__name__),
            self.format,
            type(self).__name__,
        )
        return parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, " ")

    def signatures(self, dataset: Dataset) -> np.ndarray:
        """The ``[len(dataset), num_perm]`` uint32 MinHash signatures of the rows."""
        self.check_params()
        bar = None
        if self.show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(dataset), desc="minhash", unit="row")
        try:
            return signatures(
                self.texts(dataset),
                ngram=int(self.ngram),
                num_perm=int(self.num_perm),
                seed=int(self.hash_seed),
                num_proc=int(self.num_proc),
                batch_size=int(self.batch_size),
                on_progress=None if bar is None else bar.update,
            )
        finally:
            if bar is not None:
                bar.close()

    # -- the DUPLICATE_GROUPS contract (see :mod:`.grouping`) ---------------------
    def keys_of(self, sig: np.ndarray) -> pa.Table:
        """The :data:`~.grouping.KEY_COLUMNS` table of rows with signatures ``sig``."""
        bands, band_rows = self.check_params()
        n, p = sig.shape
        sig = np.ascontiguousarray(sig, dtype=np.uint32)
        identity = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(4 * p), n, [None, pa.py_buffer(sig.tobytes())]
        )
        keys = band_keys(sig, bands, band_rows)
        return pa.table(
            {
                "identity": identity,
                "identity_hash": pa.array(signature_hashes(sig), pa.uint64()),
                "active": pa.array(~np.all(sig == _EMPTY, axis=1)),
                "buckets": pa.FixedSizeListArray.from_arrays(pa.array(keys.ravel()), bands),
            }
        )

    def duplicate_keys(self, dataset: Dataset) -> pa.Table:
        """Per row: its signature (``identity``), the signature's hash, whether it has a
        shingle (``active``) and its LSH band keys (``buckets``)."""
        return self.keys_of(self.signatures(dataset))

    def values_of(self, texts: Any) -> pa.Array:
        """What a pair's measure reads for each of ``texts``: its distinct shingle hashes
        (``verify=True``), or its signature."""
        if self.verify:
            flat, offsets = shingle_set_arrays(texts, int(self.ngram))
            return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.uint64()))
        sig = signatures(
            texts, ngram=int(self.ngram), num_perm=int(self.num_perm), seed=int(self.hash_seed)
        )
        return pa.FixedSizeListArray.from_arrays(pa.array(sig.ravel()), int(self.num_perm))

    def pair_values(self, dataset: Dataset) -> pa.Array:
        """:meth:`values_of` the compared text of every row of ``dataset``."""
        self.check_params()
        return self.values_of(self.texts(dataset))

    def pair_measure(self, values: pa.Array, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The shingle Jaccard (``verify=True``) or the fraction of equal signature values
        of the pairs ``(values[a[p]], values[b[p]])``."""
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        if self.verify:
            offsets = np.asarray(values.offsets, dtype=np.int64)
            flat = values.flatten().to_numpy(zero_copy_only=False).astype(np.uint64)
            return pair_jaccard(flat, offsets - offsets[0], a, b)
        sig = values.flatten().to_numpy(zero_copy_only=False).reshape(len(values), -1)
        return np.mean(sig[a] == sig[b], axis=1).astype(np.float64)

    def resolve_duplicates(
        self,
        candidates: DuplicateCandidates,
        measure: Callable[[np.ndarray, np.ndarray], np.ndarray],
        priority: np.ndarray,
    ) -> RankResult:
        """Verify the candidates (``measure(a, b)`` on pairs of positions), join the
        verified pairs into groups and keep one row of each by ``priority``."""
        bands, band_rows = self.check_params()
        n = candidates.n
        threshold = float(self.threshold)
        same = _classes(candidates.members, candidates.heads)  # head -> its class, head first
        pairs = candidates.pairs
        uf = UnionFind(n)
        # Pairs to join: each row sharing a signature with its class's first row, then the
        # LSH candidates; verified at once unless verify=False.
        same_pairs = [np.stack([np.full(m.size - 1, m[0]), m[1:]], axis=1) for m in same.values()]
        todo = np.concatenate([*same_pairs, pairs]) if same_pairs else pairs
        ok = np.ones(len(todo), dtype=bool)
        if self.verify and len(todo):
            ok = measure(todo[:, 0], todo[:, 1]) >= threshold
        joined = sum(uf.union(int(x), int(y)) for x, y in todo[ok].tolist())
        checked = len(todo) if self.verify else 0
        # A failed candidate whose rows share signatures with others: those rows are in
        # the same buckets, so each of their pairs is a candidate too (rarely needed).
        n_same = sum(len(p) for p in same_pairs)
        more = [
            (
                np.repeat(same.get(x, [x]), len(same.get(y, [y]))),
                np.tile(same.get(y, [y]), len(same.get(x, [x]))),
            )
            for x, y in todo[n_same:][~ok[n_same:]].tolist()
            if x in same or y in same
        ]
        if more:
            gx = np.concatenate([m[0] for m in more]).astype(np.int64)
            gy = np.concatenate([m[1] for m in more]).astype(np.int64)
            good = measure(gx, gy) >= threshold if self.verify else np.ones(gx.size, bool)
            checked += int(gx.size) if self.verify else 0
            joined += sum(uf.union(u, v) for u, v in zip(gx[good].tolist(), gy[good].tolist()))
        rep = group_representatives(uf.labels(), priority)
        similarity = np.ones(n)
        removed = np.flatnonzero(rep != np.arange(n))
        if removed.size:
            similarity[removed] = measure(removed, rep[removed])
        details = {
            "measure": f"Jaccard of word {self.ngram}-gram shingles",
            "threshold": threshold,
            "num_perm": int(self.num_perm),
            "bands": bands,
            "rows_per_band": band_rows,
            "rows_without_shingles": int(candidates.inactive),
            "candidate_pairs": int(pairs.shape[0]),
            "verified_pairs": checked,
            "joins": joined,
        }
        return dedup_result(rep, similarity, details)

    def _rank(self, dataset: Dataset, rng: np.random.Generator, limit: int | None) -> RankResult:
        self.check_params()
        n = len(dataset)
        if n == 0:
            return RankResult(order=np.empty(0, dtype=np.int64), n_eligible=0)
        texts = self.texts(dataset)
        keys = self.keys_of(self.signatures(dataset))
        candidates = candidates_in_one_process(keys)
        measure = _LocalMeasure(self, texts)
        priority = self.keep_priority(
            n, dataset.column_names, lambda selector: selector.rank_indices(dataset), rng
        )
        return self.resolve_duplicates(candidates, measure, priority)


def _classes(members: np.ndarray, heads: np.ndarray) -> dict[int, np.ndarray]:
    """Each class of two or more rows by its head: its rows in order, head first."""
    order = np.lexsort((members, heads))
    members, heads = members[order], heads[order]
    bounds = np.flatnonzero(np.r_[True, heads[1:] != heads[:-1], True]) if heads.size else []
    return {
        int(heads[start]): np.r_[heads[start], members[start:stop]].astype(np.int64)
        for start, stop in itertools.pairwise(list(bounds))
    }


class _LocalMeasure:
    """``measure(a, b)`` in this process: each row's values computed once, when first asked."""

    def __init__(self, selector: MinHashDedup, texts: Any) -> None:
        self.selector = selector
        self.texts = texts
        self.rows = np.empty(0, dtype=np.int64)
        self.values: pa.Array | None = None

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        wanted = np.unique(np.concatenate([a, b]))
        if not np.all(np.isin(wanted, self.rows)):
            self.rows = np.union1d(self.rows, wanted)
            self.values = self.selector.values_of(self.texts.take(pa.array(self.rows)))
        at = np.searchsorted(self.rows, a), np.searchsorted(self.rows, b)
        return self.selector.pair_measure(self.values, *at)
