"""Chat backends (OpenAI-compatible HTTP, local transformers, any callable),
the reply cache and the concurrent runner they share."""

from .base import BackendError, ChatBackend, ChatReply, ChatRequest, TokenLogprob
from .cache import MemoryCache, ReplyCache
from .callable import CallableBackend
from .openai_compat import OpenAICompatibleBackend
from .runner import RunReport, RunResult, arun_requests, run_requests
from .transformers_chat import TransformersChatBackend

__all__ = [
    "BackendError",
    "CallableBackend",
    "ChatBackend",
    "ChatReply",
    "ChatRequest",
    "MemoryCache",
    "OpenAICompatibleBackend",
    "ReplyCache",
    "RunReport",
    "RunResult",
    "TokenLogprob",
    "TransformersChatBackend",
    "arun_requests",
    "run_requests",
]
