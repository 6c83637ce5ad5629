"""Helpers for testing code that uses sftselect, and for smoke runs.

* :func:`check_selector` and :func:`selector_checks` (:mod:`sftselect.testing.checks`):
  the conformance checks every selector passes, to run on your own;
* :class:`LoopbackServer` (:mod:`sftselect.testing.server`): a scripted
  OpenAI-compatible chat server on 127.0.0.1 with injectable faults, the
  stand-in judge of the test suite, the benchmarks and the notebooks' smoke
  mode; reach it through the real client,
  ``OpenAICompatibleBackend("m", base_url=server.base_url, api_key_env="NO_KEY")``;
  its replies may carry token log-probabilities (:class:`ScriptedReply`,
  :mod:`sftselect.testing.logprobs`).
* :func:`sample_tokenizer` and :func:`tiny_llama` (:mod:`sftselect.testing.models`):
  a LLaMA-style SentencePiece tokenizer trained on the bundled sample and a
  tiny random LLaMA for it; nothing downloaded, nothing needed beside the
  checkout.

Importing this package imports neither torch nor transformers; the model
helpers import them when called.
"""

from __future__ import annotations

from .checks import check_parameter_constraints, check_selector, default_datasets, selector_checks
from .logprobs import ScriptedReply
from .models import sample_tokenizer, tiny_llama
from .server import Fault, LoopbackServer, ReceivedRequest, default_reply, hashed_faults, prompt_key

__all__ = [
    "Fault",
    "LoopbackServer",
    "ReceivedRequest",
    "ScriptedReply",
    "check_parameter_constraints",
    "check_selector",
    "default_datasets",
    "default_reply",
    "hashed_faults",
    "prompt_key",
    "sample_tokenizer",
    "selector_checks",
    "tiny_llama",
]
