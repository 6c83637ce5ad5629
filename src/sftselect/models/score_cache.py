"""An on-disk cache of per-row model outputs: one SQLite file, one entry per row.

Model scorers (:mod:`sftselect.models.next_token`, :mod:`sftselect.models.reward`)
compute a small float32 vector per row (the logits of a few tokens, a reward).
Each entry's key is the SHA-256 of the engine's ``identity`` (the weights
fingerprint, the tokenizer, the settings that change the numbers) and of the
row's exact input texts, so other weights, another tokenizer or another prompt
never share an entry. Each batch is committed as soon as it is computed: a run
that is killed resumes where it stopped, and a re-run computes nothing.

The file is ``<cache_dir>/model_scores.sqlite``; several engines can share it
(their identities differ).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..exceptions import CacheError

__all__ = ["CACHE_FILE", "ScoreCache", "row_key"]

#: The file name inside ``cache_dir``.
CACHE_FILE = "model_scores.sqlite"


def row_key(identity: str, texts: Sequence[str]) -> str:
    """SHA-256 hex of an engine identity and one row's texts (length-prefixed)."""
    h = hashlib.sha256(b"sftselect-row-v1")
    for text in (identity, *texts):
        data = text.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


class ScoreCache:
    """Float32 vectors by row key in ``<directory>/model_scores.sqlite``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / CACHE_FILE
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, value BLOB NOT NULL)"
            )
            self._db.commit()
        except (OSError, sqlite3.Error) as err:
            raise CacheError(f"The score cache {self.path} cannot be opened: {err}") from None

    def get_many(self, keys: Sequence[str], width: int) -> dict[str, np.ndarray]:
        """The stored vectors of ``keys`` that exist and hold ``width`` floats."""
        found: dict[str, np.ndarray] = {}
        wanted = list(dict.fromkeys(keys))
        try:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, value FROM scores WHERE key IN ({marks})", chunk
                ).fetchall()
                for key, blob in rows:
                    vec = np.frombuffer(blob, dtype=np.float32)
                    if vec.size == width:
                        found[key] = vec
        except sqlite3.Error as err:
            raise CacheError(f"The score cache {self.path} cannot be read: {err}") from None
        return found

    def put_many(self, items: Sequence[tuple[str, np.ndarray]]) -> None:
        """Store ``(key, vector)`` pairs in one transaction."""
        rows = [(k, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in items]
        try:
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?)", rows)
        except sqlite3.Error as err:
            raise CacheError(f"The score cache {self.path} cannot be written: {err}") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ScoreCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
