"""Embeddings of instruction data: embedders, precomputed vectors, a disk cache.

``HFEmbedder`` imports torch and transformers only when it is first used.
"""

from __future__ import annotations

from .base import (
    EXAMPLE_TEMPLATE,
    TEXT_FIELDS,
    Embedder,
    HashingEmbedder,
    PrecomputedEmbeddings,
    example_texts,
)
from .cache import EmbeddingCache, embed_dataset
from .hf import HFEmbedder
from .sentence import SentenceTransformerEmbedder

__all__ = [
    "EXAMPLE_TEMPLATE",
    "TEXT_FIELDS",
    "Embedder",
    "EmbeddingCache",
    "HFEmbedder",
    "HashingEmbedder",
    "PrecomputedEmbeddings",
    "SentenceTransformerEmbedder",
    "embed_dataset",
    "example_texts",
]
