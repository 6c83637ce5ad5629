"""Instruction-data formats and the response/instruction view of a row.

Four formats are detected from the column names (in this order), and any of
them, or a custom one, can be named explicitly:

========== ===================================================== ===============
name       columns                                               response
========== ===================================================== ===============
alpaca     ``instruction``, ``input`` (optional), ``output``     ``output``
dolly      ``instruction``, ``context`` (optional), ``response`` ``response``
sharegpt   ``conversations``: list of ``{from, value}``          assistant turns
openai     ``messages``: list of ``{role, content}``             assistant turns
========== ===================================================== ===============

Assistant turns are those whose role is one of ``ASSISTANT_ROLES`` ("gpt",
"assistant", "chatgpt", "bard", "bing", "model"); the prompt an assistant turn
answers is the nearest user turn before it in the same row (``USER_ROLES``:
"human", "user"), so a system message is never taken for the instruction. Which assistant turns count
for a multi-turn row is the caller's ``turns`` policy: ``"last"`` (default),
``"first"``, or an aggregate over all of them: ``"sum"``, ``"max"``, ``"mean"``.

Texts are read straight from the Arrow table, so views over a million rows
cost a few column operations, not a Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..core.constraints import Constraint, Satisfies
from ..core.validation import check_choice, check_dataset, param_error
from ..exceptions import DataFormatError, MissingColumnError

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = [
    "ALPACA",
    "ASSISTANT_ROLES",
    "DOLLY",
    "FORMATS",
    "FORMAT_CONSTRAINTS",
    "OPENAI",
    "SHAREGPT",
    "TURN_POLICIES",
    "USER_ROLES",
    "Format",
    "TextView",
    "aggregate_turns",
    "arrow_column",
    "check_dataset",
    "detect_format",
    "resolve_format",
    "response_view",
]

ASSISTANT_ROLES: tuple[str, ...] = ("gpt", "assistant", "chatgpt", "bard", "bing", "model")
USER_ROLES: tuple[str, ...] = ("human", "user")
TURN_POLICIES: tuple[str, ...] = ("last", "first", "sum", "max", "mean")


@dataclass(frozen=True)
class Format:
    """Where a format keeps the instruction, the input and the response.

    A flat format names columns (``response`` is required; ``instruction`` and
    ``input`` may be None). A chat format names the list column ``messages``
    and the keys of each turn.
    """

    name: str
    response: str | None = None
    instruction: str | None = None
    input: str | None = None
    messages: str | None = None
    role_key: str = "role"
    content_key: str = "content"

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    @property
    def required_columns(self) -> tuple[str, ...]:
        if self.is_chat:
            return (self.messages,)  # type: ignore[return-value]
        cols = [self.instruction, self.response]
        return tuple(c for c in cols if c is not None)

    @classmethod
    def custom(
        cls, response: str, instruction: str | None = None, input: str | None = None
    ) -> Format:
        """A flat format with the response in column ``response``."""
        return cls(name="custom", response=response, instruction=instruction, input=input)


ALPACA = Format("alpaca", response="output", instruction="instruction", input="input")
DOLLY = Format("dolly", response="response", instruction="instruction", input="context")
SHAREGPT = Format("sharegpt", messages="conversations", role_key="from", content_key="value")
OPENAI = Format("openai", messages="messages", role_key="role", content_key="content")
FORMATS: dict[str, Format] = {f.name: f for f in (ALPACA, DOLLY, SHAREGPT, OPENAI)}


def _is_format(value: object) -> bool:
    return (
        value is None or isinstance(value, Format) or (isinstance(value, str) and value in FORMATS)
    )


#: The declared constraint of a selector's ``format`` parameter (a name, a Format or None).
FORMAT_CONSTRAINTS: list[Constraint] = [
    Satisfies(_is_format, f"one of {sorted(FORMATS)}, a Format or None", invalid="no-such-format")
]


def detect_format(column_names: list[str]) -> Format:
    """The first known format whose required columns are all present."""
    for fmt in FORMATS.values():
        if all(c in column_names for c in fmt.required_columns):
            return fmt
    tried = "; ".join(f"{f.name} ({', '.join(f.required_columns)})" for f in FORMATS.values())
    raise MissingColumnError(
        f"Could not find a response column. Columns found: {list(column_names)}. "
        f"Formats tried: {tried}. Name the format or the response column explicitly."
    )


def resolve_format(dataset: Dataset, fmt: str | Format | None, owner: str) -> Format:
    """Resolve ``fmt`` (None: detect; a name; a :class:`Format`) against ``dataset``."""
    columns = list(dataset.column_names)
    if fmt is None:
        return detect_format(columns)
    if isinstance(fmt, str):
        if fmt not in FORMATS:
            raise param_error(owner, "format", f"one of {sorted(FORMATS)}, a Format or None", fmt)
        fmt = FORMATS[fmt]
    if not isinstance(fmt, Format):
        raise param_error(owner, "format", f"one of {sorted(FORMATS)}, a Format or None", fmt)
    missing = [c for c in fmt.required_columns if c not in columns]
    if missing:
        raise MissingColumnError(
            f"Format {fmt.name!r} needs column(s) {missing}. Columns found: {columns}."
        )
    return fmt


@dataclass(frozen=True)
class TextView:
    """Response texts of a dataset, with the row each text came from.

    ``texts`` is an Arrow string array; ``parents[i]`` is the row of
    ``texts[i]`` (None when texts and rows are one to one); ``prompts`` holds
    the instruction each text answers (None when the format has none);
    ``missing`` lists the rows that have no response to measure.
    """

    texts: pa.Array
    parents: np.ndarray | None
    prompts: pa.Array | None
    n_rows: int
    missing: np.ndarray


def arrow_column(dataset: Dataset, name: str) -> pa.Array:
    """Column ``name`` of ``dataset`` as one Arrow array (chunks combined only when
    there are several)."""
    col = dataset.with_format("arrow")[name]
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def _as_strings(arr: pa.Array, what: str) -> pa.Array:
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return arr
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), pa.string())
    raise DataFormatError(f"{what} must hold strings; its Arrow type is {arr.type}.")


def _first_null(arr: pa.Array, parents: np.ndarray | None) -> int | None:
    if arr.null_count == 0:
        return None
    pos = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
    return int(parents[pos]) if parents is not None else pos


def response_view(
    dataset: Dataset,
    fmt: Format,
    *,
    turns: str = "last",
    on_invalid: str = "raise",
    owner: str = "response_view",
) -> TextView:
    """The response texts of ``dataset`` under ``fmt`` and the ``turns`` policy.

    A null response (or a chat row with no assistant turn) raises
    :class:`DataFormatError` naming the row when ``on_invalid="raise"``; with
    ``on_invalid="nan"`` the row is listed in ``TextView.missing`` instead.
    """
    check_choice(turns, "turns", owner, TURN_POLICIES)
    check_choice(on_invalid, "on_invalid", owner, ("raise", "nan"))
    n = len(dataset)
    if not fmt.is_chat:
        texts = _as_strings(arrow_column(dataset, fmt.response), f"Column {fmt.response!r}")  # type: ignore[arg-type]
        prompts = None
        if fmt.instruction is not None:
            prompts = _as_strings(
                arrow_column(dataset, fmt.instruction), f"Column {fmt.instruction!r}"
            )
        bad = _first_null(texts, None)
        if bad is not None and on_invalid == "raise":
            raise DataFormatError(
                f"Row {bad}: the response column {fmt.response!r} is null or missing; expected a string."
            )
        missing = np.flatnonzero(texts.is_null().to_numpy(zero_copy_only=False))
        return TextView(texts.fill_null(""), None, prompts, n, missing)
    return _chat_view(dataset, fmt, turns, on_invalid)


def _chat_view(dataset: Dataset, fmt: Format, turns: str, on_invalid: str) -> TextView:
    n = len(dataset)
    col = arrow_column(dataset, fmt.messages)  # type: ignore[arg-type]
    if not (
        pa.types.is_list(col.type) or pa.types.is_large_list(col.type)
    ) or not pa.types.is_struct(col.type.value_type):
        raise DataFormatError(
            f"Column {fmt.messages!r} must be a list of {{{fmt.role_key!r}, {fmt.content_key!r}}} "
            f"records; its Arrow type is {col.type}."
        )
    struct_type = col.type.value_type
    for key in (fmt.role_key, fmt.content_key):
        if struct_type.get_field_index(key) < 0:
            names = [struct_type.field(i).name for i in range(struct_type.num_fields)]
            raise DataFormatError(
                f"Turns in column {fmt.messages!r} have keys {names}; expected {fmt.role_key!r} "
                f"and {fmt.content_key!r}."
            )
    parents_all = pc.list_parent_indices(col).to_numpy()
    flat = pc.list_flatten(col)
    roles = _as_strings(flat.field(fmt.role_key), f"Turn key {fmt.role_key!r}")
    contents = _as_strings(flat.field(fmt.content_key), f"Turn key {fmt.content_key!r}")
    is_asst = pc.fill_null(pc.is_in(roles, value_set=pa.array(ASSISTANT_ROLES)), False)
    asst = np.flatnonzero(is_asst.to_numpy(zero_copy_only=False))
    parents = parents_all[asst]
    if turns in ("last", "first") and asst.size:
        if turns == "last":
            keep = np.r_[parents[1:] != parents[:-1], True]
        else:
            keep = np.r_[True, parents[1:] != parents[:-1]]
        asst, parents = asst[keep], parents[keep]
    has_response = np.zeros(n, dtype=bool)
    has_response[parents] = True
    missing = np.flatnonzero(~has_response)
    if missing.size and on_invalid == "raise":
        raise DataFormatError(
            f"Row {int(missing[0])}: column {fmt.messages!r} has no assistant turn "
            f"(roles {list(ASSISTANT_ROLES)}); expected at least one."
        )
    texts = contents.take(pa.array(asst, type=pa.int64()))
    bad = _first_null(texts, parents)
    if bad is not None:
        if on_invalid == "raise":
            raise DataFormatError(
                f"Row {bad}: an assistant turn in {fmt.messages!r} has a null "
                f"{fmt.content_key!r}; expected a string."
            )
        null_rows = parents[texts.is_null().to_numpy(zero_copy_only=False)]
        missing = np.union1d(missing, null_rows)
    # The prompt an assistant turn answers: the nearest user turn before it in the
    # same row (a system message or another assistant turn in between is skipped).
    is_user = pc.fill_null(pc.is_in(roles, value_set=pa.array(USER_ROLES)), False)
    users = np.flatnonzero(is_user.to_numpy(zero_copy_only=False))
    prev = users[np.maximum(np.searchsorted(users, asst) - 1, 0)] if users.size else asst
    same_row = (
        (prev < asst) & (parents_all[np.minimum(prev, parents_all.size - 1)] == parents)
        if users.size
        else np.zeros(asst.size, dtype=bool)
    )
    prompt_idx = pa.array(np.where(same_row, prev, 0), type=pa.int64())
    prompts = contents.take(prompt_idx)
    prompts = pc.if_else(pa.array(same_row), prompts, pa.scalar(None, pa.string()))
    return TextView(texts.fill_null(""), parents, prompts, n, missing)


def aggregate_turns(values: np.ndarray, view: TextView, how: str) -> np.ndarray:
    """Per-row float64 values from per-text ``values`` (NaN for missing rows)."""
    values = np.asarray(values, dtype=np.float64)
    if view.parents is None:
        out = values.copy()
    else:
        n = view.n_rows
        counts = np.bincount(view.parents, minlength=n)
        if how in ("last", "first", "sum"):
            out = np.bincount(view.parents, weights=values, minlength=n).astype(np.float64)
        elif how == "mean":
            sums = np.bincount(view.parents, weights=values, minlength=n)
            with np.errstate(invalid="ignore", divide="ignore"):
                out = sums / counts
        elif how == "max":
            out = np.full(n, -np.inf)
            np.maximum.at(out, view.parents, values)
        else:  # pragma: no cover - validated earlier
            raise ValueError(how)
        out[counts == 0] = np.nan
    if view.missing.size:
        out[view.missing] = np.nan
    return out
