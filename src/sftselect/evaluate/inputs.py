"""The pairs a judge compares, and the files they come from.

Three input shapes (``format=`` of :func:`load_pairs`, detected when
``"auto"``):

``"generate"`` (two files, :mod:`sftselect.generate` output)
    JSON Lines (or a JSON array) of answers, one row per test prompt, with the
    fields ``id``, ``testset``, ``prompt`` and ``answer`` (all required,
    strings; ``id`` may be an int) and ``model`` (optional; one value per
    file). Other fields are ignored. The two files are matched by
    ``(testset, id)``; both must hold the same keys, each once, with the same
    ``prompt``. Rows keep the order of the first file.
``"alpaca_eval"`` (two files, AlpacaEval ``model_outputs.json``)
    JSON arrays of ``{"instruction", "output", "generator", "dataset"}``
    (``generator`` and ``dataset`` optional). Matched by position: record ``i``
    of both files must have the same ``instruction`` (the first mismatch is an
    error). The test set is ``dataset`` (AlpacaEval's source subsets:
    helpful_base, koala, oasst, selfinstruct, vicuna) or ``"alpaca_eval"``;
    the id is the record's position.
``"pairs"`` (one file)
    Any JSON/JSONL whose rows hold a prompt and two answers, by default in
    ``prompt``, ``answer_a`` and ``answer_b`` (``*_field`` parameters rename
    them, e.g. the paper's ``qa_file`` with its two model keys); ``testset``
    and ``id`` are optional (default: the file name and the row number).
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.validation import check_choice, param_error
from ..data.json_records import records_from_json, records_from_jsonl_text
from ..exceptions import DataFormatError

__all__ = ["FORMATS", "GENERATE_FIELDS", "Pairs", "load_pairs", "read_records"]

#: The input formats :func:`load_pairs` reads.
FORMATS = ("auto", "generate", "alpaca_eval", "pairs")
#: The fields every row of a generate-output file must have (``model`` is optional).
GENERATE_FIELDS = ("id", "testset", "prompt", "answer")
_ALPACA_EVAL_FIELDS = ("instruction", "output")


def _short(text: str, limit: int = 70) -> str:
    text = str(text)
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _first_difference(a: str, b: str, window: int = 20) -> str:
    """Where two different strings first differ: the character index and, on
    both sides, up to ``window`` characters before and after it, as ``repr``
    (so a trailing space, a tab or a newline shows)."""
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    start = max(0, i - window)

    def excerpt(text: str) -> str:
        head = "..." if start > 0 else ""
        tail = "..." if len(text) > i + window else ""
        shown = repr(text[start : i + window])
        if i >= len(text):
            shown += " (end of text)"
        return f"{head}{shown}{tail}"

    return (
        f"they first differ at character {i} (lengths {len(a)} and {len(b)}): "
        f"{excerpt(a)} vs {excerpt(b)}"
    )


@dataclass(frozen=True)
class Pairs:
    """Prompts with two answers each, their test sets, ids and the two models' names.

    Built with :meth:`from_lists` or :func:`load_pairs`; every field is
    checked (a row with a missing or non-string value is an error naming the
    row and the field).
    """

    prompts: tuple[str, ...]
    answers_a: tuple[str, ...]
    answers_b: tuple[str, ...]
    testsets: tuple[str, ...]
    ids: tuple[str, ...]
    model_a: str = "A"
    model_b: str = "B"
    sources: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_lists(
        cls,
        prompts: Sequence[str],
        answers_a: Sequence[str],
        answers_b: Sequence[str],
        *,
        testsets: Sequence[str] | str | None = None,
        ids: Sequence[str | int] | None = None,
        model_a: str = "A",
        model_b: str = "B",
        sources: dict[str, Any] | None = None,
        owner: str = "Pairs.from_lists",
    ) -> Pairs:
        """Check and freeze parallel lists (``testsets`` may be one name for every row)."""
        columns = {"prompts": prompts, "answers_a": answers_a, "answers_b": answers_b}
        for name, col in columns.items():
            if isinstance(col, (str, bytes)) or not isinstance(col, Sequence):
                raise param_error(owner, name, "a sequence of strings", type(col).__name__)
        n = len(prompts)
        if testsets is None or isinstance(testsets, str):
            testsets = [testsets or "all"] * n
        if ids is None:
            ids = [str(i) for i in range(n)]
        columns.update(testsets=testsets, ids=ids)
        for name, col in columns.items():
            if isinstance(col, (str, bytes)) or not isinstance(col, Sequence):
                raise param_error(owner, name, "a sequence", type(col).__name__)
            if len(col) != n:
                raise param_error(
                    owner, name, f"as long as 'prompts' ({n} items)", f"{len(col)} items"
                )
        clean_ids = []
        for i, value in enumerate(ids):
            if isinstance(value, numbers.Integral) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str) or not value:
                raise DataFormatError(
                    f"{owner}: ids[{i}] must be a non-empty string or an int; got {value!r}."
                )
            clean_ids.append(value)
        for name in ("prompts", "answers_a", "answers_b", "testsets"):
            for i, value in enumerate(columns[name]):
                if not isinstance(value, str):
                    raise DataFormatError(
                        f"{owner}: {name}[{i}] must be a string; got {type(value).__name__} "
                        f"{_short(value)}."
                    )
                if name in ("prompts", "testsets") and not value.strip():
                    raise DataFormatError(f"{owner}: {name}[{i}] is empty.")
        seen: dict[tuple[str, str], int] = {}
        for i, key in enumerate(zip(testsets, clean_ids)):
            if key in seen:
                raise DataFormatError(
                    f"{owner}: rows {seen[key]} and {i} have the same test set and id {key}; "
                    "each (testset, id) must be unique."
                )
            seen[key] = i
        for name, value in (("model_a", model_a), ("model_b", model_b)):
            if not isinstance(value, str) or not value:
                raise param_error(owner, name, "a non-empty string", value)
        return cls(
            tuple(prompts),
            tuple(answers_a),
            tuple(answers_b),
            tuple(testsets),
            tuple(clean_ids),
            model_a,
            model_b,
            dict(sources or {}),
        )

    def __len__(self) -> int:
        return len(self.prompts)

    def swapped(self) -> Pairs:
        """The same pairs with A and B exchanged."""
        sources = dict(self.sources)
        if "a" in sources or "b" in sources:
            sources["a"], sources["b"] = self.sources.get("b"), self.sources.get("a")
        return Pairs(
            self.prompts,
            self.answers_b,
            self.answers_a,
            self.testsets,
            self.ids,
            self.model_b,
            self.model_a,
            sources,
        )

    def testset_names(self) -> list[str]:
        """The test sets, in order of first appearance."""
        return list(dict.fromkeys(self.testsets))


def read_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a ``.jsonl`` file (one object a line) or a ``.json`` array."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file.")
    if p.suffix.lower() == ".jsonl":
        return records_from_jsonl_text(p.read_text(encoding="utf-8"), p)
    return records_from_json(p)[0]


def _detect(records: list[dict[str, Any]], path: Path) -> str:
    if not records:
        raise DataFormatError(f"{path}: no records.")
    keys = set(records[0])
    if {"prompt", "answer"} <= keys:
        return "generate"
    if set(_ALPACA_EVAL_FIELDS) <= keys:
        return "alpaca_eval"
    raise DataFormatError(
        f"{path}: cannot tell the format from the first record's fields {sorted(keys)}: "
        f"expected {list(GENERATE_FIELDS)} (sftselect.generate output) or "
        f"{list(_ALPACA_EVAL_FIELDS)} (AlpacaEval model_outputs.json)."
    )


def _field(rec: dict[str, Any], name: str, path: Path, i: int, *, allow_int: bool = False) -> str:
    if name not in rec:
        raise DataFormatError(f"{path}: record {i} has no {name!r} field (fields: {sorted(rec)}).")
    value = rec[name]
    if allow_int and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise DataFormatError(
            f"{path}: record {i}: {name!r} must be a string; got {type(value).__name__} "
            f"{_short(value)}."
        )
    return value


def _model_name(records: list[dict[str, Any]], key: str, path: Path) -> str:
    names = list(dict.fromkeys(str(r[key]) for r in records if r.get(key) not in (None, "")))
    if len(names) > 1:
        raise DataFormatError(
            f"{path}: the {key!r} field names several models ({names[:3]}); one file must "
            "hold one model's answers."
        )
    return names[0] if names else path.stem


def _generate_rows(
    records: list[dict[str, Any]], path: Path, later_turns: str = "refuse"
) -> dict[tuple[str, str], tuple[int, str, str]]:
    rows: dict[tuple[str, str], tuple[int, str, str]] = {}
    for i, rec in enumerate(records):
        key = (_field(rec, "testset", path, i), _field(rec, "id", path, i, allow_int=True))
        prompt = _field(rec, "prompt", path, i)
        answer = _field(rec, "answer", path, i)
        if rec.get("history"):
            if later_turns == "skip":
                continue
            raise DataFormatError(
                f"{path}: record {i} (id {key[1]!r}) answers turn {rec.get('turn', '?')} of a "
                "multi-turn question (it has a 'history'); the pairwise protocols here judge "
                "single-turn answers. Judge the first-turn rows only with "
                "later_turns='skip' (command line: --skip-later-turns)."
            )
        if key in rows:
            raise DataFormatError(
                f"{path}: records {rows[key][0]} and {i} have the same (testset, id) {key}."
            )
        rows[key] = (i, prompt, answer)
    return rows


def _load_generate(
    path_a: Path, recs_a: list, path_b: Path, recs_b: list, later_turns: str = "refuse"
) -> Pairs:
    rows_a = _generate_rows(recs_a, path_a, later_turns)
    rows_b = _generate_rows(recs_b, path_b, later_turns)
    for key in rows_a:
        if key not in rows_b:
            raise DataFormatError(
                f"The answer files do not match: (testset, id) {key} (record {rows_a[key][0]} "
                f"of {path_a}) is not in {path_b}."
            )
    for key in rows_b:
        if key not in rows_a:
            raise DataFormatError(
                f"The answer files do not match: (testset, id) {key} (record {rows_b[key][0]} "
                f"of {path_b}) is not in {path_a}."
            )
    prompts, answers_a, answers_b, testsets, ids = [], [], [], [], []
    for key, (i, prompt, answer) in rows_a.items():
        j, prompt_b, answer_b = rows_b[key]
        if prompt != prompt_b:
            raise DataFormatError(
                f"The answer files do not match: (testset, id) {key} has different prompts in "
                f"{path_a} (record {i}) and {path_b} (record {j}); "
                f"{_first_difference(prompt, prompt_b)}."
            )
        prompts.append(prompt)
        answers_a.append(answer)
        answers_b.append(answer_b)
        testsets.append(key[0])
        ids.append(key[1])
    return Pairs.from_lists(
        prompts,
        answers_a,
        answers_b,
        testsets=testsets,
        ids=ids,
        model_a=_model_name(recs_a, "model", path_a),
        model_b=_model_name(recs_b, "model", path_b),
        sources={"format": "generate", "a": str(path_a), "b": str(path_b)},
        owner="load_pairs",
    )


def _load_alpaca_eval(path_a: Path, recs_a: list, path_b: Path, recs_b: list) -> Pairs:
    for i, (ra, rb) in enumerate(zip(recs_a, recs_b)):
        ia = _field(ra, "instruction", path_a, i)
        ib = _field(rb, "instruction", path_b, i)
        if ia != ib:
            raise DataFormatError(
                f"The AlpacaEval files are not aligned: the first mismatch is record {i}, whose "
                f"instruction differs between {path_a} and {path_b}; "
                f"{_first_difference(ia, ib)}."
            )
    if len(recs_a) != len(recs_b):
        longer, shorter = (path_a, path_b) if len(recs_a) > len(recs_b) else (path_b, path_a)
        i = min(len(recs_a), len(recs_b))
        raise DataFormatError(
            f"The AlpacaEval files are not aligned: {path_a} has {len(recs_a)} records and "
            f"{path_b} {len(recs_b)}; the first mismatch is record {i}, in {longer} but not "
            f"in {shorter}."
        )
    prompts = [r["instruction"] for r in recs_a]
    answers_a = [_field(r, "output", path_a, i) for i, r in enumerate(recs_a)]
    answers_b = [_field(r, "output", path_b, i) for i, r in enumerate(recs_b)]
    testsets = []
    for i, (ra, rb) in enumerate(zip(recs_a, recs_b)):
        ta, tb = ra.get("dataset"), rb.get("dataset")
        if ta is not None and tb is not None and ta != tb:
            raise DataFormatError(
                f"The AlpacaEval files are not aligned: record {i} is from dataset {ta!r} in "
                f"{path_a} but {tb!r} in {path_b}."
            )
        name = ta if ta is not None else tb
        testsets.append(str(name) if name else "alpaca_eval")
    return Pairs.from_lists(
        prompts,
        answers_a,
        answers_b,
        testsets=testsets,
        ids=[str(i) for i in range(len(prompts))],
        model_a=_model_name(recs_a, "generator", path_a),
        model_b=_model_name(recs_b, "generator", path_b),
        sources={"format": "alpaca_eval", "a": str(path_a), "b": str(path_b)},
        owner="load_pairs",
    )


def _load_pair_file(
    path: Path,
    records: list[dict[str, Any]],
    fields: dict[str, str],
    model_a: str | None,
    model_b: str | None,
) -> Pairs:
    prompts, answers_a, answers_b, testsets, ids = [], [], [], [], []
    for i, rec in enumerate(records):
        prompts.append(_field(rec, fields["prompt"], path, i))
        answers_a.append(_field(rec, fields["answer_a"], path, i))
        answers_b.append(_field(rec, fields["answer_b"], path, i))
        testsets.append(
            _field(rec, fields["testset"], path, i) if fields["testset"] in rec else path.stem
        )
        ids.append(
            _field(rec, fields["id"], path, i, allow_int=True) if fields["id"] in rec else str(i)
        )
    return Pairs.from_lists(
        prompts,
        answers_a,
        answers_b,
        testsets=testsets,
        ids=ids,
        model_a=model_a or fields["answer_a"],
        model_b=model_b or fields["answer_b"],
        sources={"format": "pairs", "file": str(path), "fields": dict(fields)},
        owner="load_pairs",
    )


def load_pairs(
    answers_a: str | os.PathLike[str],
    answers_b: str | os.PathLike[str] | None = None,
    *,
    format: str = "auto",
    prompt_field: str = "prompt",
    answer_a_field: str = "answer_a",
    answer_b_field: str = "answer_b",
    testset_field: str = "testset",
    id_field: str = "id",
    model_a: str | None = None,
    model_b: str | None = None,
    later_turns: str = "refuse",
) -> Pairs:
    """Read the pairs to judge from files (see the module docstring for the formats).

    Parameters
    ----------
    answers_a, answers_b : path
        Two answer files (``generate`` or ``alpaca_eval``), or one ``pairs``
        file with ``answers_b=None``.
    format : {"auto", "generate", "alpaca_eval", "pairs"}
        ``"auto"`` reads one file as ``pairs`` and detects the format of two
        from their fields.
    prompt_field, answer_a_field, answer_b_field, testset_field, id_field : str
        The field names of a ``pairs`` file.
    model_a, model_b : str or None
        Names for the two sides (default: the files' ``model``/``generator``
        field, the ``pairs`` answer field names, or the file names).
    later_turns : {"refuse", "skip"}, default "refuse"
        ``generate`` rows that answer a later turn of a multi-turn question
        (``generate(turns="all")``, MT-Bench): refused with an error naming
        the first (the protocols here judge single-turn answers), or left out,
        so the first turns are judged.
    """
    owner = "load_pairs"
    check_choice(format, "format", owner, FORMATS)
    check_choice(later_turns, "later_turns", owner, ("refuse", "skip"))
    path_a = Path(answers_a)
    if answers_b is None:
        if format not in ("auto", "pairs"):
            raise param_error(
                owner, "answers_b", f"a second answer file for format {format!r}", None
            )
        fields = {
            "prompt": prompt_field,
            "answer_a": answer_a_field,
            "answer_b": answer_b_field,
            "testset": testset_field,
            "id": id_field,
        }
        records = read_records(path_a)
        if not records:
            raise DataFormatError(f"{path_a}: no records.")
        return _load_pair_file(path_a, records, fields, model_a, model_b)
    if format == "pairs":
        raise param_error(owner, "answers_b", "None for format 'pairs' (one file)", str(answers_b))
    path_b = Path(answers_b)
    recs_a, recs_b = read_records(path_a), read_records(path_b)
    kind_a, kind_b = _detect(recs_a, path_a), _detect(recs_b, path_b)
    if kind_a != kind_b:
        raise DataFormatError(
            f"The two answer files have different formats: {path_a} is {kind_a!r}, {path_b} "
            f"is {kind_b!r}."
        )
    if format != "auto" and format != kind_a:
        raise DataFormatError(
            f"{path_a}: format {format!r} was asked for, but the records look like {kind_a!r} "
            f"(fields {sorted(recs_a[0])})."
        )
    if kind_a == "generate":
        pairs = _load_generate(path_a, recs_a, path_b, recs_b, later_turns)
    else:
        pairs = _load_alpaca_eval(path_a, recs_a, path_b, recs_b)
    if model_a is not None or model_b is not None:
        pairs = Pairs.from_lists(
            pairs.prompts,
            pairs.answers_a,
            pairs.answers_b,
            testsets=pairs.testsets,
            ids=pairs.ids,
            model_a=model_a or pairs.model_a,
            model_b=model_b or pairs.model_b,
            sources=pairs.sources,
            owner=owner,
        )
    return pairs
