"""Cheap fingerprints of models, for cache keys and run records: the embedding
cache (:mod:`sftselect.embedding.cache`) and the ``run`` of each answer
:func:`sftselect.generate.generate` writes.

Two kinds, both returning 16 hex digits (the start of a SHA-256):

* :func:`files_fingerprint` -- of a checkpoint on disk, from file metadata
  alone (no byte of the weights is read): the name, size and modification
  time (``st_mtime_ns``, symlinks followed) of each file that decides the
  vectors. A folder contributes ``config.json``, the weight files
  (:data:`WEIGHT_PATTERNS`) and the tokenizer files (:data:`TOKENIZER_PATTERNS`)
  at its top level (or those matching the ``patterns`` given); a file path
  (e.g. a ``.gguf``) contributes itself.
  Overwriting any of them in place changes the fingerprint (its mtime moves);
  cost: one ``stat`` per file.
* :func:`weights_fingerprint` -- of a model in memory: SHA-256 over the
  config's full JSON (``config.to_json_string(use_diff=False)``), then, for
  every parameter and buffer in ``named_parameters()`` / ``named_buffers()``
  order, its name, shape and dtype and the raw bytes of
  :data:`SAMPLES_PER_TENSOR` elements at evenly spaced positions of the
  flattened tensor (first and last included; all of them for a smaller
  tensor). The samples are gathered on the tensor's device, copied to the CPU
  once per device and hashed in tensor order (the device does not count).
  Cost: a few small operations per tensor, independent of its size --
  measured on a shared 2-core CPU: about 2.5 ms for the tests' 2-layer LLaMA
  (23 tensors), and 27-66 ms (55-225 ms the first time; the spread is the
  machine's load) for a LLaMA-2-7B-shaped model (291 tensors, 6.7B
  parameters, 12.6 GiB in bfloat16), where 291 x 4,096 elements (2.4 MB) are
  hashed; reading every byte instead would take seconds on a CPU. It catches
  every change that touches weights broadly
  (another seed or checkpoint, training steps, a merged adapter, a cast or
  quantisation, a resized vocabulary) but not an edit of a few elements
  between the sampled positions.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from pathlib import Path
from typing import Any

from ..exceptions import FingerprintError

__all__ = [
    "SAMPLES_PER_TENSOR",
    "TOKENIZER_PATTERNS",
    "WEIGHT_PATTERNS",
    "FingerprintError",
    "files_fingerprint",
    "tokenizer_fingerprint",
    "weights_fingerprint",
]

#: Weight files of a checkpoint folder (shards and their index included).
WEIGHT_PATTERNS: tuple[str, ...] = (
    "*.safetensors",
    "*.bin",
    "*.gguf",
    "*.pt",
    "*.pth",
    "*.index.json",
)
#: Tokenizer files of a checkpoint folder (the tokenizer changes the token ids).
TOKENIZER_PATTERNS: tuple[str, ...] = (
    "tokenizer*",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab*",
    "merges.txt",
    "*.model",
    "*.tiktoken",
)
#: Elements sampled from each tensor by :func:`weights_fingerprint`.
SAMPLES_PER_TENSOR = 4096

#: A fixed text whose token ids stand for a tokenizer object's behaviour.
_PROBE = "sftselect probe: Hello, World!\n  12345 naïve café 漢字 <s></s> [CLS] \t end"


def _digest(h: Any) -> str:
    return h.hexdigest()[:16]


def checkpoint_files(
    path: str | os.PathLike[str], patterns: tuple[str, ...] | None = None
) -> list[Path]:
    """The files of a local checkpoint whose metadata :func:`files_fingerprint` covers:
    in a folder, those matching ``patterns`` (default: ``config.json``, the weight
    and the tokenizer files)."""
    p = Path(path)
    if p.is_file():
        return [p]
    if patterns is None:
        patterns = ("config.json", *WEIGHT_PATTERNS, *TOKENIZER_PATTERNS)
    return sorted(
        f
        for f in p.iterdir()
        if f.is_file() and any(fnmatch.fnmatchcase(f.name, pat) for pat in patterns)
    )


def files_fingerprint(path: str | os.PathLike[str], patterns: tuple[str, ...] | None = None) -> str:
    """16 hex digits over (name, size, mtime_ns) of the checkpoint files at ``path``
    (:func:`checkpoint_files`, with ``patterns``)."""
    h = hashlib.sha256(b"files-v1\0")
    for f in checkpoint_files(path, patterns):
        st = f.stat()
        h.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogatepass"))
    return _digest(h)


def _config_json(model: Any) -> str:
    config = getattr(model, "config", None)
    if config is None:
        return ""
    try:
        return config.to_json_string(use_diff=False)
    except Exception:  # a custom config that does not serialise: its dict's repr
        to_dict = getattr(config, "to_dict", None)
        return repr(sorted(to_dict().items())) if callable(to_dict) else repr(config)


def _tensors(model: Any) -> list[tuple[str, Any]]:
    out = list(model.named_parameters())
    out += [(f"buffer:{name}", b) for name, b in model.named_buffers() if b is not None]
    return out


def weights_fingerprint(model: Any) -> str:
    """16 hex digits over the config and a strided sample of every tensor (module docstring)."""
    import torch

    h = hashlib.sha256(b"weights-v1\0")
    h.update(_config_json(model).encode("utf-8", "surrogatepass"))
    samples: dict[Any, list[Any]] = {}  # device -> the raw samples gathered there
    where: list[tuple[Any, int, int]] = []  # per tensor: device, start, stop in its samples
    sizes: dict[Any, int] = {}
    with torch.no_grad():
        for name, t in _tensors(model):
            if getattr(t, "is_meta", False):
                raise FingerprintError(f"tensor {name!r} is on the meta device (not loaded)")
            try:
                t = t.detach()
                h.update(f"\n{name}\0{tuple(t.shape)}\0{t.dtype}".encode())
                n = t.numel()
                if n == 0:
                    continue
                flat = t.reshape(-1)
                if n > SAMPLES_PER_TENSOR:
                    k = SAMPLES_PER_TENSOR
                    idx = torch.arange(k, device=flat.device, dtype=torch.long) * (n - 1) // (k - 1)
                    flat = flat[idx]
                raw = flat.contiguous().view(torch.uint8)
            except (RuntimeError, TypeError, ValueError, NotImplementedError) as err:
                # e.g. a lazy module's uninitialised parameter, a quantised tensor type
                raise FingerprintError(f"tensor {name!r} cannot be sampled ({err})") from None
            start = sizes.get(raw.device, 0)
            sizes[raw.device] = start + raw.numel()
            samples.setdefault(raw.device, []).append(raw)
            where.append((raw.device, start, start + raw.numel()))
    # one copy to the CPU per device; hashed in tensor order (the device does not count)
    host = {d: memoryview(torch.cat(parts).cpu().numpy()) for d, parts in samples.items()}
    for device, start, stop in where:
        h.update(host[device][start:stop])
    return _digest(h)


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """16 hex digits over a tokenizer object's class, size and the ids of a probe text."""
    h = hashlib.sha256(b"tokenizer-v1\0")
    h.update(f"{type(tokenizer).__qualname__}\0{getattr(tokenizer, 'name_or_path', '')}".encode())
    try:
        h.update(f"\0{len(tokenizer)}\0".encode())
        ids = tokenizer(_PROBE, truncation=False, padding=False)["input_ids"]
        h.update(",".join(str(int(i)) for i in ids).encode())
    except Exception:  # not a callable transformers tokenizer: its class and name only
        pass
    return _digest(h)
