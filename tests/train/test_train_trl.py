"""to_trl: a selected subset for TRL's SFTTrainer, tokenized and masked exactly as train() does."""

from __future__ import annotations

import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from sftselect.data.io import load_data  # noqa: E402
from sftselect.exceptions import DataFormatError  # noqa: E402
from sftselect.prompts.templates import VICUNA_V1_1  # noqa: E402
from sftselect.train import TrainConfig, conversations, encode_dataset, to_trl, train  # noqa: E402
from tests.helpers.paths import require_shared_data  # noqa: E402
from tests.helpers.tiny_llama import spm_tokenizer, tiny_llama  # noqa: E402


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return spm_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def rows():
    shared = require_shared_data()
    return load_data(shared / "paper" / "filtered_alpaca_1k_longest.json").select(range(12))


def test_to_trl_holds_the_training_examples(tok, rows):
    """Real 1k-longest records: the columns are train()'s encoded ids and labels, truncated
    the same way; a max_length no prompt fits in raises."""
    data = to_trl(rows, tok, max_length=160)
    examples, stats = encode_dataset(VICUNA_V1_1, tok, conversations(rows), 160)
    assert data.column_names == ["input_ids", "labels"] and len(data) == stats.kept
    assert data["input_ids"] == [e.input_ids for e in examples]
    assert data["labels"] == [e.labels for e in examples]
    assert stats.truncated > 0 and all(len(x) <= 160 for x in data["input_ids"])
    with pytest.raises(DataFormatError, match="No example left"):
        to_trl(rows, tok, max_length=4)


def test_sfttrainer_on_to_trl_gives_train_losses(tok, rows, tmp_path):
    """TRL's SFTTrainer on to_trl(...) and train() with the same settings and seed log the
    same loss at each of 3 steps (same tokens, same mask, same order)."""
    trl = pytest.importorskip("trl")
    config = TrainConfig(
        max_length=160, max_steps=3, batch_size=4, micro_batch_size=4, learning_rate=1e-3
    )
    config = TrainConfig(**{**config.__dict__, "use_cpu": True})
    ours = train(tiny_llama(tok), rows, tmp_path / "ours", tokenizer=tok, config=config)
    args = trl.SFTConfig(
        output_dir=str(tmp_path / "trl"),
        max_steps=3,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        lr_scheduler_type="linear",
        adam_beta2=0.999,
        max_grad_norm=1.0,
        seed=42,
        logging_steps=1,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        max_length=160,
        packing=False,
    )
    trainer = trl.SFTTrainer(
        tiny_llama(tok),
        args=args,
        train_dataset=to_trl(rows, tok, max_length=160),
        processing_class=tok,
    )
    trainer.train()
    theirs = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(theirs) == 3
    assert theirs == pytest.approx(ours.losses, rel=1e-5)
