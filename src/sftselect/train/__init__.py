"""Supervised fine-tuning on a selected subset (torch is imported only when training runs).

.. code-block:: python

    from sftselect.train import long_is_more, train

    subset = LengthSelector(k=1000).select(pool)
    result = train("meta-llama/Llama-2-7b-hf", subset, "out/llama2-1k-longest",
                   config=long_is_more())
    result.losses          # the loss at every step; also in out/.../training_log.json

Modules: :mod:`~sftselect.train.config` (settings and the paper's preset),
:mod:`~sftselect.train.examples` (rows to token ids and labels, truncation),
:mod:`~sftselect.train.packing` (padding and packing collators),
:mod:`~sftselect.train.trainer` (the ``train`` function),
:mod:`~sftselect.train.arguments` (``TrainingArguments``, world size, pass-through),
:mod:`~sftselect.train.lora` (LoRA/QLoRA presets, ``merge_lora``),
:mod:`~sftselect.train.trl` (``to_trl``: a subset for TRL's ``SFTTrainer``),
:mod:`~sftselect.models.loading` (loading a model and tokenizer).
"""

from .config import PRESETS, TrainConfig, get_preset, long_is_more
from .examples import (
    IGNORE_INDEX,
    Conversation,
    Encoded,
    EncodeStats,
    conversations,
    encode,
    encode_dataset,
    truncate,
)
from .lora import LORA_PRESETS, merge_lora
from .packing import PackedCollator, PackedRow, PadCollator, pack
from .trainer import LOG_NAME, TrainResult, train
from .trl import to_trl

__all__ = [
    "IGNORE_INDEX",
    "LOG_NAME",
    "LORA_PRESETS",
    "PRESETS",
    "Conversation",
    "EncodeStats",
    "Encoded",
    "PackedCollator",
    "PackedRow",
    "PadCollator",
    "TrainConfig",
    "TrainResult",
    "conversations",
    "encode",
    "encode_dataset",
    "get_preset",
    "long_is_more",
    "merge_lora",
    "pack",
    "to_trl",
    "train",
    "truncate",
]
