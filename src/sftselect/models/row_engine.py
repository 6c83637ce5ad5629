"""What every batched per-row model scorer shares: loading, identity, batches, cache.

A :class:`RowEngine` turns rows of texts (a prompt; a question and an answer)
into one small float32 vector per row with a transformers model: the logits of
a few tokens after a prompt (:class:`~sftselect.models.next_token.NextTokenLogits`),
a reward (:class:`~sftselect.models.reward.RewardModel`). It

* loads the model and tokenizer on first use (never in ``__init__``), from a
  folder, a hub name, a GGUF file (causal LMs) or as given;
* tokenizes rows a window at a time (:attr:`RowEngine.window_rows`, default
  :data:`ROWS_PER_WINDOW`), sorts each
  window by token count and runs it in batches padded on the right by this
  class (whatever the tokenizer's ``padding_side``; right padding keeps every
  real token's positions and attention, so a padded row equals the row run
  alone up to float rounding), under ``torch.inference_mode()``; memory is
  bounded by the window and the batch, not by the data;
* leaves a row out, NaN and counted, when it has no tokens (``empty``), more
  tokens than ``max_length`` (``too_long``: never truncated, so a score is
  always of the whole text), or a non-finite output (``non_finite``);
* reads and writes a :class:`~sftselect.models.score_cache.ScoreCache` in
  ``cache_dir`` keyed by :attr:`RowEngine.identity` and the row's texts,
  committing each batch, so a killed run resumes and a re-run computes nothing.

**Identity** (the cache key with the texts): the model -- a local path with the
:func:`~sftselect.models.fingerprint.files_fingerprint` of its files, a hub
name as given, a model object's ``name_or_path`` with its
:func:`~sftselect.models.fingerprint.weights_fingerprint` -- the tokenizer
(path and files fingerprint, hub name, or an object's
:func:`~sftselect.models.fingerprint.tokenizer_fingerprint`), the dtype,
``max_length`` and what the subclass adds (its kind and settings).
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.validation import check_positive_int, param_error
from .batching import length_sorted_batches, right_padded
from .fingerprint import files_fingerprint, tokenizer_fingerprint, weights_fingerprint
from .loading import import_torch, load_tokenizer, pad_id

__all__ = ["ROWS_PER_WINDOW", "RowEngine", "RowOutputs", "add_counts", "row_windows"]

#: Rows tokenized, sorted by length and run together: bounds the token lists held.
ROWS_PER_WINDOW = 4096


@dataclass
class RowOutputs:
    """What an engine computed for some rows.

    ``values``: float32 ``[n, width]``, NaN rows where nothing could be computed;
    ``empty``, ``too_long``, ``non_finite``: boolean masks of why;
    ``cached``: the rows read from the cache.
    """

    values: np.ndarray
    empty: np.ndarray
    too_long: np.ndarray
    non_finite: np.ndarray
    cached: np.ndarray

    def counts(self) -> dict[str, int]:
        """Rows per outcome, for provenance records and warnings."""
        return {
            "rows": int(self.values.shape[0]),
            "cached": int(self.cached.sum()),
            "empty": int(self.empty.sum()),
            "too_long": int(self.too_long.sum()),
            "non_finite": int(self.non_finite.sum()),
        }


def _as_ref(obj: Any) -> str | None:
    if isinstance(obj, (str, bytes)) or hasattr(obj, "__fspath__"):
        return os.fsdecode(obj)
    return None


class RowEngine:
    """Base of the batched per-row scorers; see the module docstring.

    Subclasses set ``kind`` and implement :meth:`_load_model`, :meth:`_encode`
    (one row's texts to a dict of token lists, ``input_ids`` first),
    :meth:`_forward` (a padded batch to ``[B, width]`` floats), :meth:`width`
    and :meth:`_settings` (what else goes into the identity).
    """

    kind = "row-engine"
    #: Rows tokenized, length-sorted and batched together (set it on an instance to
    #: change it): memory holds one window's token lists. The selectors built on an
    #: engine (DEITA, reward) also read their rows from the data set this many at a time.
    window_rows: int = ROWS_PER_WINDOW

    def __init__(
        self,
        model: Any,
        *,
        tokenizer: Any = None,
        batch_size: int = 8,
        max_length: int | None = None,
        device: str | None = None,
        dtype: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        show_progress: bool = False,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self.dtype = dtype
        self.cache_dir = cache_dir
        self.show_progress = show_progress
        self._loaded: tuple[Any, Any] | None = None
        self._loaded_files: str | None = None
        self._tokenizer_only: Any = None

    # -- subclass hooks --------------------------------------------------------
    def _load_model(self, ref: str, dtype: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _encode(self, tok: Any, texts: tuple[str, ...]) -> dict[str, list[int]]:  # pragma: no cover
        raise NotImplementedError

    def _forward(self, model: Any, batch: dict[str, Any]) -> Any:  # pragma: no cover
        raise NotImplementedError

    def width(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _settings(self) -> str:
        return ""

    def _prepare(self, model: Any) -> None:
        """Checks that need the loaded model, before anything is computed."""

    def _check(self) -> None:
        """Validate the settings (called before any work)."""
        owner = type(self).__name__
        check_positive_int(self.batch_size, "batch_size", owner)
        check_positive_int(self.window_rows, "window_rows", owner)
        if self.max_length is not None:
            check_positive_int(self.max_length, "max_length", owner)
        if self.dtype is not None and self.dtype not in ("float32", "float16", "bfloat16"):
            raise param_error(
                owner, "dtype", "None, 'float32', 'float16' or 'bfloat16'", self.dtype
            )
        if self.tokenizer is None and _as_ref(self.model) is None:
            raise param_error(owner, "tokenizer", "given when model is a loaded model", None)

    # -- device, dtype, identity ----------------------------------------------
    def _device(self) -> str:
        if self.device is not None:
            return str(self.device)
        torch, _ = import_torch(type(self).__name__)
        return "cuda" if torch.cuda.is_available() else "cpu"

    def _dtype_name(self) -> str:
        if _as_ref(self.model) is None:
            return str(next(iter(self.model.parameters())).dtype).replace("torch.", "")
        if self.dtype is not None:
            return self.dtype
        if self._device().startswith("cuda"):
            torch, _ = import_torch(type(self).__name__)
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
        return "float32"

    @property
    def identity(self) -> str:
        """What decides the outputs (see the module docstring)."""
        ref = _as_ref(self.model)
        if ref is None:
            name = getattr(self.model, "name_or_path", None) or type(self.model).__name__
            part = f"{name}|weights={weights_fingerprint(self.model)}"
        elif os.path.exists(ref):
            fp = self._loaded_files if self._loaded is not None else None
            part = f"{ref}|files={fp or files_fingerprint(ref)}"
        else:
            part = ref
        tok_ref = _as_ref(self.tokenizer)
        if self.tokenizer is None:
            pass
        elif tok_ref is None:
            part += f"|tokenizer={tokenizer_fingerprint(self.tokenizer)}"
        elif os.path.exists(tok_ref):
            part += f"|tokenizer={tok_ref}|tokenizer_files={files_fingerprint(tok_ref)}"
        else:
            part += f"|tokenizer={tok_ref}"
        return (
            f"{self.kind}:{part}|dtype={self._dtype_name()}|max_length={self.max_length}"
            f"{self._settings()}"
        )

    # -- loading -------------------------------------------------------------------
    def load(self) -> tuple[Any, Any]:
        """The model (in eval mode, on its device) and tokenizer, loaded once."""
        if self._loaded is not None:
            return self._loaded
        self._check()
        torch, _ = import_torch(type(self).__name__)
        tok = self.tokenizer_object()
        ref = _as_ref(self.model)
        if ref is not None:
            files = files_fingerprint(ref) if os.path.exists(ref) else None
            model = self._load_model(ref, getattr(torch, self._dtype_name()))
            model.to(self._device())
            self._loaded_files = files
        else:
            model = self.model
        model.eval()
        self._loaded = (model, tok)
        return self._loaded

    def tokenizer_object(self) -> Any:
        """The tokenizer, loaded without the model when the model is not loaded yet."""
        if self._loaded is not None:
            return self._loaded[1]
        if self._tokenizer_only is None:
            self._check()
            owner = type(self).__name__
            self._tokenizer_only = load_tokenizer(self.model, self.tokenizer, None, owner)
        return self._tokenizer_only

    def context_limit(self, model: Any, tok: Any) -> int | None:
        """``max_length``, else the model's ``max_position_embeddings`` (None: no limit)."""
        if self.max_length is not None:
            return int(self.max_length)
        limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        return int(limit) if isinstance(limit, numbers.Integral) and limit > 0 else None

    def pad_id(self, model: Any, tok: Any) -> int:
        """The id padding batches (masked out): the tokenizer's pad, UNK or EOS token."""
        return pad_id(tok, type(self).__name__)

    def plan(self, rows: Sequence[tuple[str, ...]]) -> dict[str, int]:
        """What :meth:`run` would do, loading the tokenizer only: rows, tokens, the
        longest row, rows already cached (a dry run)."""
        self._check()
        tok = self.tokenizer_object()
        lengths = [len(self._encode(tok, tuple(r))["input_ids"]) for r in rows]
        cached = 0
        if self.cache_dir is not None and rows:
            from .score_cache import CACHE_FILE, ScoreCache, row_key

            if (Path(self.cache_dir) / CACHE_FILE).exists():
                identity = self.identity
                with ScoreCache(self.cache_dir) as cache:
                    keys = [row_key(identity, texts) for texts in rows]
                    cached = len(cache.get_many(keys, self.width()))
        return {
            "rows": len(rows),
            "tokens": int(sum(lengths)),
            "longest": int(max(lengths, default=0)),
            "cached": cached,
        }

    # -- running ---------------------------------------------------------------------
    def run(self, rows: Sequence[tuple[str, ...]]) -> RowOutputs:
        """One float32 vector per row of texts; see the module docstring."""
        self._check()
        n, width = len(rows), self.width()
        out = RowOutputs(
            values=np.full((n, width), np.nan, dtype=np.float32),
            empty=np.zeros(n, dtype=bool),
            too_long=np.zeros(n, dtype=bool),
            non_finite=np.zeros(n, dtype=bool),
            cached=np.zeros(n, dtype=bool),
        )
        if n == 0:
            return out
        cache = None
        keys: list[str] = []
        todo = np.arange(n)
        if self.cache_dir is not None:
            from .score_cache import ScoreCache, row_key

            cache = ScoreCache(self.cache_dir)
            identity = self.identity  # a path: its files as they are now (nothing is loaded)
            keys = [row_key(identity, texts) for texts in rows]
            _read(cache, keys, out)
            todo = np.flatnonzero(~out.cached)
            if todo.size and self._loaded is None and _as_ref(self.model) is not None:
                self.load()  # only when something is left to compute
                if self.identity != identity:  # the files changed between look-up and load
                    keys = [row_key(self.identity, texts) for texts in rows]
                    out.values[:], out.cached[:] = np.nan, False
                    _read(cache, keys, out)
                    todo = np.flatnonzero(~out.cached)
        try:
            if todo.size:
                self._compute(rows, todo, out, cache, keys)
        finally:
            if cache is not None:
                cache.close()
        out.non_finite |= ~out.cached & ~out.empty & ~out.too_long
        out.non_finite &= ~np.isfinite(out.values).all(axis=1)
        out.values[out.non_finite] = np.nan
        return out

    def _compute(
        self,
        rows: Sequence[tuple[str, ...]],
        todo: np.ndarray,
        out: RowOutputs,
        cache: Any,
        keys: list[str],
    ) -> None:
        torch, _ = import_torch(type(self).__name__)
        model, tok = self.load()
        self._prepare(model)
        limit = self.context_limit(model, tok)
        pad = self.pad_id(model, tok)
        device = next(model.parameters()).device
        bar = _progress(self.show_progress, int(todo.size), self.kind)
        try:
            with torch.inference_mode():
                step = int(self.window_rows)
                for start in range(0, todo.size, step):
                    window = todo[start : start + step]
                    enc = [self._encode(tok, tuple(rows[i])) for i in window.tolist()]
                    lengths = np.array([len(e["input_ids"]) for e in enc], dtype=np.int64)
                    out.empty[window[lengths == 0]] = True
                    if limit is not None:
                        out.too_long[window[lengths > limit]] = True
                        lengths[lengths > limit] = 0  # left out of every batch
                    bar(int((lengths == 0).sum()))
                    for batch in length_sorted_batches(lengths, int(self.batch_size)):
                        picked = [enc[b] for b in batch.tolist()]
                        values = self._run_batch(model, picked, pad, device)
                        rows_done = window[batch]
                        out.values[rows_done] = values
                        if cache is not None:
                            ok = np.isfinite(values).all(axis=1)
                            cache.put_many(
                                [(keys[r], v) for r, v, good in zip(rows_done, values, ok) if good]
                            )
                        bar(len(batch))
        finally:
            bar(None)

    def _run_batch(self, model: Any, picked: list[dict[str, list[int]]], pad: int, device: Any):
        input_ids, mask = right_padded([e["input_ids"] for e in picked], pad)
        batch = {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}
        if "token_type_ids" in picked[0]:
            types, _ = right_padded([e["token_type_ids"] for e in picked], 0)
            batch["token_type_ids"] = types.to(device)
        result = self._forward(model, batch)
        return result.float().cpu().numpy().astype(np.float32, copy=False)

    def __repr__(self) -> str:
        ref = _as_ref(self.model)
        name = ref if ref is not None else type(self.model).__name__
        return f"{type(self).__name__}({name!r})"


def row_windows(n_rows: int, size: int) -> Iterator[range]:
    """``range(start, stop)`` of consecutive windows of at most ``size`` rows."""
    for start in range(0, n_rows, size):
        yield range(start, min(start + size, n_rows))


def add_counts(total: dict[str, int], part: dict[str, int]) -> dict[str, int]:
    """``total`` with :meth:`RowOutputs.counts` of one more window added in place."""
    for key, value in part.items():
        total[key] = total.get(key, 0) + int(value)
    return total


def _read(cache: Any, keys: list[str], out: RowOutputs) -> None:
    """Fill ``out`` with the cached rows of ``keys``."""
    hits = cache.get_many(keys, out.values.shape[1])
    for i, key in enumerate(keys):
        if key in hits:
            out.values[i] = hits[key]
            out.cached[i] = True


def _progress(enabled: bool, total: int, desc: str) -> Callable[[int | None], None]:
    """``update(n)``, and ``update(None)`` to close; a no-op when not ``enabled``."""
    if not enabled:
        return lambda n: None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="row")

    def update(n: int | None) -> None:
        if n is None:
            bar.close()
        elif n:
            bar.update(n)

    return update
