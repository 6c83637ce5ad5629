"""Prompt templates as data, shared by training and generation.

A template turns a conversation (a list of ``{"role", "content"}`` messages,
roles ``system``, ``user``, ``assistant``) into one string and the character
spans of that string the model is trained to produce. Training
(:mod:`sftselect.train`) and generation (:mod:`sftselect.generate`) render with
the same object, so the prompt a model sees at inference is, token for token,
the prompt it was trained on.

Three templates are known by name:

``vicuna_v1.1``
    FastChat's Vicuna v1.1 conversation (``fastchat/conversation.py``, the
    ``vicuna_v1.1`` entry: ``sep_style=ADD_COLON_TWO``, ``sep=" "``,
    ``sep2="</s>"``, roles ``USER``/``ASSISTANT``), the template the paper
    trained with (``training/fastchat/train/train.py``,
    ``get_conversation_template("vicuna")``)::

        {system} USER: {u1} ASSISTANT: {a1}</s>USER: {u2} ASSISTANT: {a2}</s>

    ``</s>`` is the tokenizer's EOS token (LLaMA's is ``</s>``). The prompt for
    generation ends with ``ASSISTANT:``.
``alpaca``
    The Stanford Alpaca prompt (single turn; with an ``### Input:`` section
    when the row has a non-empty input), the response followed by EOS. The
    header is ``### Response:\\n`` as in Alpaca's released generations
    (Stanford's ``train.py`` ends the prompt at ``### Response:`` with no
    newline).
``chat``
    The tokenizer's own Jinja chat template (``tokenizer.apply_chat_template``).
    The assistant spans are found by rendering the conversation up to each
    assistant turn with ``add_generation_prompt=True`` and up to the end of
    that turn: the characters between the two renders are trained on (the
    turn's text and its end-of-turn marker).

The trained spans of the ``vicuna_v1.1`` template start at the space after
``ASSISTANT:`` and end after ``</s>``: the model learns the answer and the EOS
that ends it, never the system text, a user turn or a role name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.validation import param_error
from ..exceptions import DataFormatError, InvalidParameterError

__all__ = [
    "ALPACA",
    "CHAT",
    "TEMPLATES",
    "VICUNA_V1_1",
    "ChatTemplate",
    "PromptTemplate",
    "Rendered",
    "check_messages",
    "get_template",
]

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Rendered:
    """A rendered conversation: the text and the character spans to train on.

    Attributes
    ----------
    text : str
        The whole conversation (or the prompt, for generation).
    spans : tuple of (int, int)
        Half-open character ranges ``[start, end)`` of ``text`` the model is
        trained to produce, in order. Empty for a generation prompt.
    add_bos : bool
        Whether the tokenizer's BOS token goes before ``text`` (the built-in
        templates; a chat template writes its own).
    """

    text: str
    spans: tuple[tuple[int, int], ...]
    add_bos: bool


def check_messages(messages: Any, where: str, *, for_generation: bool) -> list[dict[str, str]]:
    """Validate a conversation and return it as a list of plain dicts.

    Parameters
    ----------
    messages : sequence of mapping
        ``{"role": ..., "content": ...}`` items; an optional leading ``system``
        message, then ``user`` and ``assistant`` turns alternating, starting
        with ``user``.
    where : str
        What the conversation is ("row 12"), for error messages.
    for_generation : bool
        True: the conversation must end with a ``user`` turn (the prompt).
        False: it must end with an ``assistant`` turn (a training example).

    Returns
    -------
    list of dict
        The messages as ``{"role": str, "content": str}`` dicts.

    Raises
    ------
    DataFormatError
        A message that is not a mapping with string ``role`` and ``content``,
        an unknown role, turns that do not alternate, or the wrong last turn.
    """
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise DataFormatError(
            f"{where}: expected a list of {{'role', 'content'}} messages; "
            f"got {type(messages).__name__}."
        )
    out: list[dict[str, str]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise DataFormatError(f"{where}, message {i}: expected a mapping; got {m!r}.")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise DataFormatError(
                f"{where}, message {i}: role {role!r} is not one of {list(ROLES)}."
            )
        if not isinstance(content, str):
            raise DataFormatError(
                f"{where}, message {i}: 'content' must be a string; got {content!r}."
            )
        out.append({"role": role, "content": content})
    turns = out[1:] if out and out[0]["role"] == "system" else out
    if not turns:
        raise DataFormatError(f"{where}: the conversation has no user or assistant turn.")
    for i, m in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if m["role"] != expected:
            raise DataFormatError(
                f"{where}: turn {i} has role {m['role']!r}; expected {expected!r} (turns must "
                "alternate user/assistant, starting with user, after an optional system message)."
            )
    last = "user" if for_generation else "assistant"
    if turns[-1]["role"] != last:
        what = "a generation prompt" if for_generation else "a training example"
        raise DataFormatError(
            f"{where}: {what} must end with a {last!r} turn; it ends with {turns[-1]['role']!r}."
        )
    return out


@dataclass(frozen=True)
class PromptTemplate:
    """A plain-text prompt template (``vicuna_v1.1``, ``alpaca``).

    ``{eos}`` in ``assistant`` is replaced by the tokenizer's EOS token text.

    Attributes
    ----------
    name : str
        The name the template is known by.
    system : str
        Text placed first (a ``system`` message replaces it).
    system_with_input : str or None
        Text placed first when the first user turn has a non-empty ``input``.
    user : str
        One user turn, with ``{content}``.
    user_with_input : str or None
        The first user turn when it has a non-empty ``input`` (``{content}``,
        ``{input}``); None joins the input to the content with a blank line.
    assistant_header : str
        What opens an assistant turn; a generation prompt ends with it.
    assistant : str
        The trained part of an assistant turn, with ``{content}`` and ``{eos}``.
    max_turns : int or None
        How many user/assistant exchanges the template can hold (None: any).
    source : str
        Where the template comes from.
    """

    name: str
    system: str
    user: str
    assistant_header: str
    assistant: str
    system_with_input: str | None = None
    user_with_input: str | None = None
    max_turns: int | None = None
    source: str = ""

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        tokenizer: Any,
        *,
        add_generation_prompt: bool = False,
        input: str | None = None,
        where: str = "conversation",
    ) -> Rendered:
        """Render ``messages`` (and the first turn's ``input``) to text and trained spans.

        Parameters
        ----------
        messages : sequence of mapping
            The conversation (see :func:`check_messages`).
        tokenizer : tokenizer
            Supplies the EOS token text.
        add_generation_prompt : bool, default False
            True: ``messages`` end with a user turn and the text ends with the
            assistant header (no spans). False: a training example.
        input : str or None
            The Alpaca-style input of the first user turn (None or "": none).
        where : str
            What the conversation is, for error messages.

        Returns
        -------
        Rendered
        """
        msgs = check_messages(messages, where, for_generation=add_generation_prompt)
        eos = getattr(tokenizer, "eos_token", None)
        if not isinstance(eos, str) or not eos:
            raise InvalidParameterError(
                f"Template {self.name!r} ends each answer with the tokenizer's EOS token, and the "
                "tokenizer has none; set tokenizer.eos_token."
            )
        system = self.system
        has_input = bool(input)
        if msgs[0]["role"] == "system":
            system = msgs[0]["content"] + (self.system[len(self.system.rstrip()) :])
            msgs = msgs[1:]
        elif has_input and self.system_with_input is not None:
            system = self.system_with_input
        n_exchanges = (len(msgs) + 1) // 2
        if self.max_turns is not None and n_exchanges > self.max_turns:
            raise DataFormatError(
                f"{where}: {n_exchanges} user turns; template {self.name!r} holds at most "
                f"{self.max_turns}. Use 'vicuna_v1.1' or 'chat' for multi-turn data."
            )
        parts = [system]
        pos = len(system)
        spans: list[tuple[int, int]] = []
        for i, m in enumerate(msgs):
            if m["role"] == "user":
                if i == 0 and has_input:
                    if self.user_with_input is not None:
                        text = self.user_with_input.format(content=m["content"], input=input)
                    else:
                        text = self.user.format(content=f"{m['content']}\n\n{input}")
                else:
                    text = self.user.format(content=m["content"])
                text += self.assistant_header
                parts.append(text)
                pos += len(text)
            else:
                text = self.assistant.format(content=m["content"], eos=eos)
                parts.append(text)
                spans.append((pos, pos + len(text)))
                pos += len(text)
        return Rendered("".join(parts), () if add_generation_prompt else tuple(spans), add_bos=True)


@dataclass(frozen=True)
class ChatTemplate:
    """The tokenizer's own chat template (``tokenizer.apply_chat_template``).

    Attributes
    ----------
    name : str
        ``"chat"``.
    jinja : str or None
        A Jinja template to use instead of the tokenizer's.
    """

    name: str = "chat"
    jinja: str | None = None

    def _apply(
        self, tokenizer: Any, msgs: list[dict[str, str]], add_generation_prompt: bool
    ) -> str:
        if self.jinja is None and not getattr(tokenizer, "chat_template", None):
            raise InvalidParameterError(
                "The 'chat' template uses the tokenizer's chat template, and this tokenizer has "
                "none; pick the 'vicuna_v1.1' or 'alpaca' template, or give a Jinja template."
            )
        text = tokenizer.apply_chat_template(
            msgs,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            chat_template=self.jinja,
        )
        if not isinstance(text, str):  # some versions return a list for one conversation
            text = text[0]
        return text

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        tokenizer: Any,
        *,
        add_generation_prompt: bool = False,
        input: str | None = None,
        where: str = "conversation",
    ) -> Rendered:
        """Render with the chat template; see :meth:`PromptTemplate.render`."""
        msgs = check_messages(messages, where, for_generation=add_generation_prompt)
        if input:
            first = next(i for i, m in enumerate(msgs) if m["role"] == "user")
            msgs[first] = {"role": "user", "content": f"{msgs[first]['content']}\n\n{input}"}
        if add_generation_prompt:
            return Rendered(self._apply(tokenizer, msgs, True), (), add_bos=False)
        full = self._apply(tokenizer, msgs, False)
        spans = []
        for i, m in enumerate(msgs):
            if m["role"] != "assistant":
                continue
            head = self._apply(tokenizer, msgs[:i], True)
            upto = self._apply(tokenizer, msgs[: i + 1], False)
            if not full.startswith(upto) or not upto.startswith(head):
                raise DataFormatError(
                    f"{where}: the chat template does not render the conversation as a growing "
                    f"prefix at assistant turn {i}, so the trained tokens cannot be located; use "
                    "the 'vicuna_v1.1' or 'alpaca' template."
                )
            spans.append((len(head), len(upto)))
        return Rendered(full, tuple(spans), add_bos=False)


VICUNA_V1_1 = PromptTemplate(
    name="vicuna_v1.1",
    system=(
        "A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's questions. "
    ),
    user="USER: {content} ",
    assistant_header="ASSISTANT:",
    assistant=" {content}{eos}",
    source="lm-sys/FastChat fastchat/conversation.py, vicuna_v1.1 (ADD_COLON_TWO, sep ' ', "
    "sep2 '</s>'); used by tml-epfl/long-is-more-for-alignment training/fastchat/train/train.py",
)

ALPACA = PromptTemplate(
    name="alpaca",
    system=(
        "Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request.\n\n"
    ),
    system_with_input=(
        "Below is an instruction that describes a task, paired with an input that provides "
        "further context. Write a response that appropriately completes the request.\n\n"
    ),
    user="### Instruction:\n{content}\n\n",
    user_with_input="### Instruction:\n{content}\n\n### Input:\n{input}\n\n",
    assistant_header="### Response:\n",
    assistant="{content}{eos}",
    max_turns=1,
    source="tatsu-lab/stanford_alpaca train.py PROMPT_DICT",
)

CHAT = ChatTemplate()

#: The templates known by name.
TEMPLATES: dict[str, PromptTemplate | ChatTemplate] = {
    t.name: t for t in (VICUNA_V1_1, ALPACA, CHAT)
}


def get_template(template: Any, owner: str = "get_template") -> PromptTemplate | ChatTemplate:
    """Resolve a template name (or a template object) to a template.

    Parameters
    ----------
    template : str, PromptTemplate or ChatTemplate
        ``"vicuna_v1.1"``, ``"alpaca"``, ``"chat"``, or a template object.
    owner : str
        The function or class asking, for the error message.

    Returns
    -------
    PromptTemplate or ChatTemplate
    """
    if isinstance(template, (PromptTemplate, ChatTemplate)):
        return template
    if isinstance(template, str) and template in TEMPLATES:
        return TEMPLATES[template]
    raise param_error(
        owner, "template", f"one of {sorted(TEMPLATES)} or a template object", template
    )
