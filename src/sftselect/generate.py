"""Answers of a fine-tuned model to a test set, written as resumable JSON Lines.

.. code-block:: python

    from sftselect.generate import generate
    generate("out/llama2-1k-longest", "vicuna", "answers.jsonl")

Each output row is ``{"id", "testset", "prompt", "answer", "model"}`` (the
fields the pairwise judge reads). The prompt goes through the same template
as training (:mod:`sftselect.templates`): by default the one recorded in the
model folder's ``training_log.json``, else the tokenizer's chat template when
it has one, else ``vicuna_v1.1``.

Prompts are sorted by token length and generated ``batch_size`` at a time,
left-padded, greedy unless ``temperature > 0``, up to ``max_new_tokens`` new
tokens, stopping at an EOS token (the model's ``generation_config`` EOS ids and
the tokenizer's). Only the new token ids are decoded (up to the first EOS,
special tokens skipped, surrounding whitespace stripped). Rows are appended
and flushed after every batch; a restarted run skips the ``(testset, id,
model)`` triples already in the file (a last line cut short by a crash is
removed first).
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._validation import check_positive_int, param_error
from .exceptions import DataFormatError
from .templates import TEMPLATES, ChatTemplate, PromptTemplate, get_template
from .train.loading import eos_ids, import_torch, load_model, load_tokenizer, pad_id

__all__ = ["OUTPUT_FIELDS", "GenerateReport", "default_template", "generate", "read_answers"]

_OWNER = "generate"
#: The fields of every output row.
OUTPUT_FIELDS = ("id", "testset", "prompt", "answer", "model")


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


def read_answers(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read an answers file, dropping a last line cut short (the file is repaired in place).

    Raises
    ------
    DataFormatError
        A complete line that is not a JSON object with the output fields.
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):  # a crash mid-write: drop the partial line
        keep = data.rfind(b"\n") + 1
        with path.open("r+b") as fh:
            fh.truncate(keep)
        data = data[:keep]
    rows = []
    for lineno, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{path}:{lineno}: malformed JSON ({exc.msg}).") from None
        if not isinstance(row, dict) or any(k not in row for k in OUTPUT_FIELDS):
            raise DataFormatError(
                f"{path}:{lineno}: expected an object with fields {list(OUTPUT_FIELDS)}."
            )
        rows.append(row)
    return rows


def default_template(model: Any, tokenizer: Any) -> PromptTemplate | ChatTemplate:
    """The template of ``model``'s training log, else ``chat`` when the tokenizer has one,
    else ``vicuna_v1.1``."""
    if isinstance(model, (str, os.PathLike)):
        log = Path(model) / "training_log.json"
        if log.is_file():
            name = json.loads(log.read_text(encoding="utf-8")).get("template")
            if name in TEMPLATES:
                return TEMPLATES[name]
    if getattr(tokenizer, "chat_template", None):
        return TEMPLATES["chat"]
    return TEMPLATES["vicuna_v1.1"]


def _prompts(testset: Any, limit: int | None) -> tuple[str, list[tuple[str, str]]]:
    from datasets import Dataset

    from . import testsets

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
    for i, (ident, prompt) in enumerate(zip(data["id"], data["prompt"])):
        if not isinstance(prompt, str) or not prompt:
            raise DataFormatError(f"Row {i} (id {ident!r}): 'prompt' must be a non-empty string.")
        if str(ident) in seen:
            raise DataFormatError(f"Row {i}: id {ident!r} appears twice; ids must be unique.")
        seen.add(str(ident))
        pairs.append((str(ident), prompt))
    return name, pairs


@contextlib.contextmanager
def _seeded(torch: Any, seed: int | None) -> Iterator[None]:
    if seed is None:
        yield
        return
    # manual_seed seeds every device: fork the CUDA generator too, so the
    # caller's global random state is left as it was.
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield


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
    seed: int | None = None,
    limit: int | None = None,
) -> GenerateReport:
    """Generate answers to ``testset`` with ``model`` and append them to ``output``.

    Parameters
    ----------
    model : str, os.PathLike or PreTrainedModel
        A folder (e.g. written by :func:`sftselect.train.train`), hub name or
        ``.gguf`` file, or a loaded model (then ``tokenizer`` is required).
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
    seed : int or None
        Seed of sampling (the global torch RNG is forked and restored); None
        leaves sampling unseeded.
    limit : int or None
        Answer only the first ``limit`` prompts.

    Returns
    -------
    GenerateReport
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
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise param_error(_OWNER, "seed", "an int or None", seed)
    name, pairs = _prompts(testset, limit)
    name = testset_name or name
    out = Path(output)
    if model_name is None:
        model_name = (
            Path(os.fspath(model)).name
            if isinstance(model, (str, os.PathLike))
            else type(model).__name__
        )
    done = {(r["testset"], str(r["id"]), r["model"]) for r in read_answers(out)}
    todo = [(i, p) for i, p in pairs if (name, i, model_name) not in done]
    skipped = len(pairs) - len(todo)

    torch, _ = import_torch(_OWNER)
    tok = load_tokenizer(model, tokenizer, gguf_file, _OWNER)
    tmpl = default_template(model, tok) if template is None else get_template(template, _OWNER)
    if not todo:
        return GenerateReport(out, 0, skipped, 0.0, 0, tmpl.name)
    if device is None:
        target = None
        if isinstance(model, (str, os.PathLike)):
            target = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        target = torch.device(device)
    if dtype is None and isinstance(model, (str, os.PathLike)):
        dtype = "bfloat16" if target is not None and target.type == "cuda" else "float32"
    net = load_model(model, gguf_file, dtype, _OWNER)
    if target is not None:
        net.to(target)
    net.eval()
    run_device = next(net.parameters()).device
    stops = eos_ids(net, tok)
    pad = pad_id(tok, _OWNER)
    bos = getattr(tok, "bos_token_id", None)

    encoded = []
    for ident, prompt in todo:
        rendered = tmpl.render(
            [{"role": "user", "content": prompt}],
            tok,
            add_generation_prompt=True,
            where=f"prompt {ident!r}",
        )
        ids = list(tok(rendered.text, add_special_tokens=False)["input_ids"])
        if rendered.add_bos and bos is not None:
            ids = [int(bos), *ids]
        encoded.append((ident, prompt, ids))
    encoded.sort(key=lambda e: -len(e[2]))

    options: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "pad_token_id": pad,
        "eos_token_id": stops or None,
    }
    if temperature > 0:
        options.update(do_sample=True, temperature=float(temperature), top_p=float(top_p), top_k=0)
    else:
        options.update(do_sample=False, temperature=None, top_p=None, top_k=None)

    out.parent.mkdir(parents=True, exist_ok=True)
    written = new_tokens = 0
    start = time.perf_counter()
    with out.open("a", encoding="utf-8") as fh:
        for b in range(0, len(encoded), batch_size):
            batch = encoded[b : b + batch_size]
            width = max(len(e[2]) for e in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            for r, (_, _, ids) in enumerate(batch):  # left padding
                input_ids[r, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                attention[r, width - len(ids) :] = 1
            with torch.inference_mode(), _seeded(torch, seed if temperature > 0 else None):
                seqs = net.generate(
                    input_ids=input_ids.to(run_device),
                    attention_mask=attention.to(run_device),
                    **options,
                )
            for (ident, prompt, _), tokens in zip(batch, seqs[:, width:].tolist()):
                end = next((k for k, t in enumerate(tokens) if t in stops), None)
                new_tokens += len(tokens) if end is None else end + 1
                answer = tok.decode(tokens[:end], skip_special_tokens=True).strip()
                row = {
                    "id": ident,
                    "testset": name,
                    "prompt": prompt,
                    "answer": answer,
                    "model": model_name,
                }
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                written += 1
            fh.flush()
            os.fsync(fh.fileno())
    return GenerateReport(out, written, skipped, time.perf_counter() - start, new_tokens, tmpl.name)
