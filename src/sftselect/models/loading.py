"""Loading a causal LM and its tokenizer for training and generation (torch imported lazily).

A ``model`` (or ``tokenizer``) given as a string or path is a local folder or
file when one of that name exists, else a hub name. A name that is neither
raises :class:`ModelNotFoundError`, one line saying both: no local folder or
file of that name, and what loading it as a hub name gave (the hub error's
first line). A name that looks like a path (it starts with ``./``, ``../``,
``/`` or ``~``, ends with a path separator, or holds a separator and its first
component exists locally, as ``out/llama2-1k-longset`` beside ``out/``) is
never tried as a hub name: that raises at once instead of retrying the hub.
"""

from __future__ import annotations

import numbers
import os
from typing import Any

from ..core.validation import param_error
from ..exceptions import InvalidParameterError, MissingExtraError, ModelNotFoundError

__all__ = [
    "ModelNotFoundError",
    "eos_ids",
    "import_torch",
    "load_model",
    "load_tokenizer",
    "pad_id",
    "without_word_cache",
]

DTYPES = ("float32", "float16", "bfloat16")


def import_torch(owner: str) -> tuple[Any, Any]:
    """Import torch and transformers, or raise :class:`MissingExtraError` naming ``owner``."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise MissingExtraError(
            f"{owner} needs torch and transformers ({exc}). Install them with "
            "`pip install 'sftselect[train]'` (and `gguf` for GGUF files)."
        ) from exc
    return torch, transformers


def _looks_like_path(text: str) -> bool:
    """``text`` is meant as a local path, not a hub name (see the module docstring)."""
    seps = tuple(s for s in (os.sep, os.altsep) if s)
    if text.startswith("~") or os.path.isabs(text) or text.endswith(seps):
        return True
    if any(text.startswith(dots + sep) for dots in (".", "..") for sep in seps):
        return True
    for sep in seps:
        first, found, _ = text.partition(sep)
        if found and first and os.path.exists(first):
            return True
    return False


def _from_pretrained(
    loader: Any, name: str, param: str, owner: str, options: dict[str, Any] | None = None
) -> Any:
    """``loader.from_pretrained(name, **options)``; a ``name`` that is no local path and does
    not load raises :class:`ModelNotFoundError` naming both (see the module docstring)."""
    kwargs = options or {}
    if os.path.exists(name):
        try:
            return loader.from_pretrained(name, **kwargs)
        except ValueError as exc:  # a folder or file that holds nothing this loader reads
            first = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise InvalidParameterError(
                f"The {param!r} parameter of {owner}: {name!r} holds no "
                f"{getattr(loader, '__name__', 'model')} transformers can load ({first})."
            ) from exc
    where = os.path.abspath(name) + (", ~ not expanded" if name.startswith("~") else "")
    missing = (
        f"The {param!r} parameter of {owner}: there is no local folder or file {name!r} "
        f"(looked for {where})"
    )
    if _looks_like_path(name):
        raise ModelNotFoundError(
            f"{missing}; it looks like a path, so it was not tried as a hub name."
        )
    try:
        return loader.from_pretrained(name, **kwargs)
    except (OSError, ValueError) as exc:
        lines = str(exc).strip().splitlines()
        first = lines[0] if lines else type(exc).__name__
        raise ModelNotFoundError(
            f"{missing}, and loading it as a hub name failed: {first}"
        ) from exc


def _source(path: Any, gguf_file: str | None) -> tuple[str, str | None]:
    text = os.fspath(path)
    if gguf_file is None and text.lower().endswith(".gguf") and os.path.isfile(text):
        return os.path.dirname(os.path.abspath(text)), os.path.basename(text)
    return text, gguf_file


def load_tokenizer(model: Any, tokenizer: Any, gguf_file: str | None, owner: str) -> Any:
    """The tokenizer object: ``tokenizer`` as given, loaded from a path, or from ``model``'s path."""
    _, transformers = import_torch(owner)
    if tokenizer is not None and not isinstance(tokenizer, (str, os.PathLike)):
        if not callable(tokenizer):
            raise param_error(owner, "tokenizer", "None, a path or a tokenizer", tokenizer)
        return tokenizer
    if tokenizer is not None:
        return without_word_cache(
            _from_pretrained(transformers.AutoTokenizer, os.fspath(tokenizer), "tokenizer", owner)
        )
    if not isinstance(model, (str, os.PathLike)):
        raise InvalidParameterError(
            f"The 'tokenizer' parameter of {owner} is required when 'model' is a loaded model "
            f"({type(model).__name__}). Got None instead."
        )
    path, gguf = _source(model, gguf_file)
    return without_word_cache(
        _from_pretrained(
            transformers.AutoTokenizer, path, "model", owner, {"gguf_file": gguf} if gguf else None
        )
    )


def without_word_cache(tok: Any) -> Any:
    """``tok`` with the ``tokenizers`` word cache of its BPE or Unigram model off.

    That cache keeps up to 10,000 "words" with their tokens as texts are seen, and a
    LLaMA-style tokenizer (``Metaspace(split=False)``) does not split a text into
    words, so each entry is a whole text: encoding 36,000 distinct Alpaca texts with
    the LLaMA-2 tokenizer grew the process by 55 MiB with it and 1.9 MiB without.
    A scorer reads each text once or twice (the log-prob engine keeps its own memo
    of recent encodings), so the cache holds memory and saves nothing. Applied only
    to tokenizers this library loads; a tokenizer object passed in is left as it is.
    ``_resize_cache`` is a private method of ``tokenizers`` (0.19 and later); where
    it is missing nothing changes.
    """
    model = getattr(getattr(tok, "backend_tokenizer", None), "model", None)
    resize = getattr(model, "_resize_cache", None)
    if callable(resize):
        resize(0)
    return tok


def load_model(
    model: Any,
    gguf_file: str | None,
    dtype: str | None,
    owner: str,
    options: dict[str, Any] | None = None,
) -> Any:
    """The model object: ``model`` as given, or loaded from a folder, hub name or GGUF file
    (``options``: more ``from_pretrained`` arguments, e.g. a quantization config)."""
    torch, transformers = import_torch(owner)
    if not isinstance(model, (str, os.PathLike)):
        if not (callable(getattr(model, "forward", None)) and hasattr(model, "config")):
            raise param_error(owner, "model", "a path, a hub name or a transformers model", model)
        return model
    if dtype is not None and dtype not in DTYPES:
        raise param_error(owner, "dtype", f"one of {list(DTYPES)} or None", dtype)
    path, gguf = _source(model, gguf_file)
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype or "float32")}
    if gguf:
        kwargs["gguf_file"] = gguf
    kwargs.update(options or {})
    net = _from_pretrained(transformers.AutoModelForCausalLM, path, "model", owner, kwargs)
    quantizer = getattr(net, "hf_quantizer", None)
    if gguf and quantizer is not None and all(p.is_floating_point() for p in net.parameters()):
        # transformers dequantises GGUF weights to ``dtype`` but keeps its GGUF quantizer,
        # which makes Trainer refuse to train; the weights are plain tensors.
        quantizer.remove_quantization_config(net)
        if hasattr(net.config, "_is_quantized"):
            net.config._is_quantized = False
    return net


def eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """The EOS token ids of the model's generation config and of the tokenizer, sorted."""
    found: set[int] = set()
    for source in (
        getattr(getattr(model, "generation_config", None), "eos_token_id", None),
        getattr(tokenizer, "eos_token_id", None),
    ):
        if isinstance(source, numbers.Integral):
            found.add(int(source))
        elif isinstance(source, (list, tuple)):
            found.update(int(t) for t in source)
    return sorted(found)


def pad_id(tokenizer: Any, owner: str) -> int:
    """The padding id: the tokenizer's pad token, else UNK (as the paper's train.py), else EOS."""
    for attr in ("pad_token_id", "unk_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if isinstance(value, numbers.Integral):
            return int(value)
    raise InvalidParameterError(
        f"The tokenizer given to {owner} has no pad, UNK or EOS token; set tokenizer.pad_token."
    )
