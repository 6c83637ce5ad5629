"""Batched next-token logits at the last prompt position, for a few chosen tokens.

What a scorer such as DEITA's reads: the model is shown a prompt and the
logits of the next token are compared over a few candidate tokens ("1" to
"6"). :class:`NextTokenLogits` computes, for each prompt, the logits of
``token_ids`` at the position after its last token, in batches (see
:class:`~sftselect.models.row_engine.RowEngine` for batching, the cache, and
what makes a row NaN). With right padding the last real token of row ``i`` is
at ``attention_mask[i].sum() - 1``; where the model's ``forward`` accepts
``logits_to_keep`` (transformers' causal LMs do), the LM head is applied only
at the distinct last positions of the batch, not at every position.

The prompt is tokenized as ``tokenizer(prompt, add_special_tokens=...)``;
the default ``True`` is what ``tokenizer.encode(prompt)`` does (a LLaMA
tokenizer adds ``<s>``), as DEITA's ``Scorer.infer_score`` does.
"""

from __future__ import annotations

import inspect
import numbers
import os
from collections.abc import Sequence
from typing import Any

from ..core.validation import param_error
from ..exceptions import InvalidParameterError
from .loading import import_torch, load_model
from .row_engine import RowEngine, RowOutputs

__all__ = ["NextTokenLogits", "token_ids_of"]


def token_ids_of(tokenizer: Any, tokens: Sequence[str], owner: str) -> list[int]:
    """The vocabulary id of each token string (``convert_tokens_to_ids``).

    A string that is not one token of the vocabulary (it maps to no id, or to
    the unknown token) raises a one-line error naming it: the score would
    otherwise be read from the wrong token.
    """
    ids = []
    unk = getattr(tokenizer, "unk_token_id", None)
    for text in tokens:
        tid = tokenizer.convert_tokens_to_ids(text)
        if not isinstance(tid, numbers.Integral) or (tid == unk and text != tokenizer.unk_token):
            raise InvalidParameterError(
                f"{owner}: {text!r} is not a single token of the tokenizer "
                f"({type(tokenizer).__name__}); pass token_ids= with the ids to read."
            )
        ids.append(int(tid))
    return ids


class NextTokenLogits(RowEngine):
    """Logits of chosen tokens after each prompt, batched and cached.

    Parameters
    ----------
    model : str, path or a loaded causal LM
        A folder, a hub name, a ``.gguf`` file, or a ``transformers`` model.
    tokenizer : str, path, tokenizer or None
        None loads it from ``model`` (required when ``model`` is an object).
    batch_size : int, default 8
    max_length : int or None
        Prompts with more tokens are NaN and counted (never truncated); None:
        the model's ``max_position_embeddings``.
    add_special_tokens : bool, default True
        As ``tokenizer.encode`` (``<s>`` first for a LLaMA tokenizer).
    device, dtype : str or None
        None: CUDA when available, else CPU; bfloat16 on a CUDA device that
        has it, else float32.
    cache_dir : str, path or None
        A folder holding the score cache (``model_scores.sqlite``).
    show_progress : bool, default False
    """

    kind = "next-token-logits"

    def __init__(
        self,
        model: Any,
        *,
        tokenizer: Any = None,
        batch_size: int = 8,
        max_length: int | None = None,
        add_special_tokens: bool = True,
        device: str | None = None,
        dtype: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        show_progress: bool = False,
    ) -> None:
        super().__init__(
            model,
            tokenizer=tokenizer,
            batch_size=batch_size,
            max_length=max_length,
            device=device,
            dtype=dtype,
            cache_dir=cache_dir,
            show_progress=show_progress,
        )
        self.add_special_tokens = add_special_tokens
        self._token_ids: tuple[int, ...] = ()

    def _check(self) -> None:
        super()._check()
        if not isinstance(self.add_special_tokens, bool):
            raise param_error(
                type(self).__name__, "add_special_tokens", "a bool", self.add_special_tokens
            )

    def _load_model(self, ref: str, dtype: Any) -> Any:
        name = str(dtype).replace("torch.", "")
        return load_model(ref, None, name, type(self).__name__)

    def width(self) -> int:
        return len(self._token_ids)

    def _settings(self) -> str:
        ids = ",".join(str(t) for t in self._token_ids)
        return f"|special={self.add_special_tokens}|tokens={ids}"

    def _encode(self, tok: Any, texts: tuple[str, ...]) -> dict[str, list[int]]:
        (prompt,) = texts
        enc = tok(prompt, add_special_tokens=self.add_special_tokens, return_attention_mask=False)
        return {"input_ids": list(enc["input_ids"])}

    def _forward(self, model: Any, batch: dict[str, Any]) -> Any:
        torch, _ = import_torch(type(self).__name__)
        mask = batch["attention_mask"]
        last = mask.sum(dim=1) - 1
        rows = torch.arange(mask.shape[0], device=mask.device)
        ids = torch.tensor(self._token_ids, dtype=torch.long, device=mask.device)
        if _accepts(model, "logits_to_keep"):
            positions, where = torch.unique(last, return_inverse=True)
            logits = model(**batch, use_cache=False, logits_to_keep=positions).logits
            return logits[rows, where][:, ids]
        return model(**batch, use_cache=False).logits[rows, last][:, ids]

    def vocabulary_ids(self, tokens: Sequence[str]) -> list[int]:
        """The ids of ``tokens`` in this engine's tokenizer (see :func:`token_ids_of`)."""
        return token_ids_of(self.tokenizer_object(), tokens, type(self).__name__)

    def plan_logits(self, prompts: Sequence[str], token_ids: Sequence[int]) -> dict[str, int]:
        """:meth:`~sftselect.models.row_engine.RowEngine.plan` of :meth:`logits` (no weights loaded)."""
        self._token_ids = tuple(int(t) for t in token_ids)
        return self.plan([(str(p),) for p in prompts])

    def logits(self, prompts: Sequence[str], token_ids: Sequence[int]) -> RowOutputs:
        """``values[i, j]``: the logit of ``token_ids[j]`` after ``prompts[i]`` (float32)."""
        owner = type(self).__name__
        if not token_ids or not all(
            isinstance(t, numbers.Integral) and not isinstance(t, bool) and t >= 0
            for t in token_ids
        ):
            raise param_error(owner, "token_ids", "a non-empty list of token ids", token_ids)
        self._token_ids = tuple(int(t) for t in token_ids)
        return self.run([(str(p),) for p in prompts])

    def _prepare(self, model: Any) -> None:
        vocab = _vocab_size(model)
        if vocab is not None and max(self._token_ids) >= vocab:
            raise InvalidParameterError(
                f"{type(self).__name__}: token id {max(self._token_ids)} is outside the "
                f"vocabulary of the model ({vocab} logits)."
            )


def _accepts(model: Any, name: str) -> bool:
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _vocab_size(model: Any) -> int | None:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        raise InvalidParameterError(
            f"{type(model).__name__} has no LM head (get_output_embeddings() is None); "
            "next-token logits need a causal LM (AutoModelForCausalLM)."
        )
    weight = getattr(head, "weight", None)
    return int(weight.shape[0]) if weight is not None else None
