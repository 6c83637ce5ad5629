"""Stop strings through transformers' StopStringCriteria give the same replies as the
decode-every-row-at-every-step criterion they replaced, without decoding while generating."""

from __future__ import annotations

import asyncio
import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from sftselect.backends import ChatRequest  # noqa: E402
from sftselect.backends import _local_engine as engine_module  # noqa: E402
from sftselect.backends.transformers_chat import TransformersChatBackend  # noqa: E402
from tests.helpers.tiny_llama import spm_tokenizer, tiny_llama  # noqa: E402

TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
PROMPTS = [
    "Hi",
    "What is the capital of France? Answer in one long and detailed paragraph, please.",
    "Name three colours.",
    "word " * 20,
    "Rate this answer from 0 to 5.",
    "Write a haiku about the sea.",
]


def decoding_criterion(base, tokenizer, stops, prompt_width, batch):
    """The criterion before this change (transcribed from backends/_local_engine.py at
    e6445e4): decode every unfinished row's new tokens at every step, stop when the text
    holds a stop string."""
    eos_ids = frozenset([tokenizer.eos_token_id])

    class StopOnStrings(base):
        def __init__(self):
            self.done_at = [None] * batch

        def __call__(self, input_ids, scores, **kwargs):
            rows = input_ids[:, prompt_width:].tolist()
            flags = []
            for i, row in enumerate(rows):
                if self.done_at[i] is None and not eos_ids.intersection(row):
                    text = tokenizer.decode(row, skip_special_tokens=True)
                    if any(s in text for s in stops):
                        self.done_at[i] = len(row)
                flags.append(self.done_at[i] is not None)
            return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)

    return StopOnStrings()


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return spm_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_llama(tokenizer, context=256).eval()


def replies(model, tokenizer, requests):
    backend = TransformersChatBackend(
        model, tokenizer=tokenizer, chat_template=TEMPLATE, max_batch_size=8, batch_wait_ms=200
    )

    async def main():
        return await asyncio.gather(*(backend.chat(r) for r in requests))

    return asyncio.run(main())


def stop_sets(free_texts):
    """Stop strings cut from the unstopped answers: 1-4 characters at several places (across
    token and word boundaries), a pair, and one that never appears."""
    sets = [("never-appears",)]
    for text in free_texts:
        for start in (1, len(text) // 3, len(text) // 2, (2 * len(text)) // 3):
            for width in (1, 2, 4):
                piece = text[start : start + width]
                if piece.strip() and not piece.startswith(" "):
                    sets.append((piece,))
        if len(text) > 8:
            sets.append((text[5:7], text[-3:]))
    return sets


def test_stop_strings_give_the_same_replies_as_decoding_every_step(model, tokenizer, monkeypatch):
    """Same text, token counts and finish reasons as the old criterion for every stop-string
    set (73 today, 438 requests) on batched greedy requests; while generating, the tokenizer decodes nothing (the old
    criterion decoded every unfinished row at every step)."""
    free = replies(model, tokenizer, [ChatRequest.user(p, max_tokens=16) for p in PROMPTS])
    sets = stop_sets([r.text for r in free])
    assert len(sets) >= 60
    requests = [
        ChatRequest.user(p, max_tokens=16, stop=list(stops)) for stops in sets for p in PROMPTS
    ]
    calls = []
    original = type(tokenizer).decode

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(tokenizer), "decode", counting)
    new = replies(model, tokenizer, requests)
    new_calls = len(calls)
    monkeypatch.setattr(engine_module, "_stop_criterion", decoding_criterion)
    calls.clear()
    old = replies(model, tokenizer, requests)
    old_calls = len(calls)
    assert [(r.text, r.output_tokens, r.finish_reason) for r in new] == [
        (r.text, r.output_tokens, r.finish_reason) for r in old
    ]
    stopped = sum(r.finish_reason == "stop" and r.output_tokens < 16 for r in new)
    assert stopped > len(requests) // 3  # the stop strings did stop most generations early
    assert new_calls == len(requests)  # one decode per reply, after generation
    assert old_calls > 3 * len(requests)
