"""Versioned prompt templates, kept as data (``*.json`` beside this file).

Rating prompts have a ``system`` message and a ``user`` template with the named
fields ``{instruction}``, ``{input}`` and ``{response}``. The presets are the
published prompts reproduced verbatim, each with a version string that goes
into cache keys and provenance records, and its source.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from ..exceptions import InvalidParameterError

__all__ = ["RATING_FIELDS", "RatingPrompt", "load_presets", "rating_prompt"]

RATING_FIELDS = ("instruction", "input", "response")


@cache
def load_presets(name: str) -> dict[str, Any]:
    """The presets of one prompt file (``rating``, ``refine``, ...), as stored."""
    text = (resources.files(__package__) / f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text)


def template_fields(template: str) -> set[str]:
    """The ``{field}`` names a template uses."""
    return {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}


@dataclass(frozen=True)
class RatingPrompt:
    """A rating prompt: system message, user template, version, score scale."""

    version: str
    user: str
    system: str | None = None
    scale: tuple[float, float] = (0.0, 5.0)
    source: str = "user-defined"

    def __post_init__(self) -> None:
        unknown = template_fields(self.user) - set(RATING_FIELDS)
        if unknown:
            raise InvalidParameterError(
                f"The rating prompt template uses unknown field(s) {sorted(unknown)}; "
                f"the fields are {list(RATING_FIELDS)} (write '{{{{' for a literal brace)."
            )
        if "response" not in template_fields(self.user):
            raise InvalidParameterError("A rating prompt template must contain '{response}'.")

    def messages(self, instruction: str, input: str, response: str) -> list[dict[str, str]]:
        """The chat messages for one example."""
        user = self.user.format(instruction=instruction, input=input, response=response)
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        msgs.append({"role": "user", "content": user})
        return msgs


def rating_prompt(prompt: str | RatingPrompt) -> RatingPrompt:
    """A preset by name (``"alpagasus"``, ``"alpagasus_helpfulness"``) or a RatingPrompt."""
    if isinstance(prompt, RatingPrompt):
        return prompt
    presets = load_presets("rating")
    if not isinstance(prompt, str) or prompt not in presets:
        raise InvalidParameterError(
            f"The 'prompt' parameter must be one of {sorted(presets)} or a RatingPrompt. "
            f"Got {prompt!r} instead."
        )
    p = presets[prompt]
    return RatingPrompt(
        version=p["version"],
        user=p["user"],
        system=p["system"],
        scale=tuple(p["scale"]),
        source=p["source"],
    )
