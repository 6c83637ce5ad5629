"""Opening a reply-cache file: the SQLite schema, WAL, the busy timeout, one-line errors.

What :class:`~sftselect.backends.cache.ReplyCache` does before it reads or
writes: create the file and its folder, switch it to WAL, create the tables
(``CREATE TABLE IF NOT EXISTS``: a file written by an earlier version gains the
tables it lacks and keeps every reply), and check that it can be written, each
SQLite or OS error turned into a :class:`~sftselect.exceptions.CacheError`
naming the file.

Schema history: ``replies``, ``plans`` and ``plan_keys`` from the start;
``reply_logprobs`` (one row per reply that came with log-probabilities, keyed
like ``replies``) added beside them, so ``replies`` keeps its columns and a file
is read alike by this version and the earlier ones.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from ..exceptions import CacheError

__all__ = ["BUSY_SECONDS", "cache_error", "open_db"]

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
    # The token log-probabilities of a reply, as JSON: [[token, logprob, [[alt, logprob], ...]], ...]
    """
CREATE TABLE IF NOT EXISTS reply_logprobs (
    key TEXT PRIMARY KEY,
    logprobs TEXT NOT NULL
) WITHOUT ROWID
""",
)


#: Seconds a process waits for the others sharing a cache file: SQLite's busy timeout
#: (set when connecting, before any statement), and the bound on retrying the steps
#: of opening that SQLite refuses at once with "database is locked" rather than wait
#: (switching a new file to WAL while another process does the same).
BUSY_SECONDS = 60.0


def cache_error(path: Path, exc: BaseException) -> CacheError:
    """The one-line :class:`CacheError` for an SQLite (or OS) error on cache file ``path``."""
    if isinstance(exc, OSError) and not isinstance(exc, CacheError):
        detail = exc.strerror or type(exc).__name__
        return CacheError(f"cannot open or create the reply cache {path}: {detail}")
    detail = " ".join(str(exc).split()) or type(exc).__name__
    if "not a database" in detail or "malformed" in detail:
        return CacheError(
            f"the reply cache {path} is not a readable SQLite database ({detail}): it may be "
            "corrupted or truncated; move it aside or use another cache path"
        )
    if "readonly" in detail or "read-only" in detail:
        return CacheError(
            f"the reply cache {path} cannot be written ({detail}); make it and its folder "
            "writable, or use another cache path"
        )
    if "locked" in detail or "busy" in detail:
        return CacheError(
            f"the reply cache {path} stayed locked by another process for "
            f"{BUSY_SECONDS:g} s ({detail})"
        )
    if "unable to open" in detail:
        return CacheError(
            f"cannot open or create the reply cache {path} ({detail}); check that it is a "
            "file path in a writable folder"
        )
    return CacheError(f"the reply cache {path} cannot be used ({detail})")


def _retry_while_locked(step: Callable[[], None], until: float) -> None:
    """Run ``step``, again while SQLite answers "locked" at once, until ``until``."""
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= until:
                raise
        time.sleep(random.uniform(0.01, 0.05))


def _use_wal(conn: sqlite3.Connection) -> None:
    # WAL is a property of the file: switch only a file not in WAL yet (the switch
    # takes an exclusive lock, which two processes opening a new file fight over).
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    if str(mode).lower() != "wal":
        conn.execute("PRAGMA journal_mode=WAL")


def _create_tables(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA:
        conn.execute(statement)
    conn.commit()


def _check_writable(conn: sqlite3.Connection) -> None:
    # SQLite opens a file it may not write read-only without a word; find out now,
    # before a run pays for a reply it could not store. Rolled back: nothing changes.
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        conn.execute(f"PRAGMA user_version = {version}")
    finally:
        conn.execute("ROLLBACK")


def open_db(path: Path) -> sqlite3.Connection:
    """A read-write connection to cache file ``path`` (created with its folder when
    missing), in WAL mode with the tables; :class:`CacheError` when it cannot be used."""
    if path.is_dir():
        raise CacheError(f"the reply cache {path} is a folder; give a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise CacheError(
            f"cannot create the reply cache {path}: a part of {path.parent} is a file, not a folder"
        ) from None
    except OSError as exc:
        raise cache_error(path, exc) from None
    conn: sqlite3.Connection | None = None
    until = time.monotonic() + BUSY_SECONDS
    try:
        conn = sqlite3.connect(path, timeout=BUSY_SECONDS, check_same_thread=False)
        _retry_while_locked(lambda: _use_wal(conn), until)
        conn.execute("PRAGMA synchronous=NORMAL")
        _retry_while_locked(lambda: _create_tables(conn), until)
        _retry_while_locked(lambda: _check_writable(conn), until)
    except (sqlite3.Error, OSError) as exc:
        if conn is not None:
            conn.close()
        raise cache_error(path, exc) from None
    return conn
