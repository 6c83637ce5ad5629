"""What an embedder is, precomputed vectors, and which text of a row is embedded.

An *embedder* is any object with an ``identity`` string (what produced the
vectors: model, layer, pooling, ...; it keys the on-disk cache) and a method
``embed(texts) -> np.ndarray`` returning float32 ``[len(texts), d]``.
:class:`~sftselect.embedding.hf.HFEmbedder` is the transformers one.

:class:`PrecomputedEmbeddings` instead holds one vector per *row* (an array, or
the name of a dataset column of vectors); it ignores the text field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

from ..core.validation import check_choice, check_columns
from ..data.formats import Format, arrow_column, resolve_format, response_view
from ..exceptions import DataFormatError

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = [
    "EXAMPLE_TEMPLATE",
    "TEXT_FIELDS",
    "Embedder",
    "HashingEmbedder",
    "PrecomputedEmbeddings",
    "as_matrix",
    "example_texts",
]

#: The text fields :func:`example_texts` knows.
TEXT_FIELDS: tuple[str, ...] = ("instruction", "instruction_input", "response", "example")

#: How the parts of a row are joined: the non-empty parts among instruction,
#: input and response, separated by one blank line (``"\n\n"``).
EXAMPLE_TEMPLATE = "\n\n"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into float32 vectors ``[n, d]``; ``identity`` names the mapping."""

    identity: str

    def embed(self, texts: list[str]) -> np.ndarray: ...


def as_matrix(vectors: Any, n: int, owner: str) -> np.ndarray:
    """``vectors`` as a C-contiguous float32 ``[n, d]`` array of finite numbers."""
    try:
        X = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise DataFormatError(f"{owner}: embeddings must be numeric vectors ({err}).") from None
    if X.ndim == 1 and n == 0 and X.size == 0:
        X = X.reshape(0, 0)
    if X.ndim != 2 or X.shape[0] != n:
        raise DataFormatError(
            f"{owner}: expected embeddings of shape [{n}, d] (one vector per row); "
            f"got shape {list(X.shape)}. An array is matched to rows by position, so it "
            "fits only the data it was made for: a Chain stage after another, or a "
            ".select()/.shuffle()/.filter() view, sees other rows. Store the vectors in a "
            "column and pass its name (PrecomputedEmbeddings('column')) so they travel "
            "with their rows."
        )
    if X.size and not np.isfinite(X).all():
        bad = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise DataFormatError(f"{owner}: the embedding of row {bad} is not finite.")
    return np.ascontiguousarray(X)


class HashingEmbedder:
    r"""A dependency-free embedder: counts of hashed lower-cased words (for tests, baselines).

    Each word (a regex ``\w+`` run) of a text adds 1 to bucket ``md5(word) mod n_features``.
    Deterministic across runs and machines.
    """

    def __init__(self, n_features: int = 256) -> None:
        from ..core.validation import check_positive_int

        self.n_features = check_positive_int(n_features, "n_features", type(self).__name__)
        self.identity = f"hashing-bow-md5|n_features={self.n_features}"

    def embed(self, texts: list[str]) -> np.ndarray:
        import hashlib
        import re

        out = np.zeros((len(texts), self.n_features), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.md5(word.encode("utf-8"), usedforsecurity=False).digest()
                out[i, int.from_bytes(digest[:8], "little") % self.n_features] += 1.0
        return out

    def __repr__(self) -> str:
        return f"HashingEmbedder(n_features={self.n_features})"


class PrecomputedEmbeddings:
    """Vectors computed elsewhere, one per dataset row.

    Parameters
    ----------
    vectors : array-like [n, d] or str
        An array aligned with the rows of the dataset it is used on, or the
        name of a dataset column holding one fixed-length vector per row.
    identity : str, optional
        A name for the provenance record (default: a description of the source).
    """

    def __init__(self, vectors: Any, *, identity: str | None = None) -> None:
        self.vectors = vectors
        if identity is None:
            if isinstance(vectors, str):
                identity = f"column:{vectors}"
            else:
                identity = f"array:{list(np.shape(vectors))}"
        self.identity = identity

    def embed_dataset(self, dataset: Dataset) -> np.ndarray:
        """The float32 ``[len(dataset), d]`` matrix for ``dataset``."""
        owner = type(self).__name__
        n = len(dataset)
        if isinstance(self.vectors, str):
            check_columns(dataset.column_names, [self.vectors], owner)
            col = dataset.with_format("numpy")[self.vectors] if n else np.zeros((0, 0))
            if isinstance(col, np.ndarray) and col.dtype == object:
                col = np.stack([np.asarray(v, dtype=np.float32) for v in col])
            return as_matrix(col, n, owner)
        return as_matrix(self.vectors, n, owner)

    def __repr__(self) -> str:
        return f"PrecomputedEmbeddings({self.identity!r})"


def _strings(arr: pa.Array | None, n: int) -> list[str]:
    if arr is None:
        return [""] * n
    return ["" if v is None else v for v in arr.to_pylist()]


def _join(*parts: list[str]) -> list[str]:
    return [EXAMPLE_TEMPLATE.join(p for p in row if p) for row in zip(*parts)]


def example_texts(
    dataset: Dataset,
    field: str = "instruction_input",
    format: str | Format | None = None,
    *,
    owner: str = "example_texts",
) -> list[str]:
    """One text per row of ``dataset``: the part of each example to embed.

    ``field`` is one of:

    * ``"instruction"`` -- the instruction alone;
    * ``"instruction_input"`` -- the instruction and the input (Alpaca ``input``,
      Dolly ``context``) when non-empty;
    * ``"response"`` -- the response;
    * ``"example"`` -- instruction, input and response.

    Parts are joined by :data:`EXAMPLE_TEMPLATE` (a blank line), skipping empty
    ones. For chat formats the response is the last assistant turn and the
    instruction is the nearest user turn before it (there is no separate input); a row
    without an assistant turn gives an empty response.
    """
    check_choice(field, "text", owner, TEXT_FIELDS)
    n = len(dataset)
    fmt = resolve_format(dataset, format, owner)
    view = response_view(dataset, fmt, turns="last", on_invalid="nan", owner=owner)
    responses = _strings(view.texts, len(view.texts))
    prompts = _strings(view.prompts, len(view.texts))
    if view.parents is not None:  # chat: scatter the last assistant turn of each row
        resp_rows, prompt_rows = [""] * n, [""] * n
        for pos, row in enumerate(view.parents.tolist()):
            resp_rows[row], prompt_rows[row] = responses[pos], prompts[pos]
        responses, prompts = resp_rows, prompt_rows
        inputs = [""] * n
    else:
        inputs = [""] * n
        if fmt.input is not None and fmt.input in dataset.column_names:
            inputs = _strings(arrow_column(dataset, fmt.input), n)
    if view.missing.size:
        for row in view.missing.tolist():
            responses[row] = ""
    if field == "instruction":
        return prompts
    if field == "instruction_input":
        return _join(prompts, inputs)
    if field == "response":
        return responses
    return _join(prompts, inputs, responses)
