"""Atomic writes through unpredictable temporary names.

Every file sftselect writes (selected data, provenance records, pictures, judge
results, cached embeddings) is written to a new temporary file beside its
target and renamed over it only once complete, so a failure never leaves a
half-written output. The temporary file is created with ``O_EXCL`` under a
random name (:func:`tempfile.mkstemp`), so a symbolic link planted where a
temporary file could be predicted (``.NAME.tmp-PID`` once) is never followed,
and it is written through the descriptor that created it, never reopened by
name. Any exception removes it.

A process killed outright (``SIGKILL``, a power cut) cannot clean up: it may
leave ``.NAME.<random>.sftselect-tmp`` (a file, or a folder for a saved
Dataset) beside the target. Such names are recognisable by their suffix,
:data:`TMP_SUFFIX`, and safe to delete once no sftselect process writes there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["TMP_SUFFIX", "atomic_file", "atomic_folder"]

#: How every temporary file or folder's name ends: ``.NAME.<random>.sftselect-tmp``.
TMP_SUFFIX = ".sftselect-tmp"


def _umask() -> int:
    """The process's umask: from /proc on Linux, else by setting it and putting it back
    (which another thread creating a file at that instant could see)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


@contextlib.contextmanager
def atomic_file(
    path: str | os.PathLike[str],
    mode: str = "w",
    *,
    encoding: str | None = "utf-8",
    newline: str | None = None,
) -> Iterator[IO[Any]]:
    """An open file (``mode`` ``"w"`` or ``"wb"``) that becomes ``path`` when the block ends
    without an exception; the mode of a new file (``0o666`` less the umask) is given to it.

    The parent folder is created when missing. An existing ``path`` is replaced (a symbolic
    link at ``path`` is replaced by the file, not followed).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_file writes with mode 'w' or 'wb'; got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    fh: IO[Any] | None = None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        if mode == "wb":
            fh = os.fdopen(fd, "wb")
        else:
            fh = os.fdopen(fd, "w", encoding=encoding, newline=newline)
        with fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        if fh is None:  # the descriptor was never handed to a file object
            os.close(fd)
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A new empty folder that replaces ``path`` (a folder, or nothing) when the block ends
    without an exception; it gets the mode of a new folder (``0o777`` less the umask).

    An existing folder at ``path`` is moved aside first and deleted once the new one is in
    place (put back if that fails); the caller checks that it may be replaced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield Path(tmp)
        if path.is_dir() and not path.is_symlink():
            aside = tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
            os.replace(path, aside)  # onto the empty folder just made
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(aside, path)
                raise
            shutil.rmtree(aside)
        else:
            os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
