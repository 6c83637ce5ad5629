"""The default ``identity`` of :class:`~sftselect.backends.transformers_chat.TransformersChatBackend`:
``transformers/<model>[;gguf=<file>][;files=<fp>][;tokenizer=<path>[;tokenizer_files=<fp>]]``
``[;chat_template=<hash>];dtype=<dtype>``.

A model (or tokenizer) given as a path that exists is named by its absolute
normalised path, so ``m``, ``./m`` and ``m/`` are one judge, and carries
:func:`~sftselect.models.fingerprint.files_fingerprint` (name, size and
modification time; no byte read) of the files that decide the replies: the
weights (with a GGUF file, that file only, not the folder's other GGUF files),
``config.json``, ``generation_config.json``, ``chat_template*`` (transformers
saves the template as ``chat_template.jinja``) and the tokenizer files. New
weights written to the same path are then a new judge, never answered from the
old one's cached replies. A hub name (a path that does not exist here) is kept
as given, with no revision.
"""

from __future__ import annotations

import glob
import hashlib
import os

from ..models.fingerprint import TOKENIZER_PATTERNS, WEIGHT_PATTERNS, files_fingerprint

__all__ = ["MODEL_FILES", "local_identity"]

#: Files of a local model or tokenizer folder, besides the weights, that decide the replies.
MODEL_FILES: tuple[str, ...] = (
    "config.json",
    "generation_config.json",
    "chat_template*",
    *TOKENIZER_PATTERNS,
)


def local_identity(
    name: str,
    *,
    folder: str | None,
    gguf: str | None,
    tokenizer: str | None,
    chat_template: str | None,
    dtype: str,
) -> str:
    """The identity of a judge named ``name`` (a loaded model's name), or loaded from
    ``folder`` (a local folder or a hub name; ``gguf``: the GGUF file in it), with
    ``tokenizer`` (a path or hub name, None for the model's own) and ``chat_template``."""
    parts = [f"transformers/{name}"]
    if folder is not None:
        local = os.path.exists(folder)
        parts = [f"transformers/{os.path.abspath(folder) if local else folder}"]
        if gguf:
            parts.append(f"gguf={gguf}")
        if local:
            weights = (glob.escape(gguf),) if gguf else WEIGHT_PATTERNS
            parts.append(f"files={files_fingerprint(folder, (*MODEL_FILES, *weights))}")
    if tokenizer is not None:
        if os.path.exists(tokenizer):
            fp = files_fingerprint(tokenizer, MODEL_FILES)
            parts.append(f"tokenizer={os.path.abspath(tokenizer)};tokenizer_files={fp}")
        else:
            parts.append(f"tokenizer={tokenizer}")
    if chat_template is not None:
        digest = hashlib.sha256(chat_template.encode("utf-8")).hexdigest()[:12]
        parts.append(f"chat_template={digest}")
    parts.append(f"dtype={dtype}")
    return ";".join(parts)
