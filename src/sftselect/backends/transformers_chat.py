"""A chat backend that runs a Hugging Face ``transformers`` causal LM in-process.

For a user with a GPU (or patience and a CPU) and no inference server:

.. code-block:: python

    judge = TransformersChatBackend("Qwen/Qwen2.5-7B-Instruct")
    judge = TransformersChatBackend("path/to/folder", gguf_file="model.Q4_K_M.gguf")
    judge = TransformersChatBackend("path/to/model.Q4_K_M.gguf")      # the same
    judge = TransformersChatBackend(model, tokenizer=tokenizer)        # already loaded
    QualitySelector(judge, min_score=4.5).select(dataset)

**Loading** happens on first use, never in ``__init__``, in the backend's worker
thread (so an event loop is not blocked): ``AutoTokenizer`` and
``AutoModelForCausalLM.from_pretrained(path, gguf_file=..., dtype=...)``, then
``model.to(device)`` and ``model.eval()``. The device defaults to CUDA, else
MPS, else the CPU; the dtype to bfloat16 on CUDA when the GPU supports it (else
float16), float16 on MPS and float32 on the CPU. A GGUF file is dequantised by
transformers (this needs the ``gguf`` and ``accelerate`` packages). An
already-loaded model keeps its dtype; it is moved only when ``device`` is given.

**Dynamic micro-batching.** Every ``chat()`` call queues its request and awaits
a :class:`concurrent.futures.Future` (through :func:`asyncio.wrap_future`, so
no state is tied to an event loop and one backend serves successive
``asyncio.run`` calls). One worker thread takes up to ``max_batch_size`` queued
requests, waiting at most ``batch_wait_ms`` for more after the first, groups
them by decoding parameters (``max_tokens``, ``temperature``, ``top_p``,
``stop``, ``extra``), renders each conversation with the tokenizer's chat
template (``add_generation_prompt=True``), left-pads the group (pad token: the
tokenizer's, else EOS) and runs one ``model.generate`` per group under
``torch.inference_mode()``. Each reply is decoded from the *new token ids
only* (those after the padded prompt, ``skip_special_tokens=True``).

**Decoding.** ``temperature == 0`` is greedy (``do_sample=False``); otherwise
sampling with the request's ``temperature`` and ``top_p`` (1.0 when None) and
no top-k cut-off (transformers' default of 50 is turned off, as an
OpenAI-compatible server would). Other settings from the model's own
``generation_config`` (e.g. ``repetition_penalty``) still apply; the
request's ``extra`` items are passed to ``generate`` as generation options
(``{"top_k": 40}``), and an option ``generate`` rejects fails that request.
``max_new_tokens`` is ``request.max_tokens`` or 256. Generation of a reply
stops at an EOS token (the model's ``generation_config`` EOS ids plus the
tokenizer's) or once the decoded text contains a stop string; the text is cut
before the first stop string, as OpenAI's API does.

**Replies** carry ``input_tokens`` (prompt tokens, without padding),
``output_tokens`` (tokens generated, up to and including the EOS, or up to the
token that completed a stop string; the EOS itself is not in the text), ``finish_reason`` (``"stop"`` for an EOS
or a stop string, ``"length"`` when ``max_tokens`` ran out) and ``model``.

**Reproducibility.** Greedy decoding is deterministic on one machine for one
batch composition; across batch compositions the padding changes the matrix
shapes, which in float16/bfloat16 (and with some CUDA kernels) can change
low-order bits and so, rarely, a near-tied token. In float32 on the CPU,
batched and one-at-a-time replies agree (the tests check it). A sampling
request with ``seed`` runs in a batch of its own under
``torch.manual_seed(seed)`` (the global RNG is forked and restored), so its
reply depends on the prompt, the decoding parameters and the seed, not on what
else was queued; it is reproducible on the same hardware, software versions,
dtype and device, and only as far as the kernels are deterministic (see
``torch.use_deterministic_algorithms``). Sampling without a seed is batched
and not reproducible.

**Errors.** A prompt that with ``max_tokens`` does not fit in the model's
context, an out-of-memory error (after splitting the batch in halves down to
one request), a chat template that fails on the messages, or an option that
``generate`` rejects raise :class:`~sftselect.backends.base.BackendError` for
the requests concerned, never a made-up reply. A model that cannot be loaded
raises ``BackendError`` for every request (the failure is remembered: the
model is not loaded again). Invalid constructor parameters, and a tokenizer
with no chat template and no ``chat_template`` given, raise
:class:`~sftselect.exceptions.InvalidParameterError` (which the runner does not
swallow).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import gc
import hashlib
import math
import numbers
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .._validation import param_error
from ..exceptions import InvalidParameterError, MissingExtraError
from .base import BackendError, ChatReply, ChatRequest

__all__ = ["DEFAULT_MAX_NEW_TOKENS", "TransformersChatBackend"]

_OWNER = "TransformersChatBackend"

#: Tokens generated for a request whose ``max_tokens`` is None.
DEFAULT_MAX_NEW_TOKENS = 256

_DTYPE_NAMES = ("float32", "float16", "bfloat16")
_CONTEXT_ATTRS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
_STOP = object()

#: Seconds an idle worker thread waits before exiting (the next request starts a new one),
#: so that a backend dropped without close() does not pin its model through its thread.
_IDLE_EXIT_S = 30.0


@dataclass
class _Job:
    """One queued request, its future, and what preparing it found."""

    request: ChatRequest
    future: cf.Future
    prompt_ids: list[int] = field(default_factory=list)
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS


@dataclass
class _Engine:
    """The loaded model and what generation needs to know about it."""

    torch: Any
    model: Any
    tokenizer: Any
    device: Any
    eos_ids: frozenset[int]
    pad_id: int
    context: int | None
    stopping_base: type


def _import_torch_transformers() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise MissingExtraError(
            f"{_OWNER} needs torch and transformers ({exc}). Install them with "
            "`pip install 'sftselect[hf]' torch` (and `gguf accelerate` for GGUF files)."
        ) from exc
    return torch, transformers


def _transformers_version(transformers: Any) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", getattr(transformers, "__version__", "0.0"))
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _is_oom(exc: BaseException, torch: Any) -> bool:
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


def _short(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class TransformersChatBackend:
    """Run a local ``transformers`` causal LM as a chat backend, with micro-batching.

    Parameters
    ----------
    model : str, os.PathLike or PreTrainedModel
        A hub name or a local folder (loaded on first use), a path to a
        ``.gguf`` file, or an already-loaded model (then ``tokenizer`` is
        required).
    tokenizer : str, os.PathLike, tokenizer or None
        None loads the tokenizer from ``model`` (and ``gguf_file``); a path or
        hub name loads it from there; a tokenizer object is used as it is.
    gguf_file : str or None
        A GGUF file name inside the ``model`` folder (or hub repository).
    device : str, torch.device or None
        None picks CUDA, else MPS, else the CPU (for a loaded model: where it is).
    dtype : {"float32", "float16", "bfloat16", "auto"}, torch.dtype or None
        None or "auto": bfloat16 on a CUDA GPU that supports it, else float16
        on CUDA and MPS, float32 on the CPU. Must be None for a loaded model.
    max_batch_size : int, default 16
        Requests generated together in one ``model.generate`` call at most.
    batch_wait_ms : float, default 5.0
        How long the worker waits, after the first queued request, for more.
    chat_template : str or None
        A Jinja chat template to use instead of the tokenizer's (required when
        the tokenizer has none). It is part of the default ``identity``.
    identity : str or None
        The name this judge has in cache keys; by default
        ``transformers/<model>[;gguf=<file>][;tokenizer=<path>][;chat_template=<hash>];dtype=<dtype>``.
    """

    def __init__(
        self,
        model: Any,
        *,
        tokenizer: Any = None,
        gguf_file: str | None = None,
        device: Any = None,
        dtype: Any = None,
        max_batch_size: int = 16,
        batch_wait_ms: float = 5.0,
        chat_template: str | None = None,
        identity: str | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.gguf_file = gguf_file
        self.device = device
        self.dtype = dtype
        self.max_batch_size = max_batch_size
        self.batch_wait_ms = batch_wait_ms
        self.chat_template = chat_template
        self._identity = identity
        self._resolved_identity: str | None = None
        self._checked = False
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._engine_obj: _Engine | None = None
        self._load_error: BaseException | None = None

    def __repr__(self) -> str:
        return f"{_OWNER}({self._label()!r}, max_batch_size={self.max_batch_size!r})"

    # -- parameters ------------------------------------------------------------
    def _model_is_path(self) -> bool:
        return isinstance(self.model, (str, os.PathLike))

    def _source(self) -> tuple[str, str | None]:
        """The folder (or hub name) to load from, and the GGUF file name in it."""
        path = os.fspath(self.model)
        if self.gguf_file is None and path.lower().endswith(".gguf") and os.path.isfile(path):
            return os.path.dirname(os.path.abspath(path)), os.path.basename(path)
        return path, self.gguf_file

    def _name(self) -> str:
        """The model's hub name or folder (without the GGUF file), or a loaded model's name."""
        if self._model_is_path():
            return self._source()[0]
        config = getattr(self.model, "config", None)
        name = getattr(self.model, "name_or_path", None) or getattr(config, "_name_or_path", None)
        return str(name) if name else type(self.model).__name__

    def _label(self) -> str:
        """The model as replies and messages name it: its name, and its GGUF file if any."""
        gguf = self._source()[1] if self._model_is_path() else None
        return f"{self._name()}/{gguf}" if gguf else self._name()

    def _check_params(self) -> None:
        if self._checked:
            return
        model_is_path = self._model_is_path()
        if not model_is_path and not (
            callable(getattr(self.model, "generate", None)) and hasattr(self.model, "config")
        ):
            raise param_error(
                _OWNER, "model", "a hub name, a path or a loaded transformers model", self.model
            )
        if model_is_path and not os.fspath(self.model):
            raise param_error(_OWNER, "model", "a non-empty hub name or path", self.model)
        if self.tokenizer is None and not model_is_path:
            raise InvalidParameterError(
                f"The 'tokenizer' parameter of {_OWNER} is required when 'model' is a loaded "
                f"model ({type(self.model).__name__}). Got None instead."
            )
        if (
            self.tokenizer is not None
            and not isinstance(self.tokenizer, (str, os.PathLike))
            and not callable(getattr(self.tokenizer, "apply_chat_template", None))
        ):
            raise param_error(
                _OWNER, "tokenizer", "None, a path, a hub name or a tokenizer", self.tokenizer
            )
        if self.gguf_file is not None:
            if not isinstance(self.gguf_file, str) or not self.gguf_file:
                raise param_error(_OWNER, "gguf_file", "a file name or None", self.gguf_file)
            if not model_is_path:
                raise InvalidParameterError(
                    f"The 'gguf_file' parameter of {_OWNER} needs 'model' to be a folder or a hub "
                    f"name, not a loaded model. Got {self.gguf_file!r} instead."
                )
        if self.dtype is not None and not model_is_path:
            raise InvalidParameterError(
                f"The 'dtype' parameter of {_OWNER} must be None for a loaded model (cast the "
                f"model yourself). Got {self.dtype!r} instead."
            )
        if isinstance(self.max_batch_size, bool) or not (
            isinstance(self.max_batch_size, numbers.Integral) and self.max_batch_size > 0
        ):
            raise param_error(_OWNER, "max_batch_size", "a positive int", self.max_batch_size)
        wait = self.batch_wait_ms
        if (
            isinstance(wait, bool)
            or not isinstance(wait, numbers.Real)
            or not math.isfinite(wait)
            or wait < 0
        ):
            raise param_error(_OWNER, "batch_wait_ms", "a non-negative finite number", wait)
        if self.chat_template is not None and (
            not isinstance(self.chat_template, str) or not self.chat_template.strip()
        ):
            raise param_error(
                _OWNER, "chat_template", "a non-empty Jinja template or None", self.chat_template
            )
        if self._identity is not None and (
            not isinstance(self._identity, str) or not self._identity
        ):
            raise param_error(_OWNER, "identity", "a non-empty str or None", self._identity)
        self._resolve_dtype_name()  # validates device and dtype
        self._checked = True

    def _resolve_device(self, torch: Any) -> Any:
        if self.device is None:
            if not self._model_is_path():
                return getattr(self.model, "device", None) or torch.device("cpu")
            if torch.cuda.is_available():
                return torch.device("cuda")
            mps = getattr(torch.backends, "mps", None)
            if mps is not None and mps.is_available():
                return torch.device("mps")
            return torch.device("cpu")
        try:
            return torch.device(self.device)
        except (RuntimeError, TypeError, ValueError):
            raise param_error(
                _OWNER, "device", "None, a torch.device or a device string", self.device
            ) from None

    def _resolve_dtype(self, torch: Any, device: Any) -> Any:
        dtype = self.dtype
        if dtype is None or dtype == "auto":
            if device.type == "cuda":
                return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            if device.type == "mps":
                return torch.float16
            return torch.float32
        if isinstance(dtype, str) and dtype in _DTYPE_NAMES:
            return getattr(torch, dtype)
        if isinstance(dtype, torch.dtype) and str(dtype).replace("torch.", "") in _DTYPE_NAMES:
            return dtype
        raise param_error(
            _OWNER,
            "dtype",
            "None, 'auto', 'float32', 'float16', 'bfloat16' or a torch.dtype",
            dtype,
        )

    def _resolve_dtype_name(self) -> str:
        torch, _ = _import_torch_transformers()
        if not self._model_is_path():
            self._resolve_device(torch)
            return str(getattr(self.model, "dtype", "unknown")).replace("torch.", "")
        return str(self._resolve_dtype(torch, self._resolve_device(torch))).replace("torch.", "")

    @property
    def identity(self) -> str:
        """The judge's name in cache keys (model, GGUF file, template, dtype)."""
        if self._identity is not None:
            if not isinstance(self._identity, str) or not self._identity:
                raise param_error(_OWNER, "identity", "a non-empty str or None", self._identity)
            return self._identity
        if self._resolved_identity is None:
            parts = [f"transformers/{self._name()}"]
            if self._model_is_path():
                gguf = self._source()[1]
                if gguf:
                    parts.append(f"gguf={gguf}")
            if isinstance(self.tokenizer, (str, os.PathLike)):
                parts.append(f"tokenizer={os.fspath(self.tokenizer)}")
            if isinstance(self.chat_template, str):
                digest = hashlib.sha256(self.chat_template.encode("utf-8")).hexdigest()[:12]
                parts.append(f"chat_template={digest}")
            parts.append(f"dtype={self._resolve_dtype_name()}")
            self._resolved_identity = ";".join(parts)
        return self._resolved_identity

    # -- the async API -----------------------------------------------------------
    async def chat(self, request: ChatRequest) -> ChatReply:
        """Queue ``request`` for the next batch and await its reply."""
        if self._closed:
            raise BackendError(f"{_OWNER} was closed; create a new backend to generate again.")
        self._check_params()
        future: cf.Future = cf.Future()
        with self._lock:
            if self._closed:
                raise BackendError(f"{_OWNER} was closed; create a new backend to generate again.")
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._serve, name="sftselect-transformers", daemon=True
                )
                self._thread.start()
            self._queue.put(_Job(request, future))
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Finish the queued requests, stop the worker and free the model.

        Blocks until the batch being generated is done. Later ``chat()`` calls
        raise :class:`BackendError`. A model passed in loaded is only released
        by this backend (the caller's reference keeps it alive).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._queue.put(_STOP)
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        engine, self._engine_obj = self._engine_obj, None
        if not self._model_is_path():
            self.model = None
            self.tokenizer = None
        if engine is not None:
            device_type = getattr(engine.device, "type", "cpu")
            torch = engine.torch
            del engine
            gc.collect()
            if device_type == "cuda":
                torch.cuda.empty_cache()

    def __enter__(self) -> TransformersChatBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the worker thread -------------------------------------------------------
    def _serve(self) -> None:
        """Take batches off the queue until told to stop, or idle for ``_IDLE_EXIT_S``."""
        stop = False
        while not stop:
            try:
                item = self._queue.get(timeout=_IDLE_EXIT_S)
            except queue.Empty:
                with self._lock:  # chat() enqueues under this lock: nothing can slip in
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            if item is _STOP:
                break
            batch = [item]
            deadline = time.monotonic() + float(self.batch_wait_ms) / 1000.0
            while len(batch) < int(self.max_batch_size):
                remaining = deadline - time.monotonic()
                try:
                    nxt = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            live = [job for job in batch if job.future.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                self._run_batch(live)
            except BaseException as exc:  # the worker must never leave a future pending
                error = BackendError(f"{_OWNER} failed: {_short(exc)}")
                for job in live:
                    if not job.future.done():
                        job.future.set_exception(error)
                if not isinstance(exc, Exception):
                    raise
        while True:  # nothing should be left (close() holds the lock), but never hang
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP and item.future.set_running_or_notify_cancel():
                item.future.set_exception(BackendError(f"{_OWNER} was closed."))

    def _engine(self) -> _Engine:
        if self._engine_obj is not None:
            return self._engine_obj
        if self._load_error is not None:
            err = self._load_error
            raise type(err)(str(err))
        try:
            self._engine_obj = self._load()
        except (InvalidParameterError, MissingExtraError, BackendError) as exc:
            self._load_error = exc
            raise
        except Exception as exc:
            err = BackendError(f"{_OWNER} could not load {self._label()!r}: {_short(exc, 500)}")
            self._load_error = err
            raise err from exc
        return self._engine_obj

    def _load(self) -> _Engine:
        torch, transformers = _import_torch_transformers()
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.generation.stopping_criteria import StoppingCriteria

        device = self._resolve_device(torch)
        if self._model_is_path():
            path, gguf = self._source()
            dtype = self._resolve_dtype(torch, device)
            dtype_kw = "dtype" if _transformers_version(transformers) >= (4, 56) else "torch_dtype"
            kwargs: dict[str, Any] = {dtype_kw: dtype}
            if gguf:
                kwargs["gguf_file"] = gguf
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
            model.to(device)
        else:
            model = self.model
            if self.device is not None:
                model.to(device)
        if self.tokenizer is None:
            path, gguf = self._source()
            tokenizer = AutoTokenizer.from_pretrained(path, **({"gguf_file": gguf} if gguf else {}))
        elif isinstance(self.tokenizer, (str, os.PathLike)):
            tokenizer = AutoTokenizer.from_pretrained(os.fspath(self.tokenizer))
        else:
            tokenizer = self.tokenizer
        model.eval()

        if self.chat_template is None and not getattr(tokenizer, "chat_template", None):
            raise InvalidParameterError(
                f"The tokenizer of {self._label()!r} has no chat template; pass one as the "
                f"'chat_template' parameter of {_OWNER}."
            )
        eos: set[int] = set()
        for source in (
            getattr(getattr(model, "generation_config", None), "eos_token_id", None),
            getattr(tokenizer, "eos_token_id", None),
        ):
            if isinstance(source, numbers.Integral):
                eos.add(int(source))
            elif isinstance(source, (list, tuple)):
                eos.update(int(t) for t in source)
        pad = getattr(tokenizer, "pad_token_id", None)
        if pad is None:
            pad = getattr(tokenizer, "eos_token_id", None)
        if pad is None and eos:
            pad = min(eos)
        if pad is None:
            raise InvalidParameterError(
                f"The tokenizer of {self._label()!r} has neither a pad nor an EOS token; set "
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
        return _Engine(
            torch=torch,
            model=model,
            tokenizer=tokenizer,
            device=device,
            eos_ids=frozenset(eos),
            pad_id=int(pad),
            context=context,
            stopping_base=StoppingCriteria,
        )

    def _run_batch(self, jobs: list[_Job]) -> None:
        try:
            engine = self._engine()
        except BaseException as exc:
            for job in jobs:
                job.future.set_exception(exc if len(jobs) == 1 else type(exc)(str(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        groups: dict[tuple[Any, ...], list[_Job]] = {}
        for n, job in enumerate(jobs):
            try:
                key = self._prepare(engine, job)
            except BackendError as exc:
                job.future.set_exception(exc)
                continue
            except Exception as exc:
                job.future.set_exception(
                    BackendError(f"{_OWNER} could not build the prompt: {_short(exc)}")
                )
                continue
            if key[1] > 0 and job.request.seed is not None:
                key = (*key, "seeded", n)  # a seeded sampling request runs alone
            groups.setdefault(key, []).append(job)
        for group in groups.values():
            self._generate_group(engine, group)

    def _prepare(self, engine: _Engine, job: _Job) -> tuple[Any, ...]:
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
        text = engine.tokenizer.apply_chat_template(
            req.message_dicts(),
            add_generation_prompt=True,
            tokenize=False,
            chat_template=self.chat_template,
        )
        ids = list(engine.tokenizer(text, add_special_tokens=False)["input_ids"])
        if not ids:
            raise BackendError("The chat template rendered an empty prompt.")
        if engine.context is not None and len(ids) + int(max_new) > engine.context:
            raise BackendError(
                f"The prompt is {len(ids)} tokens and max_tokens is {int(max_new)}: "
                f"{len(ids) + int(max_new)} tokens do not fit in the context of "
                f"{self._label()!r} ({engine.context} tokens). Shorten the prompt or lower "
                "max_tokens."
            )
        job.prompt_ids = ids
        job.max_new_tokens = int(max_new)
        return (int(max_new), float(temp), top_p, tuple(req.stop), repr(req.extra))

    def _generate_group(self, engine: _Engine, jobs: list[_Job]) -> None:
        """Generate for jobs that share decoding parameters; on OOM split in halves."""
        try:
            replies = self._generate(engine, jobs)
        except Exception as exc:
            if _is_oom(exc, engine.torch):
                self._free_memory(engine)
                if len(jobs) > 1:
                    half = len(jobs) // 2
                    self._generate_group(engine, jobs[:half])
                    self._generate_group(engine, jobs[half:])
                    return
                job = jobs[0]
                error = BackendError(
                    f"Out of memory on {engine.device} generating one reply (prompt "
                    f"{len(job.prompt_ids)} tokens, max_tokens {job.max_new_tokens}): "
                    f"{_short(exc, 200)}. Lower max_tokens, use a smaller dtype or model, or "
                    "free the device's memory."
                )
            else:
                error = BackendError(f"{_OWNER}: generation failed: {_short(exc)}")
            for job in jobs:
                job.future.set_exception(error)
            return
        for job, reply in zip(jobs, replies):
            job.future.set_result(reply)

    @staticmethod
    def _free_memory(engine: _Engine) -> None:
        gc.collect()
        if getattr(engine.device, "type", None) == "cuda":
            engine.torch.cuda.empty_cache()

    @contextlib.contextmanager
    def _seeded(self, engine: _Engine, seed: int | None) -> Iterator[None]:
        if seed is None:
            yield
            return
        torch = engine.torch
        kind = getattr(engine.device, "type", "cpu")
        if kind == "cuda":
            index = engine.device.index
            devices = [torch.cuda.current_device() if index is None else index]
            fork = torch.random.fork_rng(devices=devices, device_type="cuda")
        elif kind == "mps":
            fork = torch.random.fork_rng(devices=[0], device_type="mps")
        else:
            fork = torch.random.fork_rng(devices=[])
        with fork:
            torch.manual_seed(int(seed))
            yield

    def _generate(self, engine: _Engine, jobs: list[_Job]) -> list[ChatReply]:
        torch = engine.torch
        req = jobs[0].request
        max_new = jobs[0].max_new_tokens
        lengths = [len(job.prompt_ids) for job in jobs]
        width = max(lengths)
        input_ids = torch.full((len(jobs), width), engine.pad_id, dtype=torch.long)
        attention = torch.zeros((len(jobs), width), dtype=torch.long)
        for row, job in enumerate(jobs):  # left padding
            n = len(job.prompt_ids)
            input_ids[row, width - n :] = torch.tensor(job.prompt_ids, dtype=torch.long)
            attention[row, width - n :] = 1
        options: dict[str, Any] = {
            "max_new_tokens": max_new,
            "pad_token_id": engine.pad_id,
            "eos_token_id": sorted(engine.eos_ids) if engine.eos_ids else None,
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
        criterion = None
        if req.stop:
            criterion = _stop_criterion(
                engine.stopping_base, engine.tokenizer, req.stop, width, len(jobs), engine.eos_ids
            )
            from transformers.generation.stopping_criteria import StoppingCriteriaList

            options["stopping_criteria"] = StoppingCriteriaList([criterion])
        with (
            torch.inference_mode(),
            self._seeded(engine, req.seed if sampling else None),
        ):
            out = engine.model.generate(
                input_ids=input_ids.to(engine.device),
                attention_mask=attention.to(engine.device),
                **options,
            )
        sequences = getattr(out, "sequences", out)
        new_tokens = sequences[:, width:].tolist()
        replies = []
        for row, tokens in enumerate(new_tokens):
            end, shown, finish = len(tokens), len(tokens), "length"
            for pos, token in enumerate(tokens):
                if token in engine.eos_ids:  # counted as generated, never shown
                    end, shown, finish = pos + 1, pos, "stop"
                    break
            done_at = criterion.done_at[row] if criterion is not None else None
            if done_at is not None and done_at < end:
                end, shown, finish = done_at, done_at, "stop"
            text = engine.tokenizer.decode(tokens[:shown], skip_special_tokens=True)
            cut = min((i for i in (text.find(s) for s in req.stop) if i >= 0), default=None)
            if cut is not None:
                text, finish = text[:cut], "stop"
            replies.append(
                ChatReply(
                    text=text,
                    input_tokens=lengths[row],
                    output_tokens=end,
                    finish_reason=finish,
                    model=self._label(),
                )
            )
        return replies


def _stop_criterion(
    base: type,
    tokenizer: Any,
    stops: tuple[str, ...],
    prompt_width: int,
    batch: int,
    eos_ids: frozenset[int],
) -> Any:
    """A stopping criterion that ends a row once its decoded new text holds a stop string,
    recording how many tokens that took (``done_at``)."""

    decode: Callable[..., str] = tokenizer.decode

    class StopOnStrings(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self.done_at: list[int | None] = [None] * batch

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            import torch

            rows = input_ids[:, prompt_width:].tolist()
            flags = []
            for i, row in enumerate(rows):
                if self.done_at[i] is None and not eos_ids.intersection(row):
                    text = decode(row, skip_special_tokens=True)
                    if any(s in text for s in stops):
                        self.done_at[i] = len(row)
                flags.append(self.done_at[i] is not None)
            return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)

    return StopOnStrings()
