"""Folders given to :func:`~sftselect.data.io.load_data`.

A folder written by ``Dataset.save_to_disk`` (``state.json`` and
``dataset_info.json``) or ``DatasetDict.save_to_disk`` (``dataset_dict.json``)
is read by ``datasets``, after its own JSON files are checked: a data file that
``state.json`` names, or a split that ``dataset_dict.json`` names, must lie
inside the folder (no ``../``, no absolute path, no symbolic link leading out),
so a crafted folder cannot make sftselect read an Arrow file elsewhere.

Any other folder is refused with one line listing the files it holds: it is
never handed to ``datasets.load_dataset`` (which would read it with its own
type rules and cache a copy under ``~/.cache/huggingface/datasets``); a data
file inside it is read by passing the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import DataFormatError

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["load_folder", "plain_folder_error"]

STATE = "state.json"
INFO = "dataset_info.json"
DICT = "dataset_dict.json"

_LISTED = 5  # file names a refusal shows
_COUNTED = 10_000  # files counted, at most, for "and N more"


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataFormatError(f"{path}: not readable JSON ({detail}).") from None


def _outside(folder: Path, name: str) -> str | None:
    """Why ``name`` (relative to ``folder``) leads out of ``folder``, or None."""
    if os.path.isabs(name):
        return "is an absolute path"
    base = os.path.normpath(folder)
    joined = os.path.normpath(os.path.join(base, name))
    if joined == base or os.path.commonpath([joined, base]) != base:
        return f"lies outside {folder}"
    real, real_base = os.path.realpath(joined), os.path.realpath(base)
    if os.path.commonpath([real, real_base]) != real_base:
        return f"is a symbolic link to {real}, outside {folder}"
    return None


def _splits(folder: Path) -> list[str]:
    """The split names of a saved DatasetDict, each checked to be a folder inside it."""
    path = folder / DICT
    doc = _read_json(path)
    splits = doc.get("splits") if isinstance(doc, dict) else None
    if not isinstance(splits, list) or not all(isinstance(s, str) and s for s in splits):
        raise DataFormatError(f'{path}: expected {{"splits": [names of split folders]}}.')
    for name in splits:
        problem = _outside(folder, name)
        if problem is not None:
            raise DataFormatError(
                f"{path}: split {name!r} {problem}; refusing to read a split outside the folder."
            )
    return splits


def _load_saved_dataset(folder: Path) -> Dataset:
    """``Dataset.load_from_disk(folder)`` once ``state.json`` names only files inside it."""
    from datasets import Dataset

    missing = [name for name in (STATE, INFO) if not (folder / name).is_file()]
    if missing:
        raise DataFormatError(
            f"{folder}: an incomplete saved Dataset (no {' or '.join(missing)}); "
            "write it again with Dataset.save_to_disk."
        )
    state_path = folder / STATE
    state = _read_json(state_path)
    files = state.get("_data_files") if isinstance(state, dict) else None
    if not isinstance(files, list) or not all(
        isinstance(f, dict) and isinstance(f.get("filename"), str) and f["filename"] for f in files
    ):
        raise DataFormatError(
            f'{state_path}: expected an object whose "_data_files" lists '
            '{"filename": NAME} objects.'
        )
    for entry in files:
        problem = _outside(folder, entry["filename"])
        if problem is not None:
            raise DataFormatError(
                f"{state_path}: data file {entry['filename']!r} {problem}; refusing to read a "
                "file outside the saved Dataset's folder."
            )
    try:
        return Dataset.load_from_disk(str(folder))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise DataFormatError(
            f"{folder}: not a readable saved Dataset ({type(exc).__name__}: {detail})."
        ) from None


def load_folder(folder: Path, split: str) -> Dataset:
    """The Dataset saved in ``folder`` (a DatasetDict's ``split``); any other folder is refused."""
    if (folder / STATE).is_file() and (folder / INFO).is_file():
        return _load_saved_dataset(folder)  # what datasets.load_from_disk reads first
    if (folder / DICT).is_file():
        splits = _splits(folder)
        if split not in splits:
            raise DataFormatError(f"{folder}: no split {split!r}; splits found: {splits}.")
        return _load_saved_dataset(folder / split)
    if (folder / STATE).exists() or (folder / INFO).exists():
        return _load_saved_dataset(folder)  # names the file that is missing
    raise plain_folder_error(folder)


def _files(folder: Path) -> tuple[list[str], int]:
    """The first files under ``folder`` (relative, sorted, hidden ones left out) and
    how many there are (counted up to ``_COUNTED``)."""
    names: list[str] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                names.append(os.path.relpath(os.path.join(root, name), folder))
        if len(names) >= _COUNTED:
            break
    return names[:_LISTED], len(names)


def plain_folder_error(folder: Path) -> DataFormatError:
    """The one-line refusal of a folder that is not a saved Dataset, naming its files."""
    shown, total = _files(folder)
    if not shown:
        holds = "it holds no files"
    else:
        more = total - len(shown)
        holds = "it holds " + ", ".join(shown)
        if more:
            holds += f" and {more:,}{'+' if total >= _COUNTED else ''} more file(s)"
    return DataFormatError(
        f"{folder}: is a folder but not a saved Dataset (no {STATE} with {INFO}, nor "
        f"{DICT}); {holds}. sftselect reads one data file at a time: pass a file (.json, "
        ".jsonl or .parquet) instead, or a folder written by Dataset.save_to_disk."
    )
