"""Multi-process batches (torchrun, gloo on CPU), checkpoints and resuming a killed run,
and TrainingArguments passed through."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from safetensors.torch import load_file  # noqa: E402

from sftselect.data.sample import load_sample  # noqa: E402
from sftselect.exceptions import InvalidParameterError  # noqa: E402
from sftselect.train import TrainConfig, train  # noqa: E402
from sftselect.train.arguments import OWNED, world_size  # noqa: E402
from tests.helpers.paths import REPO  # noqa: E402
from tests.helpers.tiny_llama import spm_tokenizer, tiny_llama  # noqa: E402

TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny LLaMA and its tokenizer saved in a folder, and 16 bundled Alpaca records."""
    folder = tmp_path_factory.mktemp("base")
    tok = spm_tokenizer(folder)
    tiny_llama(tok).save_pretrained(folder)
    tok.save_pretrained(folder)
    data = folder / "data.json"
    data.write_text(json.dumps(load_sample().select(range(16)).to_list()))
    return folder, data


def run_worker(base, out: Path, settings: dict, processes: int = 0) -> subprocess.CompletedProcess:
    """tests/helpers/train_worker.py in a child process (under torchrun with `processes`)."""
    folder, data = base
    spec = out.parent / f"{out.name}-settings.json"
    spec.write_text(json.dumps(settings))
    cmd = [sys.executable] if not processes else [str(TORCHRUN), f"--nproc_per_node={processes}"]
    cmd += ["-m", "tests.helpers.train_worker", str(folder), str(data), str(out), str(spec)]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def weights(folder: Path) -> dict:
    return load_file(str(folder / "model.safetensors"))


def test_world_size_reads_the_launchers_environment():
    assert world_size({}) == 1
    assert world_size({"WORLD_SIZE": "4"}) == 4
    with pytest.raises(InvalidParameterError, match=r"WORLD_SIZE .* positive integer.*'0'"):
        world_size({"WORLD_SIZE": "0"})
    # the accumulation count divides batch_size by micro-batch x processes
    assert TrainConfig(batch_size=128, micro_batch_size=2).validate(4) == 16
    with pytest.raises(InvalidParameterError, match=r"multiple of micro_batch_size x devices"):
        TrainConfig(batch_size=4, micro_batch_size=1).validate(3)


@pytest.mark.skipif(not TORCHRUN.is_file(), reason="torchrun not installed beside python")
def test_two_processes_take_the_same_examples_per_step_and_loss_as_one(base, tmp_path):
    """torchrun with 2 CPU processes (gloo): batch_size 4 is 4 examples per optimizer step in
    all (2 per process, accumulation 2), so the tokens seen, the losses and the final weights
    equal one process's (accumulation 4). Before the fix, each process accumulated 4 steps:
    8 examples per step."""
    settings = {
        "config": {
            "max_length": 96,
            "max_steps": 3,
            "batch_size": 4,
            "micro_batch_size": 1,
            "learning_rate": 1e-3,
            "use_cpu": True,
        },
        "training_args": {"include_num_input_tokens_seen": "all"},
    }
    one = run_worker(base, tmp_path / "one", settings)
    assert one.returncode == 0, one.stderr[-3000:]
    two = run_worker(base, tmp_path / "two", settings, processes=2)
    assert two.returncode == 0, two.stderr[-3000:]
    r1 = json.loads((tmp_path / "one" / "worker_result.json").read_text())
    r2 = json.loads((tmp_path / "two" / "worker_result.json").read_text())
    assert (r1["log"]["world_size"], r1["log"]["gradient_accumulation_steps"]) == (1, 4)
    assert (r2["log"]["world_size"], r2["log"]["gradient_accumulation_steps"]) == (2, 2)
    assert r1["log"]["examples_per_step"] == r2["log"]["examples_per_step"] == 4
    seen1 = [h["num_input_tokens_seen"] for h in r1["log"]["losses"]]
    seen2 = [h["num_input_tokens_seen"] for h in r2["log"]["losses"]]
    # every example of a step is seen once, by one of the processes
    assert seen1 == seen2 and len(seen1) == 3 and seen1[0] > 0
    assert r2["losses"] == pytest.approx(r1["losses"], rel=1e-5)
    w1, w2 = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert w1.keys() == w2.keys()
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], atol=1e-6, rtol=1e-5)
    base_w = weights(base[0])
    assert any(not torch.equal(base_w[n], w1[n]) for n in w1)  # it trained


def test_a_killed_run_resumes_to_the_same_weights(base, tmp_path):
    """A run checkpointing every 2 steps is SIGKILLed after step 5; resuming from its last
    checkpoint (step 4) ends on the same weights and losses as an uninterrupted run (same seed,
    NEFTune noise and data order restored with the checkpoint)."""
    config = {
        "max_length": 96,
        "max_steps": 6,
        "batch_size": 2,
        "micro_batch_size": 2,
        "learning_rate": 1e-3,
        "neftune_alpha": 5.0,
        "use_cpu": True,
        "checkpoint_every": 2,
        "random_state": 7,
    }
    whole = run_worker(base, tmp_path / "whole", {"config": config})
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = run_worker(base, tmp_path / "run", {"config": config, "die_after_step": 5})
    assert killed.returncode != 0  # SIGKILL: -9
    run = tmp_path / "run"
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert not (run / "model.safetensors").exists() and not (run / "worker_result.json").exists()
    resumed = run_worker(base, run, {"config": config, "resume": True})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = json.loads((tmp_path / "whole" / "worker_result.json").read_text())
    b = json.loads((run / "worker_result.json").read_text())
    assert b["log"]["resumed_from"].endswith("checkpoint-4")
    assert b["log"]["steps"] == 6 and len(b["losses"]) == 6
    # the resumed process ran steps 5 and 6 only (Trainer prints one log dict per step)
    assert resumed.stdout.count("'loss':") == 2 and whole.stdout.count("'loss':") == 6
    assert b["losses"] == pytest.approx(a["losses"], rel=1e-6)
    wa, wb = weights(tmp_path / "whole"), weights(run)
    for name in wa:
        torch.testing.assert_close(wb[name], wa[name], atol=1e-7, rtol=1e-6)
    # a checkpoint written each epoch, and the limit on how many are kept
    epochs = tmp_path / "epochs"
    cfg = {**config, "max_steps": None, "epochs": 3.0, "batch_size": 8, "micro_batch_size": 8}
    cfg.update(checkpoint_every="epoch", checkpoint_limit=2, neftune_alpha=None)
    done = run_worker(base, epochs, {"config": cfg})
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in epochs.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]


def test_resume_errors_name_the_parameter(base, tmp_path):
    folder, data = base
    from sftselect.data.io import load_data

    rows = load_data(data)
    config = TrainConfig(max_length=64, max_steps=1, batch_size=1, use_cpu=True)
    with pytest.raises(InvalidParameterError, match=r"'resume_from_checkpoint' .* no checkpoint"):
        train(str(folder), rows, tmp_path / "x", config=config, resume_from_checkpoint=True)
    with pytest.raises(InvalidParameterError, match=r"'resume_from_checkpoint' parameter of train"):
        train(str(folder), rows, tmp_path / "x", config=config, resume_from_checkpoint=tmp_path)
    with pytest.raises(InvalidParameterError, match=r"'checkpoint_every' parameter of TrainConfig"):
        TrainConfig(checkpoint_every=0).validate()


def test_training_args_pass_through_and_owned_fields_are_refused(base, tmp_path):
    """Any TrainingArguments field the config does not own reaches the Trainer (as a mapping
    or a TrainingArguments); one the config owns raises naming the setting to use."""
    folder, data = base
    from sftselect.data.io import load_data

    rows = load_data(data).select(range(4))
    config = TrainConfig(max_length=64, max_steps=2, batch_size=2, micro_batch_size=2, use_cpu=True)
    seen = {}
    original = transformers.Trainer.__init__

    def spy(self, *args, **kwargs):
        seen["args"] = kwargs["args"]
        original(self, *args, **kwargs)

    extra = {"data_seed": 11, "logging_first_step": True}
    from unittest import mock

    with mock.patch.object(transformers.Trainer, "__init__", spy):
        train(str(folder), rows, tmp_path / "a", config=config, training_args=extra)
    args = seen["args"]
    assert args.data_seed == 11 and args.logging_first_step is True
    assert args.learning_rate == config.learning_rate and args.gradient_accumulation_steps == 1
    obj = transformers.TrainingArguments(output_dir=None, label_smoothing_factor=0.1)
    with mock.patch.object(transformers.Trainer, "__init__", spy):
        train(str(folder), rows, tmp_path / "b", config=config, training_args=obj)
    assert seen["args"].label_smoothing_factor == 0.1
    assert seen["args"].output_dir == str(tmp_path / "b")
    with pytest.raises(InvalidParameterError, match=r"sets 'learning_rate', which is set by "):
        train(str(folder), rows, tmp_path / "c", config=config, training_args={"learning_rate": 1})
    with pytest.raises(InvalidParameterError, match=r"the key 'no_such_field'"):
        train(str(folder), rows, tmp_path / "c", config=config, training_args={"no_such_field": 1})
    owned_obj = transformers.TrainingArguments(output_dir=None, seed=3)
    with pytest.raises(InvalidParameterError, match=r"'seed', which is set by TrainConfig.random"):
        train(str(folder), rows, tmp_path / "c", config=config, training_args=owned_obj)
    assert not (tmp_path / "c").exists()
    fields = {f.name for f in __import__("dataclasses").fields(transformers.TrainingArguments)}
    assert set(OWNED) - {"activation_checkpointing"} <= fields
    shutil.rmtree(tmp_path / "a")


def test_evaluation_through_training_args(base, tmp_path):
    """eval_strategy passed through with an eval_dataset: the log lists each eval_loss."""
    folder, data = base
    from sftselect.data.io import load_data

    rows = load_data(data)
    config = TrainConfig(max_length=64, max_steps=2, batch_size=2, micro_batch_size=2, use_cpu=True)
    result = train(
        str(folder),
        rows.select(range(4)),
        tmp_path / "e",
        config=config,
        eval_dataset=rows.select(range(4, 8)),
        training_args={"eval_strategy": "steps", "eval_steps": 1, "per_device_eval_batch_size": 2},
    )
    evals = result.log["eval"]
    assert [e["step"] for e in evals] == [1, 2]
    assert all(e["eval_loss"] > 0 for e in evals) and evals[0]["eval_loss"] != evals[1]["eval_loss"]
