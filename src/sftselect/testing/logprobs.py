"""Scripted replies with token log-probabilities, for :class:`~sftselect.testing.LoopbackServer`.

A ``reply`` function of the server may return a :class:`ScriptedReply` instead
of a string: its text, and the log-probabilities the server sends with it in
OpenAI's shape (``choices[0].logprobs.content``: one ``{token, logprob, bytes,
top_logprobs: [{token, logprob, bytes}, ...]}`` per token):

.. code-block:: python

    import math
    from sftselect.testing import LoopbackServer, ScriptedReply

    reply = ScriptedReply.from_tokens(
        [("4", math.log(0.7)), ("\\n", 0.0), ("Accurate", -0.1)],
        top={0: {"4": math.log(0.7), "5": math.log(0.2), " 4": math.log(0.05)}},
    )
    with LoopbackServer(reply=lambda body: reply) as server:
        ...

The server sends them as a real endpoint does: only to a request that asked
(``"logprobs": true``), each position's alternatives cut to the request's
``top_logprobs`` most likely (none when it gave no ``top_logprobs``), and
``"logprobs": null`` otherwise. A :class:`ScriptedReply` without log-probabilities
(``logprobs=None``), or a plain string, plays an endpoint that never returns
them (``transformers serve``): ``"logprobs": null`` whatever was asked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ScriptedReply", "logprobs_field"]


@dataclass(frozen=True)
class ScriptedReply:
    """A reply text and, optionally, its tokens' log-probabilities.

    ``logprobs``: one entry per token, ``(token, logprob, {alternative: logprob})``
    (the alternatives may include the token itself, as OpenAI lists it; the
    server sorts them, most likely first); None: the endpoint returns none.
    """

    text: str
    logprobs: tuple[tuple[str, float, Mapping[str, float]], ...] | None = None

    @classmethod
    def from_tokens(
        cls,
        tokens: Sequence[tuple[str, float] | str],
        top: Mapping[int, Mapping[str, float]] | None = None,
    ) -> ScriptedReply:
        """A reply whose text is ``tokens`` joined.

        ``tokens``: ``(text, logprob)`` pairs, or a bare text for a token sampled
        with probability 1 (logprob 0.0); ``top``: the alternatives at some
        positions, ``{position: {token: logprob}}`` (the sampled token is added at
        its own logprob where absent). Raises ValueError for a position past the
        last token or a logprob above 0.
        """
        pairs = [(t, 0.0) if isinstance(t, str) else (str(t[0]), float(t[1])) for t in tokens]
        top = dict(top or {})
        if any(not 0 <= i < len(pairs) for i in top):
            raise ValueError(f"top: positions {sorted(top)} outside 0..{len(pairs) - 1}")
        entries = []
        for i, (token, logprob) in enumerate(pairs):
            alternatives = {token: logprob, **dict(top.get(i, {}))}
            if any(lp > 0 for lp in (logprob, *alternatives.values())):
                raise ValueError(f"token {i}: a log-probability above 0")
            entries.append((token, logprob, alternatives))
        return cls("".join(t for t, _ in pairs), tuple(entries))


def _entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def logprobs_field(reply: ScriptedReply | None, body: Mapping[str, Any]) -> dict | None:
    """``choices[0].logprobs`` as the server sends it for ``reply`` to a request ``body``
    (see the module docstring); None for ``null``."""
    if reply is None or reply.logprobs is None or body.get("logprobs") is not True:
        return None
    n = body.get("top_logprobs")
    n = n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 0
    content = []
    for token, logprob, alternatives in reply.logprobs:
        ranked = sorted(alternatives.items(), key=lambda kv: -kv[1])[:n]
        content.append({**_entry(token, logprob), "top_logprobs": [_entry(*kv) for kv in ranked]})
    return {"content": content, "refusal": None}
