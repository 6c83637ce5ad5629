"""``train``: supervised fine-tuning of a causal LM on a selected subset.

The loop is transformers' :class:`~transformers.Trainer` (the one the paper's
FastChat script used), fed with our own examples and collator: the loss is the
mean cross-entropy over assistant tokens only, across the whole optimizer
step (transformers normalises by the number of labelled tokens across the
gradient-accumulation micro-batches). The model is saved with its tokenizer
and ``training_log.json``: the settings, the template, the token counts,
truncations, the loss at every logged step, the throughput and the attention
implementation used (packed rows on ``sdpa`` run segment by segment,
:mod:`sftselect.train.attention`).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.validation import param_error
from ..data.formats import Format, check_dataset
from ..exceptions import DataFormatError, InvalidParameterError
from ..models.loading import import_torch, load_model, load_tokenizer, pad_id
from ..prompts.jinja import chat_template
from ..prompts.templates import get_template
from .arguments import build_arguments, check_world, world_size
from .attention import packed_attention
from .config import TrainConfig
from .examples import EncodeStats, conversations, encode_dataset
from .lora import (
    lora_record,
    quantization_options,
    resolve_lora,
    trainable_parameters,
    wrap,
)
from .neftune import neftune
from .packing import PackedCollator, PadCollator, pack

__all__ = ["LOG_NAME", "TrainResult", "train"]

_OWNER = "train"
#: The training log written beside the model.
LOG_NAME = "training_log.json"


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes
    ----------
    output_dir : pathlib.Path
        Where the model, tokenizer and log were written.
    losses : list of float
        The training loss at each logged step.
    steps : int
        Optimizer steps run.
    stats : EncodeStats
        Token counts, truncations and drops.
    train_seconds : float
        Wall time of the training loop.
    tokens_per_second : float
        Real (non-padding) tokens processed per second, over all epochs.
    log : dict
        The JSON training log.
    """

    output_dir: Path
    losses: list[float]
    steps: int
    stats: EncodeStats
    train_seconds: float
    tokens_per_second: float
    log: dict[str, Any] = field(repr=False)


def _losses(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The training-loss entries of the Trainer's log history (a resumed run's include
    the steps before the checkpoint: the history is restored with it), with the gradient
    norm and, when ``include_num_input_tokens_seen`` is on, the tokens seen so far."""
    out = []
    for h in log_history:
        if "loss" not in h or "step" not in h:
            continue
        entry = {
            "step": int(h["step"]),
            "epoch": float(h.get("epoch", 0.0)),
            "loss": float(h["loss"]),
            "learning_rate": float(h.get("learning_rate", 0.0)),
        }
        for extra in ("grad_norm", "num_input_tokens_seen"):
            if extra in h:
                entry[extra] = float(h[extra])
        out.append(entry)
    return out


def _epoch_of(checkpoint: str | None) -> float:
    """The epoch a checkpoint was written at (0 for None)."""
    if checkpoint is None:
        return 0.0
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
    return float(state.get("epoch") or 0.0)


def _checkpoint(resume: Any, out: Path) -> str | None:
    """The checkpoint folder to resume from: None, a path, or True (the newest in ``out``)."""
    if resume is None or resume is False:
        return None
    if resume is True:
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(str(out)) if out.is_dir() else None
        if last is None:
            raise InvalidParameterError(
                f"The 'resume_from_checkpoint' parameter of train is True, but {out} holds no "
                "checkpoint-<step> folder (set TrainConfig.checkpoint_every to write them)."
            )
        return last
    if isinstance(resume, (str, os.PathLike)) and (Path(resume) / "trainer_state.json").is_file():
        return os.fspath(resume)
    raise param_error(
        _OWNER,
        "resume_from_checkpoint",
        "None, True or a checkpoint folder holding trainer_state.json",
        resume,
    )


def _save_tokenizer(tok: Any, jinja: str | None, out: Path) -> None:
    """Save ``tok`` with the training template as its chat template (the object is left as
    it was), so ``apply_chat_template`` on the saved model renders the training prompt."""
    previous = getattr(tok, "chat_template", None)
    if jinja is not None:
        tok.chat_template = jinja
    try:
        tok.save_pretrained(str(out))
    finally:
        if jinja is not None:
            tok.chat_template = previous


@contextmanager
def _own_attention(net: Any) -> Iterator[str]:
    yield str(getattr(net.config, "_attn_implementation", None))


def train(
    model: Any,
    dataset: Any,
    output_dir: str | os.PathLike[str],
    *,
    config: TrainConfig | None = None,
    tokenizer: Any = None,
    format: str | Format | None = None,
    gguf_file: str | None = None,
    dtype: str | None = None,
    training_args: Any = None,
    resume_from_checkpoint: bool | str | os.PathLike[str] | None = None,
    lora: Any = None,
    quantization: str | None = None,
    eval_dataset: Any = None,
) -> TrainResult:
    """Fine-tune ``model`` on ``dataset`` and save it to ``output_dir``.

    Parameters
    ----------
    model : str, os.PathLike or PreTrainedModel
        A folder, hub name or ``.gguf`` file (loaded here), or a loaded model.
    dataset : datasets.Dataset
        Training rows in any format the core understands (alpaca, dolly,
        sharegpt, openai, custom), e.g. ``selector.select(pool)``.
    output_dir : str or os.PathLike
        Where the model, tokenizer and ``training_log.json`` go (created).
    config : TrainConfig or None
        Settings (None: ``TrainConfig()``); see :func:`~sftselect.train.long_is_more`.
    tokenizer : tokenizer, path or None
        None loads it from ``model``'s path.
    format : str, Format or None
        The data format (None: detected).
    gguf_file : str or None
        A GGUF file name inside the ``model`` folder.
    dtype : {"float32", "bfloat16", "float16"} or None
        Weights' dtype when loading (None: float32; mixed precision is ``config.bf16``).
    training_args : mapping, transformers.TrainingArguments or None
        Any other ``TrainingArguments`` field (DeepSpeed, FSDP, ``report_to``,
        ...): see :mod:`sftselect.train.arguments`. A field the config sets
        raises, naming the setting to use.
    resume_from_checkpoint : bool, path or None
        True: continue from the newest ``checkpoint-<step>`` in ``output_dir``
        (``TrainConfig.checkpoint_every`` writes them); a path: from that
        checkpoint. The config and data must be those of the interrupted run.
    lora : {"lora", "qlora"}, peft.LoraConfig or None
        Train LoRA adapters instead of every weight (:mod:`sftselect.train.lora`):
        only the adapters are saved; :func:`~sftselect.train.merge_lora` merges
        them. ``"qlora"`` loads the base in 4-bit (CUDA and bitsandbytes only).
    quantization : {"nf4"} or None
        Load the base model in 4-bit NF4 for LoRA (implied by ``lora="qlora"``).
    eval_dataset : datasets.Dataset or None
        Rows to evaluate on (encoded as the training rows), when
        ``training_args`` turns evaluation on (``{"eval_strategy": "steps",
        "eval_steps": N}``); the log's ``eval`` lists each ``eval_loss``.

    Returns
    -------
    TrainResult

    Raises
    ------
    InvalidParameterError
        A setting out of range (naming it).
    DataFormatError
        A row that cannot be read or rendered (naming the row), or no example
        left after truncation.
    """
    check_dataset(dataset, _OWNER)
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise param_error(_OWNER, "config", "a TrainConfig or None", config)
    world = world_size()
    accumulation = config.validate(world)
    if not isinstance(output_dir, (str, os.PathLike)) or not os.fspath(output_dir):
        raise param_error(_OWNER, "output_dir", "a non-empty path", output_dir)
    torch, transformers = import_torch(_OWNER)
    template = get_template(config.template, _OWNER)
    lora_config, quantization = resolve_lora(lora, quantization)
    options = (
        quantization_options(torch, transformers, quantization, config.bf16, model, config.use_cpu)
        if quantization is not None
        else None
    )
    tok = load_tokenizer(model, tokenizer, gguf_file, _OWNER)
    convs = conversations(dataset, format)
    examples, stats = encode_dataset(template, tok, convs, config.max_length)
    if not examples:
        raise DataFormatError(
            f"No example left: all {stats.examples} rows have a first prompt of "
            f"{config.max_length} tokens or more (max_length). Raise max_length."
        )
    pad = pad_id(tok, _OWNER)
    eval_rows: list[Any] | None = None
    if eval_dataset is not None:
        check_dataset(eval_dataset, _OWNER)
        eval_examples, _ = encode_dataset(
            template, tok, conversations(eval_dataset, format), config.max_length
        )
        if not eval_examples:
            raise DataFormatError(
                f"No eval example left: every row of eval_dataset has a first prompt of "
                f"{config.max_length} tokens or more (max_length)."
            )
        eval_rows = pack(eval_examples, config.max_length) if config.packing else eval_examples
    if config.packing:
        train_rows: list[Any] = pack(examples, config.max_length)
        collator: Any = PackedCollator(pad)
    else:
        train_rows = examples
        collator = PadCollator(pad)

    out = Path(output_dir)
    args = build_arguments(transformers, config, accumulation, out, training_args)
    check_world(args, world)
    resume = _checkpoint(resume_from_checkpoint, out)
    net = load_model(model, gguf_file, dtype, _OWNER, options)
    net.config.use_cache = False  # training: no KV cache (packing needs it off too)
    trained = (
        net
        if lora_config is None
        else wrap(net, lora_config, quantization is not None, config.gradient_checkpointing)
    )
    trainable, total = trainable_parameters(trained)
    trainer = transformers.Trainer(
        model=trained,
        args=args,
        train_dataset=train_rows,
        eval_dataset=eval_rows,
        data_collator=collator,
        processing_class=tok,
    )
    noise = (
        neftune(net, config.neftune_alpha, config.neftune_scale_length())
        if config.neftune_alpha is not None
        else contextlib.nullcontext()
    )
    with packed_attention(net) if config.packing else _own_attention(net) as attention, noise:
        start = time.perf_counter()
        output = trainer.train(resume_from_checkpoint=resume)
        seconds = time.perf_counter() - start
    history = _losses(trainer.state.log_history)
    steps = int(output.global_step)
    epochs_run = float(trainer.state.epoch or 0.0)
    real_tokens = stats.tokens * (epochs_run - _epoch_of(resume))
    net.config.use_cache = True
    out.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(out))  # on the main process only (args.should_save)
    if lora_config is not None and net is model:
        trained.unload()  # the caller's model object gets its own modules back
    log = {
        "sftselect_training_log": 1,
        "template": template.name,
        "config": config.to_dict(),
        "model": os.fspath(model) if isinstance(model, (str, os.PathLike)) else type(net).__name__,
        "gradient_accumulation_steps": accumulation,
        "world_size": world,
        "examples_per_step": config.micro_batch_size * accumulation * world,
        "resumed_from": resume,
        "lora": lora_record(lora_config) if lora_config is not None else None,
        "quantization": quantization,
        "trainable_parameters": trainable,
        "parameters": total,
        "examples": stats.examples,
        "kept": stats.kept,
        "rows": len(train_rows),
        "tokens": stats.tokens,
        "trained_tokens": stats.trained_tokens,
        "truncated": stats.truncated,
        "truncated_tokens": stats.truncated_tokens,
        "dropped": stats.dropped,
        "dropped_rows": stats.dropped_rows,
        "steps": steps,
        "epochs": epochs_run,
        "train_seconds": seconds,
        "tokens_per_second": real_tokens / seconds if seconds > 0 else 0.0,
        "attention": attention,
        "device": str(trainer.args.device),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "losses": history,
        "eval": [
            {"step": int(h["step"]), "eval_loss": float(h["eval_loss"])}
            for h in trainer.state.log_history
            if "eval_loss" in h and "step" in h
        ],
    }
    if trainer.is_world_process_zero():
        _save_tokenizer(tok, chat_template(template, tok), out)
        (out / LOG_NAME).write_text(json.dumps(log, indent=2), encoding="utf-8")
    return TrainResult(
        output_dir=out,
        losses=[h["loss"] for h in history],
        steps=steps,
        stats=stats,
        train_seconds=seconds,
        tokens_per_second=log["tokens_per_second"],
        log=log,
    )
