"""The paper's refinement ("introspection") step: an LLM rewrites each response.

*Long Is More for Alignment* (Section 4) asks GPT-3.5 to criticise each of the
1k longest responses and to write a better one between ``[Better Answer]`` and
``[End]``; fine-tuning on the refined set improved the results further. The
prompt is reproduced verbatim (``prompts/refine.json``); the same backends,
cache and runner as the quality judge serve it, so a re-run sends nothing.

Extraction (:func:`extract_better_answer`) follows the paper's post-processing:
the text after one ``[Better Answer]`` (or its variants ``[Revised Answer]``,
``[Improved Answer]``) up to ``[End]`` or the end of the reply; a reply with no
tag, or with several answers, gives None and the original response is kept, and
counted. A reply cut off by its token limit (``finish_reason="length"``) with
no ``[End]`` is not used either (the rewritten answer may be cut mid-sentence):
the original is kept and the row counted as ``truncated``. A request that fails
after its retries raises :class:`~sftselect.exceptions.JudgeRequestError` (the
replies received are cached, so running again resumes), unless
``on_request_error="keep"`` keeps the original and counts it. One deliberate
difference: the paper's pattern also stopped at the
bare word "End" (so "Endangered" cut an answer short); this one stops only at
``[End]``.

Not reproduced: the paper's script cut responses longer than 2,048 LLaMA-2
tokens (instruction + input + output) from the end before asking; pass such
data through your own truncation first if you need that.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..backends.base import ChatBackend, ChatRequest
from ..backends.cache import MemoryCache, ReplyCache
from ..backends.runner import RunReport, failure_message, run_requests
from ..core.validation import check_choice, check_positive_int, param_error
from ..data.formats import Format, resolve_format
from ..exceptions import JudgeRequestError
from ..prompts import load_presets

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["RefineResult", "extract_better_answer", "refine_requests", "refine_responses"]

_TAGS = ("Better Answer", "Revised Answer", "Improved Answer")


def extract_better_answer(reply: str | None) -> str | None:
    """The rewritten answer in a refinement reply, or None when none parses."""
    if not reply:
        return None
    for tag in _TAGS:
        marker = f"[{tag}]"
        count = reply.count(marker)
        if count == 0:
            continue
        if count > 1:
            return None  # several answers: ambiguous (the paper kept the original)
        body = reply.split(marker, 1)[1]
        body = body.split("[End]", 1)[0]
        body = body.strip()
        return body or None
    return None


@dataclass
class RefineResult:
    """The refined dataset, which rows were rewritten, the raw replies and a report.

    ``kept_original`` counts every row whose original response was kept: no
    parsable answer, a ``truncated`` reply, or a failed request
    (``request_failures``, only with ``on_request_error="keep"``).
    """

    dataset: Dataset
    refined: np.ndarray
    replies: list[str | None]
    report: RunReport
    kept_original: int
    request_failures: int
    truncated: int = 0

    def summary(self) -> dict[str, Any]:
        out = self.report.as_dict()
        out.update(
            refined=int(self.refined.sum()),
            kept_original=self.kept_original,
            request_failures=self.request_failures,
            truncated=self.truncated,
        )
        return out


def _flat_format(dataset: Dataset, fmt: str | Format | None) -> Format:
    resolved = resolve_format(dataset, fmt, "refine_responses")
    if resolved.is_chat:
        raise param_error(
            "refine_responses", "format", "a flat format (alpaca, dolly, custom)", resolved.name
        )
    return resolved


def refine_requests(
    dataset: Dataset, *, format: str | Format | None = None, max_tokens: int | None = None
) -> list[ChatRequest]:
    """The refinement request for every row, with the paper's prompt and decoding."""
    fmt = _flat_format(dataset, format)
    preset = load_presets("refine")["introspection"]
    max_tokens = preset["max_tokens"] if max_tokens is None else max_tokens
    check_positive_int(max_tokens, "max_tokens", "refine_responses")
    n = len(dataset)
    instructions = dataset[fmt.instruction] if fmt.instruction else [""] * n
    inputs = dataset[fmt.input] if fmt.input and fmt.input in dataset.column_names else [""] * n
    responses = dataset[fmt.response]
    requests = []
    for row, (ins, inp, out) in enumerate(zip(instructions, inputs, responses)):
        if not isinstance(out, str):
            from ..exceptions import DataFormatError

            raise DataFormatError(f"Row {row}: the response {fmt.response!r} is not a string.")
        ins, inp, out = (ins or "").strip(), (inp or "").strip(), out.strip()
        part = preset["with_input"] if inp else preset["no_input"]
        user = part["user"].format(instruction=ins, input=inp, response=out)
        requests.append(
            ChatRequest.from_messages(
                [{"role": "system", "content": part["system"]}, {"role": "user", "content": user}],
                max_tokens=max_tokens,
                temperature=preset["temperature"],
                top_p=preset["top_p"],
            )
        )
    return requests


def refine_responses(
    dataset: Dataset,
    backend: ChatBackend,
    *,
    format: str | Format | None = None,
    cache: Any = None,
    max_concurrency: int = 64,
    max_tokens: int | None = None,
    on_request_error: str = "raise",
    show_progress: bool = False,
) -> RefineResult:
    """Rewrite every response with ``backend``; keep the original where none parses.

    Returns a new Dataset with the same columns (the response column replaced)
    and a report. A reply with no parsable answer, or cut off at ``max_tokens``
    before ``[End]``, keeps the original (counted). A request that failed after
    its retries raises :class:`~sftselect.exceptions.JudgeRequestError` with
    ``on_request_error="raise"`` (the default; every reply received is cached,
    so running again resumes); ``"keep"`` keeps the original and counts it.
    """
    check_choice(on_request_error, "on_request_error", "refine_responses", ("raise", "keep"))
    fmt = _flat_format(dataset, format)
    requests = refine_requests(dataset, format=fmt, max_tokens=max_tokens)
    store = cache
    if cache is None:
        store = MemoryCache()
    elif isinstance(cache, (str, os.PathLike)):
        store = ReplyCache(cache)
    result = run_requests(
        backend,
        requests,
        cache=store,
        max_concurrency=check_positive_int(max_concurrency, "max_concurrency", "refine_responses"),
        show_progress=show_progress,
        desc="refining",
    )
    failures = sum(r is None for r in result.replies)
    if failures and on_request_error == "raise":
        raise JudgeRequestError(
            failure_message(
                result.report,
                failures,
                len(requests),
                "refinement requests",
                "on_request_error='keep' (the failed rows keep their original responses)",
            )
        )
    originals = dataset[fmt.response]
    new, refined, texts = [], np.zeros(len(dataset), dtype=bool), []
    truncated = 0
    for i, reply in enumerate(result.replies):
        answer = None
        if reply is not None:
            cut = reply.finish_reason == "length" and "[End]" not in reply.text
            truncated += cut
            answer = None if cut else extract_better_answer(reply.text)
        texts.append(reply.text if reply is not None else None)
        if answer is None:
            new.append(originals[i])
        else:
            new.append(answer)
            refined[i] = True
    out = dataset.remove_columns(fmt.response).add_column(fmt.response, new)
    out = out.select_columns(dataset.column_names)
    kept = int(len(dataset) - refined.sum())
    return RefineResult(out, refined, texts, result.report, kept, failures, truncated)
