"""The selections a comparison report reads, checked against the pool.

A selection is given as a :class:`~sftselect.core.results.Selection` (what
``Selector.run`` returns), a provenance record (the dict, or the path of an
``OUTPUT.provenance.json`` file), the path of a selection's output file (its
provenance is read from beside it), or plain row positions. Each becomes a
:class:`Strategy`: its positions in the pool, what made it (selector,
parameters, seed, k) and its scores where the selector scored.

Every selection is checked against the pool before anything is drawn: the
positions must be unique ints inside the pool, and a provenance record must
have been made from this pool (the same row count, and the same fingerprint
or the same content SHA-256). A failed check is one line naming the file (or
the strategy's name) and what was expected.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.provenance import content_sha256, provenance_path
from ..core.results import Selection
from ..exceptions import DataFormatError, InvalidParameterError

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["PoolIdentity", "Strategy", "strategy_name_from_path", "to_strategy"]

_PROVENANCE_SUFFIX = ".provenance.json"


@dataclass(frozen=True)
class Strategy:
    """One selection to compare: its name, its positions in the pool and what made it.

    ``scores`` is one float per pool row (NaN where unscored) when the full
    vector is at hand (a ``Selection``); ``score_summary`` is the provenance's
    summary of the scores (``{"all": {...}, "selected": {...}}``) when only the
    record is.
    """

    name: str
    indices: np.ndarray
    selector: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: Any = None
    k: Any = None
    scores: np.ndarray | None = field(default=None, repr=False)
    score_summary: Mapping[str, Any] | None = None
    source: str | None = None


class PoolIdentity:
    """The pool's row count, fingerprint and (computed once, when first needed) content SHA-256."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.rows = len(dataset)
        self.fingerprint = getattr(dataset, "_fingerprint", None)
        self._content: str | None = None

    @property
    def content_sha256(self) -> str:
        if self._content is None:
            self._content = content_sha256(self.dataset)
        return self._content

    def check(self, record_input: Mapping[str, Any], where: str) -> None:
        """Raise a one-line error unless a provenance's ``input`` names this pool."""
        rows = record_input.get("rows")
        if rows is not None and rows != self.rows:
            raise DataFormatError(
                f"{where}: was selected from a pool of {rows:,} rows; this pool has "
                f"{self.rows:,} (another pool?)."
            )
        fingerprint = record_input.get("fingerprint")
        if fingerprint is not None and fingerprint == self.fingerprint:
            return
        content = record_input.get("content_sha256")
        if content is not None:
            if content == self.content_sha256:
                return
            raise DataFormatError(
                f"{where}: was selected from another pool (content SHA-256 {content[:12]}..., "
                f"this pool's {self.content_sha256[:12]}...)."
            )
        if fingerprint is not None:
            raise DataFormatError(
                f"{where}: was selected from another pool (fingerprint {fingerprint}, this "
                f"pool's {self.fingerprint}) and records no content SHA-256 to compare."
            )


def strategy_name_from_path(path: str | os.PathLike[str]) -> str:
    """``out/longest.jsonl`` and ``out/longest.jsonl.provenance.json`` are both "longest"."""
    name = Path(path).name
    if name.endswith(_PROVENANCE_SUFFIX):
        name = name[: -len(_PROVENANCE_SUFFIX)]
    stem = Path(name).stem
    return stem or name


def _positions(values: Any, n: int, where: str) -> np.ndarray:
    """Unique int64 positions inside ``[0, n)``, ascending; one-line error otherwise."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise DataFormatError(f"{where}: the positions are not a list of ints ({exc}).") from None
    if arr.ndim != 1:
        raise DataFormatError(f"{where}: the positions must be a flat list of ints.")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise DataFormatError(
            f"{where}: the positions must be ints; got values of type {arr.dtype}."
        )
    arr = arr.astype(np.int64, copy=False)
    bad = np.flatnonzero((arr < 0) | (arr >= n))
    if bad.size:
        raise DataFormatError(
            f"{where}: position {int(arr[bad[0]])} (entry {int(bad[0])}) is out of range "
            f"for a pool of {n:,} rows (another pool?)."
        )
    unique = np.unique(arr)
    if unique.size != arr.size:
        raise DataFormatError(f"{where}: lists {arr.size - unique.size} position(s) twice.")
    return unique


def _read_record(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
    except json.JSONDecodeError as exc:
        raise DataFormatError(
            f"{path}: not a provenance record (invalid JSON at line {exc.lineno})."
        ) from None
    if not isinstance(record, dict) or not isinstance(record.get("indices"), list):
        raise DataFormatError(
            f"{path}: not a provenance record (expected a JSON object with an 'indices' list)."
        )
    return record


def _from_record(
    name: str, record: Mapping[str, Any], pool: PoolIdentity, where: str, source: str | None
) -> Strategy:
    inp = record.get("input")
    if isinstance(inp, Mapping):
        pool.check(inp, where)
    indices = _positions(record.get("indices"), pool.rows, where)
    summary = record.get("scores")
    return Strategy(
        name=name,
        indices=indices,
        selector=record.get("selector"),
        params=dict(record.get("params") or {}),
        seed=record.get("seed"),
        k=record.get("k"),
        score_summary=summary if isinstance(summary, Mapping) else None,
        source=source,
    )


def _from_path(name: str, path: Path, pool: PoolIdentity) -> Strategy:
    if not path.exists():
        raise DataFormatError(f"{path}: no such file.")
    if path.name.endswith(_PROVENANCE_SUFFIX):
        return _from_record(name, _read_record(path), pool, str(path), str(path))
    record_path = provenance_path(path)
    if not record_path.exists():
        raise DataFormatError(
            f"{path}: no provenance record beside it ({record_path.name}); give the "
            "selection's output file with its provenance, or the provenance file itself."
        )
    strategy = _from_record(name, _read_record(record_path), pool, str(record_path), str(path))
    from ..data.io import load_data

    rows = len(load_data(path))
    if rows != strategy.indices.size:
        raise DataFormatError(
            f"{path}: holds {rows:,} rows but its provenance lists {strategy.indices.size:,} "
            "positions (edited after the selection?)."
        )
    return strategy


def _from_selection(name: str, selection: Selection, pool: PoolIdentity) -> Strategy:
    where = f"the selection {name!r}"
    same_object = selection.dataset is pool.dataset
    if not same_object:
        record_input = {"rows": selection.n_input, "fingerprint": selection.fingerprint}
        if selection.fingerprint != pool.fingerprint and selection.dataset is not None:
            record_input["content_sha256"] = content_sha256(selection.dataset)
        pool.check(record_input, where)
    scores = None
    if selection.scores is not None:
        scores = np.asarray(selection.scores, dtype=np.float64)
    return Strategy(
        name=name,
        indices=_positions(selection.indices, pool.rows, where),
        selector=type(selection.selector).__name__,
        params=selection.selector.describe_params(),
        seed=selection.seed,
        k=selection.k,
        scores=scores,
        source=None,
    )


def to_strategy(name: Any, value: Any, pool: PoolIdentity) -> Strategy:
    """One entry of ``compare``'s mapping as a checked :class:`Strategy`."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameterError(
            f"The 'selections' parameter of compare must map non-empty names to selections. "
            f"Got the key {name!r} instead."
        )
    if isinstance(value, Strategy):
        where = f"the selection {name!r}"
        return dataclasses.replace(value, indices=_positions(value.indices, pool.rows, where))
    if isinstance(value, Selection):
        return _from_selection(name, value, pool)
    if isinstance(value, (str, os.PathLike)):
        return _from_path(name, Path(value), pool)
    if isinstance(value, Mapping):
        if not isinstance(value.get("indices"), list):
            raise InvalidParameterError(
                f"The selection {name!r} given to compare is a mapping without an 'indices' "
                "list; expected a provenance record."
            )
        return _from_record(name, value, pool, f"the selection {name!r}", None)
    if isinstance(value, (np.ndarray, Sequence)):
        return Strategy(name=name, indices=_positions(value, pool.rows, f"the selection {name!r}"))
    raise InvalidParameterError(
        f"The selection {name!r} given to compare must be a Selection, a provenance record "
        f"(dict or path), an output file path or row positions. Got {type(value).__name__} "
        "instead."
    )
