"""Hand a selected subset to TRL's ``SFTTrainer``, rendered and masked exactly as ``train`` does.

.. code-block:: python

    from trl import SFTConfig, SFTTrainer
    from sftselect.train import to_trl

    data = to_trl(subset, tokenizer, template="vicuna_v1.1", max_length=2048)
    SFTTrainer(model, args=SFTConfig(...), train_dataset=data, processing_class=tokenizer).train()

:func:`to_trl` returns a pre-tokenized :class:`datasets.Dataset` with
``input_ids`` and ``labels``: the token ids of each conversation rendered with
the training template and the labels of :mod:`sftselect.train.examples`
(-100 on every system, user and role token; labels from the template's
character spans, so FastChat-style templates are masked correctly), truncated
as ``train`` truncates (never inside a prompt; an example whose first prompt
fills ``max_length`` dropped). TRL (1.x) uses a ``labels`` column of a
pre-tokenized dataset as it is, so ``SFTTrainer`` trains on the same tokens with
the same loss mask as :func:`sftselect.train.train` (a test checks that the
losses of both agree step by step). What TRL does not get: NEFTune at a fixed
length (TRL's ``neftune_noise_alpha`` scales by each batch's width) and the
segment attention of packed rows (:mod:`sftselect.train.attention`).
"""

from __future__ import annotations

from typing import Any

from ..core.validation import check_positive_int
from ..data.formats import Format, check_dataset
from ..exceptions import DataFormatError
from ..prompts.templates import ChatTemplate, PromptTemplate, get_template
from .examples import conversations, encode_dataset

__all__ = ["to_trl"]

_OWNER = "to_trl"


def to_trl(
    dataset: Any,
    tokenizer: Any,
    *,
    template: str | PromptTemplate | ChatTemplate = "vicuna_v1.1",
    max_length: int = 2048,
    format: str | Format | None = None,
) -> Any:
    """``dataset`` as TRL's pre-tokenized ``input_ids`` and ``labels`` columns.

    Parameters
    ----------
    dataset : datasets.Dataset
        Rows in any format the core reads (alpaca, dolly, sharegpt, openai, custom).
    tokenizer : tokenizer
        The tokenizer of the model to train.
    template : str or template, default "vicuna_v1.1"
        The training template (:data:`sftselect.prompts.templates.TEMPLATES`).
    max_length : int, default 2048
        Tokens per example at most (truncated as :func:`sftselect.train.train` does).
    format : str, Format or None
        The data format (None: detected).

    Returns
    -------
    datasets.Dataset
        ``input_ids`` and ``labels`` per kept example, in the order of ``dataset``.

    Raises
    ------
    DataFormatError
        A row that cannot be read or rendered (naming it), or no example left.
    """
    from datasets import Dataset

    check_dataset(dataset, _OWNER)
    check_positive_int(max_length, "max_length", _OWNER)
    tmpl = get_template(template, _OWNER)
    examples, stats = encode_dataset(tmpl, tokenizer, conversations(dataset, format), max_length)
    if not examples:
        raise DataFormatError(
            f"No example left: all {stats.examples} rows have a first prompt of {max_length} "
            "tokens or more (max_length). Raise max_length."
        )
    return Dataset.from_dict(
        {
            "input_ids": [list(e.input_ids) for e in examples],
            "labels": [list(e.labels) for e in examples],
        }
    )
