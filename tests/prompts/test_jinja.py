"""The training template as a Jinja chat template: apply_chat_template renders the training
prompt character for character, for any conversation and on a model saved by train()."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

os.environ["HF_HUB_OFFLINE"] = "1"
pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from sftselect.data.io import load_data  # noqa: E402
from sftselect.exceptions import InvalidParameterError  # noqa: E402
from sftselect.prompts.jinja import chat_template  # noqa: E402
from sftselect.prompts.templates import ALPACA, CHAT, VICUNA_V1_1, PromptTemplate  # noqa: E402
from sftselect.train import TrainConfig, conversations, encode, train  # noqa: E402
from tests.helpers.paths import require_shared_data  # noqa: E402
from tests.helpers.tiny_llama import spm_tokenizer, tiny_llama  # noqa: E402


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return spm_tokenizer(tmp_path_factory.mktemp("tok"))


def rendered_by_jinja(tok, template, messages, generation):
    return tok.apply_chat_template(
        messages,
        chat_template=chat_template(template),
        tokenize=False,
        add_generation_prompt=generation,
    )


text = st.lists(
    st.sampled_from([*list("ab {}%#'\"\\\n\t.é😀"), "{{", "{%", "</s>"]), max_size=12
).map("".join)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from([VICUNA_V1_1, ALPACA]),
    st.booleans(),
    st.lists(st.tuples(text, text), min_size=1, max_size=3),
    text,
)
def test_jinja_renders_like_the_template(tok, template, with_system, pairs, last):
    """Any conversation (Jinja-like text, quotes, backslashes, non-ASCII included): the chat
    template's training text and generation prompt equal BOS + the template's render."""
    if template is ALPACA:
        pairs = pairs[:1]
    messages = [{"role": "system", "content": "Be brief."}] if with_system else []
    for u, a in pairs:
        messages += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
    full = template.render(messages, tok)
    assert rendered_by_jinja(tok, template, messages, False) == tok.bos_token + full.text
    if template is VICUNA_V1_1:
        prompt_msgs = [*messages, {"role": "user", "content": last}]
    else:
        prompt_msgs = messages[:-1]
    prompt = template.render(prompt_msgs, tok, add_generation_prompt=True)
    assert rendered_by_jinja(tok, template, prompt_msgs, True) == tok.bos_token + prompt.text


def test_bad_templates_and_roles_are_refused(tok):
    bad = PromptTemplate(name="x", system="", user="U", assistant_header=":", assistant="{eos}")
    with pytest.raises(InvalidParameterError, match=r"user turn must hold \{content\} once"):
        chat_template(bad)
    with pytest.raises(Exception, match="role tool is not user or assistant"):
        rendered_by_jinja(tok, VICUNA_V1_1, [{"role": "tool", "content": "x"}], True)
    assert chat_template(CHAT, tok) is None  # no chat template to carry over


def test_saved_model_prompts_itself_as_trained(tok, tmp_path):
    """train() writes the template into the saved tokenizer: on real 1k-longest records,
    apply_chat_template of the reloaded tokenizer gives the training prompt's text and token
    ids exactly (the prompt tokens of the trained example); the caller's tokenizer object keeps
    its own chat template."""
    shared = require_shared_data()
    rows = load_data(shared / "paper" / "filtered_alpaca_1k_longest.json").select(range(6))
    config = TrainConfig(max_length=128, max_steps=1, batch_size=2, micro_batch_size=2)
    config = TrainConfig(**{**config.__dict__, "use_cpu": True})
    assert tok.chat_template is None
    train(tiny_llama(tok), rows, tmp_path / "m", tokenizer=tok, config=config)
    assert tok.chat_template is None
    saved = transformers.AutoTokenizer.from_pretrained(tmp_path / "m")
    assert saved.chat_template == chat_template(VICUNA_V1_1)
    for conv in conversations(rows):
        messages = list(conv.messages)
        prompt = messages[:1]
        text = saved.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        trained = VICUNA_V1_1.render(prompt, tok, add_generation_prompt=True).text
        assert text == tok.bos_token + trained
        # token ids: BOS, then the text after it tokenized on its own (as training and
        # sftselect.generate do) give the training example's prompt tokens exactly
        body = text[len(saved.bos_token) :]
        ids = [saved.bos_token_id, *saved(body, add_special_tokens=False)["input_ids"]]
        example = encode(VICUNA_V1_1, tok, conv)
        assert ids == example.input_ids[: len(ids)]
        assert example.labels[len(ids) - 1] == -100 and example.labels[len(ids)] != -100
        # a server tokenizes the whole text ("<s>A chat..."): this LLaMA-style SentencePiece
        # tokenizer then gives the system prompt's first word, "A", without its word-boundary
        # mark; every other token is the same (docs/training.md, "Serving")
        served = saved.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True)
        served = list(served["input_ids"] if hasattr(served, "keys") else served)
        assert served[0] == ids[0] and served[2:] == ids[2:]
        assert saved.convert_ids_to_tokens(served[1:2] + ids[1:2]) == ["A", "\u2581A"]
