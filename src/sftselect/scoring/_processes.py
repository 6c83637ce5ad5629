"""Running a per-text measure over several processes.

``map_in_processes(fn, texts, num_proc)`` splits ``texts`` (a list or an Arrow
string array) into contiguous chunks, measures each in its own process and
concatenates the results in order. Where processes can be forked, workers
inherit ``fn`` and ``texts`` (nothing is pickled on the way in) and each turns
only its own chunk into Python strings.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["map_in_processes"]


def _measure_chunk(fn: Callable[[list[str]], np.ndarray], texts: list[str]) -> np.ndarray:
    return fn(texts)


def _texts_slice(texts: Any, start: int, stop: int) -> list[str]:
    """``texts[start:stop]`` as Python strings (``texts``: a list or an Arrow string array)."""
    if isinstance(texts, (pa.Array, pa.ChunkedArray)):
        return texts.slice(start, stop - start).to_pylist()
    return texts[start:stop]


# Set in each forked worker by _set_worker_job: the function and the texts it measures.
_WORKER_JOB: tuple[Callable[[list[str]], np.ndarray], Any] | None = None


def _set_worker_job(fn: Callable[[list[str]], np.ndarray], texts: Any) -> None:
    global _WORKER_JOB
    _WORKER_JOB = (fn, texts)
    # A forked child has no copy of the parent's Rust thread pool: a Hugging Face
    # tokenizer that goes on using it hangs (it does when TOKENIZERS_PARALLELISM=true
    # was set explicitly). Each worker is one of num_proc processes anyway.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def _run_worker_slice(start: int, stop: int) -> np.ndarray:
    fn, texts = _WORKER_JOB  # type: ignore[misc]
    return np.asarray(fn(_texts_slice(texts, start, stop)), dtype=np.int64)


def map_in_processes(
    fn: Callable[[list[str]], np.ndarray], texts: list[str] | pa.Array, num_proc: int
) -> np.ndarray:
    """Apply ``fn`` to contiguous chunks of ``texts`` over ``num_proc`` processes.

    ``texts`` is a list of strings or an Arrow string array. Where processes can
    be forked, the workers inherit ``fn`` and ``texts`` from this process
    (nothing is pickled on the way in) and each turns only its own chunk into
    Python strings; elsewhere the chunks are pickled to spawned workers.
    """
    n = len(texts)
    if num_proc <= 1 or n < 2 * num_proc:
        return np.asarray(fn(_texts_slice(texts, 0, n)), dtype=np.int64)
    bounds = np.linspace(0, n, num_proc + 1).astype(int).tolist()
    starts, stops = bounds[:-1], bounds[1:]
    if "fork" in mp.get_all_start_methods():
        pool = ProcessPoolExecutor(
            max_workers=num_proc,
            mp_context=mp.get_context("fork"),
            initializer=_set_worker_job,
            initargs=(fn, texts),
        )
        with pool:
            parts = list(pool.map(_run_worker_slice, starts, stops))
    else:
        chunks = [_texts_slice(texts, a, b) for a, b in zip(starts, stops)]
        with ProcessPoolExecutor(max_workers=num_proc, mp_context=mp.get_context("spawn")) as pool:
            parts = list(pool.map(_measure_chunk, [fn] * len(chunks), chunks))
    return np.concatenate(parts).astype(np.int64, copy=False)
