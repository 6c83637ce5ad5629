"""`sftselect select|score --selector ifd|superfiltering|perplexity --model PATH`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from sftselect import load_sample
from sftselect.cli import main
from sftselect.models.logprobs import LogProbScorer
from sftselect.selectors.ifd import IFDSelector
from sftselect.testing import sample_tokenizer, tiny_llama

N_ROWS = 20


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """The tiny random LLaMA and its tokenizer saved as a checkpoint folder."""
    folder = tmp_path_factory.mktemp("tiny")
    tok = sample_tokenizer(folder)
    tiny_llama(tok, context=256).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    rows = load_sample().select(range(N_ROWS)).to_list()
    path = tmp_path_factory.mktemp("pool") / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_select_ifd_writes_the_library_selection_and_provenance(model_dir, pool, tmp_path):
    out = tmp_path / "out.jsonl"
    cache = tmp_path / "cache"
    argv = ["select", str(pool), "-o", str(out), "--selector", "ifd", "--model", str(model_dir)]
    assert main([*argv, "-k", "5", "--score-cache", str(cache), "-q"]) == 0
    from datasets import Dataset

    ds = Dataset.from_list(read_jsonl(pool))
    want = IFDSelector(str(model_dir), k=5, show_progress=False).select_indices(ds)
    assert [r["instruction"] for r in read_jsonl(out)] == [ds[int(i)]["instruction"] for i in want]
    record = json.loads(out.with_name("out.jsonl.provenance.json").read_text())
    assert record["selector"] == "IFDSelector"
    assert record["details"]["n_cached"] == {"conditioned": 0, "alone": 0}


def test_dry_run_prints_rows_tokens_and_cached_rows(model_dir, pool, tmp_path, capsys):
    cache = tmp_path / "cache"
    base = [
        "--selector",
        "superfiltering",
        "--model",
        str(model_dir),
        "--score-cache",
        str(cache),
    ]
    out = tmp_path / "o.jsonl"
    assert main(["select", str(pool), "-o", str(out), *base, "-k", "3", "--dry-run", "-q"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["rows"] == N_ROWS and not out.exists()
    assert first["passes"]["conditioned"]["cached_rows"] == 0
    assert first["passes"]["conditioned"]["tokens"] > 0
    assert main(["select", str(pool), "-o", str(out), *base, "-k", "3", "-q"]) == 0
    capsys.readouterr()
    assert main(["select", str(pool), "-o", str(out), *base, "-k", "3", "--dry-run"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["passes"]["alone"]["cached_rows"] == N_ROWS


def test_score_perplexity_writes_a_column_equal_to_the_library(model_dir, pool, tmp_path, capsys):
    out = tmp_path / "scored.jsonl"
    argv = ["score", str(pool), "-o", str(out), "--selector", "perplexity"]
    assert main([*argv, "--model", str(model_dir), "--unconditioned", "-q"]) == 0
    assert capsys.readouterr().err == ""  # -q: no progress bar
    rows = read_jsonl(out)
    from datasets import Dataset

    from sftselect.selectors.perplexity import PerplexitySelector

    scorer = LogProbScorer(str(model_dir), show_progress=False)
    want = PerplexitySelector(scorer, conditioned=False).score(Dataset.from_list(read_jsonl(pool)))
    np.testing.assert_allclose([r["perplexity"] for r in rows], want, rtol=1e-6)


def test_missing_model_is_a_one_line_error(pool, tmp_path, capsys):
    argv = ["select", str(pool), "-o", str(tmp_path / "o.jsonl"), "--selector", "ifd", "-k", "2"]
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert "--model" in err and len(err.splitlines()) == 1
