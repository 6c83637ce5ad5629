"""Loading and saving instruction data: JSON, JSON Lines, Parquet, saved
Datasets, and Hugging Face hub names.

Errors name the file and line (malformed JSON) or the record (a record that is
not an object), and writes go through a temporary path so that a failure never
leaves a half-written output.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .exceptions import DataFormatError

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["OUTPUT_SUFFIXES", "check_output_path", "load_data", "save_data"]

OUTPUT_SUFFIXES = (".json", ".jsonl", ".parquet")

# Suffixes of file types that save_data does not write: a path ending in one is
# refused rather than turned into a saved-Dataset folder of that name.
_FILE_SUFFIXES_NOT_WRITTEN = (".csv", ".tsv", ".txt", ".arrow", ".xlsx", ".gz", ".zip", ".zst")


def _records_from_json(path: Path) -> tuple[list[dict[str, Any]], list[int] | None]:
    """The records of a JSON array file, or of JSON Lines saved as ``.json`` (then
    with each record's line number; None for an array)."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and text.lstrip().startswith("{"):
            lines: list[int] = []
            return _records_from_jsonl_text(text, path, lines), lines  # JSON Lines as .json
        raise DataFormatError(
            f"{path}:{exc.lineno}: malformed JSON ({exc.msg}, column {exc.colno})."
        ) from None
    if isinstance(data, dict):
        lists = [k for k, v in data.items() if isinstance(v, list)]
        if len(lists) == 1:
            data = data[lists[0]]
    if not isinstance(data, list):
        raise DataFormatError(
            f"{path}: expected a JSON array of records (objects); found a {type(data).__name__}."
        )
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise DataFormatError(
                f"{path}: record {i} is a {type(rec).__name__}; expected an object."
            )
    return data, None


def _records_from_jsonl_text(
    text: str, path: Path, lines: list[int] | None = None
) -> list[dict[str, Any]]:
    """The records of JSON Lines ``text``; ``lines`` (if given) receives each one's line number."""
    records = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(
                f"{path}:{lineno}: malformed JSON ({exc.msg}, column {exc.colno})."
            ) from None
        if not isinstance(rec, dict):
            raise DataFormatError(
                f"{path}:{lineno}: a {type(rec).__name__}; expected a JSON object."
            )
        records.append(rec)
        if lines is not None:
            lines.append(lineno)
    return records


def _columns(records: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Column lists over the union of the records' fields, in order of first
    appearance; a record without a field has None there."""
    names: dict[str, None] = {}
    for rec in records:
        if len(rec) != len(names) or any(name not in names for name in rec):
            names.update(dict.fromkeys(rec))
    return {name: [rec.get(name) for rec in records] for name in names}


def _json_kind(value: Any) -> str:
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


def _where(i: int, lines: list[int] | None) -> str:
    return f"line {lines[i]}" if lines is not None else f"record {i} (0-based)"


def _schema_error(
    path: Path, columns: dict[str, list[Any]], lines: list[int] | None, exc: Exception
) -> DataFormatError:
    """The field and records whose types clash, found column by column."""
    import pyarrow as pa

    for name, values in columns.items():
        try:
            pa.array(values)
            continue
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            pass
        first = next((i for i, v in enumerate(values) if v is not None), None)
        if first is None:  # pragma: no cover - an all-null column always converts
            continue
        kind = _json_kind(values[first])
        for i in range(first + 1, len(values)):
            v = values[i]
            if v is not None and _json_kind(v) != kind:
                return DataFormatError(
                    f"{path}: field {name!r} is a {_json_kind(v)} at {_where(i, lines)} but a "
                    f"{kind} at {_where(first, lines)}; each field must have one type in "
                    "every record."
                )
        return DataFormatError(
            f"{path}: field {name!r} holds values that do not share one type ({exc}); "
            f"its first value is at {_where(first, lines)}."
        )
    return DataFormatError(f"{path}: the records do not share one schema ({exc}).")


def _dataset_from_records(
    records: list[dict[str, Any]], path: Path, lines: list[int] | None = None
) -> Dataset:
    """A Dataset of ``records`` with every field any record has (None where one lacks it)."""
    import pyarrow as pa
    from datasets import Dataset

    columns = _columns(records)
    try:
        return Dataset.from_dict(columns)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise _schema_error(path, columns, lines, exc) from None


def load_data(source: str | os.PathLike[str], *, split: str = "train") -> Dataset:
    """Load instruction data from a file, a saved Dataset folder or a hub name.

    ``.json`` (an array of records, or JSON Lines), ``.jsonl``, ``.parquet``, a
    folder written by ``Dataset.save_to_disk``, ``sample:NAME`` for a sample
    bundled with the package (``sample:alpaca_2k``), or a name for
    ``datasets.load_dataset(name, split=split)`` (needs network access).
    """
    import datasets

    if isinstance(source, str) and source.startswith("sample:"):
        from .sample import load_sample

        return load_sample(source.split(":", 1)[1])
    path = Path(source)
    if path.is_dir():
        if (path / "state.json").exists() or (path / "dataset_dict.json").exists():
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise DataFormatError(
                        f"{path}: no split {split!r}; splits found: {list(loaded)}."
                    )
                loaded = loaded[split]
            return loaded
        return datasets.load_dataset(str(path), split=split)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".json":
            records, lines = _records_from_json(path)
            return _dataset_from_records(records, path, lines)
        if suffix == ".jsonl":
            lines = []
            records = _records_from_jsonl_text(path.read_text(encoding="utf-8"), path, lines)
            return _dataset_from_records(records, path, lines)
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


def save_data(dataset: Dataset, path: str | os.PathLike[str]) -> Path:
    """Write ``dataset`` by the suffix of ``path`` (.json array, .jsonl, .parquet,
    or a ``save_to_disk`` folder for a path without one of those), atomically.

    An existing file of the same type, or an existing saved Dataset folder, is
    replaced; any other existing path is refused (see :func:`check_output_path`).
    """
    path = check_output_path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if suffix == ".json":
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(dataset.to_list(), fh, indent=2, ensure_ascii=False)
                fh.write("\n")
        elif suffix == ".jsonl":
            with open(tmp, "w", encoding="utf-8") as fh:
                for rec in dataset.to_list():
                    fh.write(json.dumps(rec, ensure_ascii=False))
                    fh.write("\n")
        elif suffix == ".parquet":
            dataset.to_parquet(str(tmp))
        else:
            dataset.save_to_disk(str(tmp))
            if path.exists():
                shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    return path
