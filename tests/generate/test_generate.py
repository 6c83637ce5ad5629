"""Generation: real test prompts answered, new tokens only, batching exact, resume, CLI."""

from __future__ import annotations

import json
import os
import re

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from datasets import Dataset  # noqa: E402

from sftselect.cli import main  # noqa: E402
from sftselect.evaluate.inputs import load_pairs  # noqa: E402
from sftselect.exceptions import DataFormatError, InvalidParameterError  # noqa: E402
from sftselect.generate import OUTPUT_FIELDS, generate, read_answers  # noqa: E402
from sftselect.prompts.templates import VICUNA_V1_1  # noqa: E402
from sftselect.testsets import PAPER_TESTSETS, load  # noqa: E402
from sftselect.train import TrainConfig, train  # noqa: E402
from tests.helpers.paths import SHARED_DATA  # noqa: E402
from tests.helpers.tiny_llama import spm_tokenizer, tiny_llama  # noqa: E402

SHARED = SHARED_DATA


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return spm_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def model(tok):
    """A seeded, randomly initialised 2-layer LLaMA (float32, CPU)."""
    return tiny_llama(tok, context=1024).eval()


@pytest.fixture(scope="module")
def model_dir(model, tok, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_real_test_prompts_get_non_empty_answers(model, tok, tmp_path):
    """Two real prompts of each paper test set get non-empty answers with exactly the output fields."""
    out = tmp_path / "a.jsonl"
    for name in PAPER_TESTSETS:
        report = generate(model, name, out, tokenizer=tok, limit=2, max_new_tokens=6, batch_size=2)
        assert report.written == 2 and report.template == "vicuna_v1.1"
    rows = read_answers(out)
    assert len(rows) == 10
    for row in rows:
        assert tuple(sorted(row)) == tuple(sorted((*OUTPUT_FIELDS, "run")))
        assert row["answer"].strip() and row["model"] == "LlamaForCausalLM"
    assert {(r["testset"], r["id"]) for r in rows} >= {("lima", "lima_0"), ("vicuna", "vicuna_1")}


def test_answers_are_the_new_tokens_and_batching_changes_nothing(model, tok, tmp_path):
    """Batched, left-padded answers equal an unpadded one-prompt generate decoded from new ids."""
    prompts = load("vicuna", limit=5)
    a = generate(
        model, prompts, tmp_path / "b.jsonl", tokenizer=tok, max_new_tokens=8, batch_size=5
    )
    generate(model, prompts, tmp_path / "s.jsonl", tokenizer=tok, max_new_tokens=8, batch_size=1)
    batched = {r["id"]: r["answer"] for r in read_answers(tmp_path / "b.jsonl")}
    single = {r["id"]: r["answer"] for r in read_answers(tmp_path / "s.jsonl")}
    assert batched == single and a.written == 5
    row = prompts[0]
    text = VICUNA_V1_1.render(
        [{"role": "user", "content": row["prompt"]}], tok, add_generation_prompt=True
    ).text
    ids = torch.tensor([[tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]])
    with torch.no_grad():
        ref = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=0)
    new = ref[0, ids.shape[1] :].tolist()
    if tok.eos_token_id in new:
        new = new[: new.index(tok.eos_token_id)]
    assert batched[row["id"]] == tok.decode(new, skip_special_tokens=True).strip()


def test_resume_skips_answered_prompts_and_repairs_a_cut_line(model, tok, tmp_path):
    """A restarted run answers only the missing prompts, after dropping a half-written last line."""
    out = tmp_path / "r.jsonl"
    first = generate(model, "koala", out, tokenizer=tok, limit=3, max_new_tokens=4)
    with out.open("a") as fh:
        fh.write('{"id": "koala_9", "testset": "ko')  # a crash mid-line
    second = generate(model, "koala", out, tokenizer=tok, limit=5, max_new_tokens=4)
    rows = read_answers(out)
    assert (first.written, second.written, second.skipped) == (3, 2, 3)
    assert sorted(r["id"] for r in rows) == [f"koala_{i}" for i in range(5)]
    again = generate(model, "koala", out, tokenizer=tok, limit=5, max_new_tokens=4)
    assert (again.written, again.skipped) == (0, 5)
    runs = {json.dumps(r["run"], sort_keys=True) for r in read_answers(out)}
    assert len(runs) == 1
    run = json.loads(runs.pop())
    assert run["model"] == "LlamaForCausalLM" and run["weights"].startswith("sha256:")
    assert {k: run[k] for k in ("template", "dtype", "max_new_tokens", "top_p", "seed")} == {
        "template": "vicuna_v1.1",
        "dtype": "float32",
        "max_new_tokens": 4,
        "top_p": None,
        "seed": None,
    }


def saved(net, tok, folder):
    """``net`` and ``tok`` saved to ``folder`` (created)."""
    folder.mkdir(parents=True)
    net.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_another_model_in_a_folder_of_the_same_name_is_refused(model, tok, tmp_path):
    """A second model whose folder has the same name cannot resume (or add to) the first's file,
    for folders and loaded models alike; written to its own file, both are judged as a pair."""
    first = saved(model, tok, tmp_path / "a" / "m")
    other = tiny_llama(tok, context=1024, random_state=1).eval()
    second = saved(other, tok, tmp_path / "b" / "m")
    out, kw = tmp_path / "m.jsonl", {"limit": 2, "max_new_tokens": 4, "device": "cpu"}
    generate(first, "vicuna", out, **kw)
    before = out.read_bytes()
    with pytest.raises(
        DataFormatError, match=r"differs in model '.*a[/\\]m' \(this run: '.*b[/\\]m'\)"
    ):
        generate(second, "vicuna", out, **kw)
    assert out.read_bytes() == before
    loaded = tmp_path / "loaded.jsonl"
    generate(model, "vicuna", loaded, tokenizer=tok, limit=2, max_new_tokens=4)
    with pytest.raises(DataFormatError, match=r"row 'vicuna_\d' differs in weights 'sha256:"):
        generate(other, "vicuna", loaded, tokenizer=tok, limit=2, max_new_tokens=4)
    generate(second, "vicuna", tmp_path / "m2.jsonl", **kw)
    pairs = load_pairs(out, tmp_path / "m2.jsonl")
    assert len(pairs) == 2 and (pairs.model_a, pairs.model_b) == ("m", "m")


def test_other_decoding_settings_on_resume_are_refused_naming_them(model, tok, tmp_path):
    """Resuming with another max_new_tokens (or template, or sampling) raises naming the file,
    a row and the setting, and leaves the file as it was."""
    out = tmp_path / "r.jsonl"
    generate(model, "koala", out, tokenizer=tok, limit=2, max_new_tokens=4)
    before = out.read_bytes()
    for change, setting in (
        ({"max_new_tokens": 5}, "max_new_tokens 4 (this run: 5)"),
        ({"template": "alpaca"}, "template 'vicuna_v1.1' (this run: 'alpaca')"),
        ({"temperature": 0.7, "random_state": 1}, "temperature 0.0 (this run: 0.7)"),
    ):
        kw = {"max_new_tokens": 4, **change}
        with pytest.raises(DataFormatError) as err:
            generate(model, "koala", out, tokenizer=tok, limit=3, **kw)
        message = str(err.value)
        assert str(out) in message and re.search(r"row 'koala_[01]' differs in", message)
        assert setting in message and "write this run to another file" in message
    assert out.read_bytes() == before
    other_set = generate(model, "vicuna", out, tokenizer=tok, limit=1, max_new_tokens=5)
    assert other_set.written == 1  # rows of another test set are not read


def test_rows_without_a_run_are_refused_until_vouched_for(model, tok, tmp_path):
    """Rows written before 'run' was recorded cannot be checked, so the file is refused (and left
    as it was); adding the 'run' the message gives makes it resume."""
    out = tmp_path / "old.jsonl"
    generate(model, "koala", out, tokenizer=tok, limit=2, max_new_tokens=4)
    old = [{k: v for k, v in r.items() if k != "run"} for r in read_answers(out)]
    out.write_text("".join(json.dumps(r) + "\n" for r in old))
    before = out.read_bytes()
    with pytest.raises(
        DataFormatError, match=r"row 'koala_[01]' of test set 'koala' has no 'run'"
    ) as err:
        generate(model, "koala", out, tokenizer=tok, limit=3, max_new_tokens=4)
    assert out.read_bytes() == before
    run = json.loads(re.search(r'add "run": (\{.*?\}) to each', str(err.value)).group(1))
    out.write_text("".join(json.dumps({**r, "run": run}) + "\n" for r in old))
    report = generate(model, "koala", out, tokenizer=tok, limit=3, max_new_tokens=4)
    assert (report.written, report.skipped) == (1, 2)


def test_a_model_loaded_from_a_trained_folder_gets_its_training_template(tok, tmp_path):
    """A model loaded with from_pretrained from a folder sftselect.train wrote is prompted with
    the template it was trained with, exactly as when generate is given the folder."""
    records = [
        {"instruction": f"Say {w}.", "input": "", "output": f"{w} {w} {w}."}
        for w in ("red", "green", "blue", "white")
    ]
    config = TrainConfig(
        template="alpaca",
        max_length=64,
        max_steps=2,
        batch_size=2,
        micro_batch_size=2,
        learning_rate=1e-3,
        use_cpu=True,
    )
    folder = tmp_path / "trained"
    train(
        tiny_llama(tok, context=1024),
        Dataset.from_list(records),
        folder,
        tokenizer=tok,
        config=config,
    )
    loaded = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    kw = {"limit": 3, "max_new_tokens": 6}
    report = generate(loaded, "vicuna", tmp_path / "l.jsonl", tokenizer=tok, **kw)
    by_path = generate(folder, "vicuna", tmp_path / "p.jsonl", device="cpu", **kw)
    assert report.template == by_path.template == "alpaca"
    rows = read_answers(tmp_path / "l.jsonl")
    assert {r["run"]["model"] for r in rows} == {str(folder.resolve())}
    answers = {r["id"]: r["answer"] for r in rows}
    assert answers == {r["id"]: r["answer"] for r in read_answers(tmp_path / "p.jsonl")}


def reference_answer(model, tok, messages, max_new_tokens):
    """One unpadded greedy generate on the vicuna rendering of ``messages``, new ids decoded."""
    text = VICUNA_V1_1.render(messages, tok, add_generation_prompt=True).text
    ids = torch.tensor([[tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]])
    with torch.no_grad():
        ref = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=0)
    new = ref[0, ids.shape[1] :].tolist()
    if tok.eos_token_id in new:
        new = new[: new.index(tok.eos_token_id)]
    return tok.decode(new, skip_special_tokens=True).strip()


def test_mt_bench_second_turns_are_answered_in_the_conversation(model, tok, tmp_path):
    """turns='all' answers MT-Bench's second questions after the model's own first answers,
    exactly as one unpadded generate on the rendered conversation does."""
    out = tmp_path / "mt.jsonl"
    report = generate(model, "mt_bench", out, tokenizer=tok, limit=3, max_new_tokens=6, turns="all")
    rows = {r["id"]: r for r in read_answers(out)}
    questions = load("mt_bench", limit=3)
    assert report.written == 6 and len(rows) == 6
    for q in questions:
        first, second = rows[q["id"]], rows[f"{q['id']}/turn2"]
        assert "turn" not in first and first["prompt"] == q["turns"][0]
        assert second["turn"] == 2 and second["prompt"] == q["turns"][1]
        history = [
            {"role": "user", "content": q["turns"][0]},
            {"role": "assistant", "content": first["answer"]},
        ]
        assert second["history"] == history
        messages = [*history, {"role": "user", "content": q["turns"][1]}]
        assert second["answer"] == reference_answer(model, tok, messages, 6)


def test_multi_turn_resume_and_first_turn_rows_are_shared(model, tok, tmp_path):
    """A first-turn-only file is completed by turns='all' (only second turns generated), and a
    cut run resumes any turn from the answers on file."""
    out = tmp_path / "mt.jsonl"
    generate(model, "mt_bench", out, tokenizer=tok, limit=2, max_new_tokens=4)
    more = generate(model, "mt_bench", out, tokenizer=tok, limit=3, max_new_tokens=4, turns="all")
    assert (more.written, more.skipped) == (4, 2)
    again = generate(model, "mt_bench", out, tokenizer=tok, limit=3, max_new_tokens=4, turns="all")
    assert (again.written, again.skipped) == (0, 6)
    ids = sorted(r["id"] for r in read_answers(out))
    assert len(ids) == len(set(ids)) == 6


def test_single_turn_sets_are_unchanged_by_turns_all(model, tok, tmp_path):
    """A test set without a 'turns' column has one turn per prompt, so turns='all' writes the
    same rows as the default."""
    generate(model, "vicuna", tmp_path / "a.jsonl", tokenizer=tok, limit=2, max_new_tokens=4)
    generate(
        model, "vicuna", tmp_path / "b.jsonl", tokenizer=tok, limit=2, max_new_tokens=4, turns="all"
    )
    assert read_answers(tmp_path / "a.jsonl") == read_answers(tmp_path / "b.jsonl")


def test_bad_turns_raise_naming_the_row(model, tok, tmp_path):
    """A 'turns' list that does not start with the row's prompt, or an unknown turns value,
    is refused with the row named."""
    bad = Dataset.from_list([{"id": "q1", "prompt": "Hi", "turns": ["Hello", "More"]}])
    with pytest.raises(DataFormatError, match=r"Row 0 \(id 'q1'\): 'turns' must be"):
        generate(model, bad, tmp_path / "x.jsonl", tokenizer=tok, turns="all")
    with pytest.raises(InvalidParameterError, match=r"'turns' parameter of generate"):
        generate(model, "vicuna", tmp_path / "x.jsonl", tokenizer=tok, turns="second")


def test_bad_inputs_raise_naming_the_problem(model, tok, tmp_path):
    """A Dataset without 'prompt', or a non-positive batch size, raises a clear error."""
    with pytest.raises(
        DataFormatError, match=r"needs columns 'id' and 'prompt'; missing \['prompt'\]"
    ):
        generate(model, Dataset.from_list([{"id": "1"}]), tmp_path / "x.jsonl", tokenizer=tok)
    with pytest.raises(InvalidParameterError, match=r"'batch_size' parameter of generate"):
        generate(model, "vicuna", tmp_path / "x.jsonl", tokenizer=tok, batch_size=0)


def test_cli_train_then_generate(model_dir, tmp_path, capsys):
    """`sftselect train` writes a model and loss log; `sftselect generate` answers with its template."""
    data = tmp_path / "d.json"
    records = [
        {"instruction": f"Say {w}.", "input": "", "output": f"{w} {w} {w}."}
        for w in ("red", "green", "blue", "white")
    ]
    data.write_text(json.dumps(records))
    out = tmp_path / "trained"
    status = main(
        [
            "train",
            "--model",
            str(model_dir),
            "--data",
            str(data),
            "--output",
            str(out),
            "--template",
            "alpaca",
            "--max-steps",
            "2",
            "--batch-size",
            "2",
            "--max-length",
            "64",
            "--learning-rate",
            "1e-3",
            "--cpu",
            "-q",
        ]
    )
    assert status == 0
    log = json.loads((out / "training_log.json").read_text())
    assert log["template"] == "alpaca" and len(log["losses"]) == 2
    answers = tmp_path / "a.jsonl"
    status = main(
        [
            "generate",
            "--model",
            str(out),
            "--testset",
            "wizardlm",
            "--limit",
            "2",
            "--max-new-tokens",
            "4",
            "-o",
            str(answers),
            "-q",
        ]
    )
    assert status == 0
    rows = read_answers(answers)
    assert [r["testset"] for r in rows] == ["wizardlm", "wizardlm"] and rows[0][
        "model"
    ] == "trained"
    capsys.readouterr()
    again = ["generate", "--model", str(out), "--testset", "wizardlm", "-o", str(answers)]
    assert main([*again, "--limit", "2", "--max-new-tokens", "5", "-q"]) == 2
    assert "max_new_tokens 4 (this run: 5)" in capsys.readouterr().err


def test_a_model_retrained_in_the_same_folder_is_another_run(model, tok, tmp_path):
    """A model folder overwritten by another model is another run: its old answers are not
    resumed (the file is refused and left as it was), while the unchanged folder resumes."""
    from sftselect.generate.answer_files import path_identity as _path_identity

    folder = saved(model, tok, tmp_path / "m1")
    out, kw = tmp_path / "a1.jsonl", {"limit": 2, "max_new_tokens": 4, "device": "cpu"}
    assert generate(folder, "vicuna", out, **kw).written == 2
    again = generate(folder, "vicuna", out, **kw)
    assert (again.written, again.skipped) == (0, 2)
    before = out.read_bytes()
    tiny_llama(tok, context=1024, random_state=1).save_pretrained(folder)  # retrained into m1
    with pytest.raises(DataFormatError, match=r"differs in weights 'files:[0-9a-f]{16}' \(this"):
        generate(folder, "vicuna", out, **kw)
    assert out.read_bytes() == before
    assert {r["run"]["weights"][:6] for r in read_answers(out)} == {"files:"}
    assert _path_identity("org/no-such-hub-model", None) == ("org/no-such-hub-model", None)


def test_answers_holding_unicode_line_separators_read_back_whole(model, tok, tmp_path):
    """Answers holding U+2028, U+2029 or U+0085 (written as is) are one row each, so generate
    resumes and extends its own file, and a last line cut short is still dropped."""
    out = tmp_path / "u.jsonl"
    generate(model, "koala", out, tokenizer=tok, limit=3, max_new_tokens=4)
    rows = read_answers(out)
    for row, odd in zip(rows, ("\u2028", "\u2029", "\x85")):
        row["answer"] = f"one{odd}two"
    out.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        + '{"id": "koala_9", "answer": "cut\u2028sh',
        encoding="utf-8",
    )
    assert read_answers(out) == rows
    report = generate(model, "koala", out, tokenizer=tok, limit=4, max_new_tokens=4)
    assert (report.written, report.skipped) == (1, 3)
    assert [r["answer"] for r in read_answers(out)][:3] == [
        "one\u2028two",
        "one\u2029two",
        "one\x85two",
    ]


def test_a_mistyped_model_folder_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    """`generate --model` with no such local folder exits 2 with one line saying so: a
    path-like name without trying the hub, any other name with the hub error's first line."""
    calls = []

    def offline(name, **_):
        calls.append(name)
        raise OSError("We couldn't connect to 'https://huggingface.co'.\nCheck your connection.")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", offline)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    base = ["generate", "--testset", "vicuna", "-o", str(tmp_path / "a.jsonl"), "--model"]
    for name in ("./nosuchmodel_dir", "out/llama2-1k-longset", str(tmp_path / "gone"), "x/"):
        capsys.readouterr()
        assert main([*base, name]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"no local folder or file {name!r}" in err
        assert "looks like a path, so it was not tried as a hub name" in err
    assert calls == []
    assert main([*base, "nosuchmodel_dir"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and calls == ["nosuchmodel_dir"]
    assert "no local folder or file 'nosuchmodel_dir'" in err
    assert "loading it as a hub name failed: We couldn't connect to" in err
    assert "Check your connection" not in err
    assert not (tmp_path / "a.jsonl").exists()
