"""Token log-probabilities of the local backend's replies, OpenAI-style.

:class:`~sftselect.backends.transformers_chat.TransformersChatBackend` asks
``model.generate`` for ``output_logits=True, return_dict_in_generate=True``
when a request sets ``top_logprobs`` (and only then). transformers 5.x then
returns, per generated step, the *raw* logits of the language-model head
(``GenerateDecoderOnlyOutput.logits``: "unprocessed prediction scores", cast
to float32 before any logits processor), not ``output_scores``' processed
scores (after temperature, top-p, repetition penalty, ...). The raw logits are
the model's own distribution, which G-Eval's expected score needs and which
vLLM returns by default (``logprobs_mode="raw_logprobs"``); the processed
scores would change with the decoding parameters (``-inf`` outside top-p).

Per shown reply token (see :func:`reply_logprobs`): its log-probability is
``log_softmax`` of that step's logits in float32, read at the chosen token id;
its alternatives are the ``top_logprobs`` ids of highest log-probability
(``torch.topk``: most likely first), none for ``top_logprobs=0``.

A token id becomes its text as vLLM writes it (``convert_ids_list_to_tokens``
in ``vllm/tokenizers/detokenizer_utils.py``): ``tokenizer.decode([id])``,
alone, special tokens kept (an alternative EOS reads ``"<|im_end|>"``), with
the leading spaces that a SentencePiece decode drops put back from the raw
piece (``"▁4"`` -> ``" 4"``, as OpenAI and llama.cpp write it). A byte-level BPE
token (GPT-2, SmolLM2) decodes with its space already (``"Ġ4"`` -> ``" 4"``).
Every id has one text, so the chosen token and the same id among its
alternatives always match. A token that is part of a multi-byte character
decodes alone to ``"\ufffd"`` (OpenAI would send its ``bytes``; this backend
does not).
"""

from __future__ import annotations

from typing import Any

from .base import TokenLogprob

__all__ = ["TokenTexts", "reply_logprobs", "shown_token_count"]

_SPM_SPACE = "\u2581"  # SentencePiece's word-boundary marker


class TokenTexts:
    """Token id -> its text (see the module docstring), remembered per id."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._texts: dict[int, str] = {}

    def __call__(self, token_id: int) -> str:
        text = self._texts.get(token_id)
        if text is None:
            text = self.tokenizer.decode(
                [token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False
            )
            raw = self.tokenizer.convert_ids_to_tokens(token_id)
            if isinstance(raw, str) and raw.startswith(_SPM_SPACE):
                markers = len(raw) - len(raw.lstrip(_SPM_SPACE))
                missing = markers - (len(text) - len(text.lstrip(" ")))
                if missing > 0:
                    text = " " * missing + text
            self._texts[token_id] = text
        return text


def shown_token_count(tokenizer: Any, tokens: list[int], cut: int) -> int:
    """How many of ``tokens`` start before character ``cut`` of their decoded text (the
    reply text is that decode cut before a stop string): a token that straddles the cut
    is shown, one wholly inside the stop string is not."""
    count = 0
    while count < len(tokens):
        # a prefix that ends inside a character decodes it as U+FFFD: not yet text
        start = len(tokenizer.decode(tokens[:count], skip_special_tokens=True).rstrip("\ufffd"))
        if start >= cut:
            break
        count += 1
    return count


def reply_logprobs(
    torch: Any,
    logits: tuple[Any, ...],
    new_tokens: list[list[int]],
    shown: list[int],
    top_n: int,
    texts: TokenTexts,
) -> list[tuple[TokenLogprob, ...]]:
    """Each row's shown tokens with their log-probabilities and ``top_n`` alternatives.

    Parameters
    ----------
    torch : module
        The ``torch`` module.
    logits : tuple of torch.Tensor
        ``generate``'s raw logits, one ``(batch, vocab)`` tensor per step.
    new_tokens : list of list of int
        Each row's generated token ids (one per step).
    shown : list of int
        How many leading tokens of each row the reply shows (EOS and tokens wholly
        inside a stop string excluded).
    top_n : int
        Alternatives per token (0 to 20).
    texts : TokenTexts
        Token id -> text.

    Returns
    -------
    list of tuple of TokenLogprob
        One tuple per row, ``shown[row]`` long.
    """
    steps = max(shown, default=0)
    if steps == 0:
        return [() for _ in shown]
    chosen_lp, top_lp, top_ids = [], [], []
    width = min(len(row) for row in new_tokens)
    if logits[0].shape[0] != len(new_tokens):
        raise ValueError(
            f"generate returned logits for {logits[0].shape[0]} sequences and "
            f"{len(new_tokens)} replies (beam search or several returned sequences)"
        )
    if len(logits) < steps or width < steps:
        raise ValueError(
            f"generate returned {len(logits)} steps of logits for {width} new tokens; "
            f"{steps} are needed"
        )
    ids = torch.tensor([row[:steps] for row in new_tokens], dtype=torch.long)
    ids = ids.to(logits[0].device)
    for t in range(steps):  # one step at a time: a (batch, vocab) float32 copy at most
        lp = torch.log_softmax(logits[t].float(), dim=-1)
        chosen_lp.append(lp.gather(1, ids[:, t : t + 1]).squeeze(1))
        if top_n:
            vals, idx = torch.topk(lp, min(top_n, lp.shape[-1]), dim=-1)
            top_lp.append(vals)
            top_ids.append(idx)
    # one copy to the host for all steps (batch, steps[, n])
    chosen = torch.stack(chosen_lp, 1).cpu().tolist()
    alts = torch.stack(top_lp, 1).cpu().tolist() if top_n else None
    alt_ids = torch.stack(top_ids, 1).cpu().tolist() if top_n else None
    replies = []
    for row, count in enumerate(shown):
        tokens = []
        for t in range(count):
            top: tuple[tuple[str, float], ...] = ()
            if alts is not None and alt_ids is not None:
                top = tuple((texts(i), float(v)) for i, v in zip(alt_ids[row][t], alts[row][t]))
            tokens.append(TokenLogprob(texts(new_tokens[row][t]), float(chosen[row][t]), top))
        replies.append(tuple(tokens))
    return replies
