"""Answer files: what :func:`sftselect.generate.generate` writes and reads back.

One JSON object a line with the fields the pairwise judge reads
(:data:`OUTPUT_FIELDS`) plus ``run``, what made the answer. :func:`read_answers`
reads a file back (a last line cut short by a crash is dropped; only ``\\n``,
``\\r\\n`` and ``\\r`` end a row). :func:`path_identity` and
:func:`loaded_identity` name the model of a run, and :func:`answered_by_run`
returns the answers a file already holds for a test set from the same run,
refusing rows made by another (see :mod:`sftselect.generate`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..data.json_records import records_from_jsonl_text
from ..exceptions import DataFormatError
from ..models.fingerprint import files_fingerprint, weights_fingerprint

__all__ = [
    "OUTPUT_FIELDS",
    "answered_by_run",
    "loaded_from",
    "loaded_identity",
    "path_identity",
    "read_answers",
]

#: The fields every output row must have (rows written now also have ``run``,
#: what made the answer; see the module docstring).
OUTPUT_FIELDS = ("id", "testset", "prompt", "answer", "model")


def read_answers(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read an answers file, dropping a last line cut short (the file is repaired in place).

    Only ``\\n``, ``\\r\\n`` and ``\\r`` end a line (as for every JSON Lines file
    sftselect reads): an answer holding U+2028, U+2029 or U+0085 is one row.

    Raises
    ------
    DataFormatError
        A complete line that is not a JSON object with the output fields.
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith((b"\n", b"\r")):  # a crash mid-write: drop the partial line
        keep = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
        with path.open("r+b") as fh:
            fh.truncate(keep)
        data = data[:keep]
    lines: list[int] = []
    rows = records_from_jsonl_text(data.decode("utf-8"), path, lines)
    for lineno, row in zip(lines, rows):
        if any(k not in row for k in OUTPUT_FIELDS):
            raise DataFormatError(
                f"{path}:{lineno}: expected an object with fields {list(OUTPUT_FIELDS)}."
            )
    return rows


def loaded_from(model: Any) -> str | None:
    """A loaded model's ``name_or_path`` (or ``config._name_or_path``), None when empty."""
    for value in (
        getattr(model, "name_or_path", None),
        getattr(getattr(model, "config", None), "_name_or_path", None),
    ):
        if isinstance(value, (str, os.PathLike)) and os.fspath(value):
            return os.fspath(value)
    return None


def path_identity(model: str | os.PathLike[str], gguf_file: str | None) -> tuple[str, str | None]:
    """A path's resolved absolute path (a hub name as given), a ``gguf_file`` joined to it, and
    its weights: ``files:`` and the checkpoint files' fingerprint (None for a hub name)."""
    text = os.fspath(model)
    weights = None
    if os.path.exists(text):
        text = str(Path(text).resolve())
        weights = "files:" + files_fingerprint(text)
    return (text if gguf_file is None else f"{text}/{gguf_file}"), weights


def _dtype_name(net: Any) -> str | None:
    """The dtype of the first floating-point parameter (``"float32"``), None without one."""
    for p in net.parameters():
        if p.is_floating_point():
            return str(p.dtype).removeprefix("torch.")
    return None


def loaded_identity(net: Any) -> tuple[str, str, str | None]:
    """A loaded model's name (``name_or_path``, resolved when a folder; else its class name),
    its weights (``sha256:`` and :func:`~sftselect.models.fingerprint.weights_fingerprint`) and the
    dtype of its weights."""
    name = loaded_from(net)
    if name is None:
        name = type(net).__name__
    elif os.path.isdir(name):
        name = str(Path(name).resolve())
    return name, "sha256:" + weights_fingerprint(net), _dtype_name(net)


def answered_by_run(
    out: Path, testset: str, model_name: str, signature: dict[str, Any]
) -> dict[str, str]:
    """The answers on file to ``testset`` by this run, by id; a row of the test set by another
    run, or without a ``run``, raises :class:`DataFormatError`."""
    answered: dict[str, str] = {}
    for row in read_answers(out):
        if row["testset"] != testset:
            continue
        ident = str(row["id"])
        if "run" not in row:
            raise DataFormatError(
                f"{out}: row {ident!r} of test set {testset!r} has no 'run' field: it was "
                "written by an earlier sftselect that did not record the model and settings "
                "that made it, so it cannot be checked against this run and the file is not "
                "resumed. Write this run to another file (or, if you know those rows were made "
                f'by this model with these settings, add "run": {json.dumps(signature)} to '
                "each of them)."
            )
        differs = []
        if row["model"] != model_name:
            differs.append(("'model' field", row["model"], model_name))
        recorded = row["run"]
        if not isinstance(recorded, dict):
            differs.append(("run", recorded, signature))
        else:
            keys = list(signature) + [k for k in recorded if k not in signature]
            differs += [
                (k, recorded.get(k), signature.get(k))
                for k in keys
                if recorded.get(k) != signature.get(k)
            ]
        if differs:
            detail = "; ".join(f"{k} {a!r} (this run: {b!r})" for k, a, b in differs)
            raise DataFormatError(
                f"{out} holds answers to test set {testset!r} made by another run: row "
                f"{ident!r} differs in {detail}. A file holds one run's answers (each row's "
                "'run' records the model, template and decoding settings); write this run to "
                "another file."
            )
        answered[ident] = row["answer"]
    return answered
