"""The packaged test sets: counts, ids, and the right prompt for each set."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from sftselect.exceptions import InvalidParameterError
from sftselect.testsets import FILES, NAMES, PAPER_TESTSETS, load

EXPECTED_ROWS = {
    "vicuna": 80,
    "koala": 180,
    "wizardlm": 218,
    "sinstruct": 252,
    "lima": 300,
    "mt_bench": 80,
}


def raw(name):
    text = resources.files("sftselect.testsets").joinpath("data", FILES[name]).read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("name", NAMES)
def test_each_set_loads_with_unique_ids_and_original_columns(name):
    """Every set loads all its rows, with unique string ids, non-empty prompts and its columns."""
    ds = load(name)
    assert len(ds) == EXPECTED_ROWS[name]
    assert len(set(ds["id"])) == len(ds)
    assert all(isinstance(p, str) and p.strip() for p in ds["prompt"])
    original = set().union(*(row.keys() for row in raw(name)))
    assert original <= set(ds.column_names)


def test_paper_sets_hold_1030_prompts():
    """The paper's five evaluation sets hold 1,030 prompts in all."""
    assert sum(len(load(n)) for n in PAPER_TESTSETS) == 1030


def test_lima_prompt_is_the_string_not_the_list_repr():
    """LIMA's prompt is the single string inside `conversations`, not the list's repr."""
    ds = load("lima")
    for row, conv in zip(ds, (r["conversations"] for r in raw("lima"))):
        assert row["prompt"] == conv[0]
        assert not row["prompt"].startswith("['")


def test_sinstruct_prompt_is_instruction_plus_non_empty_input():
    """Self-Instruct's prompt is the instruction, plus a blank line and the input when not empty."""
    ds = load("sinstruct")
    with_input = 0
    for row, rec in zip(ds, raw("sinstruct")):
        extra = rec["instances"][0]["input"]
        if extra.strip():
            with_input += 1
            assert row["prompt"] == f"{rec['instruction']}\n\n{extra}"
        else:
            assert row["prompt"] == rec["instruction"]
    assert with_input == 208


def test_prompt_columns_of_the_other_sets():
    """Vicuna, Koala, WizardLM and MT-Bench prompts are their text field (MT-Bench: turn 1)."""
    assert load("vicuna")["prompt"] == [r["text"] for r in raw("vicuna")]
    assert load("koala")["prompt"] == [r["prompt"] for r in raw("koala")]
    assert load("wizardlm")["prompt"] == [r["Instruction"] for r in raw("wizardlm")]
    mt = load("mt_bench")
    assert mt["prompt"] == [r["turns"][0] for r in raw("mt_bench")]
    assert all(len(t) == 2 for t in mt["turns"])
    assert load("vicuna")["id"][:2] == ["vicuna_1", "vicuna_2"]


def test_limit_keeps_the_first_rows():
    """`limit` keeps the first prompts in file order."""
    assert load("koala", limit=3)["id"] == ["koala_0", "koala_1", "koala_2"]


def test_unknown_name_and_bad_limit_raise_clear_errors():
    """An unknown name or a non-positive limit raises naming the parameter and the choices."""
    with pytest.raises(InvalidParameterError, match=r"The 'name' parameter of load must be one of"):
        load("alpaca_eval")
    with pytest.raises(InvalidParameterError, match="'limit'"):
        load("vicuna", limit=0)


def test_licence_file_covers_every_data_file():
    """The packaged licence/attribution file names every data file."""
    text = resources.files("sftselect.testsets").joinpath("data", "LICENSE-DATA.md").read_text()
    for filename in FILES.values():
        assert filename in text
