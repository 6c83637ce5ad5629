"""A persistent reply cache: one SQLite file, safe for several processes.

Keys are :meth:`ChatRequest.cache_key` values: the SHA-256 of the backend's
identity (model and settings) and the request's content (messages, decoding
parameters). Each reply is committed as it arrives, so a run killed at any
point loses only the requests in flight, and a re-run sends nothing that is
already stored. API keys are never part of a request, so never stored.

Beside the replies, a store keeps *plans* (:mod:`sftselect.backends.plans`):
a digest of a whole run's input mapped to its list of request keys, so that a
fully cached re-run reads its replies with one query instead of rebuilding
and hashing every request. Plans are an index: dropping them
(:meth:`ReplyCache.clear_plans`) loses no reply.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .._validation import param_error
from .base import ChatReply, ChatRequest

__all__ = ["MemoryCache", "ReplyCache", "as_reply_store"]

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    request TEXT NOT NULL,
    text TEXT NOT NULL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    finish_reason TEXT,
    model TEXT,
    created REAL NOT NULL
)
""",
    """
CREATE TABLE IF NOT EXISTS plans (
    id INTEGER PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    created REAL NOT NULL
)
""",
    """
CREATE TABLE IF NOT EXISTS plan_keys (
    plan INTEGER NOT NULL,
    pos INTEGER NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (plan, pos)
) WITHOUT ROWID
""",
)


_REPLY_FIELDS = ("text", "input_tokens", "output_tokens", "finish_reason", "model")


def _reply(row: tuple) -> ChatReply:
    # A cached run builds one ChatReply per row; filling the frozen dataclass's
    # __dict__ directly skips its per-field object.__setattr__ (4x faster).
    reply = object.__new__(ChatReply)
    reply.__dict__.update(zip(_REPLY_FIELDS, row))
    return reply


class ReplyCache:
    """Replies stored in the SQLite file ``path`` (created when first used).

    The connection is opened lazily in the process and thread that uses it, with
    WAL journaling and a busy timeout, so several processes can share one file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None

    def __repr__(self) -> str:
        return f"ReplyCache({str(self.path)!r})"

    def _db(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=60.0, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.commit()
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def get_many(self, keys: Iterable[str]) -> dict[str, ChatReply]:
        """The stored replies among ``keys``."""
        keys = list(keys)
        found: dict[str, ChatReply] = {}
        db = self._db()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = db.execute(
                "SELECT key, text, input_tokens, output_tokens, finish_reason, model "
                f"FROM replies WHERE key IN ({marks})",
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
        db = self._db()
        db.execute(
            "INSERT OR IGNORE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                backend,
                json.dumps(request.key_material(), ensure_ascii=False),
                reply.text,
                reply.input_tokens,
                reply.output_tokens,
                reply.finish_reason,
                reply.model,
                time.time(),
            ),
        )
        db.commit()

    def plan_replies(self, digest: str) -> tuple[list[str], list[ChatReply | None]] | None:
        """The keys of plan ``digest`` and their stored replies (None where a reply
        is missing), with one query; None if no such plan is stored."""
        db = self._db()
        row = db.execute("SELECT id, size FROM plans WHERE digest = ?", (digest,)).fetchone()
        if row is None:
            return None
        plan_id, size = row
        rows = db.execute(
            "SELECT p.key, r.text, r.input_tokens, r.output_tokens, r.finish_reason, r.model "
            "FROM plan_keys AS p LEFT JOIN replies AS r ON r.key = p.key "
            "WHERE p.plan = ? ORDER BY p.pos",
            (plan_id,),
        ).fetchall()
        if len(rows) != size:  # never trust a plan that does not hold what it says
            return None
        keys = [r[0] for r in rows]
        replies = [None if r[1] is None else _reply(r[1:]) for r in rows]
        return keys, replies

    def put_plan(self, digest: str, keys: list[str]) -> None:
        """Store plan ``digest -> keys`` in one transaction (the first stored wins)."""
        db = self._db()
        with db:
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
        db = self._db()
        with db:
            n = int(db.execute("SELECT COUNT(*) FROM plans").fetchone()[0])
            db.execute("DELETE FROM plan_keys")
            db.execute("DELETE FROM plans")
        return n

    def __len__(self) -> int:
        """The number of stored replies."""
        return int(self._db().execute("SELECT COUNT(*) FROM replies").fetchone()[0])

    def records(self) -> Iterator[dict]:
        """Every stored request with its raw reply, oldest first (for audit)."""
        rows = self._db().execute(
            "SELECT key, backend, request, text, input_tokens, output_tokens, finish_reason, "
            "model, created FROM replies ORDER BY created, key"
        )
        for key, backend, request, text, tin, tout, finish, model, created in rows:
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
            }

    def export_jsonl(self, path: str | os.PathLike[str]) -> int:
        """Write every record as JSON Lines; returns the number written."""
        n = 0
        tmp = Path(f"{os.fspath(path)}.tmp-{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as fh:
            for rec in self.records():
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                n += 1
        os.replace(tmp, path)
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
