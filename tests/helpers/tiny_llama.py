"""A real tokenizer that loads offline and a tiny random LLaMA, shared by the
training, generation, embedding and local-judge tests (importing this needs torch).

The tokenizer is :func:`sftselect.testing.sample_tokenizer` (LLaMA-style
SentencePiece trained on the bundled sample): nothing beside the checkout is
needed. It is trained once per test process and copied into each folder asked for.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import transformers

from sftselect.testing import sample_tokenizer, tiny_llama
from sftselect.train import IGNORE_INDEX, Encoded, truncate

__all__ = ["spm_tokenizer", "tiny_llama", "truncate_after_prompt"]


@functools.cache
def _trained_model_file() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="sftselect-test-tok-"))
    sample_tokenizer(folder)
    return folder / "tokenizer.model"


def spm_tokenizer(folder: Path) -> transformers.PreTrainedTokenizerBase:
    """The sample-trained SentencePiece tokenizer, its model file copied into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(_trained_model_file(), folder / "tokenizer.model")
    return transformers.LlamaTokenizer.from_pretrained(str(folder))


def truncate_after_prompt(example: Encoded, trained: int) -> Encoded:
    """``example`` cut to its first prompt and ``trained`` more tokens (so a test's
    sizes do not depend on how many tokens a tokenizer gives the prompt)."""
    first_label = int(np.flatnonzero(np.asarray(example.labels) != IGNORE_INDEX)[0])
    kept, _ = truncate(example, first_label + trained)
    return kept
