"""The paper's five test sets and MT-Bench's questions, packaged with the library.

``load(name)`` returns a :class:`datasets.Dataset` with every original column
plus ``id`` (a string, unique within the set) and ``prompt`` (the text put to
the model):

=========== ======= ================================================ ===========================
name        rows    prompt                                           id
=========== ======= ================================================ ===========================
vicuna      80      ``text``                                         ``vicuna_<question_id>``
koala       180     ``prompt``                                       the file's ``id``
wizardlm    218     ``Instruction``                                  ``wizardlm_<idx>``
sinstruct   252     ``instruction``, then a blank line and           the file's ``id``
                    ``instances[0].input`` when that is not empty
lima        300     the one string inside ``conversations``          ``lima_<line>`` (0-based)
mt_bench    80      the first of ``turns`` (both kept in ``turns``)  ``mt_bench_<question_id>``
=========== ======= ================================================ ===========================

The paper's ``generation/generate_test.py`` formatted LIMA's prompt from the
whole ``conversations`` list (its Python repr, brackets and quotes included);
here the prompt is the string itself. Its Self-Instruct prompts put a
non-empty input in an Alpaca ``### Input:`` section; here the input follows
the instruction after a blank line, and the template decides the framing.
Sources and licences: ``data/LICENSE-DATA.md``.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..core.validation import check_positive_int, param_error
from ..exceptions import DataFormatError

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["FILES", "NAMES", "PAPER_TESTSETS", "load"]

#: The data file of each test set.
FILES: dict[str, str] = {
    "vicuna": "vicuna_test_set.jsonl",
    "koala": "koala_test_set.jsonl",
    "wizardlm": "wizardlm_test_set.jsonl",
    "sinstruct": "sinstruct_test_set.jsonl",
    "lima": "lima_test.jsonl",
    "mt_bench": "mt_bench_question.jsonl",
}
NAMES: tuple[str, ...] = tuple(FILES)
#: The five test sets the paper's pairwise evaluation used (1,030 prompts).
PAPER_TESTSETS: tuple[str, ...] = ("vicuna", "koala", "wizardlm", "sinstruct", "lima")


def _records(name: str) -> list[dict[str, Any]]:
    text = resources.files(__package__).joinpath("data", FILES[name]).read_text(encoding="utf-8")
    rows = []
    # Only \n (and \r) end a record: str.splitlines would also split on U+2028 in a string.
    for lineno, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataFormatError(
                    f"{FILES[name]}:{lineno}: malformed JSON ({exc.msg})."
                ) from None
    return rows


def _field(row: dict[str, Any], key: str, name: str, line: int) -> Any:
    if key not in row:
        raise DataFormatError(
            f"{FILES[name]} line {line + 1}: no {key!r} field; found {sorted(row)}."
        )
    return row[key]


def _id_and_prompt(name: str, row: dict[str, Any], i: int) -> tuple[str, str]:
    if name == "vicuna":
        return f"vicuna_{_field(row, 'question_id', name, i)}", _field(row, "text", name, i)
    if name == "koala":
        return str(_field(row, "id", name, i)), _field(row, "prompt", name, i)
    if name == "wizardlm":
        return f"wizardlm_{_field(row, 'idx', name, i)}", _field(row, "Instruction", name, i)
    if name == "sinstruct":
        instances = _field(row, "instances", name, i)
        if not isinstance(instances, list) or len(instances) != 1:
            raise DataFormatError(
                f"{FILES[name]} line {i + 1}: expected one item in 'instances'; got {instances!r}."
            )
        instruction = _field(row, "instruction", name, i)
        extra = instances[0].get("input") or ""
        prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        return str(_field(row, "id", name, i)), prompt
    if name == "lima":
        conv = _field(row, "conversations", name, i)
        if not isinstance(conv, list) or len(conv) != 1 or not isinstance(conv[0], str):
            raise DataFormatError(
                f"{FILES[name]} line {i + 1}: expected 'conversations' to hold one prompt string."
            )
        return f"lima_{i}", conv[0]
    turns = _field(row, "turns", name, i)
    if not isinstance(turns, list) or not turns:
        raise DataFormatError(f"{FILES[name]} line {i + 1}: expected a non-empty 'turns' list.")
    return f"mt_bench_{_field(row, 'question_id', name, i)}", turns[0]


def load(name: str, *, limit: int | None = None) -> Dataset:
    """Load a packaged test set with ``id`` and ``prompt`` columns beside the originals.

    Parameters
    ----------
    name : {"vicuna", "koala", "wizardlm", "sinstruct", "lima", "mt_bench"}
        The test set.
    limit : int or None
        Keep only the first ``limit`` prompts.

    Returns
    -------
    datasets.Dataset
        One row per prompt, in the file's order.
    """
    from datasets import Dataset

    if name not in FILES:
        raise param_error("load", "name", f"one of {list(NAMES)}", name)
    if limit is not None:
        limit = check_positive_int(limit, "limit", "load")
    rows = _records(name)[:limit]
    out = []
    for i, row in enumerate(rows):
        ident, prompt = _id_and_prompt(name, row, i)
        if not isinstance(prompt, str) or not prompt.strip():
            raise DataFormatError(f"{FILES[name]} line {i + 1}: the prompt is empty or not text.")
        out.append({**row, "id": ident, "prompt": prompt})
    if name == "mt_bench":  # 'reference' is present on some rows only
        for row in out:
            row.setdefault("reference", None)
    return Dataset.from_list(out)
