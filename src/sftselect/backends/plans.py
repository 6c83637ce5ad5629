"""Remembered request plans: a fully cached re-run that renders and hashes nothing.

A judge run turns rows into requests (a template filled with each row's
fields) and requests into cache keys (:func:`~sftselect.backends.base.request_keys`).
Both steps are pure functions of what goes in: the backend's identity, the
template, the decoding parameters and the field values. A *plan* is that
input, hashed once as a whole (:func:`plan_digest`: the field columns are
hashed as Arrow buffers, not row by row), and mapped in the reply store to the
list of request keys it produced. A re-run over the same rows with the same
judge looks the plan up and reads every reply with one query
(:func:`cached_result`), without building a single request; if any reply is
missing (a failed request, a deleted reply) it falls back to the normal path.

A plan is an index, never a source of replies: replies stay keyed by their
request's own cache key, so a plan can be dropped at any time
(``ReplyCache.clear_plans()``) without losing anything, and a cache file
written before plans existed works unchanged (its first run stores the plan).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from .runner import RunReport, RunResult, backend_retries

__all__ = ["PLAN_SCHEME", "cached_result", "plan_digest", "remember_plan"]

#: Part of every digest. Bump it whenever what a plan maps to changes: the
#: request-key byte format, or how a selector renders its requests.
PLAN_SCHEME = "sftselect-plan-v1"


def plan_digest(
    identity: str,
    template: Mapping[str, Any],
    columns: Mapping[str, Sequence[str]],
    rows: np.ndarray,
) -> str:
    """SHA-256 of everything that determines a run's requests and their keys.

    ``template`` is the JSON-able recipe (messages' templates, decoding
    parameters, the renderer's name); ``columns`` the field values it is
    filled with, one list of ``str`` per field, all of one length; ``rows`` the
    positions that get a request, in order. Each column is hashed as the
    offsets and bytes of an Arrow ``large_string`` array, so the digest is
    injective in the values (no separator can be forged) and costs one pass
    over the bytes in C.
    """
    h = hashlib.sha256(PLAN_SCHEME.encode())
    header = json.dumps(
        {"identity": identity, "template": template, "fields": sorted(columns)},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    h.update(len(header).to_bytes(8, "little") + header)
    positions = np.ascontiguousarray(rows, dtype="<i8")
    h.update(len(positions).to_bytes(8, "little") + positions.tobytes())
    for name in sorted(columns):
        values = columns[name]
        arr = pa.array(values, type=pa.large_string())
        if arr.null_count:
            first = arr.is_null().to_pylist().index(True)
            raise TypeError(f"plan column {name!r}: row {first} is None, expected a str.")
        _, offsets, data = arr.buffers()
        ends = np.frombuffer(offsets, dtype="<i8", count=len(arr) + 1)
        h.update(len(arr).to_bytes(8, "little"))
        h.update(ends.tobytes())
        h.update(memoryview(data)[: int(ends[-1])])
    return h.hexdigest()


def _supports_plans(store: Any) -> bool:
    return hasattr(store, "plan_replies") and hasattr(store, "put_plan")


def cached_result(backend: Any, store: Any, digest: str) -> RunResult | None:
    """The run's result straight from ``store`` when it holds the plan ``digest``
    and a reply for every key of it; otherwise None (run the requests instead).

    The result is the one :func:`~sftselect.backends.runner.run_requests` gives
    for a fully cached run: the same replies and an equal report (every unique
    request a cache hit, nothing sent).
    """
    if store is None or not _supports_plans(store):
        return None
    t0 = time.perf_counter()
    found = store.plan_replies(digest)
    if found is None:
        return None
    keys, replies = found
    if any(r is None for r in replies):
        return None
    unique = len(set(keys))
    retries = backend_retries(backend)
    report = RunReport(
        requests=len(keys),
        unique=unique,
        cache_hits=unique,
        retries=None if retries is None else 0,
    )
    report.seconds = time.perf_counter() - t0
    return RunResult(replies=list(replies), errors=[None] * len(keys), report=report, keys=keys)


def remember_plan(store: Any, digest: str, keys: Sequence[str]) -> None:
    """Store ``digest -> keys`` in ``store`` (a no-op for stores without plans)."""
    if store is not None and _supports_plans(store):
        store.put_plan(digest, list(keys))
