"""Pairwise judge protocols: a prompt, its output format and its decoding.

The presets live in ``sftselect/prompts/pairwise_judges.json``, each with a
version string (it goes into the saved results) and the URL of its source:

=====================  ================================  ====================================
name                   version                           what the judge writes
=====================  ================================  ====================================
``paper``              ``long-is-more-pairwise-v1``      two scores (1-10) on the first line
``fastchat-pair-v2``   ``fastchat-pair-v2``              ``[[A]]``, ``[[B]]`` or ``[[C]]`` (tie)
``length-debiased``    ``sftselect-length-debiased-v1``  two scores (1-10) on the first line
=====================  ================================  ====================================

``paper`` and ``fastchat-pair-v2`` are reproduced verbatim from the published
scripts; ``length-debiased`` is ours (the paper's prompt plus a paragraph that
tells the judge not to prefer length), and says so (``verbatim=False``).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import ChatRequest
from ..core.validation import param_error
from ..exceptions import InvalidParameterError
from ..prompts import load_presets

__all__ = ["OUTPUT_KINDS", "PRESET_FILE", "PairwiseProtocol", "pairwise_protocol", "protocol_names"]

#: The prompt file (``sftselect/prompts/<name>.json``) holding the presets.
PRESET_FILE = "pairwise_judges"

#: How a judge states its preference: two scores, or one verdict tag.
OUTPUT_KINDS = ("scores", "verdict")

_SLOTS = ("question", "first", "second")


@dataclass(frozen=True)
class PairwiseProtocol:
    """A pairwise judge prompt with its output format and decoding.

    Parameters
    ----------
    name, version : str
        The preset name and the version string recorded with every result.
    template : str
        The user message, a ``str.format`` template with the three fields named
        in ``slots``.
    slots : dict
        ``{"question": ..., "first": ..., "second": ...}``: the template field
        that receives the question, the answer shown first and the one shown
        second.
    output : {"scores", "verdict"}
        ``"scores"``: two numbers on the first line (the paper);
        ``"verdict"``: ``[[A]]``/``[[B]]``/``[[C]]`` (FastChat).
    system : str or None
        The system message.
    scale : tuple of float or None
        The inclusive score range (``"scores"`` only).
    max_tokens, temperature, top_p
        Decoding, as the source script sent it.
    source : str
        Where the text comes from (a URL for the published prompts).
    verbatim : bool
        Whether the text is a published prompt reproduced verbatim.
    """

    name: str
    version: str
    template: str
    slots: dict[str, str]
    output: str
    system: str | None = None
    scale: tuple[float, float] | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float | None = None
    source: str = "user-defined"
    verbatim: bool = False
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        owner = "PairwiseProtocol"
        if self.output not in OUTPUT_KINDS:
            raise param_error(owner, "output", f"one of {OUTPUT_KINDS}", self.output)
        if not isinstance(self.slots, dict) or set(self.slots) != set(_SLOTS):
            raise param_error(owner, "slots", f"a dict with the keys {list(_SLOTS)}", self.slots)
        fields = {f for _, f, _, _ in string.Formatter().parse(self.template) if f is not None}
        wanted = set(self.slots.values())
        if fields != wanted:
            raise InvalidParameterError(
                f"The 'template' parameter of {owner} must use exactly the fields "
                f"{sorted(wanted)} (write '{{{{' for a literal brace). Got {sorted(fields)} instead."
            )
        if self.output == "scores":
            scale = self.scale
            if (
                scale is None
                or len(scale) != 2
                or not all(isinstance(v, (int, float)) for v in scale)
                or not scale[0] < scale[1]
            ):
                raise param_error(owner, "scale", "a (low, high) pair with low < high", scale)

    def messages(self, question: str, first: str, second: str) -> list[dict[str, str]]:
        """The chat messages that show ``first`` before ``second``."""
        values = {
            self.slots["question"]: question,
            self.slots["first"]: first,
            self.slots["second"]: second,
        }
        user = self.template.format(**values)
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        msgs.append({"role": "user", "content": user})
        return msgs

    def request(
        self,
        question: str,
        first: str,
        second: str,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatRequest:
        """The chat request for one order, with this protocol's decoding (or the overrides)."""
        return ChatRequest.from_messages(
            self.messages(question, first, second),
            max_tokens=self.max_tokens if max_tokens is None else max_tokens,
            temperature=self.temperature if temperature is None else float(temperature),
            top_p=self.top_p,
        )

    def describe(self) -> dict[str, Any]:
        """The JSON record of this protocol kept with every result."""
        return {
            "name": self.name,
            "version": self.version,
            "output": self.output,
            "scale": list(self.scale) if self.scale is not None else None,
            "source": self.source,
            "verbatim": self.verbatim,
        }


def protocol_names() -> list[str]:
    """The names of the preset protocols."""
    return list(load_presets(PRESET_FILE))


def pairwise_protocol(protocol: str | PairwiseProtocol) -> PairwiseProtocol:
    """A preset by name (see :func:`protocol_names`) or a :class:`PairwiseProtocol` as is."""
    if isinstance(protocol, PairwiseProtocol):
        return protocol
    presets = load_presets(PRESET_FILE)
    if not isinstance(protocol, str) or protocol not in presets:
        raise param_error(
            "pairwise_protocol",
            "protocol",
            f"one of {sorted(presets)} or a PairwiseProtocol",
            protocol,
        )
    p = presets[protocol]
    template = p["prompt_template"]
    for key, value in p["template_values"].items():
        template = template.replace("{" + key + "}", value)
    return PairwiseProtocol(
        name=protocol,
        version=p["version"],
        template=template,
        slots=dict(p["slots"]),
        output=p["output"],
        system=p["system"],
        scale=tuple(p["scale"]) if p["scale"] is not None else None,
        max_tokens=p["max_tokens"],
        temperature=p["temperature"],
        top_p=p["top_p"],
        source=p["source"],
        verbatim=p["verbatim"],
        description=p["description"],
    )
