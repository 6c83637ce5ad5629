"""HFEmbedder: sentence vectors from a transformers model's hidden states.

Works for encoders (e.g. ``sentence-transformers/all-MiniLM-L6-v2``: mean
pooling, then ``normalize=True``, reproduces its sentence embeddings) and for
decoder LMs (a LLaMA checkpoint under ``AutoModel`` gives the base model's
hidden states; the paper's diversity baseline average-pools LLaMA-2 states).

How a batch is built: texts are tokenized once without padding (truncated to
``max_length`` tokens), sorted by token count (longest first) so each batch
pads little, padded **on the right** by this class (whatever the tokenizer's
``padding_side``), run under ``torch.inference_mode()``, pooled, and put back
in input order. Right padding keeps each real token's position ids and, for a
causal model, its attention unchanged, so a padded row equals the same text
run alone (up to float rounding). Pooling is computed in float32:

* ``"mean"`` -- the mean over the real (attention-masked) tokens;
* ``"last"`` -- the last real token (the usual choice for causal LMs);
* ``"cls"`` -- the first token;
* ``"weighted_mean"`` -- position-weighted mean over the real tokens (SGPT,
  Muennighoff 2022; RDS+): token ``t`` (1-based) weighs ``t / sum(1..T)``.

A text that tokenizes to no tokens at all (an empty text under a tokenizer
that adds no special tokens) gets a zero vector.

``layer`` indexes ``output_hidden_states`` (0: the embedding layer, -1: the
last layer, which for LLaMA-type models is after the final norm, i.e.
``last_hidden_state``; a model with a head, such as ``LlamaForCausalLM``, is
read through its hidden states). The model is loaded on first use, never in
``__init__``.

**Identity** (the on-disk cache key, with the exact texts): the model, then
``layer``, ``pooling``, ``normalize``, ``max_length`` and the dtype the model
runs in. The model part is, in this order of precedence:

* ``identity=`` when given, used as given: it names the weights and the
  tokenizer, and the caller vouches that another model never gets the same one;
* a local path (folder or file): the path plus
  :func:`~sftselect.models.fingerprint.files_fingerprint` -- name, size and
  mtime of ``config.json``, the weight files and the tokenizer files, so a
  checkpoint overwritten in place gets a new key; the fingerprint is taken
  again at every use until the model is loaded, then kept (it names what was
  loaded);
* a hub name (a string that is not a local path): the name, and ``revision``
  when given (pin a commit hash: without one an upstream update is not seen);
* a model object: its ``name_or_path`` (or class name) plus
  :func:`~sftselect.models.fingerprint.weights_fingerprint`, taken again at
  every use (the object may have been trained since) -- SHA-256 of the
  config's JSON and of 4,096 evenly spaced elements of every parameter and
  buffer (measured on CPU: 2.5 ms for a 2-layer test model, 30-65 ms for a
  7B one). This is the default, rather than refusing the cache without
  ``identity=``, because it tells apart any two models that differ broadly
  (another seed or checkpoint, training steps, a merged adapter, a cast) at a
  cost far below one forward pass, while hashing every byte of a 7B model
  would take seconds. An edit of only a few elements escapes it: name such
  weights with ``identity=``; weights it cannot read (on the meta device)
  raise an error that asks for ``identity=``.

A tokenizer given separately adds its own part: the path and its files
fingerprint, the hub name, or (an object) its class, size and the token ids
of a fixed probe text.
"""

from __future__ import annotations

import numbers
import os
from typing import Any

import numpy as np

from ..core.validation import check_choice, check_positive_int, param_error
from ..exceptions import InvalidParameterError, MissingExtraError
from ..models.batching import length_sorted_batches, right_padded
from ..models.fingerprint import (
    FingerprintError,
    files_fingerprint,
    tokenizer_fingerprint,
    weights_fingerprint,
)

__all__ = ["POOLINGS", "HFEmbedder", "right_padded"]

POOLINGS: tuple[str, ...] = ("mean", "last", "cls", "weighted_mean")


def _torch() -> Any:
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        raise MissingExtraError(
            "HFEmbedder needs torch and transformers: pip install 'sftselect[embed]'."
        ) from None
    return torch


def _quiet_load(
    auto: Any, path: str, dtype: Any, *, quiet: bool, revision: str | None = None
) -> Any:
    """``auto.from_pretrained(path)``; without transformers' loading bar when ``quiet``."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    if quiet and was_on:
        hf_logging.disable_progress_bar()
    try:
        hub = {} if revision is None else {"revision": revision}
        return auto.from_pretrained(path, dtype=dtype, **hub)
    finally:
        if quiet and was_on:
            hf_logging.enable_progress_bar()


def _unloadable(param: str, exc: ValueError) -> InvalidParameterError:
    """The one-line error for a model or tokenizer path that transformers cannot load."""
    first = " ".join(str(exc).split())[:200] or type(exc).__name__
    return InvalidParameterError(
        f"The {param!r} parameter of HFEmbedder names nothing transformers can load ({first})."
    )


def _as_ref(obj: Any) -> str | None:
    """A str, bytes or path-like as a str; None for anything else (a loaded object)."""
    if isinstance(obj, (str, bytes)) or hasattr(obj, "__fspath__"):
        return os.fsdecode(obj)
    return None


class HFEmbedder:
    """Embed texts with a transformers model; see the module docstring.

    Parameters
    ----------
    model : str, path or a loaded ``PreTrainedModel``
        What ``AutoModel.from_pretrained`` loads, or a model already loaded.
    tokenizer : str, path, tokenizer or None
        None loads the tokenizer from ``model`` (required when ``model`` is an object).
    layer : int, default -1
        Which hidden state to pool (an index into ``output_hidden_states``).
    pooling : {"mean", "last", "cls", "weighted_mean"}, default "mean"
    normalize : bool, default False
        L2-normalise each vector.
    max_length : int, default 512
        Tokens kept per text (longer texts are truncated).
    batch_size : int, default 32
    device : str or None
        None picks cuda, then mps, then cpu.
    dtype : str, torch.dtype or None
        None: bfloat16 on CUDA with bf16 support (else float16), float16 on
        MPS, float32 on CPU. The output is always float32.
    identity : str or None
        Names the weights (and tokenizer) in the cache key instead of the
        automatic part (see the module docstring); layer, pooling,
        normalisation, max_length and dtype are always appended. A non-empty
        str, checked when the identity is used.
    revision : str or None
        The hub revision (branch, tag or commit) to load; part of the identity
        of a hub name. Ignored for a local path or a model object.
    show_progress : bool, default False
        A progress bar (tqdm) over the texts embedded.
    """

    def __init__(
        self,
        model: Any,
        *,
        tokenizer: Any = None,
        layer: int = -1,
        pooling: str = "mean",
        normalize: bool = False,
        max_length: int = 512,
        batch_size: int = 32,
        device: str | None = None,
        dtype: Any = None,
        identity: str | None = None,
        revision: str | None = None,
        show_progress: bool = False,
    ) -> None:
        owner = type(self).__name__
        check_choice(pooling, "pooling", owner, POOLINGS)
        if isinstance(layer, bool) or not isinstance(layer, numbers.Integral):
            raise param_error(owner, "layer", "an int", layer)
        if not isinstance(normalize, bool):
            raise param_error(owner, "normalize", "a bool", normalize)
        check_positive_int(max_length, "max_length", owner)
        check_positive_int(batch_size, "batch_size", owner)
        if revision is not None and not (isinstance(revision, str) and revision):
            raise param_error(owner, "revision", "a non-empty str or None", revision)
        if tokenizer is None and _as_ref(model) is None:
            raise param_error(owner, "tokenizer", "given when model is a loaded model", tokenizer)
        self.model = model
        self.tokenizer = tokenizer
        self.layer = int(layer)
        self.pooling = pooling
        self.normalize = normalize
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self.device = device
        self.dtype = dtype
        self._identity = identity
        self.revision = revision
        self.show_progress = show_progress
        self._loaded: tuple[Any, Any] | None = None
        self._loaded_files: str | None = None  # the files fingerprint of the loaded checkpoint

    # -- device and dtype ---------------------------------------------------
    def _device(self) -> str:
        if self.device is not None:
            return str(self.device)
        torch = _torch()
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"

    def _dtype(self) -> Any:
        torch = _torch()
        if self.dtype is not None:
            if isinstance(self.dtype, str):
                dt = getattr(torch, self.dtype, None)
                if not isinstance(dt, torch.dtype):
                    raise param_error(type(self).__name__, "dtype", "a torch dtype", self.dtype)
                return dt
            return self.dtype
        device = self._device()
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.startswith("mps"):
            return torch.float16
        return torch.float32

    @property
    def identity(self) -> str:
        """What produces the vectors: model, layer, pooling, normalize, max_length, dtype.

        See the module docstring for how the model is named. Raises
        ``InvalidParameterError`` for an invalid ``identity=``, or for a model
        object whose weights cannot be fingerprinted (pass ``identity=``).
        """
        settings = (
            f"|layer={self.layer}|pooling={self.pooling}|normalize={self.normalize}"
            f"|max_length={self.max_length}|dtype={self._dtype_name()}"
        )
        return f"hf:{self._model_identity()}{settings}"

    def _model_identity(self) -> str:
        owner = type(self).__name__
        if self._identity is not None:
            if not isinstance(self._identity, str) or not self._identity:
                raise param_error(owner, "identity", "a non-empty str or None", self._identity)
            return self._identity
        ref = _as_ref(self.model)
        if ref is None:
            name = getattr(self.model, "name_or_path", None) or type(self.model).__name__
            try:
                fp = weights_fingerprint(self.model)
            except FingerprintError as err:
                raise InvalidParameterError(
                    f"{owner} cannot fingerprint the weights of this model ({err}), so it "
                    "has no identity to key the embedding cache: pass identity='...' (a str "
                    "naming exactly these weights), or embed without cache_dir."
                ) from None
            part = f"{name}|weights={fp}"
        elif os.path.exists(ref):
            fp = self._loaded_files if self._loaded is not None else None
            part = f"{ref}|files={fp or files_fingerprint(ref)}"
        else:
            part = ref if self.revision is None else f"{ref}@{self.revision}"
        tok = self.tokenizer
        if tok is not None:
            tok_ref = _as_ref(tok)
            if tok_ref is None:
                part += f"|tokenizer={tokenizer_fingerprint(tok)}"
            elif os.path.exists(tok_ref):
                part += f"|tokenizer={tok_ref}|tokenizer_files={files_fingerprint(tok_ref)}"
            else:
                part += f"|tokenizer={tok_ref}"
        return part

    def _dtype_name(self) -> str:
        """The dtype the model runs in: the object's own, or what a path is loaded as."""
        if _as_ref(self.model) is None:
            dtype = getattr(self.model, "dtype", None)
            if dtype is None:
                dtype = next(iter(self.model.parameters())).dtype
        else:
            dtype = self._dtype()
        return str(dtype).replace("torch.", "")

    # -- loading --------------------------------------------------------------
    def _load(self) -> tuple[Any, Any]:
        if self._loaded is not None:
            return self._loaded
        _torch()
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError:  # pragma: no cover
            raise MissingExtraError(
                "HFEmbedder needs transformers: pip install 'sftselect[embed]'."
            ) from None
        ref = _as_ref(self.model)
        local = ref is None or os.path.exists(ref)
        revision = None if local else self.revision
        tok = self.tokenizer
        try:  # a folder that holds no model or tokenizer: transformers raises ValueError
            if tok is None:
                tok = AutoTokenizer.from_pretrained(ref, revision=revision)
            elif _as_ref(tok) is not None:
                tok = AutoTokenizer.from_pretrained(_as_ref(tok))
        except ValueError as exc:
            raise _unloadable("tokenizer" if self.tokenizer is not None else "model", exc) from exc
        device, dtype = self._device(), self._dtype()
        if ref is not None:
            files = files_fingerprint(ref) if local else None
            try:
                model = _quiet_load(
                    AutoModel, ref, dtype, quiet=not self.show_progress, revision=revision
                )
            except ValueError as exc:
                raise _unloadable("model", exc) from exc
            model.to(device)
            self._loaded_files = files
        else:
            model = self.model
        model.eval()
        self._loaded = (model, tok)
        return self._loaded

    # -- embedding ------------------------------------------------------------
    def _token_ids(self, tok: Any, texts: list[str]) -> list[list[int]]:
        enc = tok(
            list(texts),
            truncation=True,
            max_length=self.max_length,
            padding=False,
            return_attention_mask=False,
        )
        return [list(ids) for ids in enc["input_ids"]]

    def embed(self, texts: list[str]) -> np.ndarray:
        """Float32 ``[len(texts), d]`` vectors, in the order of ``texts``."""
        torch = _torch()
        texts = [str(t) for t in texts]
        model, tok = self._load()
        ids = self._token_ids(tok, texts)
        batches = list(length_sorted_batches([len(x) for x in ids], self.batch_size))
        # texts with no tokens are in no batch and get a zero vector
        pad_id = tok.pad_token_id
        if pad_id is None:
            pad_id = tok.eos_token_id if tok.eos_token_id is not None else 0
        device = next(model.parameters()).device
        out = np.zeros((len(texts), int(getattr(model.config, "hidden_size", 0))), np.float32)
        bar = None
        if self.show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=sum(len(b) for b in batches), desc="embedding", unit="text")
        try:
            with torch.inference_mode():
                for rows in batches:
                    input_ids, mask = right_padded([ids[r] for r in rows.tolist()], pad_id)
                    input_ids, mask = input_ids.to(device), mask.to(device)
                    pooled = self._forward_pool(model, input_ids, mask)
                    if out.shape[1] != pooled.shape[1]:
                        out = np.zeros((len(texts), pooled.shape[1]), np.float32)
                    out[rows] = pooled
                    if bar is not None:
                        bar.update(len(rows))
        finally:
            if bar is not None:
                bar.close()
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = out / np.maximum(norms, 1e-12)
        return out.astype(np.float32, copy=False)

    def _forward_pool(self, model: Any, input_ids: Any, mask: Any) -> np.ndarray:
        torch = _torch()
        # a model with a head (e.g. LlamaForCausalLM) has no last_hidden_state
        want_all = self.layer != -1 or getattr(model, "base_model", model) is not model
        outputs = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=want_all)
        if want_all:
            states = outputs.hidden_states
            if not -len(states) <= self.layer < len(states):
                raise param_error(
                    type(self).__name__,
                    "layer",
                    f"an int in [{-len(states)}, {len(states) - 1}] for this model",
                    self.layer,
                )
            hidden = states[self.layer]
        else:
            hidden = outputs.last_hidden_state
        hidden = hidden.float()
        if self.pooling == "mean":
            m = mask.unsqueeze(-1).to(hidden.dtype)
            summed = (hidden * m).sum(dim=1)
            pooled = summed / m.sum(dim=1).clamp(min=1.0)
        elif self.pooling == "weighted_mean":
            pos = mask.cumsum(dim=1).to(hidden.dtype) * mask.to(hidden.dtype)  # 1..T, pads 0
            weights = pos / pos.sum(dim=1, keepdim=True).clamp(min=1.0)
            pooled = (hidden * weights.unsqueeze(-1)).sum(dim=1)
        elif self.pooling == "last":
            last = (mask.sum(dim=1) - 1).clamp(min=0)
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        else:
            pooled = hidden[:, 0]
        return pooled.cpu().numpy().astype(np.float32, copy=False)

    def __repr__(self) -> str:
        try:
            return f"HFEmbedder({self.identity!r})"
        except Exception:  # an unusable identity= or unreadable weights: no key to show
            return f"HFEmbedder(<{type(self.model).__name__}>)"
