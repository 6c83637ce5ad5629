"""Reading JSON and JSON Lines files as a stream of records.

Each source yields ``(position, record, size)``: the line number for JSON
Lines (only ``\n``, ``\r\n`` and ``\r`` end a line, so a string holding
U+2028 is one record), the 0-based index for a JSON array, and the length of
the record's JSON text. A ``.json`` array is decoded a window of characters
at a time, so a large file is never parsed whole; errors name the file and
line as a whole-document parse would. A byte that is not UTF-8 is reported
with its line and byte offset, and a value nested too deeply for Python's
parser with its line (JSON Lines) or record (array) -- never a bare
``UnicodeDecodeError`` or ``RecursionError``.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from ..exceptions import DataFormatError

__all__ = [
    "NotStreamable",
    "Records",
    "json_source",
    "jsonl_file_records",
    "listed",
    "records_from_json",
    "records_from_jsonl_text",
]

_READ_CHARS = 1 << 20  # characters read at a time from a .json array
_JSON_WS = re.compile(r"[ \t\n\r]*")  # the whitespace json skips between values
_DECODER = json.JSONDecoder()

# A record source yields (position, record, length of its JSON text): the line
# number for JSON Lines, the 0-based index for an array.
Records = Iterator[tuple[int, dict[str, Any], int]]


_TOO_DEEP = "JSON nested too deeply to read (Python's parser stops near 1,000 levels)"


def _line_ends(data: bytes, after_cr: bool) -> int:
    """Line ends (``\\n``, ``\\r\\n``, ``\\r``) in ``data``; ``after_cr``: the bytes before
    ended in ``\\r`` (so a leading ``\\n`` ends no further line)."""
    n = data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
    return n - 1 if after_cr and data.startswith(b"\n") else n


def utf8_error(path: Path) -> DataFormatError:
    """The first byte of ``path`` that is not UTF-8, by line and byte offset (0-based)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line, after_cr = 0, 1, False
    with open(path, "rb") as fh:
        while True:
            block = fh.read(_READ_CHARS)
            pending = len(decoder.getstate()[0])  # bytes of a character cut by the last block
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                bad = offset - pending + exc.start
                if bad >= offset:
                    line += _line_ends(block[: bad - offset], after_cr)
                byte = exc.object[exc.start]
                return DataFormatError(
                    f"{path}:{line}: byte {byte:#04x} at byte offset {bad} is not UTF-8 "
                    f"({exc.reason}); JSON files must be UTF-8 (re-encode it, e.g. "
                    "iconv -f latin1 -t utf-8)."
                )
            if not block:
                return DataFormatError(f"{path}: not UTF-8 text.")  # pragma: no cover
            line += _line_ends(block, after_cr)
            after_cr = block.endswith(b"\r")
            offset += len(block)


@contextlib.contextmanager
def _readable(path: Path) -> Iterator[None]:
    """Undecodable bytes in ``path`` as a DataFormatError naming its line and offset."""
    try:
        yield
    except UnicodeDecodeError:
        raise utf8_error(path) from None


class NotStreamable(Exception):
    """A ``.json`` file that is not one array of records parsed a record at a time
    (another document, or malformed JSON): the whole-document parse reads it, or
    reports its error, as it always did."""


def _records_from_document(data: Any, path: Path) -> list[dict[str, Any]]:
    """The records of a parsed ``.json`` document: an array of objects, or an
    object whose one array-valued field holds them."""
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


def records_from_json(path: Path) -> tuple[list[dict[str, Any]], list[int] | None]:
    """The records of a JSON array file, or of JSON Lines saved as ``.json`` (then
    with each record's line number; None for an array), parsed whole."""
    with _readable(path):
        text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except RecursionError:
        raise DataFormatError(f"{path}: {_TOO_DEEP}.") from None
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and text.lstrip().startswith("{"):
            lines: list[int] = []
            return records_from_jsonl_text(text, path, lines), lines  # JSON Lines as .json
        raise DataFormatError(
            f"{path}:{exc.lineno}: malformed JSON ({exc.msg}, column {exc.colno})."
        ) from None
    return _records_from_document(data, path), None


def _jsonl_records(lines: Iterable[str], path: Path) -> Records:
    """(line number, record, line length) for each non-blank line of JSON Lines.

    Lines are what a text file gives (ending in ``"\\n"`` or not). A record may
    hold U+2028, U+0085 and the other characters ``str.splitlines`` also breaks
    at: only ``\\n``, ``\\r\\n`` and ``\\r`` end a line.
    """
    loads = json.loads
    for lineno, line in enumerate(lines, start=1):
        if not line or line.isspace():
            continue
        try:
            rec = loads(line)
        except RecursionError:
            raise DataFormatError(f"{path}:{lineno}: {_TOO_DEEP}.") from None
        except json.JSONDecodeError:
            try:  # again without the line's end, for the column of the line alone
                loads(line.removesuffix("\n"))
            except json.JSONDecodeError as exc:
                raise DataFormatError(
                    f"{path}:{lineno}: malformed JSON ({exc.msg}, column {exc.colno})."
                ) from None
            raise  # pragma: no cover - the line's end is whitespace to JSON
        if not isinstance(rec, dict):
            raise DataFormatError(
                f"{path}:{lineno}: a {type(rec).__name__}; expected a JSON object."
            )
        yield lineno, rec, len(line)


def records_from_jsonl_text(
    text: str, path: Path, lines: list[int] | None = None
) -> list[dict[str, Any]]:
    """The records of JSON Lines ``text``; ``lines`` (if given) receives each one's line number."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    records = []
    for lineno, rec, _ in _jsonl_records(text.split("\n"), path):
        records.append(rec)
        if lines is not None:
            lines.append(lineno)
    return records


def jsonl_file_records(path: Path) -> Records:
    with _readable(path), open(path, encoding="utf-8") as fh:
        yield from _jsonl_records(fh, path)


class _TextReader:
    """A text file read a block at a time, for parsing one JSON value after another."""

    def __init__(self, fh: TextIO) -> None:
        self.fh = fh
        self.text = ""
        self.pos = 0
        self.eof = False

    def read_more(self) -> bool:
        """Keep what is left and append the next block (at least as long as what is
        left, so a value that spans blocks is parsed again a bounded number of
        times); False at the end of the file."""
        if self.eof:
            return False
        data = self.fh.read(max(_READ_CHARS, len(self.text) - self.pos))
        if not data:
            self.eof = True
            return False
        self.text = self.text[self.pos :] + data
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next character that is not JSON whitespace ('' at the end of the file)."""
        while True:
            self.pos = _JSON_WS.match(self.text, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.read_more():
                return ""

    def value(self) -> tuple[Any, int]:
        """The JSON value that starts here, and the length of its text."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError:
                if self.read_more():
                    continue
                raise NotStreamable from None
            if end == len(self.text) and self.read_more():
                continue  # a number or literal may go on in the next block
            size, self.pos = end - self.pos, end
            return value, size


def _array_records(path: Path) -> Records:
    """(index, record, text length) for each element of a ``.json`` file that is one
    JSON array, parsed a record at a time. As with the whole-document parse, a
    malformed file is reported before an element that is not an object."""
    bad: tuple[int, str] | None = None
    with _readable(path), open(path, encoding="utf-8") as fh:
        reader = _TextReader(fh)
        if reader.peek() != "[":
            raise NotStreamable
        reader.pos += 1
        if reader.peek() == "]":
            reader.pos += 1
        else:
            i = 0
            while True:
                reader.peek()
                try:
                    rec, size = reader.value()
                except RecursionError:
                    raise DataFormatError(f"{path}: record {i} (0-based): {_TOO_DEEP}.") from None
                if not isinstance(rec, dict):
                    if bad is None:
                        bad = (i, type(rec).__name__)
                elif bad is None:
                    yield i, rec, size
                i += 1
                sep = reader.peek()
                reader.pos += 1
                if sep == "]":
                    break
                if sep != ",":
                    raise NotStreamable
        if reader.peek():
            raise NotStreamable  # extra data after the array
    if bad is not None:
        raise DataFormatError(f"{path}: record {bad[0]} is a {bad[1]}; expected an object.")


def listed(records: list[dict[str, Any]], lines: list[int] | None) -> Callable[[], Records]:
    positions = lines if lines is not None else range(len(records))
    return lambda: ((p, rec, 0) for p, rec in zip(positions, records))


def json_source(path: Path) -> tuple[Callable[[], Records], bool]:
    """How to read the records of a ``.json`` file, and whether their positions are
    line numbers (JSON Lines saved as ``.json``)."""
    with _readable(path), open(path, encoding="utf-8") as fh:
        reader = _TextReader(fh)
        first = reader.peek()
        if first == "[":
            return (lambda: _array_records(path)), False
        if first == "{":
            try:
                document, _ = reader.value()
            except NotStreamable:
                document = None
            except RecursionError:
                raise DataFormatError(f"{path}: {_TOO_DEEP}.") from None
            else:
                if reader.peek():  # more after the first object: JSON Lines
                    return (lambda: jsonl_file_records(path)), True
                return listed(_records_from_document(document, path), None), False
    records, lines = records_from_json(path)  # raises what it always raised
    return listed(records, lines), lines is not None
