"""The generation engine behind
:class:`~sftselect.backends.transformers_chat.TransformersChatBackend`: the lazy
torch and transformers import, loading a pretrained model, and the
:class:`Engine` (a loaded model with its tokenizer, device, EOS and pad ids and
context length) that runs one micro-batch of queued :class:`Job` s. It checks
each request's decoding parameters, renders its prompt with the chat template,
groups the requests by decoding parameters, runs one left-padded
``model.generate`` per group (splitting a group in halves on out-of-memory
errors) and cuts each reply at its EOS token or first stop string (stop strings
end generation through transformers' ``StopStringCriteria``). A group whose
requests set ``top_logprobs`` is generated with ``output_logits=True`` and its
replies carry the tokens' log-probabilities (:mod:`._local_logprobs`); other
groups are generated as before. The backend keeps its parameters, the request
queue and the worker thread.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import gc
import math
import numbers
import re
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import InvalidParameterError, MissingExtraError
from ..models.generation import left_pad, seeded
from ._local_logprobs import TokenTexts, reply_logprobs, shown_token_count
from .base import MAX_TOP_LOGPROBS, BackendError, ChatReply, ChatRequest

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "Engine",
    "Job",
    "import_torch_transformers",
    "load_pretrained",
    "open_engine",
    "short_error",
]

_OWNER = "TransformersChatBackend"

#: Tokens generated for a request whose ``max_tokens`` is None.
DEFAULT_MAX_NEW_TOKENS = 256

_CONTEXT_ATTRS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def import_torch_transformers() -> tuple[Any, Any]:
    """Import torch and transformers.

    Returns
    -------
    torch, transformers : module

    Raises
    ------
    MissingExtraError
        When either is not installed (the message says what to install).
    """
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise MissingExtraError(
            f"{_OWNER} needs torch and transformers ({exc}). Install them with "
            "`pip install 'sftselect[hf]' torch` (and `gguf accelerate` for GGUF files)."
        ) from exc
    return torch, transformers


def short_error(exc: BaseException, limit: int = 300) -> str:
    """``"<ExceptionType>: <message>"``, cut to ``limit`` characters (ending in "...")."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _transformers_version(transformers: Any) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", getattr(transformers, "__version__", "0.0"))
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _is_oom(exc: BaseException, torch: Any) -> bool:
    """Whether ``exc`` is an out-of-memory error of any device."""
    oom_types = tuple(
        t
        for t in (
            getattr(torch, "OutOfMemoryError", None),
            getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None),
        )
        if isinstance(t, type)
    )
    if oom_types and isinstance(exc, oom_types):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def load_pretrained(transformers: Any, path: str, gguf_file: str | None, dtype: Any) -> Any:
    """``AutoModelForCausalLM.from_pretrained`` in ``dtype`` (and from ``gguf_file``).

    Parameters
    ----------
    transformers : module
        The ``transformers`` module.
    path : str
        A hub name or a local folder.
    gguf_file : str or None
        A GGUF file inside ``path`` (transformers dequantises it).
    dtype : torch.dtype
        The weights' dtype (passed as ``dtype``, or ``torch_dtype`` before
        transformers 4.56).

    Returns
    -------
    PreTrainedModel
        The model, where transformers put it (the caller moves it).
    """
    dtype_kw = "dtype" if _transformers_version(transformers) >= (4, 56) else "torch_dtype"
    kwargs: dict[str, Any] = {dtype_kw: dtype}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    return transformers.AutoModelForCausalLM.from_pretrained(path, **kwargs)


@dataclass
class Job:
    """One queued request, its future, and what preparing it found."""

    request: ChatRequest
    future: cf.Future
    prompt_ids: list[int] = field(default_factory=list)
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS


@dataclass
class Engine:
    """The loaded model, what generation needs to know about it, and batch generation.

    Build one with :func:`open_engine`.
    """

    torch: Any
    model: Any
    tokenizer: Any
    device: Any
    eos_ids: frozenset[int]
    pad_id: int
    context: int | None
    stopping_base: type
    chat_template: str | None
    label: str
    token_texts: TokenTexts | None = None

    def run_batch(self, jobs: list[Job]) -> None:
        """Prepare, group by decoding parameters and generate; settle every job's future.

        Parameters
        ----------
        jobs : list of Job
            Running jobs (their futures past ``set_running_or_notify_cancel``).
        """
        groups: dict[tuple[Any, ...], list[Job]] = {}
        for n, job in enumerate(jobs):
            try:
                key = self._prepare(job)
            except BackendError as exc:
                job.future.set_exception(exc)
                continue
            except Exception as exc:
                job.future.set_exception(
                    BackendError(f"{_OWNER} could not build the prompt: {short_error(exc)}")
                )
                continue
            if key[1] > 0 and job.request.seed is not None:
                key = (*key, "seeded", n)  # a seeded sampling request runs alone
            groups.setdefault(key, []).append(job)
        for group in groups.values():
            self._generate_group(group)

    def free_memory(self) -> None:
        """Collect garbage and empty the CUDA cache (on a CUDA device)."""
        gc.collect()
        if getattr(self.device, "type", None) == "cuda":
            self.torch.cuda.empty_cache()

    def _prepare(self, job: Job) -> tuple[Any, ...]:
        """Validate the decoding, tokenize the prompt and return the batching key."""
        req = job.request
        max_new = DEFAULT_MAX_NEW_TOKENS if req.max_tokens is None else req.max_tokens
        if isinstance(max_new, bool) or not isinstance(max_new, numbers.Integral) or max_new <= 0:
            raise BackendError(
                f"max_tokens must be a positive int or None; got {req.max_tokens!r}."
            )
        temp = req.temperature
        if isinstance(temp, bool) or not isinstance(temp, numbers.Real) or not 0 <= temp < math.inf:
            raise BackendError(f"temperature must be a number >= 0; got {temp!r}.")
        top_p = req.top_p
        if top_p is not None and (
            isinstance(top_p, bool) or not isinstance(top_p, numbers.Real) or not 0 < top_p <= 1
        ):
            raise BackendError(f"top_p must be in (0, 1] or None; got {top_p!r}.")
        if any(not isinstance(s, str) or not s for s in req.stop):
            raise BackendError(f"stop strings must be non-empty strings; got {req.stop!r}.")
        top_n = req.top_logprobs
        if top_n is not None and (
            isinstance(top_n, bool)
            or not isinstance(top_n, numbers.Integral)
            or not 0 <= top_n <= MAX_TOP_LOGPROBS
        ):
            raise BackendError(
                f"top_logprobs must be None or an int from 0 to {MAX_TOP_LOGPROBS}; got {top_n!r}."
            )
        extra = dict(req.extra)
        if extra.get("num_return_sequences", 1) != 1:
            raise BackendError(
                "num_return_sequences must be 1 (a chat request gets one reply); got "
                f"{extra['num_return_sequences']!r}."
            )
        if top_n is not None and extra.get("num_beams", 1) != 1:
            raise BackendError(
                "top_logprobs cannot be asked with beam search (num_beams="
                f"{extra['num_beams']!r}): generate's logits are then per beam and step, "
                "not those of the returned reply."
            )
        text = self.tokenizer.apply_chat_template(
            req.message_dicts(),
            add_generation_prompt=True,
            tokenize=False,
            chat_template=self.chat_template,
        )
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if not ids:
            raise BackendError("The chat template rendered an empty prompt.")
        if self.context is not None and len(ids) + int(max_new) > self.context:
            raise BackendError(
                f"The prompt is {len(ids)} tokens and max_tokens is {int(max_new)}: "
                f"{len(ids) + int(max_new)} tokens do not fit in the context of "
                f"{self.label!r} ({self.context} tokens). Shorten the prompt or lower "
                "max_tokens."
            )
        job.prompt_ids = ids
        job.max_new_tokens = int(max_new)
        top = None if top_n is None else int(top_n)
        return (int(max_new), float(temp), top_p, tuple(req.stop), repr(req.extra), top)

    def _generate_group(self, jobs: list[Job]) -> None:
        """Generate for jobs that share decoding parameters; on OOM split in halves."""
        try:
            replies = self._generate(jobs)
        except Exception as exc:
            if _is_oom(exc, self.torch):
                self.free_memory()
                if len(jobs) > 1:
                    half = len(jobs) // 2
                    self._generate_group(jobs[:half])
                    self._generate_group(jobs[half:])
                    return
                job = jobs[0]
                error = BackendError(
                    f"Out of memory on {self.device} generating one reply (prompt "
                    f"{len(job.prompt_ids)} tokens, max_tokens {job.max_new_tokens}): "
                    f"{short_error(exc, 200)}. Lower max_tokens, use a smaller dtype or model, or "
                    "free the device's memory."
                )
            else:
                error = BackendError(f"{_OWNER}: generation failed: {short_error(exc)}")
            for job in jobs:
                job.future.set_exception(error)
            return
        for job, reply in zip(jobs, replies):
            job.future.set_result(reply)

    def _generate(self, jobs: list[Job]) -> list[ChatReply]:
        """One ``model.generate`` call for ``jobs`` (same decoding), a reply per job."""
        torch = self.torch
        req = jobs[0].request
        lengths = [len(job.prompt_ids) for job in jobs]
        width = max(lengths)
        input_ids, attention = left_pad(torch, [job.prompt_ids for job in jobs], self.pad_id)
        options: dict[str, Any] = {
            "max_new_tokens": jobs[0].max_new_tokens,
            "pad_token_id": self.pad_id,
            "eos_token_id": sorted(self.eos_ids) if self.eos_ids else None,
        }
        sampling = float(req.temperature) > 0
        if sampling:
            options.update(
                do_sample=True,
                temperature=float(req.temperature),
                top_p=1.0 if req.top_p is None else float(req.top_p),
                top_k=0,
            )
        else:
            options["do_sample"] = False
        options.update(dict(req.extra))
        if req.top_logprobs is not None:  # raw logits, before any processor: see _local_logprobs
            options.update(output_logits=True, return_dict_in_generate=True)
        criterion = None
        if req.stop:
            criterion = _stop_criterion(
                self.stopping_base, self.tokenizer, req.stop, width, len(jobs)
            )
            from transformers.generation.stopping_criteria import StoppingCriteriaList

            options["stopping_criteria"] = StoppingCriteriaList([criterion])
        with torch.inference_mode(), seeded(torch, req.seed if sampling else None, self.device):
            out = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention.to(self.device),
                **options,
            )
        sequences = getattr(out, "sequences", out)
        new_tokens = sequences[:, width:].tolist()
        replies, shown_counts = [], []
        for row, tokens in enumerate(new_tokens):
            end, shown, finish = len(tokens), len(tokens), "length"
            for pos, token in enumerate(tokens):
                if token in self.eos_ids:  # counted as generated, never shown
                    end, shown, finish = pos + 1, pos, "stop"
                    break
            done_at = criterion.done_at[row] if criterion is not None else None
            if done_at is not None and done_at < end:
                end, shown, finish = done_at, done_at, "stop"
            text = self.tokenizer.decode(tokens[:shown], skip_special_tokens=True)
            cut = min((i for i in (text.find(s) for s in req.stop) if i >= 0), default=None)
            if cut is not None:
                text, finish = text[:cut], "stop"
                if req.top_logprobs is not None:
                    shown = shown_token_count(self.tokenizer, tokens[:shown], cut)
            shown_counts.append(shown)
            replies.append(
                ChatReply(
                    text=text,
                    input_tokens=lengths[row],
                    output_tokens=end,
                    finish_reason=finish,
                    model=self.label,
                )
            )
        if req.top_logprobs is not None:
            if self.token_texts is None:
                self.token_texts = TokenTexts(self.tokenizer)
            logprobs = reply_logprobs(
                torch, out.logits, new_tokens, shown_counts, req.top_logprobs, self.token_texts
            )
            replies = [dataclasses.replace(r, logprobs=lp) for r, lp in zip(replies, logprobs)]
        return replies


def open_engine(
    torch: Any, model: Any, tokenizer: Any, device: Any, *, chat_template: str | None, label: str
) -> Engine:
    """Put ``model`` in eval mode and read what generation needs from it and ``tokenizer``.

    Parameters
    ----------
    torch : module
        The ``torch`` module.
    model : PreTrainedModel
        The model, already on ``device``.
    tokenizer : PreTrainedTokenizerBase
        Its tokenizer.
    device : torch.device
        Where the model is.
    chat_template : str or None
        A Jinja chat template used instead of the tokenizer's.
    label : str
        The model's name in replies and messages.

    Returns
    -------
    Engine

    Raises
    ------
    InvalidParameterError
        The tokenizer has no chat template and none is given, or it has
        neither a pad nor an EOS token.
    """
    from transformers.generation.stopping_criteria import StoppingCriteria

    from ..models.loading import eos_ids

    model.eval()
    if chat_template is None and not getattr(tokenizer, "chat_template", None):
        raise InvalidParameterError(
            f"The tokenizer of {label!r} has no chat template; pass one as the "
            f"'chat_template' parameter of {_OWNER}."
        )
    eos = frozenset(eos_ids(model, tokenizer))
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        pad = getattr(tokenizer, "eos_token_id", None)
    if pad is None and eos:
        pad = min(eos)
    if pad is None:
        raise InvalidParameterError(
            f"The tokenizer of {label!r} has neither a pad nor an EOS token; set "
            f"tokenizer.pad_token before passing it to {_OWNER}."
        )
    config = getattr(model, "config", None)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    context = None
    for attr in _CONTEXT_ATTRS:
        value = getattr(text_config, attr, None)
        if isinstance(value, numbers.Integral) and value > 0:
            context = int(value)
            break
    if context is None:
        limit = getattr(tokenizer, "model_max_length", None)
        if isinstance(limit, numbers.Integral) and 0 < limit < 10_000_000:
            context = int(limit)
    return Engine(
        torch=torch,
        model=model,
        tokenizer=tokenizer,
        device=device,
        eos_ids=eos,
        pad_id=int(pad),
        context=context,
        stopping_base=StoppingCriteria,
        chat_template=chat_template,
        label=label,
    )


def _stop_criterion(
    base: type,
    tokenizer: Any,
    stops: tuple[str, ...],
    prompt_width: int,
    batch: int,
) -> Any:
    """transformers' own :class:`~transformers.StopStringCriteria` for ``stops`` (token-level
    matching, precomputed over the vocabulary: no decoding while generating), recording for
    each row how many new tokens it had when a stop string ended (``done_at``)."""
    from transformers.generation.stopping_criteria import StopStringCriteria

    inner = StopStringCriteria(tokenizer=tokenizer, stop_strings=list(stops))

    class StopOnStrings(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self.done_at: list[int | None] = [None] * batch

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            flags = inner(input_ids, scores, **kwargs)
            if bool(flags.any()):
                new = input_ids.shape[1] - prompt_width
                for i, hit in enumerate(flags.tolist()):
                    if hit and self.done_at[i] is None:
                        self.done_at[i] = new
            return flags

    return StopOnStrings()
