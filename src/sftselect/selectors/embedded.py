"""What the selectors over an embedder's vectors share: their rows' vectors and the Ray check.

``DiversitySelector``, ``KCenterSelector``, ``FacilityLocationSelector``,
``TargetedSelector``, ``RepresentationFilter`` and ``SemDeDup`` each keep ``embedder``,
``text``, ``format`` and ``cache_dir`` under those names; :func:`embed_rows` turns a
dataset into their vectors and :func:`refuse_in_memory_vectors` is their
:meth:`~sftselect.core.base.Selector.check_portable`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.constraints import InstanceOf, Options
from ..core.validation import param_error
from ..data.formats import FORMAT_CONSTRAINTS
from ..embedding.base import TEXT_FIELDS, PrecomputedEmbeddings
from ..embedding.cache import EMBEDDER_CONSTRAINTS, embed_dataset

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["CACHE_DIR", "EMBEDDER", "FORMAT", "TEXT", "embed_rows", "refuse_in_memory_vectors"]

#: The declared constraints of the parameters these selectors share.
EMBEDDER: list[Any] = EMBEDDER_CONSTRAINTS
TEXT: list[Any] = [Options(*TEXT_FIELDS)]
CACHE_DIR: list[Any] = [InstanceOf((str, os.PathLike), "a str or path"), None]
FORMAT: list[Any] = FORMAT_CONSTRAINTS


def embed_rows(selector: Any, dataset: Dataset) -> np.ndarray:
    """The float32 ``[len(dataset), d]`` vectors of the rows, each from its row alone: the
    selector's ``text`` field under its ``embedder``, through its ``cache_dir``."""
    return embed_dataset(
        selector.embedder,
        dataset,
        text=selector.text,
        format=selector.format,
        cache_dir=selector.cache_dir,
        owner=type(selector).__name__,
    )


def refuse_in_memory_vectors(selector: Any) -> None:
    """Refuse ``PrecomputedEmbeddings`` holding an in-memory array: rebuilt in a worker
    that sees a block of rows, it cannot tell which vectors are theirs."""
    embedder = selector.embedder
    if isinstance(embedder, PrecomputedEmbeddings) and not isinstance(embedder.vectors, str):
        raise param_error(
            type(selector).__name__,
            "embedder",
            "an Embedder, or PrecomputedEmbeddings naming a column, on Ray (an in-memory "
            "array cannot follow the rows to the workers; store the vectors in a column)",
            embedder,
        )
