"""Tokenizers the library loads keep no word cache (memory bounded by the batch, not the data)."""

from __future__ import annotations

import sys

import pytest

_GROWTH = """
import sys
import numpy as np
from transformers import AutoTokenizer
from sftselect.models.loading import load_tokenizer

folder, how = sys.argv[1], sys.argv[2]
tok = load_tokenizer(folder, None, None, "test") if how == "ours" else (
    AutoTokenizer.from_pretrained(folder))
rng = np.random.default_rng(0)
words = [f"w{i}" for i in range(5000)]
texts = [" ".join(rng.choice(words, 30)) + f" {i}" for i in range(6000)]
tok.encode(texts[0])

def anon():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024

before = anon()
for text in texts[1:]:
    tok.encode(text)
print(anon() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_a_tokenizer_the_library_loads_keeps_no_word_cache(tmp_path):
    """The tiny LLaMA's tokenizer (Metaspace(split=False): a whole text is one "word")
    loaded by load_tokenizer does not grow with distinct texts; the same files loaded
    plainly do (the tokenizers word cache, up to 10,000 whole texts with their tokens; it
    keeps only texts shorter than a few hundred bytes, so these are short). Each is
    measured in a fresh process: in a long-lived one, freed heap memory absorbs it."""
    import os
    import subprocess

    pytest.importorskip("transformers")
    from sftselect.testing import sample_tokenizer

    sample_tokenizer().save_pretrained(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def growth(how: str) -> float:
        out = subprocess.run(
            [sys.executable, "-c", _GROWTH, str(tmp_path), how],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        return float(out.stdout.strip().splitlines()[-1])

    ours, plain = growth("ours"), growth("plain")
    assert ours < 5.0, ours
    assert plain > 4 * max(ours, 2.0), (ours, plain)
