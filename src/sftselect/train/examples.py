"""Training examples: rows of any format -> conversations -> token ids and labels.

* :func:`conversations` reads each row of an alpaca, dolly, sharegpt, openai or
  custom-format :class:`datasets.Dataset` as a list of ``{"role", "content"}``
  messages (and the Alpaca ``input`` of flat rows).
* :func:`encode` renders a conversation with a template and tokenizes the
  whole text once; a token is trained on (its label is its id) when its first
  character lies in a span the template marks as the assistant's, otherwise
  its label is ``-100``. With a fast tokenizer the character offsets come from
  the tokenizer; otherwise from the token counts of the text's prefixes.
* :func:`truncate` cuts an example to ``max_length`` tokens without ever
  cutting a prompt: the cut moves back to the end of the last trained token
  that fits, and an example whose first prompt does not fit with at least one
  trained token is dropped (and counted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.formats import ASSISTANT_ROLES, USER_ROLES, Format, resolve_format
from ..exceptions import DataFormatError
from ..prompts.templates import ChatTemplate, PromptTemplate, Rendered

__all__ = [
    "IGNORE_INDEX",
    "USER_ROLES",
    "Conversation",
    "EncodeStats",
    "Encoded",
    "conversations",
    "encode",
    "encode_dataset",
    "truncate",
]

#: The label of a token the loss ignores (PyTorch's ``CrossEntropyLoss`` default).
IGNORE_INDEX = -100
#: Roles read as the user in chat formats.


@dataclass(frozen=True)
class Conversation:
    """One training row as messages, with the Alpaca ``input`` of a flat row."""

    messages: tuple[dict[str, str], ...]
    input: str | None = None


@dataclass(frozen=True)
class Encoded:
    """Token ids and labels of one example (``labels[i] == -100``: not trained on)."""

    input_ids: list[int]
    labels: list[int]


@dataclass
class EncodeStats:
    """Token counts of an encoded dataset.

    Attributes
    ----------
    examples : int
        Rows read.
    kept : int
        Examples kept (after truncation and dropping).
    tokens : int
        Tokens of the kept examples, after truncation.
    trained_tokens : int
        Of these, the tokens with a label (assistant tokens).
    truncated : int
        Examples cut to ``max_length``.
    truncated_tokens : int
        Tokens removed from them.
    dropped : int
        Examples dropped because their first prompt alone reaches ``max_length``.
    dropped_rows : list of int
        The rows dropped (first 100).
    """

    examples: int = 0
    kept: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    truncated: int = 0
    truncated_tokens: int = 0
    dropped: int = 0
    dropped_rows: list[int] | None = None


def _str_or_empty(value: Any, row: int, column: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataFormatError(
            f"Row {row}: column {column!r} must be a string; got {type(value).__name__}."
        )
    return value


def conversations(dataset: Any, fmt: str | Format | None = None) -> list[Conversation]:
    """Read every row of ``dataset`` as a :class:`Conversation`.

    Parameters
    ----------
    dataset : datasets.Dataset
        Rows in any format :func:`sftselect.data.formats.resolve_format` understands.
    fmt : str, Format or None
        The format (None: detected from the columns).

    Returns
    -------
    list of Conversation
        Flat rows: one user turn (the instruction) and one assistant turn (the
        response), the input kept apart. Chat rows: ``human``/``user`` turns as
        user, the assistant roles of :data:`sftselect.data.formats.ASSISTANT_ROLES`
        as assistant, ``system`` as system; a leading assistant turn is
        skipped, as FastChat's ``preprocess`` does.

    Raises
    ------
    DataFormatError
        Naming the row: a null response, an unknown role, a turn that is not a
        string.
    """
    fmt = resolve_format(dataset, fmt, "conversations")
    out: list[Conversation] = []
    if not fmt.is_chat:
        columns = set(dataset.column_names)
        instr = dataset[fmt.instruction] if fmt.instruction else [None] * len(dataset)
        inputs = dataset[fmt.input] if fmt.input and fmt.input in columns else [None] * len(dataset)
        for row, (ins, inp, resp) in enumerate(zip(instr, inputs, dataset[fmt.response])):
            if resp is None:
                raise DataFormatError(
                    f"Row {row}: the response column {fmt.response!r} is null; expected a string."
                )
            messages = (
                {"role": "user", "content": _str_or_empty(ins, row, str(fmt.instruction))},
                {"role": "assistant", "content": _str_or_empty(resp, row, str(fmt.response))},
            )
            out.append(Conversation(messages, _str_or_empty(inp, row, str(fmt.input)) or None))
        return out
    for row, turns in enumerate(dataset[fmt.messages]):
        messages = []
        for i, turn in enumerate(turns or []):
            role = turn.get(fmt.role_key) if isinstance(turn, dict) else None
            content = turn.get(fmt.content_key) if isinstance(turn, dict) else None
            if role in USER_ROLES:
                role = "user"
            elif role in ASSISTANT_ROLES:
                role = "assistant"
            elif role != "system":
                raise DataFormatError(
                    f"Row {row}, turn {i}: role {role!r} is not a user role {list(USER_ROLES)}, "
                    f"an assistant role {list(ASSISTANT_ROLES)} or 'system'."
                )
            if not isinstance(content, str):
                raise DataFormatError(
                    f"Row {row}, turn {i}: {fmt.content_key!r} must be a string; got {content!r}."
                )
            messages.append({"role": role, "content": content})
        body = 1 if messages and messages[0]["role"] == "system" else 0
        if len(messages) > body and messages[body]["role"] == "assistant":
            del messages[body]  # FastChat skips a conversation's leading non-human turn
        out.append(Conversation(tuple(messages)))
    return out


def _char_starts(tokenizer: Any, texts: list[str]) -> tuple[list[list[int]], list[np.ndarray]]:
    """Token ids of each text and the character offset where each token starts."""
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    starts = [np.array([s for s, _ in offs], dtype=np.int64) for offs in enc["offset_mapping"]]
    return [list(ids) for ids in enc["input_ids"]], starts


def _labels_from_spans(
    ids: list[int], starts: np.ndarray, spans: tuple[tuple[int, int], ...], bos: bool, bos_id: Any
) -> Encoded:
    trained = np.zeros(len(ids), dtype=bool)
    for a, b in spans:
        trained |= (starts >= a) & (starts < b)
    labels = np.where(trained, np.asarray(ids, dtype=np.int64), IGNORE_INDEX).tolist()
    if bos:
        return Encoded([int(bos_id), *ids], [IGNORE_INDEX, *labels])
    return Encoded(list(ids), labels)


def _encode_slow(tokenizer: Any, rendered: Rendered) -> tuple[list[int], np.ndarray]:
    """Ids and token start offsets from prefix token counts (tokenizers without offsets)."""
    ids = list(tokenizer(rendered.text, add_special_tokens=False)["input_ids"])
    starts = np.full(len(ids), -1, dtype=np.int64)
    for a, b in rendered.spans:
        na = len(tokenizer(rendered.text[:a], add_special_tokens=False)["input_ids"])
        nb = len(tokenizer(rendered.text[:b], add_special_tokens=False)["input_ids"])
        starts[na:nb] = a  # tokens [na, nb) start inside [a, b)
    return ids, starts


def encode(
    template: PromptTemplate | ChatTemplate,
    tokenizer: Any,
    conversation: Conversation,
    *,
    where: str = "conversation",
) -> Encoded:
    """Render ``conversation`` with ``template`` and label its assistant tokens.

    Parameters
    ----------
    template : PromptTemplate or ChatTemplate
        The template (see :mod:`sftselect.prompts.templates`).
    tokenizer : tokenizer
        The model's tokenizer.
    conversation : Conversation
        The example.
    where : str
        What the example is ("row 3"), for error messages.

    Returns
    -------
    Encoded
        ``input_ids`` (BOS first for the built-in templates) and ``labels``.
    """
    return encode_many(template, tokenizer, [conversation], [where])[0]


def encode_many(
    template: PromptTemplate | ChatTemplate,
    tokenizer: Any,
    convs: list[Conversation],
    wheres: list[str],
) -> list[Encoded]:
    """:func:`encode` for many conversations, tokenized in one batch when possible."""
    rendered = [
        template.render(c.messages, tokenizer, input=c.input, where=w)
        for c, w in zip(convs, wheres)
    ]
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if getattr(tokenizer, "is_fast", False):
        ids_all, starts_all = _char_starts(tokenizer, [r.text for r in rendered])
    else:
        pairs = [_encode_slow(tokenizer, r) for r in rendered]
        ids_all, starts_all = [p[0] for p in pairs], [p[1] for p in pairs]
    return [
        _labels_from_spans(ids, starts, r.spans, r.add_bos and bos_id is not None, bos_id)
        for ids, starts, r in zip(ids_all, starts_all, rendered)
    ]


def truncate(example: Encoded, max_length: int) -> tuple[Encoded | None, int]:
    """Cut ``example`` to at most ``max_length`` tokens without cutting a prompt.

    Parameters
    ----------
    example : Encoded
        The example.
    max_length : int
        The most tokens kept.

    Returns
    -------
    (Encoded or None, int)
        The kept example (None: dropped, its first prompt does not fit with at
        least one trained token) and the number of tokens removed.
    """
    n = len(example.input_ids)
    if n <= max_length:
        return example, 0
    window = np.asarray(example.labels[:max_length]) != IGNORE_INDEX
    if not window.any():
        return None, n
    cut = int(np.flatnonzero(window)[-1]) + 1  # end at the last trained token that fits
    return Encoded(example.input_ids[:cut], example.labels[:cut]), n - cut


def encode_dataset(
    template: PromptTemplate | ChatTemplate,
    tokenizer: Any,
    convs: list[Conversation],
    max_length: int,
) -> tuple[list[Encoded], EncodeStats]:
    """Encode and truncate every conversation; count tokens, truncations and drops."""
    stats = EncodeStats(examples=len(convs), dropped_rows=[])
    kept: list[Encoded] = []
    chunk = 256
    for start in range(0, len(convs), chunk):
        part = convs[start : start + chunk]
        wheres = [f"Row {start + i}" for i in range(len(part))]
        for i, enc in enumerate(encode_many(template, tokenizer, part, wheres)):
            if all(label == IGNORE_INDEX for label in enc.labels):
                raise DataFormatError(
                    f"Row {start + i}: no token of the assistant's answer was found after "
                    "tokenization (an empty answer?); expected at least one."
                )
            out, removed = truncate(enc, max_length)
            if out is None:
                stats.dropped += 1
                if len(stats.dropped_rows) < 100:  # type: ignore[arg-type]
                    stats.dropped_rows.append(start + i)  # type: ignore[union-attr]
                continue
            if removed:
                stats.truncated += 1
                stats.truncated_tokens += removed
            kept.append(out)
            stats.tokens += len(out.input_ids)
            stats.trained_tokens += sum(1 for label in out.labels if label != IGNORE_INDEX)
    stats.kept = len(kept)
    return kept, stats
