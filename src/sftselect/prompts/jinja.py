"""A template as a Jinja chat template, so a saved model prompts itself as it was trained.

:func:`chat_template` writes a :class:`~sftselect.prompts.templates.PromptTemplate`
(``vicuna_v1.1``, ``alpaca``) as the Jinja that transformers'
``apply_chat_template`` (and every server that reads a model folder's chat
template: vLLM, TGI, ``transformers serve``, llama.cpp's ``--jinja``) renders.
For the messages a chat request carries (an optional ``system`` message, then
``user`` and ``assistant`` turns), ``apply_chat_template(messages,
tokenize=False, add_generation_prompt=True)`` equals, character for character,
the tokenizer's BOS token followed by ``template.render(messages, tokenizer,
add_generation_prompt=True).text``, the prompt training and
:func:`sftselect.generate.generate` use (a test checks it on real records).

What does not carry over: the Alpaca-style ``input`` of a training row (a
chat message has no such field; :mod:`sftselect.train.examples` merges it
into the user turn for every template but ``alpaca``, whose "### Input:"
section only a row with an input gets). Every template ends the user turn
with the assistant header, so a conversation that ends with a user turn ends
with the header whether or not ``add_generation_prompt`` is set.
"""

from __future__ import annotations

import json
from typing import Any

from ..exceptions import InvalidParameterError
from .templates import ChatTemplate, PromptTemplate

__all__ = ["chat_template"]

_MARK = "\x00"


def _literal(text: str) -> str:
    """``text`` as a Jinja string literal (JSON escapes, which Jinja's lexer decodes)."""
    return json.dumps(text, ensure_ascii=False)


def _around(pattern: str, **fields: str) -> list[str]:
    """``pattern`` formatted with each field replaced by a split mark, split there."""
    return pattern.format(**{k: _MARK for k in fields}).split(_MARK)


def chat_template(template: PromptTemplate | ChatTemplate, tokenizer: Any = None) -> str | None:
    """The Jinja chat template that renders like ``template``.

    Parameters
    ----------
    template : PromptTemplate or ChatTemplate
        A built-in template. For ``chat``, its own Jinja if it has one, else
        the tokenizer's chat template (None when the tokenizer has none).
    tokenizer : tokenizer or None
        Only read for ``chat``.

    Returns
    -------
    str or None
    """
    if isinstance(template, ChatTemplate):
        return template.jinja or getattr(tokenizer, "chat_template", None)
    if not isinstance(template, PromptTemplate):
        raise InvalidParameterError(
            f"chat_template needs a PromptTemplate or ChatTemplate. Got {type(template).__name__}."
        )
    if _MARK in template.system + template.user + template.assistant + template.assistant_header:
        raise InvalidParameterError(f"Template {template.name!r} holds a NUL character.")
    user = _around(template.user, content="")
    answer = _around(template.assistant, content="", eos="")
    if len(user) != 2 or len(answer) != 3 or "{eos}" not in template.assistant:
        raise InvalidParameterError(
            f"Template {template.name!r}: its user turn must hold {{content}} once and its "
            "assistant turn {content} then {eos}, to be written as a chat template."
        )
    if template.assistant.index("{content}") > template.assistant.index("{eos}"):
        raise InvalidParameterError(
            f"Template {template.name!r}: {{eos}} comes before {{content}} in its assistant turn."
        )
    trail = template.system[len(template.system.rstrip()) :]
    lines = [
        "{#- sftselect: the '" + template.name + "' training template -#}",
        "{{- bos_token -}}",
        "{%- if messages and messages[0]['role'] == 'system' -%}",
        "{{- messages[0]['content'] + " + _literal(trail) + " -}}",
        "{%- set turns = messages[1:] -%}",
        "{%- else -%}",
        "{{- " + _literal(template.system) + " -}}",
        "{%- set turns = messages -%}",
        "{%- endif -%}",
        "{%- for message in turns -%}",
        "{%- if message['role'] == 'user' -%}",
        "{{- "
        + " + ".join(
            [
                _literal(user[0]),
                "message['content']",
                _literal(user[1] + template.assistant_header),
            ]
        )
        + " -}}",
        "{%- elif message['role'] == 'assistant' -%}",
        "{{- "
        + " + ".join(
            [
                _literal(answer[0]),
                "message['content']",
                _literal(answer[1]),
                "eos_token",
                _literal(answer[2]),
            ]
        )
        + " -}}",
        "{%- else -%}",
        "{{- raise_exception('role ' + message['role'] + ' is not user or assistant') -}}",
        "{%- endif -%}",
        "{%- endfor -%}",
    ]
    return "\n".join(lines)
