"""A chat backend from any Python callable: for tests, custom judges and glue.

``CallableBackend(fn, identity="my-judge-v1")`` calls ``fn(messages)`` with the
OpenAI-style message dicts and expects the reply text (a ``str``) or a
:class:`~sftselect.backends.base.ChatReply`. A plain function runs in a worker
thread so that several calls overlap; an ``async def`` function is awaited.
The ``identity`` names the judge in cache keys: change it when ``fn`` changes.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from .base import BackendError, ChatReply, ChatRequest

__all__ = ["CallableBackend"]


class CallableBackend:
    """Wrap ``fn(messages) -> str | ChatReply`` (sync or async) as a chat backend."""

    def __init__(self, fn: Callable[[list[dict[str, str]]], Any], *, identity: str) -> None:
        self.fn = fn
        self.identity = identity

    def __repr__(self) -> str:
        return f"CallableBackend({getattr(self.fn, '__name__', self.fn)!r}, identity={self.identity!r})"

    async def chat(self, request: ChatRequest) -> ChatReply:
        messages = request.message_dicts()
        if inspect.iscoroutinefunction(self.fn):
            out = await self.fn(messages)
        else:
            out = await asyncio.to_thread(self.fn, messages)
        if isinstance(out, ChatReply):
            return out
        if isinstance(out, str):
            return ChatReply(text=out)
        raise BackendError(
            f"{self!r} returned {type(out).__name__}; expected a str or a ChatReply."
        )
