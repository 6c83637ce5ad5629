"""``sftselect select|score --selector deita|reward --model PATH`` on tiny saved models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from datasets import Dataset

from sftselect.cli import main
from sftselect.data.sample import load_sample
from sftselect.models.next_token import NextTokenLogits
from sftselect.models.reward import RewardModel
from sftselect.selectors import DeitaSelector, RewardSelector
from sftselect.testing import sample_tokenizer, tiny_llama


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    import torch
    import transformers

    root = tmp_path_factory.mktemp("models")
    tok = sample_tokenizer()
    lm = tiny_llama(tok)
    with torch.no_grad():
        lm.lm_head.weight.mul_(40.0)
    lm.save_pretrained(root / "scorer")
    tok.save_pretrained(root / "scorer")
    config = {k: v for k, v in lm.config.to_dict().items() if k not in ("id2label", "label2id")}
    config.update(num_labels=1, pad_token_id=tok.unk_token_id)
    torch.manual_seed(0)
    rm = transformers.LlamaForSequenceClassification(transformers.LlamaConfig(**config))
    rm.save_pretrained(root / "reward")
    tok.save_pretrained(root / "reward")
    rows = [
        {k: r[k] for k in ("instruction", "input", "output")}
        for r in load_sample().select(range(8)).to_list()
    ]
    data = root / "data.json"
    data.write_text(json.dumps(rows), encoding="utf-8")
    return root, data, rows


def test_select_deita_keeps_the_top_combined_scores(folders, tmp_path, capsys):
    root, data, rows = folders
    scorer = str(root / "scorer")
    out = tmp_path / "out.json"
    cache = tmp_path / "cache"
    base = ["select", str(data), "--selector", "deita", "--model", scorer]
    base += ["--quality-model", scorer, "--score-cache", str(cache), "-q"]
    assert main([*base, "-o", str(out), "--dry-run"]) == 0
    assert "complexity: 8 prompts" in capsys.readouterr().out
    assert main([*base, "-o", str(out), "-k", "3"]) == 0
    kept = json.loads(out.read_text())
    scores = DeitaSelector(NextTokenLogits(scorer), NextTokenLogits(scorer), k=1.0).score(
        Dataset.from_list(rows)
    )
    want = [rows[i] for i in sorted(np.argsort(-scores, kind="stable")[:3])]
    assert kept == want
    assert main([*base, "-o", str(out), "--dry-run"]) == 0
    assert "8 cached, 0 to compute" in capsys.readouterr().out


def test_score_reward_writes_the_column(folders, tmp_path):
    root, data, rows = folders
    out = tmp_path / "scored.json"
    argv = ["score", str(data), "--selector", "reward", "--model", str(root / "reward")]
    assert main([*argv, "-o", str(out), "--score-cache", str(tmp_path / "c"), "-q"]) == 0
    got = [r["reward_score"] for r in json.loads(out.read_text())]
    want = RewardSelector(RewardModel(str(root / "reward")), k=1.0).score(Dataset.from_list(rows))
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_select_reward_needs_k_or_a_bound(folders, tmp_path):
    root, data, _ = folders
    argv = ["select", str(data), "--selector", "reward", "--model", str(root / "reward")]
    assert main([*argv, "-o", str(tmp_path / "o.json"), "-q"]) == 2


def test_a_selector_loads_each_named_model_once(folders):
    root, _, rows = folders
    scorer = str(root / "scorer")
    selector = DeitaSelector(scorer, scorer, k=2)
    ds = Dataset.from_list(rows[:3])
    first = selector.score(ds)
    engine = selector._engine("complexity")
    np.testing.assert_array_equal(selector.score(ds), first)
    assert selector._engine("complexity") is engine and engine._loaded is not None
    assert selector.clone(batch_size=2)._engine("complexity") is not engine


def test_a_cached_rerun_of_a_checkpoint_folder_loads_no_weights(folders, tmp_path):
    root, _, rows = folders
    scorer = str(root / "scorer")
    prompts = [r["instruction"] for r in rows]
    first = NextTokenLogits(scorer, cache_dir=tmp_path)
    ids = first.vocabulary_ids(["1", "2", "3"])
    want = first.logits(prompts, ids).values
    again = NextTokenLogits(scorer, cache_dir=tmp_path)
    got = again.logits(prompts, ids)
    assert got.counts()["cached"] == len(prompts) and again._loaded is None
    np.testing.assert_array_equal(got.values, want)


@pytest.mark.parametrize("selector", ["deita", "reward"])
def test_dry_run_reads_windows_and_sums_them_as_one_window(
    folders, tmp_path, capsys, monkeypatch, selector
):
    """--dry-run plans a window of rows at a time (3 here: windows of 3, 3 and 2 rows) and
    prints the totals one window of all 8 rows gives: prompts, tokens, longest, cached."""
    from sftselect.models import row_engine

    root, data, _ = folders
    model = str(root / ("reward" if selector == "reward" else "scorer"))
    argv = ["select", str(data), "--selector", selector, "--model", model, "-k", "3"]
    if selector == "deita":
        argv += ["--quality-model", model]
    argv += ["-o", str(tmp_path / "o.json"), "--dry-run", "-q"]
    assert main(argv) == 0
    whole = capsys.readouterr().out
    seen = []
    plan = row_engine.RowEngine.plan

    def spy(self, rows):
        seen.append(len(rows))
        return plan(self, rows)

    monkeypatch.setattr(row_engine.RowEngine, "window_rows", 3)
    monkeypatch.setattr(row_engine.RowEngine, "plan", spy)
    assert main(argv) == 0
    assert capsys.readouterr().out == whole
    assert "8 prompts" in whole
    assert seen == ([3, 3, 2] if selector == "reward" else [3, 3, 3, 3, 2, 2])
