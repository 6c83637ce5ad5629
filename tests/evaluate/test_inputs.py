"""Reading the pairs to judge: generate output, AlpacaEval model_outputs, one-file pairs."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sftselect.evaluate import Pairs, load_pairs
from sftselect.exceptions import DataFormatError, InvalidParameterError
from tests.helpers.paths import SHARED_DATA, require_shared_data
from tests.helpers.strategies_eval import answer_texts

ALPACA_EVAL = SHARED_DATA / "alpaca_eval"


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _generate_rows(model, answers):
    return [
        {"id": i, "testset": ts, "prompt": f"question {ts} {i}", "answer": a, "model": model}
        for (ts, i), a in answers.items()
    ]


def test_real_alpaca_eval_files_align_by_instruction():
    """The 805 real AlpacaEval outputs of two models load as 805 pairs, test sets from 'dataset'."""
    require_shared_data()
    pairs = load_pairs(ALPACA_EVAL / "gpt4_1106_preview.json", ALPACA_EVAL / "alpaca-7b.json")
    raw_a = json.loads((ALPACA_EVAL / "gpt4_1106_preview.json").read_text())
    raw_b = json.loads((ALPACA_EVAL / "alpaca-7b.json").read_text())
    assert len(pairs) == 805 == len(raw_a)
    assert (pairs.model_a, pairs.model_b) == ("gpt4_1106_preview", "alpaca-7b")
    assert (
        pairs.prompts[17] == raw_a[17]["instruction"] and pairs.answers_b[17] == raw_b[17]["output"]
    )
    assert set(pairs.testset_names()) == {r["dataset"] for r in raw_a}
    assert pairs.sources["format"] == "alpaca_eval"


def test_misaligned_alpaca_eval_files_name_the_first_mismatch(tmp_path):
    """Two real AlpacaEval files in different orders are refused, naming the first differing record."""
    require_shared_data()
    raw = json.loads((ALPACA_EVAL / "text_davinci_003.json").read_text())
    moved = [*raw[:3], raw[4], raw[3], *raw[5:]]
    path = tmp_path / "moved.json"
    path.write_text(json.dumps(moved))
    with pytest.raises(DataFormatError, match="first mismatch is record 3") as err:
        load_pairs(ALPACA_EVAL / "alpaca-7b.json", path)
    assert raw[3]["instruction"][:20] in str(err.value)


def test_alpaca_eval_files_of_different_lengths_name_the_extra_record(tmp_path):
    """A file with one record fewer is refused, naming the record missing from it."""
    require_shared_data()
    raw = json.loads((ALPACA_EVAL / "alpaca-7b.json").read_text())
    short = tmp_path / "short.json"
    short.write_text(json.dumps(raw[:804]))
    with pytest.raises(DataFormatError, match="first mismatch is record 804"):
        load_pairs(ALPACA_EVAL / "alpaca-7b.json", short)


def test_generate_files_are_matched_by_testset_and_id(tmp_path):
    """Generate-output rows pair up by (testset, id) whatever their order in the two files."""
    a = _generate_rows("long", {("vicuna", 1): "a1", ("vicuna", 2): "a2", ("koala", 1): "a3"})
    b = _generate_rows("full", {("koala", 1): "b3", ("vicuna", 2): "b2", ("vicuna", 1): "b1"})
    pairs = load_pairs(_jsonl(tmp_path / "a.jsonl", a), _jsonl(tmp_path / "b.jsonl", b))
    assert list(zip(pairs.testsets, pairs.ids)) == [
        ("vicuna", "1"),
        ("vicuna", "2"),
        ("koala", "1"),
    ]
    assert pairs.answers_a == ("a1", "a2", "a3") and pairs.answers_b == ("b1", "b2", "b3")
    assert (pairs.model_a, pairs.model_b) == ("long", "full")


def test_generate_files_with_a_missing_key_name_it(tmp_path):
    """A (testset, id) in one generate file but not the other is an error naming key and files."""
    a = _generate_rows("x", {("vicuna", 1): "a", ("vicuna", 2): "b"})
    b = _generate_rows("y", {("vicuna", 1): "c"})
    pa, pb = _jsonl(tmp_path / "a.jsonl", a), _jsonl(tmp_path / "b.jsonl", b)
    with pytest.raises(DataFormatError, match=r"\('vicuna', '2'\).*is not in .*b\.jsonl"):
        load_pairs(pa, pb)


def test_generate_files_with_different_prompts_are_refused(tmp_path):
    """The same key with two different prompts is an error quoting both."""
    a = _generate_rows("x", {("vicuna", 1): "a"})
    b = _generate_rows("y", {("vicuna", 1): "b"})
    b[0]["prompt"] = "another question"
    with pytest.raises(DataFormatError, match="another question"):
        load_pairs(_jsonl(tmp_path / "a.jsonl", a), _jsonl(tmp_path / "b.jsonl", b))


def test_generate_row_without_answer_names_record_and_field(tmp_path):
    """A generate row whose 'answer' is null is an error naming the file, record and field."""
    a = _generate_rows("x", {("vicuna", 1): "a", ("vicuna", 2): "b"})
    b = _generate_rows("y", {("vicuna", 1): "c", ("vicuna", 2): "d"})
    b[1]["answer"] = None
    with pytest.raises(DataFormatError, match=r"b\.jsonl: record 1: 'answer' must be a string"):
        load_pairs(_jsonl(tmp_path / "a.jsonl", a), _jsonl(tmp_path / "b.jsonl", b))


def test_later_turns_of_multi_turn_answers_are_refused(tmp_path):
    """A generate row answering a second turn (with a 'history') is refused, naming the record:
    the pairwise protocols would judge it without its conversation."""
    a = _generate_rows("x", {("mt_bench", "q1"): "a", ("mt_bench", "q1/turn2"): "b"})
    b = _generate_rows("y", {("mt_bench", "q1"): "c", ("mt_bench", "q1/turn2"): "d"})
    for rows in (a, b):
        rows[1].update(turn=2, history=[{"role": "user", "content": "q"}])
    with pytest.raises(DataFormatError, match=r"record 1 \(id 'q1/turn2'\) answers turn 2"):
        load_pairs(_jsonl(tmp_path / "a.jsonl", a), _jsonl(tmp_path / "b.jsonl", b))
    first = load_pairs(_jsonl(tmp_path / "a1.jsonl", a[:1]), _jsonl(tmp_path / "b1.jsonl", b[:1]))
    assert len(first) == 1


def test_files_of_two_formats_are_refused(tmp_path):
    """A generate file against an AlpacaEval file is an error naming both formats."""
    a = _jsonl(tmp_path / "a.jsonl", _generate_rows("x", {("t", 1): "a"}))
    b = tmp_path / "b.json"
    b.write_text(json.dumps([{"instruction": "question t 1", "output": "o", "generator": "g"}]))
    with pytest.raises(DataFormatError, match="'generate'.*'alpaca_eval'"):
        load_pairs(a, b)


def test_unknown_fields_are_refused_with_what_was_expected(tmp_path):
    """A file whose rows are neither format lists the fields found and those expected."""
    a = _jsonl(tmp_path / "a.jsonl", [{"question": "q", "reply": "r"}])
    with pytest.raises(DataFormatError, match=r"\['question', 'reply'\].*'prompt'"):
        load_pairs(a, a)


def test_one_pairs_file_with_renamed_fields(tmp_path):
    """A single file of prompts with two answers loads with the field names given (the paper's qa_file)."""
    rows = [
        {"text": "q1", "longest": "long 1", "alpaca": "short 1", "testset": "vicuna"},
        {"text": "q2", "longest": "long 2", "alpaca": "short 2", "testset": "vicuna"},
    ]
    path = tmp_path / "qa.json"
    path.write_text(json.dumps(rows))
    pairs = load_pairs(path, prompt_field="text", answer_a_field="longest", answer_b_field="alpaca")
    assert pairs.prompts == ("q1", "q2") and pairs.answers_b == ("short 1", "short 2")
    assert (pairs.model_a, pairs.model_b) == ("longest", "alpaca") and pairs.ids == ("0", "1")


def test_pairs_file_missing_an_answer_field_names_it(tmp_path):
    """A pairs row without the second answer is an error naming the record and the field."""
    path = _jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "answer_a": "x"}])
    with pytest.raises(DataFormatError, match="record 0 has no 'answer_b' field"):
        load_pairs(path)


def test_duplicate_keys_in_lists_are_refused():
    """Two rows with the same test set and id are refused, naming both rows."""
    with pytest.raises(DataFormatError, match="rows 0 and 1"):
        Pairs.from_lists(["q", "q"], ["a", "a"], ["b", "b"], ids=[1, 1])


def test_lists_of_different_lengths_use_the_parameter_template():
    """answers_b shorter than prompts gives the library's standard parameter message."""
    with pytest.raises(
        InvalidParameterError, match="The 'answers_b' parameter of Pairs.from_lists must be"
    ):
        Pairs.from_lists(["q1", "q2"], ["a", "b"], ["c"])


def test_bad_format_name_is_refused(tmp_path):
    """An unknown input format is refused with the allowed values."""
    with pytest.raises(InvalidParameterError, match="'format' parameter of load_pairs"):
        load_pairs(tmp_path / "a.json", tmp_path / "b.json", format="csv")


@given(st.lists(st.tuples(answer_texts, answer_texts), min_size=1, max_size=8))
def test_swapped_pairs_swap_answers_and_names_back_and_forth(rows):
    """Pairs.swapped exchanges the answers and the model names, and twice is the identity."""
    pairs = Pairs.from_lists(
        [f"q{i}" for i in range(len(rows))],
        [a for a, _ in rows],
        [b for _, b in rows],
        model_a="x",
        model_b="y",
    )
    s = pairs.swapped()
    assert s.answers_a == pairs.answers_b and (s.model_a, s.model_b) == ("y", "x")
    assert s.swapped() == pairs


def test_prompt_mismatch_shows_where_the_prompts_first_differ(tmp_path):
    """Prompts that differ only late (a trailing space) are refused naming the first differing index and a repr window on both sides."""
    prompt = "Explain, in a few sentences, why the sky looks blue on a clear day at noon?"
    assert len(prompt) > 70
    a = _jsonl(tmp_path / "a.jsonl", [{"id": 0, "testset": "t", "prompt": prompt, "answer": "x"}])
    b = _jsonl(
        tmp_path / "b.jsonl", [{"id": 0, "testset": "t", "prompt": prompt + " ", "answer": "y"}]
    )
    with pytest.raises(DataFormatError) as err:
        load_pairs(a, b)
    message = str(err.value)
    assert f"first differ at character {len(prompt)}" in message
    assert repr(prompt[-20:]) + " (end of text)" in message
    assert repr(prompt[-20:] + " ") in message
    assert "record 0" in message and "('t', '0')" in message


def test_alpaca_eval_mismatch_shows_the_differing_window(tmp_path):
    """AlpacaEval instructions differing by a tab deep in the text show the index and both windows with the tab visible."""
    text = "word " * 30 + "end"
    other = text[:100] + "\t" + text[101:]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps([{"instruction": text, "output": "x"}]))
    b.write_text(json.dumps([{"instruction": other, "output": "y"}]))
    with pytest.raises(DataFormatError, match="first mismatch is record 0") as err:
        load_pairs(a, b)
    message = str(err.value)
    assert "first differ at character 100" in message
    assert repr(text[80:120]) in message and repr(other[80:120]) in message
    assert "\\t" in message


def test_later_turns_can_be_skipped_to_judge_the_first_turns(tmp_path):
    """later_turns='skip' leaves out rows with a history and pairs the first turns; 'refuse' names them."""
    import json

    from sftselect.evaluate import load_pairs

    def write(name, answer):
        rows = [
            {"id": "q1", "testset": "mt_bench", "prompt": "P1", "answer": answer, "model": name},
            {
                "id": "q1/turn2",
                "testset": "mt_bench",
                "prompt": "P2",
                "answer": answer + "!",
                "model": name,
                "turn": 2,
                "history": [["P1", answer]],
            },
        ]
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    a, b = write("a", "x"), write("b", "y")
    with pytest.raises(DataFormatError, match="later_turns='skip'"):
        load_pairs(a, b)
    pairs = load_pairs(a, b, later_turns="skip")
    assert (list(pairs.ids), list(pairs.answers_a), list(pairs.answers_b)) == (["q1"], ["x"], ["y"])
