"""Training settings (:class:`TrainConfig`) and the paper's preset (:func:`long_is_more`).

The ``long_is_more`` preset reproduces the settings of the paper's LLaMA-2-7B
run, ``training/scripts/train_llama2_7b.sh`` of
github.com/tml-epfl/long-is-more-for-alignment (line numbers of that file):

==================== =========== ===================================================
setting              value       source
==================== =========== ===================================================
epochs               15          line 6 ``--num_train_epochs 15``
micro_batch_size     2           line 7 ``--per_device_train_batch_size 2``
batch_size           128         lines 1, 7, 9: 4 GPUs x 2 x ``--gradient_accumulation_steps 16``
neftune_alpha        15          line 10 ``--neftune_noise_alpha 15`` (a parameter; None: off)
neftune_length       max_length  the noise scaled as for rows padded to 2048, as the script's were
learning_rate        1e-5        line 14 ``--learning_rate 1e-5`` (7B)
weight_decay         0.1         line 15 ``--weight_decay 0.1``
lr_scheduler         linear      line 16 ``--lr_scheduler_type "linear"``
adam_beta1, _beta2   0.9, 0.95   lines 17-18
bf16                 True        line 4 ``--bf16 True``
max_length           2048        line 23 ``--model_max_length 2048``
gradient_checkpoint  True        line 24 ``--gradient_checkpointing True``
warmup_steps         0           not set in the script: the transformers default, 0
optim                adamw_torch ``training/fastchat/train/train.py``, ``TrainingArguments.optim``
template             vicuna_v1.1 ``train.py``: ``get_conversation_template("vicuna")``
max_grad_norm        1.0         not set: the transformers default
==================== =========== ===================================================

The paper's script pads every example to 2048 tokens (``padding="max_length"``);
here batches are padded to their longest example (same loss, less compute), or
packed. NEFTune's noise depends on the padded length (see
:mod:`sftselect.train.neftune`), so the preset scales it for ``max_length`` to
keep the script's noise. Everything is overridable: ``dataclasses.replace(long_is_more(), epochs=3)``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..core.validation import (
    check_choice,
    check_non_negative_int,
    check_non_negative_real,
    check_positive_int,
    check_positive_real,
    param_error,
)
from ..prompts.templates import TEMPLATES

__all__ = ["PRESETS", "SCHEDULERS", "TrainConfig", "get_preset", "long_is_more"]

SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
_OWNER = "TrainConfig"


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one supervised fine-tuning run.

    Parameters
    ----------
    template : str, default "vicuna_v1.1"
        The prompt template (:data:`sftselect.prompts.templates.TEMPLATES`).
    max_length : int, default 2048
        Tokens per example (or per packed row) at most; longer examples are
        truncated without cutting a prompt.
    packing : bool, default False
        Pack several examples into each row (see :mod:`sftselect.train.packing`).
    epochs : float, default 3.0
        Passes over the data (ignored when ``max_steps`` is set).
    max_steps : int or None
        Optimizer steps; overrides ``epochs``.
    learning_rate : float, default 2e-5
        Peak learning rate.
    lr_scheduler : {"linear", "cosine", "constant", "constant_with_warmup"}
        The learning-rate schedule after warm-up.
    warmup_steps : int, default 0
        Linear warm-up steps.
    weight_decay : float, default 0.0
        AdamW weight decay (not applied to biases and norm weights, as in
        transformers' ``Trainer``).
    adam_beta1, adam_beta2, adam_epsilon : float
        AdamW's betas and epsilon.
    max_grad_norm : float or None, default 1.0
        Gradient clipping (None: off).
    batch_size : int, default 8
        Examples (rows, when packing) per optimizer step, across devices.
    micro_batch_size : int, default 1
        Examples per forward pass per device; ``batch_size`` must be a multiple
        of ``micro_batch_size`` times the number of devices (the quotient is
        the gradient-accumulation count).
    bf16 : bool, default False
        bfloat16 mixed precision.
    gradient_checkpointing : bool, default False
        Recompute activations in the backward pass (less memory, ~30% slower).
    neftune_alpha : float or None
        NEFTune noise scale (None: off).
    neftune_length : int, "max_length" or None, default None
        The sequence length NEFTune's noise is scaled for (``alpha /
        sqrt(length * d)``): None each batch's padded width (transformers'
        NEFTune), ``"max_length"`` this config's ``max_length`` (what a run
        that pads every example to ``max_length`` gets, as the paper's did).
    optim : str, default "adamw_torch"
        The transformers optimizer name.
    random_state : int, default 42
        Seed of the weight init of new heads, the data order and NEFTune noise
        (transformers' default; passed as ``TrainingArguments(seed=...)`` and
        recorded as ``seed`` in the training log).
    logging_steps : int, default 1
        Log the loss every this many steps.
    use_cpu : bool, default False
        Train on the CPU even when a GPU is present.
    checkpoint_every : int, "epoch" or None, default None
        Write a checkpoint (``output_dir/checkpoint-<step>``: weights or
        adapters, optimizer, scheduler, RNG and data-order state) every this
        many optimizer steps, or at the end of each epoch; None writes none.
        ``train(..., resume_from_checkpoint=True)`` continues from the last one.
    checkpoint_limit : int or None, default None
        Keep only the newest this many checkpoints (None: all).
    """

    template: str = "vicuna_v1.1"
    max_length: int = 2048
    packing: bool = False
    epochs: float = 3.0
    max_steps: int | None = None
    learning_rate: float = 2e-5
    lr_scheduler: str = "linear"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float | None = 1.0
    batch_size: int = 8
    micro_batch_size: int = 1
    bf16: bool = False
    gradient_checkpointing: bool = False
    neftune_alpha: float | None = None
    neftune_length: int | str | None = None
    optim: str = "adamw_torch"
    random_state: int = 42
    logging_steps: int = 1
    use_cpu: bool = False
    checkpoint_every: int | str | None = None
    checkpoint_limit: int | None = None

    def validate(self, world_size: int = 1) -> int:
        """Check every setting; return the gradient-accumulation count.

        Parameters
        ----------
        world_size : int, default 1
            Data-parallel processes (``train`` reads it from the launcher's
            ``WORLD_SIZE``): ``batch_size`` is split across them.

        Raises
        ------
        InvalidParameterError
            Naming the setting, what it must be and what it was.
        """
        check_choice(self.template, "template", _OWNER, tuple(TEMPLATES))
        check_positive_int(self.max_length, "max_length", _OWNER)
        for name in ("packing", "bf16", "gradient_checkpointing", "use_cpu"):
            if not isinstance(getattr(self, name), bool):
                raise param_error(_OWNER, name, "a bool", getattr(self, name))
        check_positive_real(self.epochs, "epochs", _OWNER)
        if self.max_steps is not None:
            check_positive_int(self.max_steps, "max_steps", _OWNER)
        check_positive_real(self.learning_rate, "learning_rate", _OWNER)
        check_choice(self.lr_scheduler, "lr_scheduler", _OWNER, SCHEDULERS)
        check_non_negative_int(self.warmup_steps, "warmup_steps", _OWNER)
        check_non_negative_real(self.weight_decay, "weight_decay", _OWNER)
        for name in ("adam_beta1", "adam_beta2"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
                raise param_error(_OWNER, name, "a number in [0, 1)", value)
        check_positive_real(self.adam_epsilon, "adam_epsilon", _OWNER)
        check_positive_real(self.max_grad_norm, "max_grad_norm", _OWNER, allow_none=True)
        check_positive_int(self.batch_size, "batch_size", _OWNER)
        check_positive_int(self.micro_batch_size, "micro_batch_size", _OWNER)
        check_positive_real(self.neftune_alpha, "neftune_alpha", _OWNER, allow_none=True)
        length = self.neftune_length
        if length not in (None, "max_length") and (
            isinstance(length, bool) or not isinstance(length, numbers.Integral) or length <= 0
        ):
            raise param_error(
                _OWNER, "neftune_length", "a positive int, 'max_length' or None", length
            )
        if not isinstance(self.optim, str) or not self.optim:
            raise param_error(_OWNER, "optim", "a transformers optimizer name", self.optim)
        check_non_negative_int(self.random_state, "random_state", _OWNER)
        check_positive_int(self.logging_steps, "logging_steps", _OWNER)
        every = self.checkpoint_every
        if every not in (None, "epoch") and (
            isinstance(every, bool) or not isinstance(every, numbers.Integral) or every <= 0
        ):
            raise param_error(_OWNER, "checkpoint_every", "a positive int, 'epoch' or None", every)
        if self.checkpoint_limit is not None:
            check_positive_int(self.checkpoint_limit, "checkpoint_limit", _OWNER)
        per_step = self.micro_batch_size * world_size
        if self.batch_size % per_step:
            raise param_error(
                _OWNER,
                "batch_size",
                f"a multiple of micro_batch_size x devices ({self.micro_batch_size} x "
                f"{world_size} = {per_step})",
                self.batch_size,
            )
        return self.batch_size // per_step

    def neftune_scale_length(self) -> int | None:
        """The length NEFTune's noise is scaled for (None: each batch's width)."""
        return self.max_length if self.neftune_length == "max_length" else self.neftune_length

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict (the training log's ``config``).

        ``random_state`` is written as ``seed``, the log's field name.
        """
        out = {("seed" if k == "random_state" else k): v for k, v in asdict(self).items()}
        if isinstance(out["epochs"], float) and math.isfinite(out["epochs"]):
            out["epochs"] = float(out["epochs"])
        return out


def long_is_more(*, neftune_alpha: float | None = 15.0) -> TrainConfig:
    """The paper's LLaMA-2-7B settings (see the module docstring for each source).

    Parameters
    ----------
    neftune_alpha : float or None, default 15.0
        NEFTune's noise alpha (the script's value); None turns NEFTune off.

    Returns
    -------
    TrainConfig
    """
    return TrainConfig(
        template="vicuna_v1.1",
        max_length=2048,
        packing=False,
        epochs=15.0,
        learning_rate=1e-5,
        lr_scheduler="linear",
        warmup_steps=0,
        weight_decay=0.1,
        adam_beta1=0.9,
        adam_beta2=0.95,
        max_grad_norm=1.0,
        batch_size=128,
        micro_batch_size=2,
        bf16=True,
        gradient_checkpointing=True,
        neftune_alpha=neftune_alpha,
        neftune_length="max_length",
        optim="adamw_torch",
    )


#: Presets by name (the ``--preset`` of ``sftselect train``).
PRESETS = {"long_is_more": long_is_more, "default": TrainConfig}


def get_preset(name: str, owner: str = "get_preset") -> TrainConfig:
    """The preset called ``name`` (``"long_is_more"`` or ``"default"``)."""
    if name not in PRESETS:
        raise param_error(owner, "preset", f"one of {sorted(PRESETS)}", name)
    return PRESETS[name]()


def with_changes(config: TrainConfig, changes: dict[str, Any]) -> TrainConfig:
    """``config`` with the non-None entries of ``changes`` replaced."""
    return replace(config, **{k: v for k, v in changes.items() if v is not None})
