"""Loading a causal LM and its tokenizer for training and generation (torch imported lazily)."""

from __future__ import annotations

import numbers
import os
from typing import Any

from .._validation import param_error
from ..exceptions import InvalidParameterError, MissingExtraError

__all__ = ["eos_ids", "import_torch", "load_model", "load_tokenizer", "pad_id"]

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
        return transformers.AutoTokenizer.from_pretrained(os.fspath(tokenizer))
    if not isinstance(model, (str, os.PathLike)):
        raise InvalidParameterError(
            f"The 'tokenizer' parameter of {owner} is required when 'model' is a loaded model "
            f"({type(model).__name__}). Got None instead."
        )
    path, gguf = _source(model, gguf_file)
    return transformers.AutoTokenizer.from_pretrained(path, **({"gguf_file": gguf} if gguf else {}))


def load_model(model: Any, gguf_file: str | None, dtype: str | None, owner: str) -> Any:
    """The model object: ``model`` as given, or loaded from a folder, hub name or GGUF file."""
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
    net = transformers.AutoModelForCausalLM.from_pretrained(path, **kwargs)
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
