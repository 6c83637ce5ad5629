"""Tokenizers the library loads keep no word cache (memory bounded by the batch, not the data)."""

from __future__ import annotations

import sys

import numpy as np
import pytest


def _rss_anon_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no RssAnon")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_a_tokenizer_the_library_loads_keeps_no_word_cache(tmp_path):
    """The tiny LLaMA's tokenizer (Metaspace(split=False): a whole text is one "word")
    loaded by load_tokenizer does not grow with distinct texts; the same files loaded
    plainly do (the tokenizers word cache, up to 10,000 whole texts with their tokens; it keeps only
    texts shorter than a few hundred bytes, so these are short)."""
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    from sftselect.models.loading import load_tokenizer
    from sftselect.testing import sample_tokenizer

    sample_tokenizer().save_pretrained(tmp_path)
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(5000)]

    def growth(tok, seed: int) -> float:
        texts = [" ".join(rng.choice(words, 30)) + f" {seed}-{i}" for i in range(6000)]
        before = _rss_anon_mib()
        for text in texts:
            tok.encode(text)
        return _rss_anon_mib() - before

    ours = growth(load_tokenizer(str(tmp_path), None, None, "test"), 1)
    plain = growth(AutoTokenizer.from_pretrained(tmp_path), 2)
    assert ours < 5.0, ours
    assert plain > 4 * max(ours, 2.0), (ours, plain)
