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

__all__ = ["OUTPUT_SUFFIXES", "load_data", "save_data"]

OUTPUT_SUFFIXES = (".json", ".jsonl", ".parquet")


def _records_from_json(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and text.lstrip().startswith("{"):
            return _records_from_jsonl_text(text, path)  # JSON Lines saved as .json
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
    return data


def _records_from_jsonl_text(text: str, path: Path) -> list[dict[str, Any]]:
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
    return records


def _dataset_from_records(records: list[dict[str, Any]], path: Path) -> Dataset:
    import pyarrow as pa
    from datasets import Dataset

    try:
        return Dataset.from_list(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise DataFormatError(
            f"{path}: the records do not share one schema ({exc}). Check that each field "
            "has the same type in every record."
        ) from None


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
            return _dataset_from_records(_records_from_json(path), path)
        if suffix == ".jsonl":
            return _dataset_from_records(
                _records_from_jsonl_text(path.read_text(encoding="utf-8"), path), path
            )
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


def save_data(dataset: Dataset, path: str | os.PathLike[str]) -> Path:
    """Write ``dataset`` by the suffix of ``path`` (.json array, .jsonl, .parquet,
    or a ``save_to_disk`` folder for anything else), atomically."""
    path = Path(path)
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
