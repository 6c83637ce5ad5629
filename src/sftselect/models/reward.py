"""Batched rewards from a sequence-classification reward model.

:class:`RewardModel` scores (question, answer) pairs with an
``AutoModelForSequenceClassification`` checkpoint whose first logit is the
reward, e.g. ``OpenAssistant/reward-model-deberta-v3-large-v2``, the model
MoDS uses (``quality-evaluation/quality-evaluation.py``:
``tokenizer(question, answer)`` then ``model(**inputs).logits[0]``). Two ways
to render a pair, as the model expects:

* ``render="pair"`` -- ``tokenizer(question, answer)``: the tokenizer's own
  sentence-pair input (``[CLS] q [SEP] a [SEP]`` with its token type ids for
  BERT and DeBERTa), as OpenAssistant's reward models and MoDS use;
* ``render="chat"`` -- ``tokenizer.apply_chat_template([user: question,
  assistant: answer])``: for reward models trained on chat transcripts.

Batching, the cache, and what makes a row NaN (``too_long``: more tokens than
``max_length``, never truncated) are :class:`~sftselect.models.row_engine.RowEngine`'s.
``max_length`` defaults to the tokenizer's ``model_max_length`` when it states
one, else the model's ``max_position_embeddings``.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from typing import Any

from ..core.validation import check_choice
from ..exceptions import InvalidParameterError
from .loading import _from_pretrained, import_torch
from .row_engine import RowEngine, RowOutputs

__all__ = ["RENDERS", "RewardModel"]

RENDERS: tuple[str, ...] = ("pair", "chat")
#: Top-level module names of the classification heads of transformers' models.
_HEADS = ("classifier", "score", "pooler", "v_head")


class RewardModel(RowEngine):
    """The reward of each (question, answer) pair, batched and cached.

    Parameters
    ----------
    model : str, path or a loaded sequence-classification model
    tokenizer : str, path, tokenizer or None
        None loads it from ``model`` (required when ``model`` is an object).
    render : {"pair", "chat"}, default "pair"
        How a pair becomes tokens (module docstring).
    batch_size : int, default 8
    max_length : int or None
        Pairs with more tokens are NaN and counted; None: the tokenizer's
        ``model_max_length``, else the model's ``max_position_embeddings``.
    device, dtype, cache_dir, show_progress
        As :class:`~sftselect.models.next_token.NextTokenLogits`.
    """

    kind = "reward"

    def __init__(
        self,
        model: Any,
        *,
        tokenizer: Any = None,
        render: str = "pair",
        batch_size: int = 8,
        max_length: int | None = None,
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
        self.render = render

    def _check(self) -> None:
        super()._check()
        check_choice(self.render, "render", type(self).__name__, RENDERS)

    def _load_model(self, ref: str, dtype: Any) -> Any:
        _, transformers = import_torch(type(self).__name__)
        owner = type(self).__name__
        model, info = _from_pretrained(
            transformers.AutoModelForSequenceClassification,
            ref,
            "model",
            owner,
            {"dtype": dtype, "output_loading_info": True},
        )
        new = [k for k in info.get("missing_keys", ()) if k.split(".")[0] in _HEADS]
        if new:
            raise InvalidParameterError(
                f"{owner}: {ref!r} has no trained classification head (transformers "
                f"initialised {sorted(new)[0]!r} at random); it is not a reward model."
            )
        return model

    def pad_id(self, model: Any, tok: Any) -> int:
        """The model's ``config.pad_token_id`` when set: a classifier that pools the last
        token finds it by that id; else the tokenizer's (see ``loading.pad_id``)."""
        configured = getattr(model.config, "pad_token_id", None)
        if isinstance(configured, numbers.Integral):
            return int(configured)
        return super().pad_id(model, tok)

    def width(self) -> int:
        return 1

    def _settings(self) -> str:
        return f"|render={self.render}"

    def context_limit(self, model: Any, tok: Any) -> int | None:
        if self.max_length is not None:
            return int(self.max_length)
        stated = getattr(tok, "model_max_length", None)
        if isinstance(stated, numbers.Integral) and 0 < stated < 1_000_000:
            return int(stated)
        return super().context_limit(model, tok)

    def _encode(self, tok: Any, texts: tuple[str, ...]) -> dict[str, list[int]]:
        question, answer = texts
        if self.render == "pair":
            enc = tok(question, answer, return_attention_mask=False)
            out = {"input_ids": list(enc["input_ids"])}
            if "token_type_ids" in enc:
                out["token_type_ids"] = list(enc["token_type_ids"])
            return out
        messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        ids = tok.apply_chat_template(messages, tokenize=True, return_dict=False)
        if hasattr(ids, "keys"):  # a BatchEncoding
            ids = ids["input_ids"]
        return {"input_ids": [int(t) for t in ids]}

    def _forward(self, model: Any, batch: dict[str, Any]) -> Any:
        logits = model(**batch).logits
        return logits[:, :1]

    def rewards(self, questions: Sequence[str], answers: Sequence[str]) -> RowOutputs:
        """``values[i, 0]``: the reward of ``(questions[i], answers[i])`` (float32)."""
        if len(questions) != len(answers):
            raise InvalidParameterError(
                f"{type(self).__name__}.rewards: {len(questions)} questions but "
                f"{len(answers)} answers; expected one answer per question."
            )
        return self.run([(str(q), str(a)) for q, a in zip(questions, answers)])
