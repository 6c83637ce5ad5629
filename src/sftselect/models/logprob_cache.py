"""An on-disk cache of answer log-probabilities: one SQLite file, committed per batch.

Each entry holds what :class:`~sftselect.models.logprobs.LogProbScorer` keeps of one
span: the summed negative log-likelihood of its scored tokens, their count, the
token count of its budget prompt, whether its text was truncated, and (only when
asked for) the per-token values as float32 bytes. The key is the SHA-256 of the
scorer's identity (weights or files fingerprint, tokenizer, dtype, how logits are
taken) and of the span itself (exact text, prefix, truncation settings), so other
weights, another tokenizer or another template never share an entry.

The scorer writes each batch's entries as soon as the batch is done (one
transaction per batch), so a run killed at any point loses only the batch in
flight, and a re-run reads every finished span instead of recomputing it. A file
that cannot serve as a cache raises :class:`~sftselect.exceptions.CacheError`
naming it.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..exceptions import CacheError

__all__ = ["CachedSpan", "LogProbCache"]

FILE_NAME = "logprobs.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    key TEXT PRIMARY KEY,
    nll_sum REAL,
    n_tokens INTEGER NOT NULL,
    n_budget INTEGER NOT NULL,
    truncated INTEGER NOT NULL,
    token_nll BLOB
)
"""

#: Keys per ``SELECT ... IN (...)`` query (below SQLite's variable limit).
_QUERY_CHUNK = 500


class CachedSpan(NamedTuple):
    """What is stored for one span (``token_nll`` None when it was not kept)."""

    nll_sum: float
    n_tokens: int
    n_budget: int
    truncated: bool
    token_nll: np.ndarray | None


class LogProbCache:
    """``<directory>/logprobs.sqlite``; see the module docstring."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = Path(directory) / FILE_NAME
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            self._db.commit()
        except (OSError, sqlite3.Error) as err:
            raise CacheError(f"log-prob cache {self.path} cannot be used: {err}") from None

    def close(self) -> None:
        self._db.close()

    def get_many(self, keys: Sequence[str], *, need_tokens: bool) -> dict[str, CachedSpan]:
        """The stored entries among ``keys`` (with per-token values when ``need_tokens``:
        an entry stored without them counts as absent)."""
        found: dict[str, CachedSpan] = {}
        unique = list(dict.fromkeys(keys))
        try:
            for start in range(0, len(unique), _QUERY_CHUNK):
                part = unique[start : start + _QUERY_CHUNK]
                marks = ",".join("?" * len(part))
                rows = self._db.execute(
                    "SELECT key, nll_sum, n_tokens, n_budget, truncated, token_nll "
                    f"FROM spans WHERE key IN ({marks})",
                    part,
                )
                for key, nll, n_tok, n_budget, trunc, blob in rows:
                    if need_tokens and blob is None:
                        continue
                    tokens = None if blob is None else np.frombuffer(blob, dtype=np.float32)
                    value = math.nan if nll is None else float(nll)
                    found[key] = CachedSpan(value, int(n_tok), int(n_budget), bool(trunc), tokens)
        except sqlite3.Error as err:
            raise CacheError(f"log-prob cache {self.path} cannot be read: {err}") from None
        return found

    def put_many(self, entries: Iterable[tuple[str, CachedSpan]]) -> None:
        """Store entries in one transaction (NaN sums are stored as NULL)."""
        rows = [
            (
                key,
                None if not math.isfinite(e.nll_sum) else float(e.nll_sum),
                int(e.n_tokens),
                int(e.n_budget),
                int(bool(e.truncated)),
                None
                if e.token_nll is None
                else np.ascontiguousarray(e.token_nll, dtype=np.float32).tobytes(),
            )
            for key, e in entries
        ]
        try:
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO spans VALUES (?,?,?,?,?,?)", rows)
        except sqlite3.Error as err:
            raise CacheError(f"log-prob cache {self.path} cannot be written: {err}") from None
