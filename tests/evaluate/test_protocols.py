"""The judge protocols: verbatim published prompts with versions and sources, and ours labelled."""

from __future__ import annotations

import pytest

from sftselect.evaluate import PairwiseProtocol, pairwise_protocol, protocol_names
from sftselect.exceptions import InvalidParameterError

# Fragments checked against the published scripts (the paper's evaluation_gpt4.py and
# AlpaGasus's evaluation/eval.py share the text; FastChat's judge_prompts.jsonl pair-v2).
PAPER_CRITERIA_END = (
    "In the subsequent line, please provide a comprehensive explanation of your evaluation, "
    "avoiding any potential bias and ensuring that the order in which the responses were "
    "presented does not affect your judgment.\n\n"
)


def test_paper_prompt_is_the_published_text():
    """The paper preset renders exactly the published template, system message and criteria."""
    p = pairwise_protocol("paper")
    msgs = p.messages("Q?", "one", "two")
    assert msgs[0] == {
        "role": "system",
        "content": "You are a helpful and precise assistant for checking the quality of the answer.",
    }
    user = msgs[1]["content"]
    assert user.startswith(
        "[Question]\nQ?\n\n[The Start of Assistant 1's Answer]\none\n\n[The End of Assistant 1's "
        "Answer]\n\n[The Start of Assistant 2's Answer]\ntwo\n\n[The End of Assistant 2's Answer]"
        "\n\n[System]\nWe would like to request your feedback"
    )
    assert user.endswith(PAPER_CRITERIA_END)
    assert "on a scale of 1 to 10" in user and "only two values" in user
    assert (p.version, p.scale, p.max_tokens, p.temperature, p.top_p) == (
        "long-is-more-pairwise-v1",
        (1, 10),
        256,
        0.0,
        1.0,
    )
    assert p.verbatim and "tml-epfl/long-is-more-for-alignment" in p.source


def test_fastchat_pair_v2_is_the_published_text():
    """The pair-v2 preset has FastChat's system prompt, template and verdict format."""
    p = pairwise_protocol("fastchat-pair-v2")
    system, user = (m["content"] for m in p.messages("Q?", "one", "two"))
    assert system.startswith("Please act as an impartial judge and evaluate the quality")
    assert system.endswith(
        'output your final verdict by strictly following this format: "[[A]]" if assistant A is '
        'better, "[[B]]" if assistant B is better, and "[[C]]" for a tie.'
    )
    assert user == (
        "[User Question]\nQ?\n\n[The Start of Assistant A's Answer]\none\n[The End of Assistant A's "
        "Answer]\n\n[The Start of Assistant B's Answer]\ntwo\n[The End of Assistant B's Answer]"
    )
    assert (p.output, p.max_tokens, p.version) == ("verdict", 2048, "fastchat-pair-v2")
    assert p.verbatim and "lm-sys/FastChat" in p.source


def test_length_debiased_is_labelled_ours_and_asks_to_ignore_length():
    """Our variant says it is not verbatim, names itself, and tells the judge length is no merit."""
    p = pairwise_protocol("length-debiased")
    user = p.messages("Q?", "one", "two")[1]["content"]
    assert not p.verbatim and p.version.startswith("sftselect-")
    assert "ours" in p.description.lower() or "OURS" in p.description
    assert "Do not let the length of the responses influence your scores" in user
    assert user.endswith(PAPER_CRITERIA_END)


def test_every_preset_records_a_source_url_and_version():
    """Each preset has a version string and a source naming a URL."""
    names = protocol_names()
    assert set(names) == {"paper", "fastchat-pair-v2", "length-debiased"}
    for name in names:
        p = pairwise_protocol(name)
        assert p.version and "https://github.com/" in p.source


def test_answers_with_braces_are_inserted_literally():
    """Braces inside a question or answer are kept as text, not read as template fields."""
    user = pairwise_protocol("paper").messages("{x}?", "a {b} c", "{{d}}")[1]["content"]
    assert "{x}?" in user and "a {b} c" in user and "{{d}}" in user


def test_unknown_protocol_names_the_choices():
    """An unknown preset name is refused, listing the presets."""
    with pytest.raises(InvalidParameterError, match="fastchat-pair-v2"):
        pairwise_protocol("gpt4-judge")


def test_custom_protocol_template_must_use_its_slots():
    """A custom template missing the second answer's field is refused, naming the fields."""
    with pytest.raises(InvalidParameterError, match="must use exactly the fields"):
        PairwiseProtocol(
            name="mine",
            version="mine-v1",
            template="{q} {x}",
            slots={"question": "q", "first": "x", "second": "y"},
            output="verdict",
        )
