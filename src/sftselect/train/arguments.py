"""transformers ``TrainingArguments`` from a :class:`~sftselect.train.TrainConfig`,
the launcher's world size, and any other field a user passes through.

Every field the config sets comes from one :class:`TrainConfig` setting (the
``long_is_more`` preset's sources are in :mod:`sftselect.train.config`), so a
pass-through field may not set it again: ``training_args={"learning_rate": ...}``
raises, naming the setting to change instead. Every other ``TrainingArguments``
field passes through (DeepSpeed or FSDP settings, ``report_to``, evaluation,
``torch_compile``, ...). The defaults this module picks for fields the config
does not hold (``report_to="none"``, ``eval_strategy="no"``,
``disable_tqdm=True``, ``dataloader_num_workers=0``) are overridden by a
pass-through value.

**World size.** ``batch_size`` is the number of examples per optimizer step
across all data-parallel processes. :func:`world_size` reads ``WORLD_SIZE``,
which ``torchrun``, ``accelerate launch`` and the DeepSpeed launcher set for
each process (absent: one process), and the gradient-accumulation count is
``batch_size / (micro_batch_size x world_size)``. After the arguments are
built, :func:`check_world` compares this with transformers' own
``args.world_size`` (its count of data-parallel processes) and raises on a
mismatch, so a launcher that splits the processes otherwise (tensor or
sequence parallelism) is refused rather than training on another batch size.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.validation import param_error
from ..exceptions import InvalidParameterError
from .config import TrainConfig

__all__ = ["OWNED", "build_arguments", "check_world", "world_size"]

_OWNER = "train"

#: TrainingArguments fields set from the config or train()'s own parameters, and by what.
OWNED: dict[str, str] = {
    "output_dir": "train()'s output_dir",
    "num_train_epochs": "TrainConfig.epochs",
    "max_steps": "TrainConfig.max_steps",
    "per_device_train_batch_size": "TrainConfig.micro_batch_size",
    "gradient_accumulation_steps": "TrainConfig.batch_size (examples per step on all devices)",
    "learning_rate": "TrainConfig.learning_rate",
    "lr_scheduler_type": "TrainConfig.lr_scheduler",
    "warmup_steps": "TrainConfig.warmup_steps",
    "weight_decay": "TrainConfig.weight_decay",
    "adam_beta1": "TrainConfig.adam_beta1",
    "adam_beta2": "TrainConfig.adam_beta2",
    "adam_epsilon": "TrainConfig.adam_epsilon",
    "max_grad_norm": "TrainConfig.max_grad_norm",
    "bf16": "TrainConfig.bf16",
    "activation_checkpointing": "TrainConfig.gradient_checkpointing",
    "gradient_checkpointing": "TrainConfig.gradient_checkpointing",
    "neftune_noise_alpha": "TrainConfig.neftune_alpha (sftselect's own NEFTune)",
    "optim": "TrainConfig.optim",
    "seed": "TrainConfig.random_state",
    "logging_steps": "TrainConfig.logging_steps",
    "use_cpu": "TrainConfig.use_cpu",
    "save_strategy": "TrainConfig.checkpoint_every",
    "save_steps": "TrainConfig.checkpoint_every",
    "save_total_limit": "TrainConfig.checkpoint_limit",
    "resume_from_checkpoint": "train()'s resume_from_checkpoint",
    "remove_unused_columns": "train() (its collator reads the encoded examples)",
}

_DEFAULTS: dict[str, Any] = {
    "eval_strategy": "no",
    "report_to": "none",
    "disable_tqdm": True,
    "dataloader_num_workers": 0,
}


def world_size(environ: Mapping[str, str] | None = None) -> int:
    """Data-parallel processes of this launch: ``WORLD_SIZE`` (torchrun, accelerate,
    DeepSpeed), 1 when it is not set.

    Raises
    ------
    InvalidParameterError
        ``WORLD_SIZE`` is set to something other than a positive integer.
    """
    env = os.environ if environ is None else environ
    raw = env.get("WORLD_SIZE")
    if raw is None or raw == "":
        return 1
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise InvalidParameterError(
            f"The WORLD_SIZE environment variable must be a positive integer (set by torchrun "
            f"or accelerate launch). Got {raw!r} instead."
        )
    return value


def _fields(transformers: Any) -> dict[str, Any]:
    return {f.name: f for f in dataclasses.fields(transformers.TrainingArguments) if f.init}


def _as_mapping(extra: Any, transformers: Any, output_dir: Path) -> dict[str, Any]:
    """The pass-through fields of ``extra`` (a mapping, a TrainingArguments or None)."""
    if extra is None:
        return {}
    fields = _fields(transformers)
    if isinstance(extra, transformers.TrainingArguments):
        # the fields set to something other than a fresh TrainingArguments' value
        default = transformers.TrainingArguments()
        given = {
            name: getattr(extra, name)
            for name in fields
            if getattr(extra, name) != getattr(default, name)
        }
        if "output_dir" in given and Path(given.pop("output_dir")) != output_dir:
            raise param_error(
                _OWNER,
                "training_args",
                f"a TrainingArguments whose output_dir is unset or train()'s output_dir "
                f"({output_dir})",
                extra.output_dir,
            )
    elif isinstance(extra, Mapping):
        given = dict(extra)
    else:
        raise param_error(_OWNER, "training_args", "a mapping, a TrainingArguments or None", extra)
    for name in given:
        if not isinstance(name, str) or name not in fields:
            raise param_error(
                _OWNER, "training_args", "TrainingArguments field names", f"the key {name!r}"
            )
        if name in OWNED:
            raise InvalidParameterError(
                f"The 'training_args' parameter of train sets {name!r}, which is set by "
                f"{OWNED[name]}; set it there instead."
            )
    return {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in given.items()}


def build_arguments(
    transformers: Any,
    config: TrainConfig,
    accumulation: int,
    output_dir: Path,
    extra: Any,
) -> Any:
    """``TrainingArguments`` for ``config`` (and ``accumulation`` steps), plus ``extra``."""
    fields = _fields(transformers)
    checkpointing = (
        "activation_checkpointing"
        if "activation_checkpointing" in fields
        else "gradient_checkpointing"
    )
    every = config.checkpoint_every
    if every is None:
        saving: dict[str, Any] = {"save_strategy": "no"}
    elif every == "epoch":
        saving = {"save_strategy": "epoch"}
    else:
        saving = {"save_strategy": "steps", "save_steps": int(every)}
    owned: dict[str, Any] = {
        "output_dir": str(output_dir),
        "num_train_epochs": float(config.epochs),
        "max_steps": config.max_steps if config.max_steps is not None else -1,
        "per_device_train_batch_size": config.micro_batch_size,
        "gradient_accumulation_steps": accumulation,
        "learning_rate": config.learning_rate,
        "lr_scheduler_type": config.lr_scheduler,
        "warmup_steps": config.warmup_steps,
        "weight_decay": config.weight_decay,
        "adam_beta1": config.adam_beta1,
        "adam_beta2": config.adam_beta2,
        "adam_epsilon": config.adam_epsilon,
        "max_grad_norm": config.max_grad_norm if config.max_grad_norm is not None else 0.0,
        "bf16": config.bf16,
        checkpointing: config.gradient_checkpointing,
        "neftune_noise_alpha": None,  # our own hook: the noise's length is a setting
        "optim": config.optim,
        "seed": config.random_state,
        "logging_steps": config.logging_steps,
        "use_cpu": config.use_cpu,
        "save_total_limit": config.checkpoint_limit,
        "remove_unused_columns": False,
        **saving,
    }
    kwargs = {**_DEFAULTS, **_as_mapping(extra, transformers, output_dir), **owned}
    return transformers.TrainingArguments(**kwargs)


def check_world(args: Any, expected: int) -> None:
    """Raise when transformers counts another number of data-parallel processes than
    ``WORLD_SIZE`` (the batch size would not be the configured one)."""
    got = int(getattr(args, "world_size", 1))
    if got != expected:
        raise InvalidParameterError(
            f"train computed the gradient accumulation for WORLD_SIZE={expected} processes, "
            f"but transformers trains on {got} data-parallel processes; launch with torchrun "
            "or accelerate launch (one process per device) so that batch_size holds."
        )
