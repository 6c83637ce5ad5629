"""generate() with an OpenAI-compatible backend: the same answer files as a local model."""

from __future__ import annotations

import json
import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from sftselect.backends import OpenAICompatibleBackend  # noqa: E402
from sftselect.exceptions import InvalidParameterError  # noqa: E402
from sftselect.generate import OUTPUT_FIELDS, generate, read_answers  # noqa: E402
from sftselect.prompts.templates import VICUNA_V1_1  # noqa: E402
from sftselect.testing import LoopbackServer  # noqa: E402
from tests.helpers.tiny_llama import spm_tokenizer, tiny_llama  # noqa: E402


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return spm_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def model(tok):
    return tiny_llama(tok).eval()


def serving(model, tok):
    """A server's reply: the model's greedy answer to the request's messages, rendered with
    the training template (what a server using the saved chat template prompts it with)."""

    def reply(body):
        text = VICUNA_V1_1.render(body["messages"], tok, add_generation_prompt=True).text
        ids = [tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]
        with torch.inference_mode():
            out = model.generate(
                torch.tensor([ids]),
                max_new_tokens=body["max_tokens"],
                do_sample=False,
                pad_token_id=tok.pad_token_id or 0,
                eos_token_id=tok.eos_token_id,
            )
        new = out[0, len(ids) :].tolist()
        if tok.eos_token_id in new:
            new = new[: new.index(tok.eos_token_id)]
        return tok.decode(new, skip_special_tokens=True)

    return reply


def test_served_answers_equal_local_answers_row_for_row(model, tok, tmp_path):
    """Answers to MT-Bench (both turns) from a served model equal the local model's, in rows
    with the same fields; the run records the backend; a rerun skips every row; the server
    got each turn's conversation so far and the decoding settings."""
    local = tmp_path / "local.jsonl"
    generate(
        model,
        "mt_bench",
        local,
        tokenizer=tok,
        template="vicuna_v1.1",
        limit=3,
        max_new_tokens=8,
        turns="all",
    )
    served = tmp_path / "served.jsonl"
    with LoopbackServer(serving(model, tok)) as server:
        backend = OpenAICompatibleBackend("my-sft-model", base_url=server.base_url)
        report = generate(
            backend, "mt_bench", served, limit=3, max_new_tokens=8, turns="all", batch_size=2
        )
        again = generate(backend, "mt_bench", served, limit=3, max_new_tokens=8, turns="all")
        bodies = [r.body for r in server.requests]
    a, b = read_answers(local), read_answers(served)
    assert report.written == len(b) == len(a) == 6 and again.written == 0 and again.skipped == 6
    assert report.template == "server"
    strip = ("run", "model")

    def rows(file_rows):  # the local run writes each batch longest prompt first
        return sorted(
            ({k: v for k, v in r.items() if k not in strip} for r in file_rows),
            key=lambda r: r["id"],
        )

    assert rows(b) == rows(a)
    assert all(set(OUTPUT_FIELDS) <= set(r) for r in b)
    assert {r["model"] for r in b} == {"my-sft-model"}
    run = b[0]["run"]
    assert run["template"] == "server" and run["model"] == backend.identity
    assert run["weights"] is None and run["max_new_tokens"] == 8 and run["temperature"] == 0.0
    assert len(bodies) == 6 and all(x["max_tokens"] == 8 for x in bodies)
    second = [x for x in bodies if len(x["messages"]) == 3]
    assert len(second) == 3
    first_answers = {r["prompt"]: r["answer"] for r in b if "turn" not in r}
    for body in second:  # the second turn carries the first question and the model's answer
        assert body["messages"][1] == {
            "role": "assistant",
            "content": first_answers[body["messages"][0]["content"]],
        }
    lines = [json.loads(x) for x in served.read_text().splitlines()]
    assert len(lines) == 6


def test_a_backend_refuses_local_only_parameters(tmp_path):
    backend = OpenAICompatibleBackend("m", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(InvalidParameterError, match=r"'template' parameter of generate must be"):
        generate(backend, "vicuna", tmp_path / "a.jsonl", template="vicuna_v1.1", limit=1)
    assert not (tmp_path / "a.jsonl").exists()


def test_cli_generate_from_a_served_model(tmp_path):
    """`sftselect generate --base-url URL --model NAME` answers through the server."""
    from sftselect.cli import main

    out = tmp_path / "a.jsonl"
    with LoopbackServer(lambda body: "served: " + body["messages"][-1]["content"][:10]) as server:
        argv = ["generate", "--model", "m", "--base-url", server.base_url, "--testset", "koala"]
        assert main([*argv, "--limit", "2", "-o", str(out), "-q"]) == 0
    rows = read_answers(out)
    assert len(rows) == 2 and all(r["answer"].startswith("served: ") for r in rows)
    assert rows[0]["model"] == "m" and rows[0]["run"]["template"] == "server"
