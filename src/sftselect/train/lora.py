"""LoRA and QLoRA through PEFT: adapter presets, 4-bit loading, and merging adapters.

``train(..., lora="lora")`` trains low-rank adapters on every linear layer
(the base weights frozen) and saves only the adapters
(``adapter_model.safetensors``, ``adapter_config.json``) with the tokenizer
and training log; :func:`merge_lora` folds them into the base weights and
writes a plain model folder that any server loads. ``lora="qlora"`` also loads
the base model in 4-bit NF4 (bitsandbytes, CUDA only); anywhere else it is
refused with the reason.

The presets are the defaults of the QLoRA reference script,
``qlora.py`` of github.com/artidoro/qlora at commit
``00e5ad2a75bccb5d7afee3e8186b783385052315`` (``ModelArguments``/``TrainingArguments``
fields):

============= ========== =============================================================
setting       value      source in qlora.py
============= ========== =============================================================
r             64         ``lora_r: int = field(default=64)``
lora_alpha    16         ``lora_alpha: float = field(default=16)``
lora_dropout  0.0        ``lora_dropout: float = field(default=0.0)``
target        all-linear ``find_all_linear_names``: every Linear but ``lm_head``
                         (PEFT's ``"all-linear"`` is the same rule)
bias          "none"     ``LoraConfig(..., bias="none", task_type="CAUSAL_LM")``
quant_type    nf4        ``quant_type`` default ``"nf4"`` (qlora only)
double_quant  True       ``double_quant`` default True (qlora only)
compute dtype bf16/fp32  ``bnb_4bit_compute_dtype``: bfloat16 with ``--bf16``, else float32
============= ========== =============================================================

The script's optimisation settings (learning rate 2e-4, constant schedule,
``max_grad_norm`` 0.3, ``paged_adamw_32bit``) are not part of the adapter
preset: they are :class:`~sftselect.train.TrainConfig` settings, and the
``long_is_more`` preset's learning rate (1e-5, for full fine-tuning) is far
too small for adapters. Set them with ``dataclasses.replace``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..core.extras import require_extra
from ..core.validation import param_error
from ..exceptions import InvalidParameterError

__all__ = ["LORA_PRESETS", "QUANTIZATIONS", "merge_lora", "resolve_lora", "trainable_parameters"]

_OWNER = "train"

#: The adapter settings of each preset (see the module docstring for their source).
LORA_PRESETS: dict[str, dict[str, Any]] = {
    "lora": {
        "r": 64,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "target_modules": "all-linear",
        "bias": "none",
        "task_type": "CAUSAL_LM",
    },
    "qlora": {
        "r": 64,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "target_modules": "all-linear",
        "bias": "none",
        "task_type": "CAUSAL_LM",
    },
}

#: Base-model quantizations: 4-bit NormalFloat with double quantization (QLoRA).
QUANTIZATIONS = ("nf4",)


def _peft() -> Any:
    return require_extra("peft", "lora", "LoRA training (train(lora=...)) and merge_lora")


def resolve_lora(lora: Any, quantization: Any) -> tuple[Any, str | None]:
    """The ``peft.LoraConfig`` for ``lora`` (a preset name or a config) and the quantization.

    ``lora="qlora"`` implies ``quantization="nf4"``. Quantization without
    adapters is refused (4-bit weights cannot be trained directly).
    """
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise param_error(
            _OWNER, "quantization", f"one of {list(QUANTIZATIONS)} or None", quantization
        )
    if lora is None:
        if quantization is not None:
            raise InvalidParameterError(
                f"The 'quantization' parameter of train is {quantization!r}, which needs LoRA "
                "adapters (4-bit weights are frozen); pass lora='qlora' or a peft.LoraConfig."
            )
        return None, None
    peft = _peft()
    if isinstance(lora, str):
        if lora not in LORA_PRESETS:
            raise param_error(
                _OWNER, "lora", f"one of {sorted(LORA_PRESETS)}, a peft.LoraConfig or None", lora
            )
        if lora == "qlora" and quantization is None:
            quantization = "nf4"
        return peft.LoraConfig(**LORA_PRESETS[lora]), quantization
    if isinstance(lora, peft.LoraConfig):
        return lora, quantization
    raise param_error(
        _OWNER, "lora", f"one of {sorted(LORA_PRESETS)}, a peft.LoraConfig or None", lora
    )


def quantization_options(
    torch: Any, transformers: Any, quantization: str, bf16: bool, model: Any, use_cpu: bool
) -> dict[str, Any]:
    """``from_pretrained`` options loading the base in 4-bit NF4 on this process's GPU.

    Raises
    ------
    InvalidParameterError
        With the one reason it cannot run here: no bitsandbytes, no CUDA
        device (or ``use_cpu``), or a model that is already loaded.
    """
    if use_cpu:
        raise InvalidParameterError(
            "QLoRA (4-bit) needs a CUDA GPU; TrainConfig.use_cpu is True. Use lora='lora'."
        )
    if not torch.cuda.is_available():
        raise InvalidParameterError(
            "QLoRA (4-bit) needs a CUDA GPU and none is available here. Use lora='lora'."
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise InvalidParameterError(
            f"QLoRA (4-bit) needs bitsandbytes ({exc}); `pip install 'sftselect[qlora]'`."
        ) from exc
    if not isinstance(model, (str, os.PathLike)):
        raise InvalidParameterError(
            "QLoRA (4-bit) loads the base model itself; pass its path or hub name as 'model', "
            f"not a loaded {type(model).__name__}."
        )
    compute = torch.bfloat16 if bf16 else torch.float32
    config = transformers.BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quantization,
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    return {"quantization_config": config, "device_map": {"": local_rank}}


def wrap(net: Any, lora_config: Any, quantized: bool, gradient_checkpointing: bool) -> Any:
    """``net`` with trainable LoRA adapters (the base frozen)."""
    peft = _peft()
    if quantized:
        net = peft.prepare_model_for_kbit_training(
            net, use_gradient_checkpointing=gradient_checkpointing
        )
    elif gradient_checkpointing:
        # the frozen embeddings give no grad to checkpointed blocks without this
        net.enable_input_require_grads()
    return peft.get_peft_model(net, lora_config)


def trainable_parameters(net: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts of ``net``."""
    trainable = total = 0
    for p in net.parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return trainable, total


def lora_record(lora_config: Any) -> dict[str, Any]:
    """The adapter settings as JSON (sets as sorted lists)."""
    out = {}
    for key, value in lora_config.to_dict().items():
        if isinstance(value, set):
            value = sorted(value)
        try:
            json.dumps(value)
        except TypeError:
            value = repr(value)
        out[key] = value
    return out


def merge_lora(
    adapters: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    base: Any = None,
    gguf_file: str | None = None,
    dtype: str | None = None,
) -> Path:
    """Fold the LoRA adapters trained by ``train(..., lora=...)`` into the base weights.

    Parameters
    ----------
    adapters : str or os.PathLike
        The folder ``train`` wrote (adapters, tokenizer, ``training_log.json``).
    output_dir : str or os.PathLike
        Where the merged model goes: weights, config, the tokenizer (with its
        chat template) and the training log (plus ``merged_from``).
    base : str, os.PathLike, PreTrainedModel or None
        The base model; None: the ``model`` recorded in the training log.
    gguf_file : str or None
        A GGUF file inside a ``base`` folder.
    dtype : {"float32", "bfloat16", "float16"} or None
        The dtype of the base (and merged) weights (None: float32). Merge into
        full-precision weights, not the 4-bit ones QLoRA trained on.

    Returns
    -------
    pathlib.Path
        ``output_dir``.
    """
    from ..models.loading import load_model, load_tokenizer

    peft = _peft()
    folder = Path(adapters)
    if not (folder / "adapter_config.json").is_file():
        raise param_error(
            "merge_lora", "adapters", "a folder holding adapter_config.json", os.fspath(adapters)
        )
    log_file = folder / "training_log.json"
    log = json.loads(log_file.read_text(encoding="utf-8")) if log_file.is_file() else {}
    if base is None:
        base = log.get("model")
        if not isinstance(base, str):
            raise InvalidParameterError(
                f"The 'base' parameter of merge_lora is required: {log_file} records no base "
                "model path."
            )
    net = load_model(base, gguf_file, dtype, "merge_lora")
    merged = peft.PeftModel.from_pretrained(net, str(folder)).merge_and_unload()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    _save_plain(merged, out)
    tok = load_tokenizer(str(folder), None, None, "merge_lora")
    tok.save_pretrained(str(out))
    if log:
        log["merged_from"] = os.fspath(folder)
        (out / "training_log.json").write_text(json.dumps(log, indent=2), encoding="utf-8")
    for extra in ("chat_template.jinja",):
        if (folder / extra).is_file() and not (out / extra).is_file():
            shutil.copy(folder / extra, out / extra)
    return out


def _save_plain(net: Any, out: Path) -> None:
    """``save_pretrained`` of a plain copy of ``net`` (built from its config), so that a
    model loaded from GGUF (which refuses ``save_pretrained``) saves too."""
    import transformers

    config = net.config
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    plain = transformers.AutoModelForCausalLM.from_config(config, dtype=net.dtype)
    plain.load_state_dict(net.state_dict())
    if getattr(net, "generation_config", None) is not None:
        plain.generation_config = net.generation_config
    plain.save_pretrained(str(out))
