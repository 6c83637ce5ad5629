"""The provenance record written beside every selection.

It says what was selected (positions, k), how (selector and parameters, seed,
library version) and from what (the dataset's fingerprint, and the input file's
SHA-256 when the command line read a file), with summary statistics of the
scores. It is plain JSON, so it can be diffed and archived. Per-row details
(:mod:`sftselect.core.row_tables`) appear only as their name and size.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._version import __version__
from .atomic import atomic_file
from .row_tables import RowArray, RowTable

if TYPE_CHECKING:
    from .base import Selection

__all__ = [
    "build_provenance",
    "content_sha256",
    "file_sha256",
    "provenance_path",
    "score_summary",
    "write_json_atomic",
]


def score_summary(scores: np.ndarray | None, indices: np.ndarray) -> dict[str, Any] | None:
    """Count, NaNs, min/mean/quantiles/max of all scores and of the selected ones."""
    if scores is None:
        return None

    def describe(values: np.ndarray) -> dict[str, Any]:
        finite = values[~np.isnan(values)]
        out: dict[str, Any] = {"count": int(values.size), "nan": int(values.size - finite.size)}
        if finite.size:
            q = np.quantile(finite, [0.0, 0.25, 0.5, 0.75, 1.0])
            out.update(
                min=float(q[0]),
                p25=float(q[1]),
                median=float(q[2]),
                p75=float(q[3]),
                max=float(q[4]),
                mean=float(finite.mean()),
            )
        return out

    return {"all": describe(scores), "selected": describe(scores[indices])}


def content_sha256(dataset: Any) -> str:
    """SHA-256 of a Dataset's rows as Arrow data (schema and values), whatever its chunking.

    Two datasets with the same rows and column types hash alike; the same rows
    read with other column types (int vs float) do not.
    """
    if getattr(dataset, "_indices", None) is None:
        table = dataset.data.table
    else:
        table = dataset.with_format("arrow")[:]
    table = table.combine_chunks()
    h = hashlib.sha256(table.schema.serialize().to_pybytes())
    for batch in table.to_batches():
        h.update(batch.serialize())
    return h.hexdigest()


def build_provenance(selection: Selection, *, content_hash: bool = True) -> dict[str, Any]:
    """The JSON-serialisable record of one :class:`~sftselect.core.base.Selection`."""
    import datasets

    sel = selection.selector
    return {
        "sftselect_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "selector": type(sel).__name__,
        "params": sel.describe_params(),
        "seed": selection.seed,
        "k": selection.k,
        "input": {
            "rows": selection.n_input,
            "fingerprint": selection.fingerprint,
            "content_sha256": (
                content_sha256(selection.dataset)
                if content_hash and selection.dataset is not None
                else None
            ),
        },
        "n_eligible": selection.n_eligible,
        "n_selected": int(selection.indices.size),
        "scores": score_summary(selection.scores, selection.indices),
        "details": _jsonable(dict(selection.extra)),
        "environment": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "datasets": datasets.__version__,
        },
        "indices": selection.indices.tolist(),
    }


def _jsonable(value: Any) -> Any:
    # Per-row details are summarised; the command line writes them beside the output.
    if isinstance(value, RowTable):
        return value.summary()
    if isinstance(value, dict):
        return {
            str(k): v.summary(str(k)) if isinstance(v, RowArray) else _jsonable(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (or of every file under a folder, in sorted order)."""
    h = hashlib.sha256()
    paths = [path]
    if os.path.isdir(path):
        paths = sorted(os.path.join(root, f) for root, _, files in os.walk(path) for f in files)
    for p in paths:
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def provenance_path(output: str | os.PathLike[str]) -> Path:
    """Where the provenance record of an output goes: ``OUTPUT.provenance.json`` beside it."""
    output = Path(output)
    return output.with_name(output.name + ".provenance.json")


def write_json_atomic(obj: Any, path: str | os.PathLike[str], *, indent: int = 2) -> None:
    """Write JSON to ``path`` through a new temporary file beside it (an unpredictable
    name, :func:`sftselect.core.atomic.atomic_file`), so no half file is left and no
    planted link is followed."""
    with atomic_file(path) as fh:
        json.dump(obj, fh, indent=indent, ensure_ascii=False)
        fh.write("\n")
