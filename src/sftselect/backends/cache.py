"""A persistent reply cache: one SQLite file, safe for several processes.

Keys are :meth:`ChatRequest.cache_key` values: the SHA-256 of the backend's
identity (model and settings) and the request's content (messages, decoding
parameters, and ``top_logprobs`` when a request asks for log-probabilities, so
a reply stored without them never answers a request that needs them). A
reply's token log-probabilities, when it came with them, are stored beside it
(table ``reply_logprobs``; a file written before that table existed is read
as it is, every reply in it without log-probabilities). Each reply is committed as it arrives (the runner commits the
replies that arrive in the same turn of its event loop together, with
:meth:`ReplyCache.put_many`), so a run killed at any point loses only the
requests in flight, and a re-run sends nothing that is already stored. API
keys are never part of a request, so never stored.

Beside the replies, a store keeps *plans* (:mod:`sftselect.backends.plans`):
a digest of a whole run's input mapped to its list of request keys, so that a
fully cached re-run reads its replies with one query instead of rebuilding
and hashing every request. Plans are an index: dropping them
(:meth:`ReplyCache.clear_plans`) loses no reply.

A file that cannot serve as a cache (corrupted or truncated, a folder, or one
that cannot be created or written) raises :class:`~sftselect.exceptions.CacheError`
naming it, when it is first opened (before any request is sent) or, for damage
deep in the file, when the damaged part is read.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..core.atomic import atomic_file
from ..core.validation import param_error
from ._cache_db import BUSY_SECONDS, cache_error, open_db
from .base import ChatReply, ChatRequest, TokenLogprob

__all__ = ["MemoryCache", "ReplyCache", "as_reply_store", "stored_keys"]

_REPLY_FIELDS = ("text", "input_tokens", "output_tokens", "finish_reason", "model")

#: The columns a reply is read from: the ``replies`` row and its ``reply_logprobs`` row.
_SELECT_REPLY = (
    "r.key, r.text, r.input_tokens, r.output_tokens, r.finish_reason, r.model, l.logprobs"
)


def _reply(row: tuple) -> ChatReply:
    # A cached run builds one ChatReply per row; filling the frozen dataclass's
    # __dict__ directly skips its per-field object.__setattr__ (4x faster).
    reply = object.__new__(ChatReply)
    reply.__dict__.update(zip(_REPLY_FIELDS, row))
    reply.__dict__["logprobs"] = None if row[5] is None else decode_logprobs(row[5])
    return reply


def encode_logprobs(logprobs: tuple[TokenLogprob, ...]) -> str:
    """Token log-probabilities as stored: ``[[token, logprob, [[alt, logprob], ...]], ...]``
    (JSON; a ``-inf`` or NaN log-probability as ``-Infinity`` / ``NaN``)."""
    return json.dumps(
        [[t.token, t.logprob, [list(a) for a in t.top_logprobs]] for t in logprobs],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def decode_logprobs(text: str) -> tuple[TokenLogprob, ...]:
    """The inverse of :func:`encode_logprobs` (whose log-probabilities are JSON floats)."""
    # tuple.__new__ and map(tuple, ...) skip the per-field Python calls: a cached run
    # decodes every alternative of every token (16 x 20 a reply by default).
    new = tuple.__new__
    return tuple(
        [
            new(TokenLogprob, (token, lp, tuple(map(tuple, top))))
            for token, lp, top in json.loads(text)
        ]
    )


class ReplyCache:
    """Replies stored in the SQLite file ``path`` (created when first used).

    The connection is opened lazily in the process and thread that uses it, with
    WAL journaling and a busy timeout, so several processes can share one file
    (several starting at the same moment on a new file too: see
    :data:`BUSY_SECONDS`). The file must be writable: one that is not, or that is
    not an SQLite database, raises :class:`~sftselect.exceptions.CacheError` when
    first opened.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None

    def __repr__(self) -> str:
        return f"ReplyCache({str(self.path)!r})"

    def _db(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            self._conn, self._pid = open_db(self.path), os.getpid()
        return self._conn

    @contextlib.contextmanager
    def _using(self) -> Iterator[sqlite3.Connection]:
        """The connection; an SQLite error inside becomes a :class:`CacheError` naming the file."""
        try:
            yield self._db()
        except sqlite3.Error as exc:
            raise cache_error(self.path, exc) from None

    def get_many(self, keys: Iterable[str]) -> dict[str, ChatReply]:
        """The stored replies among ``keys``."""
        keys = list(keys)
        found: dict[str, ChatReply] = {}
        with self._using() as db:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT {_SELECT_REPLY} FROM replies AS r LEFT JOIN reply_logprobs AS l "
                    f"ON l.key = r.key WHERE r.key IN ({marks})",
                    chunk,
                )
                for row in rows:
                    found[row[0]] = _reply(row[1:])
        return found

    def get(self, key: str) -> ChatReply | None:
        """The stored reply for ``key``, or None."""
        return self.get_many([key]).get(key)

    def put(self, key: str, backend: str, request: ChatRequest, reply: ChatReply) -> None:
        """Store one reply and commit (the first reply stored for a key wins)."""
        self.put_many(backend, [(key, request, reply)])

    def put_many(self, backend: str, items: Iterable[tuple[str, ChatRequest, ChatReply]]) -> None:
        """Store ``(key, request, reply)`` items of one backend in one transaction (the
        first reply stored for a key wins, its log-probabilities with it)."""
        now = time.time()
        rows, with_logprobs = [], []
        for key, request, reply in items:
            row = (
                key,
                backend,
                json.dumps(request.key_material(), ensure_ascii=False),
                reply.text,
                reply.input_tokens,
                reply.output_tokens,
                reply.finish_reason,
                reply.model,
                now,
            )
            if reply.logprobs is None:
                rows.append(row)
            else:
                with_logprobs.append((row, encode_logprobs(reply.logprobs)))
        if not rows and not with_logprobs:
            return
        insert = "INSERT OR IGNORE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        with self._using() as db:
            db.executemany(insert, rows)
            for row, logprobs in with_logprobs:
                # Only beside the reply this call stored: never another process's text.
                if db.execute(insert, row).rowcount:
                    db.execute(
                        "INSERT OR IGNORE INTO reply_logprobs VALUES (?, ?)", (row[0], logprobs)
                    )
            db.commit()

    def plan_replies(self, digest: str) -> tuple[list[str], list[ChatReply | None]] | None:
        """The keys of plan ``digest`` and their stored replies (None where a reply
        is missing), with one query; None if no such plan is stored."""
        with self._using() as db:
            row = db.execute("SELECT id, size FROM plans WHERE digest = ?", (digest,)).fetchone()
            if row is None:
                return None
            plan_id, size = row
            rows = db.execute(
                "SELECT p.key, r.text, r.input_tokens, r.output_tokens, r.finish_reason, r.model, "
                "l.logprobs FROM plan_keys AS p LEFT JOIN replies AS r ON r.key = p.key "
                "LEFT JOIN reply_logprobs AS l ON l.key = p.key WHERE p.plan = ? ORDER BY p.pos",
                (plan_id,),
            ).fetchall()
        if len(rows) != size:  # never trust a plan that does not hold what it says
            return None
        keys = [r[0] for r in rows]
        replies = [None if r[1] is None else _reply(r[1:]) for r in rows]
        return keys, replies

    def put_plan(self, digest: str, keys: list[str]) -> None:
        """Store plan ``digest -> keys`` in one transaction (the first stored wins)."""
        with self._using() as db, db:
            cur = db.execute(
                "INSERT OR IGNORE INTO plans (digest, size, created) VALUES (?, ?, ?)",
                (digest, len(keys), time.time()),
            )
            if cur.rowcount:
                plan_id = cur.lastrowid
                db.executemany(
                    "INSERT INTO plan_keys VALUES (?, ?, ?)",
                    ((plan_id, pos, key) for pos, key in enumerate(keys)),
                )

    def clear_plans(self) -> int:
        """Drop every stored plan (no reply is lost); returns how many were dropped."""
        with self._using() as db, db:
            n = int(db.execute("SELECT COUNT(*) FROM plans").fetchone()[0])
            db.execute("DELETE FROM plan_keys")
            db.execute("DELETE FROM plans")
        return n

    def __len__(self) -> int:
        """The number of stored replies."""
        with self._using() as db:
            return int(db.execute("SELECT COUNT(*) FROM replies").fetchone()[0])

    def records(self) -> Iterator[dict]:
        """Every stored request with its raw reply, oldest first (for audit)."""
        with self._using() as db:
            rows = db.execute(
                "SELECT r.key, backend, request, text, input_tokens, output_tokens, "
                "finish_reason, model, created, l.logprobs FROM replies AS r "
                "LEFT JOIN reply_logprobs AS l ON l.key = r.key ORDER BY created, r.key"
            )
            for key, backend, request, text, tin, tout, finish, model, created, lp in rows:
                yield {
                    "key": key,
                    "backend": backend,
                    "request": json.loads(request),
                    "reply": text,
                    "input_tokens": tin,
                    "output_tokens": tout,
                    "finish_reason": finish,
                    "model": model,
                    "created": created,
                    "logprobs": None if lp is None else json.loads(lp),
                }

    def export_jsonl(self, path: str | os.PathLike[str]) -> int:
        """Write every record as JSON Lines; returns the number written."""
        n = 0
        with atomic_file(path) as fh:
            for rec in self.records():
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                n += 1
        return n

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.path, self._conn, self._pid = state["path"], None, None


class MemoryCache:
    """The same interface in memory (for one process and one run)."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[str, ChatRequest, ChatReply, float]] = {}
        self._plans: dict[str, list[str]] = {}

    def __repr__(self) -> str:
        return f"MemoryCache({len(self._data)} replies)"

    def get_many(self, keys: Iterable[str]) -> dict[str, ChatReply]:
        return {k: self._data[k][2] for k in keys if k in self._data}

    def get(self, key: str) -> ChatReply | None:
        return self.get_many([key]).get(key)

    def put(self, key: str, backend: str, request: ChatRequest, reply: ChatReply) -> None:
        self._data.setdefault(key, (backend, request, reply, time.time()))

    def put_many(self, backend: str, items: Iterable[tuple[str, ChatRequest, ChatReply]]) -> None:
        now = time.time()
        for key, request, reply in items:
            self._data.setdefault(key, (backend, request, reply, now))

    def plan_replies(self, digest: str) -> tuple[list[str], list[ChatReply | None]] | None:
        keys = self._plans.get(digest)
        if keys is None:
            return None
        data = self._data
        return list(keys), [data[k][2] if k in data else None for k in keys]

    def put_plan(self, digest: str, keys: list[str]) -> None:
        self._plans.setdefault(digest, list(keys))

    def clear_plans(self) -> int:
        n = len(self._plans)
        self._plans.clear()
        return n

    def __len__(self) -> int:
        return len(self._data)

    def records(self) -> Iterator[dict]:
        for key, (backend, request, reply, created) in self._data.items():
            yield {
                "key": key,
                "backend": backend,
                "request": request.key_material(),
                "reply": reply.text,
                "input_tokens": reply.input_tokens,
                "output_tokens": reply.output_tokens,
                "finish_reason": reply.finish_reason,
                "model": reply.model,
                "created": created,
                "logprobs": None
                if reply.logprobs is None
                else json.loads(encode_logprobs(reply.logprobs)),
            }

    def close(self) -> None:
        pass


def as_reply_store(cache: Any, owner: str) -> Any:
    """The reply store a ``cache`` parameter names: None -> a fresh :class:`MemoryCache`,
    a path -> a :class:`ReplyCache` on that file, a store (``get_many`` + ``put``) -> itself."""
    if cache is None:
        return MemoryCache()
    if isinstance(cache, (str, os.PathLike)):
        return ReplyCache(cache)
    if hasattr(cache, "get_many") and hasattr(cache, "put"):
        return cache
    raise param_error(owner, "cache", "a ReplyCache, a MemoryCache, a path or None", cache)


def stored_keys(store: Any, keys: Iterable[str]) -> set[str]:
    """The keys among ``keys`` that ``store`` holds a reply for, read without writing.

    For dry runs. A :class:`ReplyCache` file is never created, and its replies
    are never written: a missing file holds nothing; a closed one (no ``-wal``
    file beside it) is read as immutable, since even a read-only open of a WAL
    database creates ``-wal`` and ``-shm`` files; one that a writer has open is
    read through its own ``-wal`` and ``-shm`` (``mode=ro``, which updates only
    the shared-memory read marks, as every reader does). A store of another
    kind is asked with ``get_many``. A file that is not an SQLite database (or a
    folder) raises :class:`~sftselect.exceptions.CacheError` naming it.
    """
    keys = list(keys)
    if not isinstance(store, ReplyCache):
        return set(store.get_many(keys))
    path = store.path
    if not keys or not path.exists():
        return set()
    wal = path.with_name(path.name + "-wal")
    try:
        if not wal.exists():
            # Trust the immutable read only if no writer came (and checkpointed) meanwhile.
            before = _file_state(path)
            try:
                found: set[str] | None = _select_keys(path, keys, "mode=ro&immutable=1")
            except sqlite3.DatabaseError:
                found = None
            if found is not None and not wal.exists() and _file_state(path) == before:
                return found
        return _select_keys(path, keys, "mode=ro")
    except (sqlite3.Error, OSError) as exc:
        raise cache_error(path, exc) from None


def _file_state(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns


def _select_keys(path: Path, keys: list[str], mode: str) -> set[str]:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True, timeout=BUSY_SECONDS)
    try:
        table = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'replies'").fetchone()
        if table is None:  # an empty file: no reply yet
            return set()
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(f"SELECT key FROM replies WHERE key IN ({marks})", chunk)
            found.update(row[0] for row in rows)
        return found
    finally:
        conn.close()
