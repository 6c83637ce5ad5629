"""A real tokenizer that loads offline and a tiny random LLaMA, shared by the
training, generation and local-judge tests (importing this needs torch)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
import transformers

from conftest import SHARED_DATA

LLAMA2_TOKENIZER = SHARED_DATA / "tokenizers" / "llama2_tokenizer.model"


def llama2_tokenizer(folder: Path) -> transformers.PreTrainedTokenizerBase:
    """LLaMA-2's SentencePiece tokenizer, copied into ``folder`` (must exist)."""
    shutil.copy(LLAMA2_TOKENIZER, folder / "tokenizer.model")
    return transformers.LlamaTokenizer.from_pretrained(str(folder))


def tiny_llama(tok, *, context: int = 512, seed: int = 0) -> transformers.LlamaForCausalLM:
    """A seeded, randomly initialised 2-layer LLaMA (float32, CPU) for ``tok``'s vocabulary."""
    config = transformers.LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tok),
        max_position_embeddings=context,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(seed)
    return transformers.LlamaForCausalLM(config)
