"""The paper's refinement step: verbatim prompts, extraction rules, originals kept and counted."""

from __future__ import annotations

import json

import pytest
from datasets import Dataset

from sftselect.backends import CallableBackend, ReplyCache
from sftselect.backends.base import BackendError, ChatReply
from sftselect.exceptions import InvalidParameterError, JudgeRequestError
from sftselect.transforms import extract_better_answer, refine_responses
from sftselect.transforms.refine import refine_requests


@pytest.mark.parametrize(
    ("reply", "answer"),
    [
        ("Critique...\n[Better Answer] A better one. [End]", "A better one."),
        ("[Better Answer]\nLine 1\nLine 2\n[End]\nthanks", "Line 1\nLine 2"),
        ("Reasons.\n[Better Answer] No end tag, to the end.", "No end tag, to the end."),
        ("[Revised Answer] Revised. [End]", "Revised."),
        ("[Improved Answer] Improved.", "Improved."),
        ("[Better Answer] Endangered species need help. [End]", "Endangered species need help."),
        ("No tag at all.", None),
        ("[Better Answer] one [End] [Better Answer] two [End]", None),
        ("[Better Answer] [End]", None),
        ("", None),
    ],
)
def test_extraction_rules(reply, answer):
    """One tagged answer is extracted; none, several or an empty one give None."""
    assert extract_better_answer(reply) == answer


def test_requests_use_the_papers_prompt_with_and_without_input():
    """Rows with an input get the with-input prompt; fields are stripped first, as in the paper."""
    ds = Dataset.from_list(
        [
            {"instruction": " Say hi ", "input": "", "output": " hi "},
            {"instruction": "Sum", "input": "1 2", "output": "3"},
        ]
    )
    r0, r1 = refine_requests(ds)
    assert r0.messages[0] == (
        "system",
        "You are a helpful, precise but picky assistant for checking the quality of the answer to a given instruction.",
    )
    assert r0.messages[1][1].startswith(
        "[Instruction]\nSay hi\n\n[The Start of Answer]\nhi\n\n[The End of Answer]\n\n[System]\nWe would like you to answer several questions"
    )
    assert "[The Start of Input]\n1 2\n\n[The End of Input]" in r1.messages[1][1]
    assert r1.messages[1][1].endswith(
        "The answer should be in the format of [Better Answer] your answer [End] \n\n\n"
    )
    assert (r0.max_tokens, r0.temperature, r0.top_p) == (2048, 0.0, 1.0)


def test_refine_replaces_parsed_keeps_and_counts_the_rest(tmp_path):
    """Parsed answers replace the response; others keep the original and are counted; re-run is free."""
    ds = Dataset.from_list(
        [{"instruction": f"q{i}", "input": "", "output": f"old {i}", "id": i} for i in range(4)]
    )
    calls = []

    def llm(messages):
        calls.append(1)
        i = int(messages[1]["content"].split("old ")[1].split("\n")[0])
        return "meh" if i == 2 else f"Why bad...\n[Better Answer] new {i} [End]"

    backend = CallableBackend(llm, identity="refiner-v1")
    result = refine_responses(ds, backend, cache=tmp_path / "c.sqlite")
    assert result.dataset["output"] == ["new 0", "new 1", "old 2", "new 3"]
    assert result.dataset.column_names == ds.column_names and result.dataset["id"] == [0, 1, 2, 3]
    assert result.refined.tolist() == [True, True, False, True] and result.kept_original == 1
    assert ds["output"][0] == "old 0"  # the input is not mutated
    again = refine_responses(ds, backend, cache=ReplyCache(tmp_path / "c.sqlite"))
    assert len(calls) == 4 and again.report.sent == 0


def test_prompt_file_is_valid_json_with_versions():
    """The packaged prompt files carry a version and a source for every preset."""
    from importlib import resources

    for name in ("rating", "refine"):
        presets = json.loads((resources.files("sftselect.prompts") / f"{name}.json").read_text())
        assert all(p["version"] and p["source"] for p in presets.values())


def _rows(n):
    return Dataset.from_list(
        [{"instruction": f"q{i}", "input": "", "output": f"old {i}"} for i in range(n)]
    )


def _index(messages):
    return int(messages[1]["content"].split("old ")[1].split("\n")[0])


def test_a_reply_cut_at_the_token_limit_keeps_the_original(tmp_path):
    """A reply that stopped at max_tokens before [End] is not used; counted as truncated, also when cached."""

    def llm(messages):
        i = _index(messages)
        if i == 1:
            return ChatReply(
                text="[Better Answer] new 1 but cut off in the mid", finish_reason="length"
            )
        if i == 2:  # hit the limit right after a complete answer: usable
            return ChatReply(text="[Better Answer] new 2 [End]", finish_reason="length")
        return f"[Better Answer] new {i} [End]"

    backend = CallableBackend(llm, identity="refiner-cut")
    for _ in range(2):  # the second run reads the cache
        result = refine_responses(_rows(3), backend, cache=tmp_path / "c.sqlite")
        assert result.dataset["output"] == ["new 0", "old 1", "new 2"]
        assert result.truncated == 1 and result.kept_original == 1
        assert result.summary()["truncated"] == 1


def test_failed_requests_raise_unless_asked_to_keep_the_original(tmp_path):
    """A request that fails after retries raises JudgeRequestError; on_request_error='keep' keeps and counts it."""

    def llm(messages):
        if _index(messages) == 1:
            raise BackendError("server down")
        return "[Better Answer] better [End]"

    backend = CallableBackend(llm, identity="refiner-down")
    with pytest.raises(JudgeRequestError, match="1 of 3 refinement requests failed"):
        refine_responses(_rows(3), backend)
    result = refine_responses(_rows(3), backend, on_request_error="keep")
    assert result.dataset["output"] == ["better", "old 1", "better"]
    assert result.request_failures == 1 and result.kept_original == 1
    with pytest.raises(
        InvalidParameterError, match="'on_request_error' parameter of refine_responses"
    ):
        refine_responses(_rows(3), backend, on_request_error="nan")
