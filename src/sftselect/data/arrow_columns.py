"""Arrow columns built a chunk of records at a time, typed as ``Dataset.from_dict``
would type the whole list.

:class:`TableBuilder` takes chunks of records (dicts) and keeps one
:class:`_ColumnBuilder` per field, in order of first appearance: a field first
seen in a later chunk is back-filled with nulls, types inferred per chunk are
merged as pyarrow's inference over the whole column would merge them (int and
float to double, a null column to any type), and a field whose JSON types
clash raises :class:`FieldTypeError` naming it. :func:`table_fingerprint`
hashes the result's Arrow buffers for the ``Dataset`` fingerprint.
"""

from __future__ import annotations

import contextlib
from typing import Any

__all__ = ["FieldTypeError", "TableBuilder", "json_kind", "table_fingerprint"]

# datasets.arrow_writer.OptimizedTypedSequence stores these columns with smaller
# integers when their values fit (as Dataset.from_dict does).
_OPTIMIZED_INTS = {
    "attention_mask": "int8",
    "special_tokens_mask": "int8",
    "input_ids": "int32",
    "token_type_ids": "int8",
}


def json_kind(value: Any) -> str:
    """The JSON type of ``value`` as a message names it (int and float are both numbers)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# pyarrow's type inference ranks scalar types (a float makes a column double
# whatever came before; an int makes it int64 over bools and strings) ...
_SCALAR_RANK = {"string": 0, "bool": 1, "int64": 2, "double": 3}
# ... and stops at the first bool, float or string of the values it is given:
# the column's type is then fixed and later values must convert to it.
_FIXING = ("bool", "double", "string")

_CONVERSION_ERRORS = (TypeError, ValueError, OverflowError)


def _merged_type(a: Any, b: Any) -> Any:
    """The type pyarrow infers for values of inferred types ``a`` and ``b`` together
    (lists and structs merged field by field, struct fields in order of first
    appearance), or None where it would fail."""
    import pyarrow as pa

    if a == b or pa.types.is_null(b):
        return a
    if pa.types.is_null(a):
        return b
    if pa.types.is_list(a) and pa.types.is_list(b):
        value = _merged_type(a.value_type, b.value_type)
        return None if value is None else pa.list_(value)
    if pa.types.is_struct(a) and pa.types.is_struct(b):
        fields = {f.name: f.type for f in a}
        for f in b:
            fields[f.name] = _merged_type(fields[f.name], f.type) if f.name in fields else f.type
            if fields[f.name] is None:
                return None
        return pa.struct(list(fields.items()))
    ra, rb = _SCALAR_RANK.get(str(a)), _SCALAR_RANK.get(str(b))
    if ra is None or rb is None:
        return None
    return a if ra > rb else b


def _convertible(source: Any, target: Any) -> bool:
    """Whether values that pyarrow converted to ``source`` convert to ``target``
    (ints to double within +-2**53, checked by the cast; bools to double)."""
    import pyarrow as pa

    if source == target or pa.types.is_null(source):
        return True
    if pa.types.is_list(source) and pa.types.is_list(target):
        return _convertible(source.value_type, target.value_type)
    if pa.types.is_struct(source) and pa.types.is_struct(target):
        names = {f.name for f in target}
        return all(
            f.name in names and _convertible(f.type, target.field(f.name).type) for f in source
        )
    return str(target) == "double" and str(source) in ("int64", "bool")


class _ColumnBuilder:
    """One column's Arrow arrays, chunk by chunk, typed as ``pa.array`` would type
    the whole column at once."""

    def __init__(self, rows_before: int) -> None:
        import pyarrow as pa

        self.parts: list[Any] = [pa.nulls(rows_before)] if rows_before else []
        self.type = pa.null()
        self.fixed = False  # pyarrow's inference would have stopped: the type is final
        self.error: str | None = None

    def add(self, values: list[Any]) -> None:
        import pyarrow as pa

        if self.error is not None:
            return
        if self.fixed:
            try:
                self._append(pa.array(values, type=self.type))
            except _CONVERSION_ERRORS as exc:
                self.error = str(exc)
            return
        try:
            array = pa.array(values)
        except _CONVERSION_ERRORS as exc:
            self._add_unconverted(values, exc)
            return
        merged = _merged_type(self.type, array.type)
        if str(array.type) in _FIXING:
            # Inference stopped in this chunk; a column that held ints until now
            # is int64, which a bool or string does not convert to.
            if merged != array.type:
                self.error = f"{array.type} values after {self.type} values"
                return
            self.fixed = True
        elif merged is None:
            self.error = f"{array.type} values after {self.type} values"
            return
        self.type = merged
        self._append(array)

    def _add_unconverted(self, values: list[Any], exc: Exception) -> None:
        """Values that do not convert to the type inferred from them alone. Lists
        and structs may still convert to the whole column's type (``[1, true]``
        does, as ``list<double>``, when another record has ``[2.5]``): they are
        kept and converted at the end. Anything else fails for the whole column
        as well."""
        import pyarrow as pa

        try:
            inferred = pa.infer_type(values)
        except _CONVERSION_ERRORS:
            inferred = None
        merged = None if inferred is None else _merged_type(self.type, inferred)
        if merged is None or not (pa.types.is_list(merged) or pa.types.is_struct(merged)):
            self.error = str(exc)
            return
        self.type = merged
        self.parts.append(values)

    def _append(self, array: Any) -> None:
        import pyarrow as pa

        if isinstance(array, pa.ChunkedArray):  # over 2 GB of strings in one chunk
            self.parts.extend(array.chunks)
        else:
            self.parts.append(array)

    def finish(self, name: str) -> Any:
        """The column as a ChunkedArray of its final type, or None (``error`` says why)."""
        import pyarrow as pa

        if self.error is not None:
            return None
        target, chunks = self.type, []
        parts, self.parts = self.parts, []
        parts.reverse()
        try:
            while parts:  # popped as converted, so each part is dropped once it is cast
                part = parts.pop()
                if isinstance(part, list):
                    part = pa.array(part, type=target)
                elif part.type != target:
                    if not _convertible(part.type, target):
                        self.error = f"{part.type} values and {target} values"
                        return None
                    part = part.cast(target)
                chunks.extend(part.chunks if isinstance(part, pa.ChunkedArray) else [part])
        except _CONVERSION_ERRORS as exc:
            self.error = str(exc)
            return None
        column = pa.chunked_array(chunks, type=target)
        small = _OPTIMIZED_INTS.get(name)
        if small is not None:
            wanted, int64 = pa.type_for_alias(small), pa.int64()
            for wrap in (lambda t: t, pa.list_, lambda t: pa.list_(pa.list_(t))):
                if target == wrap(int64):
                    with contextlib.suppress(pa.ArrowInvalid):  # out of range: int64 stays
                        column = column.cast(wrap(wanted))
        return column


class FieldTypeError(Exception):
    def __init__(self, name: str, detail: str) -> None:
        super().__init__(name, detail)
        self.name, self.detail = name, detail


class TableBuilder:
    """Columns over the union of the records' fields, in order of first appearance,
    with None where a record lacks a field, built a chunk of records at a time."""

    def __init__(self) -> None:
        self.rows = 0
        self.columns: dict[str, _ColumnBuilder] = {}

    def add(self, records: list[dict[str, Any]]) -> None:
        columns = self.columns
        for rec in records:
            if len(rec) != len(columns) or any(name not in columns for name in rec):
                for name in rec:
                    if name not in columns:
                        columns[name] = _ColumnBuilder(self.rows)
        for name, column in columns.items():
            column.add([rec.get(name) for rec in records])
        self.rows += len(records)

    def table(self) -> Any:
        """The Arrow table; raises FieldTypeError for the first column (in column
        order) whose values do not share one type."""
        import pyarrow as pa

        arrays = []
        for name, column in self.columns.items():
            array = column.finish(name)
            if array is None:
                raise FieldTypeError(name, column.error or "")
            arrays.append(array)
        return pa.Table.from_arrays(arrays, names=list(self.columns))


def table_fingerprint(table: Any) -> str:
    """A fingerprint of ``table``'s schema and Arrow buffers.

    ``Dataset`` would otherwise hash a pickled copy of the whole table (about
    three times the Arrow data in transient Python memory, the largest
    allocation of a load)."""
    import xxhash

    h = xxhash.xxh64(table.schema.serialize())
    for column in table.columns:
        for chunk in column.chunks:
            h.update(f"{chunk.offset}:{len(chunk)};".encode())
            for buf in chunk.buffers():
                h.update(b"-" if buf is None else buf)
    return h.hexdigest()
