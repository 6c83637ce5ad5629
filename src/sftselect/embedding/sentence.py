"""A ``sentence_transformers.SentenceTransformer`` used as an embedder as it is.

:func:`as_embedder` is what :func:`~sftselect.embedding.embed_dataset` calls on
the ``embedder`` a selector was given: an object with an ``identity`` string
and an ``embed(texts)`` method (an :class:`~sftselect.embedding.HFEmbedder`,
:class:`~sftselect.embedding.HashingEmbedder`, your own) is used as it is; a
``SentenceTransformer`` is wrapped in :class:`SentenceTransformerEmbedder`,
whose vectors are the model's own ``encode`` output (its pooling and, when its
pipeline has one, its ``Normalize`` module: all-MiniLM-L6-v2's vectors come
out L2-normalised).

Identity: ``sentence-transformers:<name or class>|<weights fingerprint>``
(:func:`~sftselect.models.fingerprint.weights_fingerprint`, taken at every
use, so a model trained since gets a new cache key) and the maximum sequence
length.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["SentenceTransformerEmbedder", "as_embedder", "is_sentence_transformer"]


def is_sentence_transformer(obj: Any) -> bool:
    """Whether ``obj`` is a ``sentence_transformers.SentenceTransformer`` (without importing it)."""
    return any(
        c.__name__ == "SentenceTransformer" and c.__module__.startswith("sentence_transformers")
        for c in type(obj).__mro__
    )


class SentenceTransformerEmbedder:
    """Embed texts with a loaded ``SentenceTransformer`` (see the module docstring)."""

    def __init__(self, model: Any, *, batch_size: int = 32) -> None:
        self.model = model
        self.batch_size = batch_size

    @property
    def identity(self) -> str:
        from ..models.fingerprint import weights_fingerprint

        name = getattr(self.model, "model_card_data", None)
        name = getattr(name, "base_model", None) or type(self.model).__name__
        length = getattr(self.model, "max_seq_length", None)
        return f"sentence-transformers:{name}|{weights_fingerprint(self.model)}|max_seq_length={length}"

    def embed(self, texts: list[str]) -> np.ndarray:
        out = self.model.encode(
            [str(t) for t in texts],
            batch_size=self.batch_size,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32)

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({type(self.model).__name__})"


def as_embedder(obj: Any) -> Any:
    """``obj`` itself, or a ``SentenceTransformer`` wrapped in :class:`SentenceTransformerEmbedder`."""
    if is_sentence_transformer(obj) and not hasattr(obj, "embed"):
        return SentenceTransformerEmbedder(obj)
    return obj
