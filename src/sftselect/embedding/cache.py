"""An on-disk cache of embeddings: one ``.npy`` file per key in a folder.

The key is the SHA-256 of the embedder's ``identity`` (which names the model
-- for :class:`~sftselect.embedding.hf.HFEmbedder` with a fingerprint of its
weights, so other weights never share an entry -- layer, pooling,
normalisation, truncation and dtype) and of the exact texts
embedded (so it covers the text field, the format and the dataset's content:
two datasets whose embedded texts are equal share an entry, and editing a
column that is not embedded does not invalidate it). Files are written to a
temporary name and renamed, so a crash never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.atomic import atomic_file
from ..core.constraints import Satisfies
from .base import as_matrix, example_texts

if TYPE_CHECKING:
    from datasets import Dataset

    from ..data.formats import Format

__all__ = ["EMBEDDER_CONSTRAINTS", "EmbeddingCache", "embed_dataset", "is_embedder", "texts_sha256"]

EMBEDDER_HELP = (
    "an Embedder (an 'identity' str and an 'embed(texts)' method), a "
    "sentence_transformers.SentenceTransformer or PrecomputedEmbeddings"
)


def is_embedder(obj: Any) -> bool:
    """Whether ``obj`` has the form :func:`embed_dataset` takes, told without computing
    anything: an ``embed_dataset`` method, or an ``embed`` method and an ``identity`` that
    is a str or a property (an ``HFEmbedder`` fingerprints its weights to give it: that
    is done, and its value checked, when the rows are embedded)."""
    from .sentence import as_embedder

    embedder = as_embedder(obj)
    if callable(inspect.getattr_static(embedder, "embed_dataset", None)):
        return True
    if not callable(inspect.getattr_static(embedder, "embed", None)):
        return False
    identity = inspect.getattr_static(embedder, "identity", None)
    return isinstance(identity, (str, property))


#: The declared constraint of a selector's ``embedder`` parameter.
EMBEDDER_CONSTRAINTS: list[Any] = [Satisfies(is_embedder, EMBEDDER_HELP)]


def texts_sha256(texts: list[str]) -> str:
    """SHA-256 of a list of texts (length-prefixed, so boundaries count)."""
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


class EmbeddingCache:
    """A folder of ``<key>.npy`` files; see the module docstring."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def key(self, identity: str, texts: list[str]) -> str:
        h = hashlib.sha256(identity.encode("utf-8"))
        h.update(b"\0")
        h.update(texts_sha256(texts).encode())
        return h.hexdigest()

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.npy"

    def load(self, key: str) -> np.ndarray | None:
        path = self.path(key)
        if not path.exists():
            return None
        return np.load(path, allow_pickle=False)

    def save(self, key: str, array: np.ndarray) -> None:
        with atomic_file(self.path(key), "wb") as fh:
            np.save(fh, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)

    def get_or_compute(
        self,
        identity: str,
        texts: list[str],
        compute: Callable[[], Any],
        *,
        store_identity: Callable[[], str] | None = None,
        owner: str = "EmbeddingCache",
    ) -> np.ndarray:
        """The cached array for (identity, texts), computing and storing it if absent.

        ``store_identity``, when given, is asked after ``compute`` for the identity
        to store the array under (an embedder's identity can change with what it
        loads: a checkpoint overwritten between the look-up and the load is keyed by
        what was actually loaded)."""
        hit = self.load(self.key(identity, texts))
        if hit is not None and hit.shape[0] == len(texts):
            return hit
        array = as_matrix(compute(), len(texts), owner)
        stored = identity if store_identity is None else store_identity()
        self.save(self.key(stored, texts), array)
        return array


def embed_dataset(
    embedder: Any,
    dataset: Dataset,
    *,
    text: str = "instruction_input",
    format: str | Format | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    owner: str = "embed_dataset",
) -> np.ndarray:
    """Float32 ``[len(dataset), d]`` vectors of ``dataset`` under ``embedder``.

    An embedder with an ``embed_dataset(dataset)`` method (such as
    :class:`~sftselect.embedding.base.PrecomputedEmbeddings`) is asked directly
    and never cached; a ``sentence_transformers.SentenceTransformer`` is used
    through :class:`~sftselect.embedding.sentence.SentenceTransformerEmbedder`; otherwise the ``text`` field of each row
    (:func:`~sftselect.embedding.base.example_texts`) is embedded, through the
    cache in ``cache_dir`` when one is given. Empty datasets never reach the
    embedder.
    """
    from .sentence import as_embedder

    embedder = as_embedder(embedder)
    if hasattr(embedder, "embed_dataset"):
        return embedder.embed_dataset(dataset)
    if not hasattr(embedder, "embed") or not isinstance(getattr(embedder, "identity", None), str):
        from ..core.validation import param_error

        raise param_error(owner, "embedder", EMBEDDER_HELP, embedder)
    texts = example_texts(dataset, text, format, owner=owner)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    if cache_dir is None:
        return as_matrix(embedder.embed(texts), len(texts), owner)
    return EmbeddingCache(cache_dir).get_or_compute(
        embedder.identity,
        texts,
        lambda: embedder.embed(texts),
        store_identity=lambda: embedder.identity,
        owner=owner,
    )
