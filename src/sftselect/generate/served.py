"""Answers from a served model: :func:`sftselect.generate.generate` with a chat backend.

``generate(backend, "vicuna", "answers.jsonl")`` with an
:class:`~sftselect.backends.OpenAICompatibleBackend` (vLLM, TGI, llama.cpp's
server, ``transformers serve``, ...) or any other
:class:`~sftselect.backends.ChatBackend` writes the same rows as with a local
model: ``id``, ``testset``, ``prompt``, ``answer`` (stripped), ``model`` and
``run``, resumable the same way. The server renders each prompt with the chat
template of the model it serves (a model saved by :func:`sftselect.train.train`
carries its training template as that chat template), so the run's
``template`` is ``"server"``; its ``model`` is the backend's ``identity`` (the
model name and URL for an OpenAI-compatible backend), ``weights`` and
``dtype`` are None (the server's business). A request that fails after the
backend's own retries raises :class:`~sftselect.backends.BackendError` naming
the prompt; the answers of the batches before it are already written.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from ..backends.base import BackendError, ChatBackend, ChatRequest
from ..backends.runner import run_requests

__all__ = ["SERVED_TEMPLATE", "ServedBatches", "is_backend", "served_signature"]

#: The ``template`` of a run whose prompts a server rendered.
SERVED_TEMPLATE = "server"


def is_backend(model: Any) -> bool:
    """Whether ``model`` is a chat backend (an ``identity`` and an async ``chat``)."""
    return isinstance(model, ChatBackend) and not isinstance(model, (str, os.PathLike))


def served_signature(
    backend: Any,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    random_state: int | None,
) -> dict[str, Any]:
    """The ``run`` record of answers from ``backend``."""
    sampling = temperature > 0
    return {
        "model": str(backend.identity),
        "weights": None,
        "template": SERVED_TEMPLATE,
        "dtype": None,
        "max_new_tokens": max_new_tokens,
        "temperature": float(temperature),
        "top_p": float(top_p) if sampling else None,
        "seed": int(random_state) if sampling and random_state is not None else None,
    }


class ServedBatches:
    """Answers from a backend, ``batch_size`` requests at a time (sent concurrently)."""

    def __init__(
        self,
        backend: Any,
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        random_state: int | None,
        batch_size: int,
    ) -> None:
        self.backend = backend
        self.params: dict[str, Any] = {
            "max_tokens": max_new_tokens,
            "temperature": float(temperature),
        }
        if temperature > 0:
            self.params["top_p"] = float(top_p)
            self.params["seed"] = random_state
        self.batch_size = batch_size
        self.new_tokens = 0

    def __call__(self, items: list[tuple[str, str, list]], flush: Any, fileno: int) -> Iterator:
        """Yield ``(item, answer)`` per item; ``flush`` and fsync after every batch."""
        for b in range(0, len(items), self.batch_size):
            batch = items[b : b + self.batch_size]
            requests = [
                ChatRequest.from_messages(
                    [*history, {"role": "user", "content": prompt}], **self.params
                )
                for _, prompt, history in batch
            ]
            result = run_requests(self.backend, requests, max_concurrency=self.batch_size)
            for item, reply, error in zip(batch, result.replies, result.errors):
                if reply is None:
                    raise BackendError(
                        f"{self.backend.identity} gave no answer to prompt {item[0]!r}: {error}"
                    )
                self.new_tokens += int(reply.output_tokens or 0)
                yield item, reply.text.strip()
            flush()
            os.fsync(fileno)
