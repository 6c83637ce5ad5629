"""Small real models that need no hub and no data beside the checkout.

:func:`sample_tokenizer` trains a LLaMA-style SentencePiece tokenizer (BPE,
byte fallback, split digits, ``<unk>`` 0, ``<s>`` 1, ``</s>`` 2, no padding
token, no chat template: the settings of LLaMA-2's ``tokenizer.model``) on the
bundled 2,000-record Alpaca sample, and :func:`tiny_llama` builds a seeded,
randomly initialised 2-layer LLaMA for its vocabulary. Together they give
training, generation, embedding and local-judge code a real tokenizer and a
real model architecture in about a second on a CPU, with nothing downloaded:
the test suite and the notebooks' smoke mode use them.

Training is deterministic (one thread, the same sample, the same options):
the same installed ``sentencepiece`` gives the same ``tokenizer.model`` bytes
every time. Needs ``sentencepiece`` and ``transformers`` (``pip install
"sftselect[hf]"``) and, for :func:`tiny_llama`, ``torch``.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.validation import check_non_negative_int, check_positive_int, param_error

if TYPE_CHECKING:
    import transformers

__all__ = ["sample_tokenizer", "tiny_llama"]


def _sample_texts() -> list[str]:
    from ..data.sample import load_sample

    pool = load_sample()
    return [text for column in ("instruction", "input", "output") for text in pool[column] if text]


def _train_sentencepiece(vocab_size: int) -> bytes:
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(_sample_texts()),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,
        split_digits=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        allow_whitespace_only_pieces=True,
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


def sample_tokenizer(
    folder: str | Path | None = None, *, vocab_size: int = 8000
) -> transformers.PreTrainedTokenizerBase:
    """A LLaMA-style SentencePiece tokenizer trained on the bundled sample.

    ``folder`` (created if missing; a new temporary folder when None) receives
    ``tokenizer.model``, so ``transformers.LlamaTokenizer.from_pretrained(folder)``
    loads the same tokenizer again. ``vocab_size`` must leave room for the 256
    byte pieces and the sample's characters (at least 600).
    """
    if check_positive_int(vocab_size, "vocab_size", "sample_tokenizer") < 600:
        raise param_error("sample_tokenizer", "vocab_size", "an int >= 600", vocab_size)
    import transformers

    target = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="sftselect-tok-"))
    target.mkdir(parents=True, exist_ok=True)
    (target / "tokenizer.model").write_bytes(_train_sentencepiece(vocab_size))
    return transformers.LlamaTokenizer.from_pretrained(str(target))


def tiny_llama(
    tokenizer: transformers.PreTrainedTokenizerBase, *, context: int = 512, random_state: int = 0
) -> transformers.LlamaForCausalLM:
    """A seeded, randomly initialised 2-layer LLaMA (float32, CPU) for ``tokenizer``'s vocabulary.

    Not a language model: a real architecture with random weights, for code
    paths (training steps, batched generation, hidden states) that need one.
    ``random_state`` seeds the weights (torch's global RNG is restored afterwards).
    """
    check_positive_int(context, "context", "tiny_llama")
    check_non_negative_int(random_state, "random_state", "tiny_llama")
    import torch
    import transformers

    config = transformers.LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=context,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(random_state)
    try:
        return transformers.LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
