"""The text a deduplication filter compares: named fields of each row, normalised.

``fields`` names what is compared, in order: ``"instruction"``, ``"input"``
(Alpaca ``input``, Dolly ``context``), ``"response"`` (the format's response;
for a chat row its last assistant turn, and ``"instruction"`` the user turn it
answers), ``"conversation"`` (every turn of a chat row, ``role: content`` one per
line), or the name of any string column. ``None`` compares the whole example:
instruction, input and response, or the conversation of a chat row.

Normalisation is vectorised over the Arrow column: Unicode NFKC, case folding
(Python's :meth:`str.casefold`, which also maps ``ß`` to ``ss``), and runs of
whitespace (``\\s`` and the Unicode separators) collapsed to one space with the
ends trimmed. A null text counts as empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...core.constraints import Satisfies
from ...core.validation import param_error
from ...data.formats import arrow_column, resolve_format, response_view
from ...exceptions import DataFormatError, InvalidParameterError

if TYPE_CHECKING:
    from datasets import Dataset

    from ...data.formats import Format

__all__ = ["FIELDS", "FIELDS_CONSTRAINTS", "check_fields", "field_texts", "normalise"]

#: The field names every format understands (any string column is accepted too).
FIELDS = ("instruction", "input", "response", "conversation")

_WHITESPACE = r"[\s\p{Z}]+"


def check_fields(fields: Any, owner: str) -> tuple[str, ...] | None:
    """``fields`` as a tuple of names (a comma-separated string is split), or None."""
    if fields is None:
        return None
    if isinstance(fields, str):
        fields = [f.strip() for f in fields.split(",")]
    if (
        not isinstance(fields, Sequence)
        or not fields
        or not all(isinstance(f, str) and f for f in fields)
        or len(set(fields)) != len(fields)
    ):
        raise param_error(
            owner, "fields", "None or distinct non-empty field or column names", fields
        )
    return tuple(fields)


def _is_fields(fields: Any) -> bool:
    try:
        check_fields(fields, "")
    except InvalidParameterError:
        return False
    return True


#: The declared constraint of ``fields`` (which names exist is checked against the data).
FIELDS_CONSTRAINTS: list[Any] = [
    Satisfies(_is_fields, "None or distinct non-empty field or column names", invalid=[])
]


def _strings(arr: pa.Array, what: str) -> pa.Array:
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), pa.string()).fill_null("")
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        raise DataFormatError(f"{what} must hold strings; its Arrow type is {arr.type}.")
    return arr.fill_null("")


def _scatter(texts: pa.Array | None, parents: np.ndarray, n: int) -> pa.Array:
    """Per-row strings from one text per listed parent row ('' for the other rows)."""
    if texts is None:
        return pa.array([""] * n, pa.string())
    where = np.full(n, -1, dtype=np.int64)
    where[parents] = np.arange(parents.size)
    taken = texts.take(pa.array(np.maximum(where, 0), type=pa.int64()))
    return pc.if_else(pa.array(where >= 0), taken.fill_null(""), "")


def _conversation(dataset: Dataset, fmt: Format) -> pa.Array:
    col = arrow_column(dataset, fmt.messages)  # type: ignore[arg-type]
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)):
        raise DataFormatError(
            f"Column {fmt.messages!r} must be a list of turns; its Arrow type is {col.type}."
        )
    flat = pc.list_flatten(col)
    roles = _strings(flat.field(fmt.role_key), f"Turn key {fmt.role_key!r}")
    contents = _strings(flat.field(fmt.content_key), f"Turn key {fmt.content_key!r}")
    turns = pc.binary_join_element_wise(roles, contents, ": ")
    sizes = pc.list_value_length(col).fill_null(0).to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(col) + 1, dtype=np.int32)
    np.cumsum(sizes, out=offsets[1:])
    lists = pa.ListArray.from_arrays(pa.array(offsets), turns)
    return pc.binary_join(lists, "\n")


def field_texts(
    dataset: Dataset, fields: tuple[str, ...] | None, fmt: str | Format | None, owner: str
) -> list[pa.Array]:
    """One Arrow string array per field (nulls as ''), each of ``len(dataset)`` strings."""
    n = len(dataset)
    names = dataset.column_names
    resolved = resolve_format(dataset, fmt, owner)
    if fields is None:
        fields = ("conversation",) if resolved.is_chat else ("instruction", "input", "response")
    out = []
    for field in fields:
        if field in FIELDS and not (field in names and field not in _format_columns(resolved)):
            out.append(_format_field(dataset, resolved, field, owner))
        elif field in names:
            out.append(_strings(arrow_column(dataset, field), f"Column {field!r}"))
        else:
            raise param_error(
                owner, "fields", f"names among {list(FIELDS)} or columns among {names}", field
            )
    if any(len(a) != n for a in out):
        raise RuntimeError("a field did not give one text per row")
    return out


def _format_columns(fmt: Format) -> set[str]:
    return {c for c in (fmt.instruction, fmt.input, fmt.response, fmt.messages) if c}


def _format_field(dataset: Dataset, fmt: Format, field: str, owner: str) -> pa.Array:
    n = len(dataset)
    if field == "conversation":
        if not fmt.is_chat:
            raise param_error(owner, "fields", "'conversation' only for a chat format", field)
        return _conversation(dataset, fmt)
    if fmt.is_chat:
        if field == "input":
            return pa.array([""] * n, pa.string())
        view = response_view(dataset, fmt, turns="last", on_invalid="nan", owner=owner)
        texts = view.texts if field == "response" else view.prompts
        return _scatter(texts, view.parents, n)  # type: ignore[arg-type]
    column = {"instruction": fmt.instruction, "input": fmt.input, "response": fmt.response}[field]
    if column is None or column not in dataset.column_names:
        return pa.array([""] * n, pa.string())
    return _strings(arrow_column(dataset, column), f"Column {column!r}")


def normalise(
    texts: pa.Array, *, nfkc: bool = True, casefold: bool = True, whitespace: bool = True
) -> pa.Array:
    """``texts`` with the chosen normalisation steps applied (see the module doc)."""
    if nfkc:
        texts = pc.utf8_normalize(texts, form="NFKC")
    if casefold:
        texts = pa.array([s.casefold() for s in texts.to_pylist()], pa.string())
    if whitespace:
        texts = pc.utf8_trim_whitespace(
            pc.replace_substring_regex(texts, pattern=_WHITESPACE, replacement=" ")
        )
    return texts
