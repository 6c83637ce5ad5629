"""Answers of a fine-tuned model to a test set, written as resumable JSON Lines.

.. code-block:: python

    from sftselect.generate import generate
    generate("out/llama2-1k-longest", "vicuna", "answers.jsonl")

Each output row is ``{"id", "testset", "prompt", "answer", "model"}`` (the
fields the pairwise judge reads) plus ``run``, what made the answer (see
below). The prompt goes through the same template as training
(:mod:`sftselect.prompts.templates`): by default the one recorded in the model
folder's ``training_log.json`` (for a loaded model, the folder it was loaded
from: its ``name_or_path``), else the tokenizer's chat template when it has
one, else ``vicuna_v1.1``.

Prompts are sorted by token length and generated ``batch_size`` at a time,
left-padded, greedy unless ``temperature > 0``, up to ``max_new_tokens`` new
tokens, stopping at an EOS token (the model's ``generation_config`` EOS ids and
the tokenizer's). Only the new token ids are decoded (up to the first EOS,
special tokens skipped, surrounding whitespace stripped). Rows are appended
and flushed after every batch; a restarted run skips the ids of the test set
already in the file (a last line cut short by a crash is removed first). Only
``\\n``, ``\\r\\n`` and ``\\r`` end a row, so an answer holding U+2028, U+2029 or
U+0085 (written as is) reads back whole.

Resuming never mixes runs. Every row's ``run`` field records what made it:

``model``
    A path's resolved absolute path (a hub name as given; a ``gguf_file``
    joined to it); for a loaded model, its ``name_or_path`` (resolved when it
    is a folder), else its class name.
``weights``
    For a local folder or file, ``files:`` and the 16 hex digits of
    :func:`~sftselect.models.fingerprint.files_fingerprint` (the name,
    size and modification time of its ``config.json``, weight and tokenizer
    files; no weight is read): a model retrained or overwritten in the same
    folder is another run. None for a hub name. For a loaded model,
    ``sha256:`` and the 16 hex digits of
    :func:`~sftselect.models.fingerprint.weights_fingerprint` (the class name, the
    config and 4,096 evenly spaced values of every tensor; the embedding
    cache uses the same). It is a cheap fingerprint, not a checksum of every
    weight; any fine-tune or merged adapter moves the sampled values.
``template``, ``dtype``, ``max_new_tokens``, ``temperature``, ``top_p``, ``seed``
    The template's name, the weights' dtype, and the decoding settings
    (``top_p`` and ``seed`` are None when greedy: they change nothing then;
    ``seed`` is the ``random_state`` argument, under the record's field name).

``batch_size``, ``device``, ``limit`` and ``turns`` are not recorded: they do
not change an answer (a ``turns="all"`` run writes the same first-turn rows).
A rerun skips the rows of the test set whose ``model`` field and ``run``
equal its own. A row of the test set with another ``model`` field or ``run``
(another model whose folder has the same name, or other settings) raises
:class:`~sftselect.exceptions.DataFormatError` naming the file, the row and
each setting that differs: write that run to another file. So does a row
without ``run`` (written before it was recorded): what made it cannot be
checked, so the file is neither resumed nor added to; the message gives the
``run`` to add to those rows by hand for a user who knows they match. Rows of
other test sets are not read.

Multi-turn questions (MT-Bench's ``turns``): ``turns="all"`` answers every
turn, one pass per turn, each later turn in the conversation so far (the
earlier questions and the model's own answers to them, rendered with the same
template). The first turn's row is the same as with ``turns="first"``; turn
``k >= 2`` is written as id ``"<id>/turn<k>"`` with two more fields, ``turn``
and ``history`` (the messages before its question). A restarted run resumes
any turn, reading earlier answers from the file.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.validation import check_choice, check_positive_int, param_error
from ..exceptions import DataFormatError
from ..models.generation import left_pad, seeded
from ..models.loading import DTYPES, eos_ids, import_torch, load_model, load_tokenizer, pad_id
from ..prompts.templates import TEMPLATES, ChatTemplate, PromptTemplate, get_template
from .answer_files import (
    OUTPUT_FIELDS,
    answered_by_run,
    loaded_from,
    loaded_identity,
    path_identity,
    read_answers,
)
from .served import SERVED_TEMPLATE, ServedBatches, is_backend, served_signature

__all__ = [
    "OUTPUT_FIELDS",
    "GenerateReport",
    "default_template",
    "generate",
    "read_answers",
    "turn_id",
]

_OWNER = "generate"


@dataclass(frozen=True)
class GenerateReport:
    """What :func:`generate` did.

    Attributes
    ----------
    output : pathlib.Path
        The JSON Lines file.
    written : int
        Answers generated and appended by this call.
    skipped : int
        Prompts skipped because the file already answered them.
    seconds : float
        Wall time of generation.
    new_tokens : int
        Tokens generated (up to and including each EOS).
    template : str
        The template used.
    """

    output: Path
    written: int
    skipped: int
    seconds: float
    new_tokens: int
    template: str

    @property
    def tokens_per_second(self) -> float:
        """Generated tokens per second."""
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0


def default_template(model: Any, tokenizer: Any) -> PromptTemplate | ChatTemplate:
    """The template of ``model``'s training log, else ``chat`` when the tokenizer has one,
    else ``vicuna_v1.1``.

    The training log is ``training_log.json`` in the model folder: ``model``
    itself when it is a path, else the folder a loaded model was loaded from
    (its ``name_or_path``, or ``config._name_or_path``, when that is an
    existing folder)."""
    folder = os.fspath(model) if isinstance(model, (str, os.PathLike)) else loaded_from(model)
    if folder is not None:
        log = Path(folder) / "training_log.json"
        if log.is_file():
            name = json.loads(log.read_text(encoding="utf-8")).get("template")
            if name in TEMPLATES:
                return TEMPLATES[name]
    if getattr(tokenizer, "chat_template", None):
        return TEMPLATES["chat"]
    return TEMPLATES["vicuna_v1.1"]


def _prompts(
    testset: Any, limit: int | None, all_turns: bool
) -> tuple[str, list[tuple[str, list[str]]]]:
    """The test set's name and, per row, its id and user turns (only the first
    unless ``all_turns``; a row without a ``turns`` column has one turn)."""
    from datasets import Dataset

    from .. import testsets

    if isinstance(testset, str):
        name = testset
        data = testsets.load(testset, limit=limit)
    elif isinstance(testset, Dataset):
        name = str(testset.info.dataset_name or "custom") if testset.info else "custom"
        missing = [c for c in ("id", "prompt") if c not in testset.column_names]
        if missing:
            raise DataFormatError(
                f"The test set needs columns 'id' and 'prompt'; missing {missing}. "
                f"Columns found: {testset.column_names}."
            )
        data = testset if limit is None else testset.select(range(min(limit, len(testset))))
    else:
        raise param_error(_OWNER, "testset", f"one of {list(testsets.NAMES)} or a Dataset", testset)
    pairs = []
    seen: set[str] = set()
    more = data["turns"] if all_turns and "turns" in data.column_names else [None] * len(data)
    for i, (ident, prompt, turns) in enumerate(zip(data["id"], data["prompt"], more)):
        if not isinstance(prompt, str) or not prompt:
            raise DataFormatError(f"Row {i} (id {ident!r}): 'prompt' must be a non-empty string.")
        if str(ident) in seen:
            raise DataFormatError(f"Row {i}: id {ident!r} appears twice; ids must be unique.")
        seen.add(str(ident))
        if turns is None:
            turns = [prompt]
        elif (
            not isinstance(turns, list)
            or not turns
            or not all(isinstance(t, str) and t for t in turns)
            or turns[0] != prompt
        ):
            raise DataFormatError(
                f"Row {i} (id {ident!r}): 'turns' must be a list of non-empty strings whose "
                f"first is the row's 'prompt'; got {turns!r:.120}."
            )
        pairs.append((str(ident), list(turns)))
    return name, pairs


def turn_id(ident: str, turn: int) -> str:
    """The ``id`` of the row that answers turn ``turn`` (1-based) of question ``ident``."""
    return ident if turn == 1 else f"{ident}/turn{turn}"


def generate(
    model: Any,
    testset: Any,
    output: str | os.PathLike[str],
    *,
    tokenizer: Any = None,
    template: str | PromptTemplate | ChatTemplate | None = None,
    model_name: str | None = None,
    testset_name: str | None = None,
    gguf_file: str | None = None,
    dtype: str | None = None,
    device: Any = None,
    batch_size: int = 8,
    max_new_tokens: int = 512,
    temperature: float = 0.0,
    top_p: float = 1.0,
    random_state: int | None = None,
    limit: int | None = None,
    turns: str = "first",
) -> GenerateReport:
    """Generate answers to ``testset`` with ``model`` and append them to ``output``.

    Parameters
    ----------
    model : str, os.PathLike, PreTrainedModel or ChatBackend
        A folder (e.g. written by :func:`sftselect.train.train`), hub name or
        ``.gguf`` file, or a loaded model (then ``tokenizer`` is required), or a
        chat backend serving the model (:mod:`sftselect.generate.served`; then
        ``tokenizer``, ``template``, ``gguf_file``, ``dtype`` and ``device``
        stay None: the server holds them).
    testset : str or datasets.Dataset
        A packaged test set name (:data:`sftselect.testsets.NAMES`) or a
        Dataset with ``id`` and ``prompt`` columns.
    output : str or os.PathLike
        The JSON Lines file (appended to; created with its folder).
    tokenizer : tokenizer, path or None
        None loads it from ``model``.
    template : str, template or None
        None: see :func:`default_template`.
    model_name : str or None
        The ``model`` field of the rows (None: the folder's name, or the class name).
    testset_name : str or None
        The ``testset`` field (None: the test set's name, or "custom").
    gguf_file : str or None
        A GGUF file inside the ``model`` folder.
    dtype : {"float32", "bfloat16", "float16"} or None
        Weights' dtype when loading (None: bfloat16 on CUDA, float32 otherwise).
    device : str, torch.device or None
        None: CUDA when available, else the CPU (a loaded model stays where it is).
    batch_size : int, default 8
        Prompts generated together.
    max_new_tokens : int, default 512
        New tokens per answer at most.
    temperature : float, default 0.0
        0 is greedy decoding; above 0, sampling with ``top_p``.
    top_p : float, default 1.0
        Nucleus sampling cut-off (sampling only).
    random_state : int or None
        Seed of sampling (the global torch RNG is forked and restored); None
        leaves sampling unseeded. Recorded as the run's ``seed`` field.
    limit : int or None
        Answer only the first ``limit`` prompts.
    turns : {"first", "all"}, default "first"
        ``"all"`` answers every user turn of a multi-turn question (a
        ``turns`` column, as MT-Bench's), each in the conversation so far; see
        the module docstring for the rows written.

    Returns
    -------
    GenerateReport

    Raises
    ------
    DataFormatError
        ``output`` holds answers to the test set from another run (another
        model, template, dtype or decoding settings, or another ``model``
        field), or rows without ``run``; see the module docstring. Nothing
        is generated or written then.
    ~sftselect.models.loading.ModelNotFoundError
        ``model`` (or ``tokenizer``) is no local folder or file and does not
        load as a hub name, or looks like a path (then the hub is not tried).
    """
    batch_size = check_positive_int(batch_size, "batch_size", _OWNER)
    max_new_tokens = check_positive_int(max_new_tokens, "max_new_tokens", _OWNER)
    if limit is not None:
        limit = check_positive_int(limit, "limit", _OWNER)
    for name, value, ok in (
        ("temperature", temperature, lambda v: 0 <= v < math.inf),
        ("top_p", top_p, lambda v: 0 < v <= 1),
    ):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not ok(value):
            raise param_error(
                _OWNER, name, "a number >= 0" if name == "temperature" else "in (0, 1]", value
            )
    if random_state is not None and (
        isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral)
    ):
        raise param_error(_OWNER, "random_state", "an int or None", random_state)
    all_turns = check_choice(turns, "turns", _OWNER, ("first", "all")) == "all"
    name, questions = _prompts(testset, limit, all_turns)
    name = testset_name or name
    out = Path(output)
    served = is_backend(model)
    if served:
        for pname, value in (
            ("tokenizer", tokenizer),
            ("template", template),
            ("gguf_file", gguf_file),
            ("dtype", dtype),
            ("device", device),
        ):
            if value is not None:
                raise param_error(
                    _OWNER,
                    pname,
                    "None when 'model' is a chat backend (the server holds it)",
                    value,
                )
        if model_name is None:
            model_name = str(getattr(model, "model", None) or type(model).__name__)
        signature = served_signature(model, max_new_tokens, temperature, top_p, random_state)
        template_name = SERVED_TEMPLATE
    else:
        if model_name is None:
            model_name = (
                Path(os.fspath(model)).name
                if isinstance(model, (str, os.PathLike))
                else type(model).__name__
            )

        torch, _ = import_torch(_OWNER)
        tok = load_tokenizer(model, tokenizer, gguf_file, _OWNER)
        tmpl = default_template(model, tok) if template is None else get_template(template, _OWNER)
        if device is None:
            target = None
            if isinstance(model, (str, os.PathLike)):
                target = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            target = torch.device(device)
        net = None
        if isinstance(model, (str, os.PathLike)):
            if dtype is None:
                dtype = "bfloat16" if target is not None and target.type == "cuda" else "float32"
            elif dtype not in DTYPES:
                raise param_error(_OWNER, "dtype", f"one of {list(DTYPES)} or None", dtype)
            model_id, weights = path_identity(model, gguf_file)
        else:
            net = load_model(model, gguf_file, dtype, _OWNER)  # checks it is a model
            model_id, weights, dtype = loaded_identity(net)
        sampling = temperature > 0
        signature = {
            "model": model_id,
            "weights": weights,
            "template": tmpl.name,
            "dtype": dtype,
            "max_new_tokens": max_new_tokens,
            "temperature": float(temperature),
            "top_p": float(top_p) if sampling else None,
            "seed": int(random_state) if sampling and random_state is not None else None,
        }
        template_name = tmpl.name
    answered = answered_by_run(out, name, model_name, signature)
    total = sum(len(t) for _, t in questions)
    skipped = sum(turn_id(i, k) in answered for i, t in questions for k in range(1, len(t) + 1))
    if skipped == total:
        return GenerateReport(out, 0, skipped, 0.0, 0, template_name)
    if served:
        run: Any = ServedBatches(
            model, max_new_tokens, temperature, top_p, random_state, batch_size
        )
    else:
        if net is None:
            net = load_model(model, gguf_file, dtype, _OWNER)
        if target is not None:
            net.to(target)
        net.eval()
        options: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "pad_token_id": pad_id(tok, _OWNER),
            "eos_token_id": eos_ids(net, tok) or None,
        }
        if sampling:
            options.update(
                do_sample=True, temperature=float(temperature), top_p=float(top_p), top_k=0
            )
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        run = _Batches(
            torch, net, tok, tmpl, options, batch_size, random_state if sampling else None
        )

    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    start = time.perf_counter()
    with out.open("a", encoding="utf-8") as fh:
        # one pass per turn: turn k of a question needs its answers to turns 1..k-1
        for k in range(1, max(len(t) for _, t in questions) + 1):
            todo = []
            for ident, user_turns in questions:
                if len(user_turns) < k or turn_id(ident, k) in answered:
                    continue
                history = []
                for j in range(k - 1):
                    history.append({"role": "user", "content": user_turns[j]})
                    history.append(
                        {"role": "assistant", "content": answered[turn_id(ident, j + 1)]}
                    )
                todo.append((ident, user_turns[k - 1], history))
            for (ident, prompt, history), answer in run(todo, fh.flush, fh.fileno()):
                row: dict[str, Any] = {
                    "id": turn_id(ident, k),
                    "testset": name,
                    "prompt": prompt,
                    "answer": answer,
                    "model": model_name,
                }
                if k > 1:
                    row.update(turn=k, history=history)
                row["run"] = signature
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                answered[row["id"]] = answer
                written += 1
    seconds = time.perf_counter() - start
    return GenerateReport(out, written, skipped, seconds, run.new_tokens, template_name)


class _Batches:
    """Greedy (or seeded sampled) answers, ``batch_size`` prompts at a time, longest first."""

    def __init__(
        self,
        torch: Any,
        net: Any,
        tok: Any,
        tmpl: Any,
        options: dict[str, Any],
        batch_size: int,
        seed: int | None,
    ) -> None:
        self.torch, self.net, self.tok, self.tmpl = torch, net, tok, tmpl
        self.options, self.batch_size, self.seed = options, batch_size, seed
        self.device = next(net.parameters()).device
        self.stops = options["eos_token_id"] or []
        self.pad = options["pad_token_id"]
        self.new_tokens = 0

    def encode(self, ident: str, prompt: str, history: list[dict[str, str]]) -> list[int]:
        rendered = self.tmpl.render(
            [*history, {"role": "user", "content": prompt}],
            self.tok,
            add_generation_prompt=True,
            where=f"prompt {ident!r}",
        )
        ids = list(self.tok(rendered.text, add_special_tokens=False)["input_ids"])
        bos = getattr(self.tok, "bos_token_id", None)
        if rendered.add_bos and bos is not None:
            ids = [int(bos), *ids]
        return ids

    def __call__(self, items: list[tuple[str, str, list]], flush: Any, fileno: int) -> Iterator:
        """Yield ``(item, answer)`` per item; ``flush`` and fsync after every batch."""
        torch = self.torch
        encoded = sorted(((item, self.encode(*item)) for item in items), key=lambda e: -len(e[1]))
        for b in range(0, len(encoded), self.batch_size):
            batch = encoded[b : b + self.batch_size]
            input_ids, attention = left_pad(torch, [ids for _, ids in batch], self.pad)
            width = input_ids.shape[1]
            # manual_seed seeds every device; None forks the current CUDA device's RNG too
            with torch.inference_mode(), seeded(torch, self.seed, None):
                seqs = self.net.generate(
                    input_ids=input_ids.to(self.device),
                    attention_mask=attention.to(self.device),
                    **self.options,
                )
            for (item, _), tokens in zip(batch, seqs[:, width:].tolist()):
                end = next((k for k, t in enumerate(tokens) if t in self.stops), None)
                self.new_tokens += len(tokens) if end is None else end + 1
                yield item, self.tok.decode(tokens[:end], skip_special_tokens=True).strip()
            flush()
            os.fsync(fileno)
