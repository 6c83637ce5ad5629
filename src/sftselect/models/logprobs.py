"""Per-token log-probabilities of answers under a causal LM, batched and cached.

:class:`LogProbScorer` computes, for each :class:`Span` (a text, the prefix of it
that is context, and a truncation rule), the negative log-likelihood of each
token after the prefix given everything before it. Selectors build their spans
from rows: IFD's "answer given the prompt" and "answer alone", a perplexity.

How a span is read, exactly as the reference scripts (Cherry LLM, Superfiltering)
read it, so their per-example loops give the same numbers:

* ``ids = tokenizer.encode(text, truncation=True, max_length=L)`` where ``L`` is
  ``span.max_length`` (None: the model's context, ``config.max_position_embeddings``),
  minus the token count of ``span.budget_of`` (itself encoded with truncation at
  ``span.max_length``) plus ``span.budget_extra`` when ``budget_of`` is given
  (Cherry's ``max_length - instruct_len + 4``). A text cut there is counted
  (``LogProbs.truncated``).
* The scored tokens are ``ids[s:]`` with ``s = max(1, len(tokenizer.encode(prefix)))``
  (the prefix is encoded on its own, without truncation, as the references do);
  token ``j`` is scored from the logits at ``j - 1``. A span with no scored token
  (an empty answer, or a prefix that fills the context) has ``n_tokens == 0``
  and a NaN mean: never a default value.

How it runs: rows are taken ``chunk_rows`` at a time (so memory is bounded by a
chunk, never by the data), looked up in the cache, the rest tokenized, sorted by
length into batches of at most ``batch_size`` rows (``max_batch_tokens`` padded
tokens), padded on the right with an attention mask, and run under
``torch.inference_mode``. The model's base runs on the whole batch but its LM head
only at the scored positions (``head_chunk`` at a time), in float32, through
``log_softmax``; only per-row sums and counts are kept (per-token arrays only when
asked). When the base-then-head path does not reproduce the model's own logits on
a probe (a model that scales or caps its logits after the head), the full forward
is used instead and ``identity`` says so. Each finished batch is written to the
cache at once.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..core.validation import check_positive_int, param_error
from ..exceptions import InvalidParameterError
from .batching import length_sorted_batches, right_padded
from .fingerprint import files_fingerprint, tokenizer_fingerprint, weights_fingerprint
from .loading import import_torch, load_model, load_tokenizer, pad_id
from .logprob_cache import LogProbCache
from .logprob_types import LogProbs, Span, _chunks, _encode, _entry, _progress, _store

__all__ = ["LogProbScorer"]  # Span and LogProbs: sftselect.models.logprob_types

#: Encoded texts remembered per scorer (recent first out last).
_MEMO_SIZE = 4096
_PROBE = "The quick brown fox jumps over the lazy dog. 1234 + 5678 = 6912."


def _as_ref(obj: Any) -> str | None:
    return os.fspath(obj) if isinstance(obj, (str, os.PathLike)) else None


class LogProbScorer:
    """Answer log-probabilities under a causal LM (see the module docstring).

    Parameters
    ----------
    model : str, path or transformers model
        A local folder, a hub name, a ``.gguf`` file, or a loaded causal LM (with an
        LM head: ``get_output_embeddings()`` not None).
    tokenizer : str, path, tokenizer or None
        None loads the model's own (required for a loaded model).
    gguf_file : str or None
        The GGUF file inside ``model``'s folder, when ``model`` is a folder.
    dtype : {"float32", "bfloat16", "float16"} or None
        What a path is loaded as; None: bfloat16 on a CUDA device that has it
        (else float16), float32 elsewhere. A loaded model runs as it is.
    device : str or None
        Where a path is loaded (None: CUDA when available, else CPU). A loaded
        model stays where it is.
    batch_size : int, default 16
        Rows per forward pass.
    max_batch_tokens : int or None
        At most this many padded tokens per batch (never fewer than one row).
    chunk_rows : int, default 2048
        Rows looked up, tokenized and length-sorted together; bounds memory.
    head_chunk : int, default 512
        Scored positions sent through the LM head at once (bounds the logits kept).
    cache_dir : str, path or None
        A folder for the SQLite cache (:mod:`sftselect.models.logprob_cache`).
    show_progress : bool, default True
        A progress bar over the spans.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        gguf_file: str | None = None,
        dtype: str | None = None,
        device: str | None = None,
        batch_size: int = 16,
        max_batch_tokens: int | None = None,
        chunk_rows: int = 2048,
        head_chunk: int = 512,
        cache_dir: str | os.PathLike[str] | None = None,
        show_progress: bool = True,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.gguf_file = gguf_file
        self.dtype = dtype
        self.device = device
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.chunk_rows = chunk_rows
        self.head_chunk = head_chunk
        self.cache_dir = cache_dir
        self.show_progress = show_progress
        self._loaded: tuple[Any, Any] | None = None
        self._head_only: bool | None = None
        self._identity: str | None = None

    def __repr__(self) -> str:
        ref = _as_ref(self.model) or type(self.model).__name__
        return f"LogProbScorer({ref!r})"

    def __getstate__(self) -> dict[str, Any]:  # a loaded model travels only when given loaded
        state = dict(self.__dict__)
        state.pop("_memo", None)
        if _as_ref(self.model) is not None:
            state["_loaded"] = None
            state["_head_only"] = None
        return state

    def with_cache(self, cache_dir: str | os.PathLike[str]) -> LogProbScorer:
        """The same scorer (sharing its loaded model) with ``cache_dir`` as its cache."""
        twin = LogProbScorer.__new__(LogProbScorer)
        twin.__dict__.update(self.__dict__)
        twin.cache_dir = cache_dir
        return twin

    # -- settings ------------------------------------------------------------
    def _owner(self) -> str:
        return type(self).__name__

    def _device(self) -> str:
        if self.device is not None:
            return str(self.device)
        if _as_ref(self.model) is None:
            return str(next(iter(self.model.parameters())).device)
        torch, _ = import_torch(self._owner())
        return "cuda" if torch.cuda.is_available() else "cpu"

    def _dtype_name(self) -> str:
        if _as_ref(self.model) is None:
            return str(next(iter(self.model.parameters())).dtype).replace("torch.", "")
        if self.dtype is not None:
            return str(self.dtype)
        if self._device().startswith("cuda"):
            torch, _ = import_torch(self._owner())
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return "float32"

    @property
    def identity(self) -> str:
        """What produces the numbers: the weights (a files or weights fingerprint),
        the tokenizer and the dtype. Read without loading a model given as a path."""
        if self._identity is not None:
            return self._identity
        ref = _as_ref(self.model)
        if ref is None:
            part = f"{getattr(self.model, 'name_or_path', '')}|weights={weights_fingerprint(self.model)}"
        elif os.path.exists(ref):
            part = f"{os.path.abspath(ref)}|files={files_fingerprint(ref)}"
        else:
            part = ref
        if self.gguf_file is not None:
            part += f"|gguf={self.gguf_file}"
        tok = self.tokenizer
        tok_ref = _as_ref(tok)
        if tok is not None and tok_ref is None:
            part += f"|tokenizer={tokenizer_fingerprint(tok)}"
        elif tok_ref is not None:
            fp = files_fingerprint(tok_ref) if os.path.exists(tok_ref) else ""
            part += f"|tokenizer={tok_ref}|tokenizer_files={fp}"
        self._identity = f"logprobs-v1:{part}|dtype={self._dtype_name()}"
        return self._identity

    # -- loading -------------------------------------------------------------
    def load(self) -> tuple[Any, Any]:
        """The (model, tokenizer) pair, loaded once; the model in eval mode."""
        if self._loaded is not None:
            return self._loaded
        owner = self._owner()
        torch, _ = import_torch(owner)
        tok = load_tokenizer(self.model, self.tokenizer, self.gguf_file, owner)
        if _as_ref(self.model) is not None:
            from transformers.utils import logging as hf_logging

            quiet = not self.show_progress and hf_logging.is_progress_bar_enabled()
            if quiet:  # no loading or GGUF-conversion bars when asked to be quiet
                hf_logging.disable_progress_bar()
            try:
                net = load_model(self.model, self.gguf_file, self._dtype_name(), owner)
            finally:
                if quiet:
                    hf_logging.enable_progress_bar()
            net.to(self._device())
        else:
            net = load_model(self.model, None, None, owner)
        if net.get_output_embeddings() is None:
            raise InvalidParameterError(
                f"The 'model' parameter of {owner} has no LM head "
                f"({type(net).__name__}.get_output_embeddings() is None): load a causal LM "
                "(AutoModelForCausalLM)."
            )
        net.eval()
        self._loaded = (net, tok)
        with torch.inference_mode():
            self._head_only = self._probe_head(net, tok)
        return self._loaded

    def _base(self, net: Any) -> Any:
        base = getattr(net, getattr(net, "base_model_prefix", ""), None)
        return base if base is not None and base is not net else None

    def _probe_head(self, net: Any, tok: Any) -> bool:
        """True when base-then-head reproduces the model's own logits on a probe text."""
        torch, _ = import_torch(self._owner())
        base = self._base(net)
        if base is None:
            return False
        ids = torch.tensor([tok.encode(_PROBE)[:32]], device=net.device)
        full = net(input_ids=ids, use_cache=False).logits.float()
        hidden = base(input_ids=ids, use_cache=False).last_hidden_state
        mine = net.get_output_embeddings()(hidden).float()
        scale = full.abs().max().clamp_min(1.0)
        return bool(((full - mine).abs().max() / scale) < 1e-3)

    def head_only(self) -> bool:
        """Whether the LM head runs only at scored positions (loads the model)."""
        self.load()
        return bool(self._head_only)

    # -- tokenization --------------------------------------------------------
    def _context(self, net: Any) -> int | None:
        value = getattr(net.config, "max_position_embeddings", None)
        return int(value) if isinstance(value, int) and value > 0 else None

    def tokenize(
        self, span: Span, tok: Any, context: int | None
    ) -> tuple[list[int], int, int, bool]:
        """``(ids, first scored position, budget tokens, truncated)`` of one span."""
        limit = span.max_length if span.max_length is not None else context
        _encode = self._encoder(tok)
        n_budget = 0
        if span.budget_of is not None:
            n_budget = len(_encode(tok, span.budget_of, limit))
            limit = (limit if limit is not None else 0) - n_budget + span.budget_extra
        if limit is not None and limit < 1:  # no room left for the text: nothing is read
            return [], 1, n_budget, True
        ids = list(_encode(tok, span.text, limit))
        # cut at the limit when one more token of room would have been used
        truncated = limit is not None and len(ids) >= limit
        truncated = truncated and len(_encode(tok, span.text, limit + 1)) > len(ids)  # type: ignore[operator]
        start = max(1, len(_encode(tok, span.prefix, None)))
        return ids, start, n_budget, truncated

    def _encoder(self, tok: Any) -> Any:
        """``_encode`` with a small memo of recent results (a prompt is encoded by both
        passes, a fixed prefix by every row); bounded at ``_MEMO_SIZE`` texts."""
        memo = self.__dict__.get("_memo")
        if memo is None or memo[0] is not tok:
            memo = (tok, OrderedDict())
            self.__dict__["_memo"] = memo
        store: OrderedDict[tuple[str, int | None], tuple[int, ...]] = memo[1]

        def encode(tok: Any, text: str, limit: int | None) -> tuple[int, ...]:
            key = (text, limit)
            hit = store.get(key)
            if hit is not None:
                store.move_to_end(key)
                return hit
            ids = tuple(_encode(tok, text, limit))
            store[key] = ids
            if len(store) > _MEMO_SIZE:
                store.popitem(last=False)
            return ids

        return encode

    # -- scoring -------------------------------------------------------------
    def _key(self, span: Span) -> str:
        h = hashlib.sha256(self.identity.encode("utf-8"))
        h.update(b"\0")
        h.update(span.key_text())
        return h.hexdigest()

    def _check(self) -> None:
        owner = self._owner()
        check_positive_int(self.batch_size, "batch_size", owner)
        check_positive_int(self.chunk_rows, "chunk_rows", owner)
        check_positive_int(self.head_chunk, "head_chunk", owner)
        if self.max_batch_tokens is not None:
            check_positive_int(self.max_batch_tokens, "max_batch_tokens", owner)
        if not isinstance(self.show_progress, bool):
            raise param_error(owner, "show_progress", "a bool", self.show_progress)

    def cached_count(self, spans: Iterable[Span]) -> int:
        """How many of ``spans`` the cache already holds (0 without ``cache_dir``)."""
        if self.cache_dir is None:
            return 0
        cache = LogProbCache(self.cache_dir)
        try:
            n = 0
            for chunk in _chunks(spans, self.chunk_rows):
                n += len(cache.get_many([self._key(s) for s in chunk], need_tokens=False))
            return n
        finally:
            cache.close()

    def score(
        self,
        spans: Iterable[Span],
        *,
        total: int | None = None,
        per_token: bool = False,
        desc: str = "log-probs",
    ) -> LogProbs:
        """Scores of ``spans`` (any iterable, consumed ``chunk_rows`` at a time)."""
        self._check()
        cache = LogProbCache(self.cache_dir) if self.cache_dir is not None else None
        if total is None and isinstance(spans, Sequence):
            total = len(spans)
        bar = _progress(self.show_progress, total, desc)
        sums: list[np.ndarray] = []
        counts: list[np.ndarray] = []
        budgets: list[np.ndarray] = []
        cut: list[np.ndarray] = []
        tokens: list[np.ndarray] | None = [] if per_token else None
        n_cached = 0
        try:
            for chunk in _chunks(spans, self.chunk_rows):
                res = self._score_chunk(chunk, cache, per_token, bar)
                sums.append(res.nll_sum)
                counts.append(res.n_tokens)
                budgets.append(res.n_budget)
                cut.append(res.truncated)
                if tokens is not None and res.token_nll is not None:
                    tokens.extend(res.token_nll)
                n_cached += res.n_cached
        finally:
            if bar is not None:
                bar.close()
            if cache is not None:
                cache.close()
        return LogProbs(
            nll_sum=np.concatenate(sums) if sums else np.zeros(0),
            n_tokens=np.concatenate(counts) if counts else np.zeros(0, dtype=np.int64),
            n_budget=np.concatenate(budgets) if budgets else np.zeros(0, dtype=np.int64),
            truncated=np.concatenate(cut) if cut else np.zeros(0, dtype=bool),
            token_nll=tokens,
            n_cached=n_cached,
        )

    def _score_chunk(
        self, chunk: list[Span], cache: LogProbCache | None, per_token: bool, bar: Any
    ) -> LogProbs:
        n = len(chunk)
        out = LogProbs(
            nll_sum=np.full(n, np.nan),
            n_tokens=np.zeros(n, dtype=np.int64),
            n_budget=np.zeros(n, dtype=np.int64),
            truncated=np.zeros(n, dtype=bool),
            token_nll=[np.zeros(0, dtype=np.float32)] * n if per_token else None,
            n_cached=0,
        )
        keys = [self._key(s) for s in chunk] if cache is not None else []
        todo = list(range(n))
        if cache is not None:
            hits = cache.get_many(keys, need_tokens=per_token)
            todo = []
            for i, key in enumerate(keys):
                hit = hits.get(key)
                if hit is None:
                    todo.append(i)
                    continue
                _store(out, i, hit)
            out.n_cached = n - len(todo)
            if bar is not None:
                bar.update(out.n_cached)
        if not todo:
            return out
        net, tok = self.load()
        context = self._context(net)
        ids: list[list[int]] = []
        starts: list[int] = []
        for i in todo:
            row_ids, start, n_budget, truncated = self.tokenize(chunk[i], tok, context)
            ids.append(row_ids)
            starts.append(start)
            out.n_budget[i] = n_budget
            out.truncated[i] = truncated
        lengths = [len(x) for x in ids]
        empty = [j for j, length in enumerate(lengths) if length == 0]
        for j in empty:  # nothing to read: nothing scored
            self._finish(out, todo[j], 0.0, 0, None, per_token)
        if cache is not None and empty:
            cache.put_many([(keys[todo[j]], _entry(out, todo[j], per_token)) for j in empty])
        if bar is not None and empty:
            bar.update(len(empty))
        for batch in length_sorted_batches(
            lengths, int(self.batch_size), max_tokens=self.max_batch_tokens
        ):
            results = self._forward(net, tok, [ids[j] for j in batch], [starts[j] for j in batch])
            for j, (total, count, per) in zip(batch, results):
                self._finish(out, todo[j], total, count, per, per_token)
            if cache is not None:  # each finished batch is kept at once
                cache.put_many([(keys[todo[j]], _entry(out, todo[j], per_token)) for j in batch])
            if bar is not None:
                bar.update(len(batch))
        return out

    @staticmethod
    def _finish(
        out: LogProbs, i: int, total: float, count: int, per: np.ndarray | None, per_token: bool
    ) -> None:
        out.nll_sum[i] = total if np.isfinite(total) else np.nan
        out.n_tokens[i] = count
        if per_token and out.token_nll is not None:
            out.token_nll[i] = per if per is not None else np.zeros(0, dtype=np.float32)

    def _forward(
        self, net: Any, tok: Any, ids: list[list[int]], starts: list[int]
    ) -> list[tuple[float, int, np.ndarray | None]]:
        """Summed NLL, count and per-token NLL of the scored tokens of one batch."""
        torch, _ = import_torch(self._owner())
        device = net.device
        input_ids, mask = right_padded(ids, pad_id(tok, self._owner()))
        input_ids, mask = input_ids.to(device), mask.to(device)
        rows, cols = [], []
        for r, (row, s) in enumerate(zip(ids, starts)):
            cols.extend(range(s, len(row)))
            rows.extend([r] * max(0, len(row) - s))
        counts = [max(0, len(row) - s) for row, s in zip(ids, starts)]
        if not rows:
            return [(0.0, 0, np.zeros(0, dtype=np.float32)) for _ in ids]
        row_t = torch.tensor(rows, device=device)
        col_t = torch.tensor(cols, device=device)
        targets = input_ids[row_t, col_t]
        with torch.inference_mode():
            if self._head_only:
                hidden = self._base(net)(
                    input_ids=input_ids, attention_mask=mask, use_cache=False
                ).last_hidden_state
                states = hidden[row_t, col_t - 1]
                del hidden
                head = net.get_output_embeddings()
            else:
                logits = net(input_ids=input_ids, attention_mask=mask, use_cache=False).logits
                states = logits[row_t, col_t - 1]
                del logits
                head = None
            parts = []
            for a in range(0, states.shape[0], int(self.head_chunk)):
                piece = states[a : a + int(self.head_chunk)]
                logits = (head(piece) if head is not None else piece).float()
                logp = torch.log_softmax(logits, dim=-1)
                parts.append(-logp.gather(1, targets[a : a + piece.shape[0], None]).squeeze(1))
            nll = torch.cat(parts).double().cpu().numpy()
        out = []
        offset = 0
        for c in counts:
            seg = nll[offset : offset + c]
            offset += c
            out.append((float(seg.sum()), c, seg.astype(np.float32)))
        return out
