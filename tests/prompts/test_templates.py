"""Prompt templates: FastChat's vicuna_v1.1 exactly, Alpaca, the chat template, and errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sftselect.exceptions import DataFormatError, InvalidParameterError
from sftselect.prompts.templates import ALPACA, VICUNA_V1_1, ChatTemplate, get_template

transformers = pytest.importorskip("transformers")

SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


class EosOnly:
    """A stand-in tokenizer: the templates read only its EOS text."""

    eos_token = "</s>"


def fastchat_add_colon_two(system, messages, sep=" ", sep2="</s>"):
    """FastChat's Conversation.get_prompt for SeparatorStyle.ADD_COLON_TWO, re-typed."""
    seps = [sep, sep2]
    ret = system + seps[0]
    for i, (role, message) in enumerate(messages):
        if message:
            ret += role + ": " + message + seps[i % 2]
        else:
            ret += role + ":"
    return ret


def conv(*texts):
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)
    ]


def test_vicuna_matches_fastchat_get_prompt_multi_turn():
    """vicuna_v1.1 renders exactly FastChat's ADD_COLON_TWO prompt, for training and generation."""
    msgs = conv("Hi there", "Hello! How can I help?", "Name a colour.", "Blue.")
    roles = ["USER", "ASSISTANT"] * 2
    r = VICUNA_V1_1.render(msgs, EosOnly())
    assert r.text == fastchat_add_colon_two(SYSTEM, list(zip(roles, [m["content"] for m in msgs])))
    g = VICUNA_V1_1.render(msgs[:3], EosOnly(), add_generation_prompt=True)
    expected = fastchat_add_colon_two(
        SYSTEM, [*zip(roles[:3], [m["content"] for m in msgs[:3]]), ("ASSISTANT", None)]
    )
    assert g.text == expected and g.spans == ()
    assert [r.text[a:b] for a, b in r.spans] == [" Hello! How can I help?</s>", " Blue.</s>"]


text = st.text(alphabet=st.sampled_from("ab \n:#?é"), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(text, text), min_size=1, max_size=3))
def test_spans_hold_exactly_the_answers_and_prompts_are_prefixes(pairs):
    """Each trained span is ' ' + answer + EOS, and each turn's generation prompt is a prefix."""
    msgs = conv(*[t for pair in pairs for t in pair])
    r = VICUNA_V1_1.render(msgs, EosOnly())
    assert [r.text[a:b] for a, b in r.spans] == [f" {a}</s>" for _, a in pairs]
    for k, (a, _) in enumerate(r.spans):
        prompt = VICUNA_V1_1.render(msgs[: 2 * k + 1], EosOnly(), add_generation_prompt=True)
        assert r.text[:a] == prompt.text


def test_alpaca_input_section_and_single_turn():
    """Alpaca uses its with-input preamble and Input section; a second turn raises naming the row."""
    r = ALPACA.render(conv("Summarise.", "Short."), EosOnly(), input="Long text")
    assert r.text.startswith("Below is an instruction that describes a task, paired with an input")
    assert (
        "### Instruction:\nSummarise.\n\n### Input:\nLong text\n\n### Response:\nShort.</s>"
        in r.text
    )
    assert r.text[r.spans[0][0] :] == "Short.</s>"
    plain = ALPACA.render(conv("Hi"), EosOnly(), add_generation_prompt=True)
    assert plain.text.endswith("### Instruction:\nHi\n\n### Response:\n")
    with pytest.raises(DataFormatError, match=r"Row 4: 2 user turns; template 'alpaca'"):
        ALPACA.render(conv("a", "b", "c", "d"), EosOnly(), where="Row 4")


def test_system_message_replaces_the_default_system():
    """A leading system message replaces the template's system text."""
    msgs = [{"role": "system", "content": "Be brief."}, *conv("Hi", "Yo")]
    assert VICUNA_V1_1.render(msgs, EosOnly()).text == "Be brief. USER: Hi ASSISTANT: Yo</s>"


def test_bad_conversations_raise_naming_the_turn():
    """Turns that do not alternate, unknown roles and a wrong last turn raise naming the problem."""
    with pytest.raises(DataFormatError, match="turn 1 has role 'user'; expected 'assistant'"):
        VICUNA_V1_1.render(conv("a", "b")[:1] * 2 + conv("a", "b")[1:], EosOnly())
    with pytest.raises(DataFormatError, match="role 'bot' is not one of"):
        VICUNA_V1_1.render([{"role": "bot", "content": "x"}], EosOnly())
    with pytest.raises(DataFormatError, match="must end with a 'assistant' turn"):
        VICUNA_V1_1.render(conv("a"), EosOnly())
    with pytest.raises(DataFormatError, match="must end with a 'user' turn"):
        VICUNA_V1_1.render(conv("a", "b"), EosOnly(), add_generation_prompt=True)


def test_get_template_rejects_unknown_names():
    """An unknown template name raises the library's parameter message listing the names."""
    assert get_template("vicuna_v1.1") is VICUNA_V1_1
    with pytest.raises(InvalidParameterError, match=r"The 'template' parameter of get_template"):
        get_template("llama-2")


@pytest.fixture(scope="module")
def spm_tok(tmp_path_factory):
    """A LLaMA-style SentencePiece tokenizer with no chat template of its own."""
    from tests.helpers.tiny_llama import spm_tokenizer

    return spm_tokenizer(tmp_path_factory.mktemp("tok"))


def test_chat_template_spans_are_the_assistant_turns(spm_tok):
    """The chat template's spans are each assistant turn with its end marker, nothing else."""
    jinja = (
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    )
    tmpl = ChatTemplate(jinja=jinja)
    r = tmpl.render(conv("Hi", "Hello", "Again", "Sure"), spm_tok)
    assert [r.text[a:b] for a, b in r.spans] == ["Hello<|end|>\n", "Sure<|end|>\n"]
    with pytest.raises(InvalidParameterError, match="has none"):
        ChatTemplate().render(conv("Hi", "Yo"), spm_tok)
