"""Loading and saving instruction data: JSON, JSON Lines, Parquet, saved
Datasets, and Hugging Face hub names.

JSON and JSON Lines are parsed and converted to Arrow a chunk of records at a
time, with the column types one ``Dataset.from_dict`` of all the records would
give. Errors name the file and line (malformed JSON) or the record (a record that is
not an object), and writes go through a temporary file with an unpredictable
name (:mod:`sftselect.core.atomic`) so that a failure never leaves a
half-written output and a planted link is never followed.

JSON and JSON Lines are written without the nulls Arrow adds inside nested
objects: a struct column (a conversation's messages) has every field any of
its objects has, so ``{"role": "user", "content": "..."}`` beside a message
with ``tool_calls`` came back as ``{..., "tool_calls": null}``. Inside nested
objects a null and a missing key load alike, so keys whose value is null are
left out there; top-level fields are columns and keep their nulls.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.atomic import atomic_file, atomic_folder
from ..exceptions import DataFormatError
from .arrow_columns import FieldTypeError, TableBuilder, json_kind, table_fingerprint
from .folders import load_folder
from .json_records import (
    NotStreamable,
    Records,
    json_source,
    jsonl_file_records,
    listed,
    records_from_json,
)

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["OUTPUT_SUFFIXES", "check_output_path", "load_data", "save_data"]

OUTPUT_SUFFIXES = (".json", ".jsonl", ".parquet")

# Suffixes of file types that save_data does not write: a path ending in one is
# refused rather than turned into a saved-Dataset folder of that name.
_FILE_SUFFIXES_NOT_WRITTEN = (".csv", ".tsv", ".txt", ".arrow", ".xlsx", ".gz", ".zip", ".zst")


# JSON and JSON Lines are read a chunk of records at a time: each chunk becomes
# Arrow arrays and its Python objects are dropped before the next is parsed, so
# loading holds about one chunk of Python objects beside the Arrow data (a
# whole-file ``json.loads`` plus ``Dataset.from_dict`` peaked at 8-11x the
# file's size; see benchmarks/bench_io.py).
# A chunk ends at _CHUNK_ROWS records or _CHUNK_CHARS characters of JSON text,
# whichever comes first (the second bounds memory for long records).
_CHUNK_ROWS = 10_000
_CHUNK_CHARS = 1 << 24


def _field_type_error(
    path: Path, name: str, detail: str, records: Records, lines: bool
) -> DataFormatError:
    """The field's first value and the first later value of another JSON type."""

    def where(pos: int) -> str:
        return f"line {pos}" if lines else f"record {pos} (0-based)"

    first, kind = -1, ""
    for pos, rec, _ in records:
        value = rec.get(name)
        if value is None:
            continue
        if not kind:
            first, kind = pos, json_kind(value)
        elif json_kind(value) != kind:
            return DataFormatError(
                f"{path}: field {name!r} is a {json_kind(value)} at {where(pos)} but a "
                f"{kind} at {where(first)}; each field must have one type in every record."
            )
    return DataFormatError(
        f"{path}: field {name!r} holds values that do not share one type ({detail}); "
        f"its first value is at {where(first)}."
    )


def _json_depth(value: Any) -> int:
    """Levels of arrays and objects in ``value`` (0 for a scalar), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            depth += 1
            deepest = max(deepest, depth)
            stack.extend((v, depth) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _type_depth(t: Any) -> int:
    """Levels of lists and structs in an Arrow type."""
    if t.num_fields == 0:
        return 0
    return 1 + max(_type_depth(t.field(i).type) for i in range(t.num_fields))


def _too_deep_error(path: Path, table: Any, records: Records, lines: bool) -> DataFormatError:
    """The field nested deeper than Arrow's schema holds, and its first record that deep."""
    depths = {field.name: _type_depth(field.type) for field in table.schema}
    name = max(depths, key=lambda n: depths[n])
    where = f"{path}"
    for pos, rec, _ in records:
        if _json_depth(rec.get(name)) >= depths[name]:
            where = f"{path}:{pos}" if lines else f"{path}: record {pos} (0-based)"
            break
    return DataFormatError(
        f"{where}: field {name!r} is nested {depths[name]} levels deep, more than Arrow (and "
        "datasets) can hold (about 60 levels of arrays and objects)."
    )


def _dataset_from_source(
    path: Path,
    source: Callable[[], Records],
    lines: bool,
    chunk_rows: int = _CHUNK_ROWS,
    chunk_chars: int = _CHUNK_CHARS,
) -> Dataset:
    from datasets import Dataset

    builder = TableBuilder()
    chunk: list[dict[str, Any]] = []
    chars = 0
    for _, rec, size in source():
        chunk.append(rec)
        chars += size
        if len(chunk) >= chunk_rows or chars >= chunk_chars:
            builder.add(chunk)
            chunk, chars = [], 0
    if chunk:
        builder.add(chunk)
    del chunk
    if not builder.columns:
        return Dataset.from_dict({})
    try:
        table = builder.table()
    except FieldTypeError as exc:
        del builder
        raise _field_type_error(path, exc.name, exc.detail, source(), lines) from None
    del builder
    import pyarrow as pa

    try:
        return Dataset(table, fingerprint=table_fingerprint(table))
    except pa.ArrowInvalid as exc:
        if "Recursion level" not in str(exc):
            raise
        raise _too_deep_error(path, table, source(), lines) from None


def _load_json_file(
    path: Path,
    *,
    jsonl: bool,
    chunk_rows: int = _CHUNK_ROWS,
    chunk_chars: int = _CHUNK_CHARS,
) -> Dataset:
    """A Dataset of the records of a ``.jsonl`` (``jsonl=True``) or ``.json`` file,
    with every field any record has (None where one lacks it), the types
    ``Dataset.from_dict`` gives the whole list of records, and the errors it
    always gave, parsed and converted ``chunk_rows`` records at a time."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1; got {chunk_rows}.")
    if jsonl:
        return _dataset_from_source(
            path, lambda: jsonl_file_records(path), True, chunk_rows, chunk_chars
        )
    source, lines = json_source(path)
    try:
        return _dataset_from_source(path, source, lines, chunk_rows, chunk_chars)
    except NotStreamable:
        # Malformed JSON inside the array: the whole-document parse reports it
        # (file and line) as it always did.
        records, line_numbers = records_from_json(path)
        return _dataset_from_source(
            path, listed(records, line_numbers), line_numbers is not None, chunk_rows, chunk_chars
        )


def load_data(source: str | os.PathLike[str], *, split: str = "train") -> Dataset:
    """Load instruction data from a file, a saved Dataset folder or a hub name.

    ``.json`` (an array of records, or JSON Lines), ``.jsonl``, ``.parquet``, a
    folder written by ``Dataset.save_to_disk`` (``DatasetDict``: its ``split``),
    ``sample:NAME`` for a sample bundled with the package (``sample:alpaca_2k``),
    or a name for ``datasets.load_dataset(name, split=split)`` (needs network
    access). Any other folder is refused, naming the files it holds (pass a
    file); a saved Dataset whose ``state.json`` names files outside its folder is
    refused before ``datasets`` reads it (see :mod:`sftselect.data.folders`).

    JSON and JSON Lines become a column for every field any record has (None
    where a record lacks it), typed as ``Dataset.from_dict`` types the whole
    list of records; they are parsed 10,000 records at a time, so loading needs
    about the Arrow data's size in memory rather than several times the file's.
    """
    import datasets

    if isinstance(source, str) and source.startswith("sample:"):
        from .bundled import sample_path

        source = sample_path(source.split(":", 1)[1])
    path = Path(source)
    if path.is_dir():
        return load_folder(path, split)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in (".json", ".jsonl"):
            return _load_json_file(path, jsonl=suffix == ".jsonl")
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            try:
                table = pq.read_table(path)
            except Exception as exc:  # pyarrow raises several types for bad files
                raise DataFormatError(f"{path}: not a readable Parquet file ({exc}).") from None
            return datasets.Dataset(table)
        raise DataFormatError(
            f"{path}: unsupported file type {suffix!r}; expected .json, .jsonl, .parquet "
            "or a saved Dataset folder."
        )
    if path.suffix.lower() in OUTPUT_SUFFIXES or (
        os.sep in str(source) and str(source).startswith((".", os.sep))
    ):
        raise FileNotFoundError(f"No such file: {source}")
    try:
        return datasets.load_dataset(str(source), split=split)
    except Exception as exc:
        raise FileNotFoundError(
            f"{source} is not a local file or folder, and loading it from the Hugging Face hub "
            f"failed: {type(exc).__name__}: {exc}"
        ) from None


def _is_saved_dataset(folder: Path) -> bool:
    return any((folder / name).exists() for name in ("state.json", "dataset_dict.json"))


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as :func:`save_data` will write it, or a :class:`DataFormatError`
    saying why it would not: a folder where a file is meant (or the reverse), a
    file type that is not written, or a folder that holds other files.

    Nothing is written; call it before a long run so that the run's result is
    never lost at the last step. An existing file of the same type, or an
    existing saved Dataset folder, is replaced by :func:`save_data`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in OUTPUT_SUFFIXES:
        if path.is_dir():
            raise DataFormatError(f"{path}: is a folder; a {suffix} output must be a file path.")
        return path
    if suffix in _FILE_SUFFIXES_NOT_WRITTEN:
        raise DataFormatError(
            f"{path}: cannot write {suffix} files; use a .json, .jsonl or .parquet path, or a "
            "path without a suffix for a saved Dataset folder."
        )
    if path.exists() and not path.is_dir():
        raise DataFormatError(
            f"{path}: is an existing file, and a path without .json, .jsonl or .parquet is "
            "written as a saved Dataset folder; choose another path or add a suffix."
        )
    if path.is_dir() and any(path.iterdir()) and not _is_saved_dataset(path):
        raise DataFormatError(
            f"{path}: is a folder that holds other files and is not a saved Dataset (no "
            "state.json); refusing to replace it. Choose a new or empty folder, or a .json, "
            ".jsonl or .parquet file."
        )
    return path


def _has_struct(t: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_struct(t):
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _has_struct(t.value_type)
    return False


def _without_nulls(value: Any) -> Any:
    """``value`` with every key whose value is null left out of its objects, at any depth."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _json_records(dataset: Dataset) -> Iterator[dict[str, Any]]:
    """The rows as JSON writes them: nulls left out inside nested objects (see the module)."""
    nested = [field.name for field in dataset.features.arrow_schema if _has_struct(field.type)]
    for rec in dataset.to_list():
        for name in nested:
            rec[name] = _without_nulls(rec[name])
        yield rec


def save_data(dataset: Dataset, path: str | os.PathLike[str]) -> Path:
    """Write ``dataset`` by the suffix of ``path`` (.json array, .jsonl, .parquet,
    or a ``save_to_disk`` folder for a path without one of those), atomically.

    An existing file of the same type, or an existing saved Dataset folder, is
    replaced; any other existing path is refused (see :func:`check_output_path`).
    JSON and JSON Lines leave out the keys whose value is null inside nested
    objects (a message's ``tool_calls`` that Arrow added); top-level fields keep
    their nulls. The file is written under a temporary name beside ``path``
    (``.NAME.<random>.sftselect-tmp``, left behind only by a killed process).
    """
    path = check_output_path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        with atomic_file(path) as fh:
            json.dump(list(_json_records(dataset)), fh, indent=2, ensure_ascii=False)
            fh.write("\n")
    elif suffix == ".jsonl":
        with atomic_file(path) as fh:
            for rec in _json_records(dataset):
                fh.write(json.dumps(rec, ensure_ascii=False))
                fh.write("\n")
    elif suffix == ".parquet":
        with atomic_file(path, "wb") as fh:
            dataset.to_parquet(fh)
    else:
        with atomic_folder(path) as tmp:
            dataset.save_to_disk(str(tmp))
    return path
