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
``stop``, ``extra``, ``top_logprobs``), renders each conversation with the tokenizer's chat
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
or a stop string, ``"length"`` when ``max_tokens`` ran out) and ``model``. A request
with ``top_logprobs`` (0 to 20) gets ``logprobs``: per shown token (not the EOS, not those
wholly inside a stop string) its log-probability under the model's raw logits and its
``top_logprobs`` likeliest alternatives, as :mod:`sftselect.backends._local_logprobs`
says; requests without it are generated without logits.

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
import gc
import math
import numbers
import os
import queue
import threading
import time
from typing import Any

from ..core.validation import param_error
from ..exceptions import InvalidParameterError, MissingExtraError
from . import _local_engine
from ._local_engine import (
    Engine,
    Job,
    import_torch_transformers,
    load_pretrained,
    open_engine,
    short_error,
)
from ._local_identity import local_identity
from .base import BackendError, ChatReply, ChatRequest

__all__ = ["DEFAULT_MAX_NEW_TOKENS", "TransformersChatBackend"]

_OWNER = "TransformersChatBackend"

#: Tokens generated for a request whose ``max_tokens`` is None.
DEFAULT_MAX_NEW_TOKENS = _local_engine.DEFAULT_MAX_NEW_TOKENS

_DTYPE_NAMES = ("float32", "float16", "bfloat16")
_STOP = object()

#: Seconds an idle worker thread waits before exiting (the next request starts a new one),
#: so that a backend dropped without close() does not pin its model through its thread.
_IDLE_EXIT_S = 30.0


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
        ``transformers/<model>[;gguf=<file>][;files=<fp>][;tokenizer=<path>[;tokenizer_files=<fp>]]``
        ``[;chat_template=<hash>];dtype=<dtype>``: a local folder or file by its absolute
        path and a fingerprint of its files (new weights at that path are a new judge), a
        hub name as given, with no revision (pass ``identity`` to tell revisions apart).
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
        self._engine_obj: Engine | None = None
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
        torch, _ = import_torch_transformers()
        if not self._model_is_path():
            self._resolve_device(torch)
            return str(getattr(self.model, "dtype", "unknown")).replace("torch.", "")
        return str(self._resolve_dtype(torch, self._resolve_device(torch))).replace("torch.", "")

    @property
    def identity(self) -> str:
        """The judge's name in cache keys (model and its files, GGUF file, tokenizer,
        template, dtype); see the class docstring. Computed once, without loading."""
        if self._identity is not None:
            if not isinstance(self._identity, str) or not self._identity:
                raise param_error(_OWNER, "identity", "a non-empty str or None", self._identity)
            return self._identity
        if self._resolved_identity is None:
            folder, gguf = self._source() if self._model_is_path() else (None, None)
            tok = self.tokenizer
            self._resolved_identity = local_identity(
                self._name(),
                folder=folder,
                gguf=gguf,
                tokenizer=os.fspath(tok) if isinstance(tok, (str, os.PathLike)) else None,
                chat_template=self.chat_template if isinstance(self.chat_template, str) else None,
                dtype=self._resolve_dtype_name(),
            )
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
            self._queue.put(Job(request, future))
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
                error = BackendError(f"{_OWNER} failed: {short_error(exc)}")
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

    def _engine(self) -> Engine:
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
            err = BackendError(
                f"{_OWNER} could not load {self._label()!r}: {short_error(exc, 500)}"
            )
            self._load_error = err
            raise err from exc
        return self._engine_obj

    def _load(self) -> Engine:
        """Load the model and tokenizer (or take the loaded ones) as the parameters say."""
        torch, transformers = import_torch_transformers()
        device = self._resolve_device(torch)
        if self._model_is_path():
            path, gguf = self._source()
            model = load_pretrained(transformers, path, gguf, self._resolve_dtype(torch, device))
            model.to(device)
        else:
            model = self.model
            if self.device is not None:
                model.to(device)
        if self.tokenizer is None:
            path, gguf = self._source()
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                path, **({"gguf_file": gguf} if gguf else {})
            )
        elif isinstance(self.tokenizer, (str, os.PathLike)):
            tokenizer = transformers.AutoTokenizer.from_pretrained(os.fspath(self.tokenizer))
        else:
            tokenizer = self.tokenizer
        return open_engine(
            torch, model, tokenizer, device, chat_template=self.chat_template, label=self._label()
        )

    def _run_batch(self, jobs: list[Job]) -> None:
        """Generate for ``jobs``; a model that cannot be loaded fails each of them."""
        try:
            engine = self._engine()
        except BaseException as exc:
            for job in jobs:
                job.future.set_exception(exc if len(jobs) == 1 else type(exc)(str(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        engine.run_batch(jobs)
