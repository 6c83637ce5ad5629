"""TargetedSelector (RDS+) against a transcription of the reference scripts.

The reference: github.com/hamishivi/automated-instruction-selection at commit
df71a044d567976e37bebeae53cd59f992b1ea09, ``minimal_multitask/compute_influence_cosinesim.py``
(``--pooling weighted_mean``, ``--batch_size 1``) and
``minimal_multitask/get_top_aggregated_influences.py`` (``--selection_method max
--aggregation_method round_robin``).
"""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset
from hypothesis import given, settings
from hypothesis import strategies as st

from sftselect import InvalidParameterError, TargetedSelector, load_sample, testsets
from sftselect.embedding import PrecomputedEmbeddings, example_texts
from sftselect.selectors.targeted import rds_embedder, round_robin

torch = pytest.importorskip("torch")


def reference_embed(model, tokenizer, texts):
    """compute_influence_cosinesim.py's weighted_mean branch, one text per batch."""
    out = []
    for text in texts:
        inputs = tokenizer(text, return_tensors="pt", max_length=512, truncation=True)
        with torch.no_grad():
            outputs = model(**inputs, output_hidden_states=True)
        hidden_states = outputs["hidden_states"][-1]
        weighting_mask = torch.arange(hidden_states.size(1)).unsqueeze(0) + 1  # +1
        weighting_mask = weighting_mask / weighting_mask.sum(dim=1, keepdim=True)
        emb = torch.sum(hidden_states * weighting_mask.unsqueeze(-1), dim=1)
        out.append(emb[0])
    embs = torch.stack(out)
    return embs / torch.linalg.vector_norm(embs, dim=1, keepdim=True)


def reference_select(train_embeds, task_embeds: dict, output_size: int) -> list[int]:
    """Cosine influences, max over each task's examples, then get_top_aggregated_influences'
    round robin (a dict keeps each row once; a task's turn is spent on a repeat)."""
    per_dataset = {}
    for name, test in task_embeds.items():
        influences = torch.matmul(test, train_embeds.T).numpy()
        all_train_scores: dict[int, list[float]] = {}
        for i in range(influences.shape[0]):
            for train_idx in range(influences.shape[1]):
                all_train_scores.setdefault(train_idx, []).append(float(influences[i][train_idx]))
        overall = {k: max(v) for k, v in all_train_scores.items()}
        per_dataset[name] = sorted(overall.items(), key=lambda x: x[1], reverse=True)
    chosen: dict[int, float] = {}
    while len(chosen) < output_size:
        for name in per_dataset:
            if len(chosen) >= output_size:
                break
            idx, score = per_dataset[name].pop(0)
            chosen[idx] = min(score, chosen.get(idx, float("inf")))
    return [int(i) for i in chosen]


@pytest.fixture(scope="module")
def tiny():
    from sftselect.testing import sample_tokenizer, tiny_llama

    tok = sample_tokenizer()
    return tiny_llama(tok, random_state=3), tok


@pytest.mark.parametrize("batch_size", [1, 8])
def test_equals_a_transcription_of_rds_plus(tiny, batch_size):
    model, tok = tiny
    pool = load_sample().select(range(30))
    tasks = {"vicuna": testsets.load("vicuna", limit=6), "koala": testsets.load("koala", limit=4)}
    k = 12
    sel = TargetedSelector(
        rds_embedder(model, tokenizer=tok, batch_size=batch_size, device="cpu"), k, targets=tasks
    )
    got = sel.run(pool)
    train = reference_embed(model, tok, example_texts(pool, "example"))
    targets = {name: reference_embed(model, tok, list(ds["prompt"])) for name, ds in tasks.items()}
    want = reference_select(train, targets, k)
    assert got.ranked.tolist() == want
    assert sum(got.extra["selected_per_task"].values()) == k
    # the embeddings themselves: the reference's, to float rounding
    mine = sel.embed(pool)
    np.testing.assert_allclose(mine, train.numpy(), atol=2e-5)


def test_round_robin_spends_a_turn_on_a_repeat():
    scores = np.array([[0.9, 0.8, 0.1, 0.0], [0.9, 0.1, 0.2, 0.8]])
    order, taker = round_robin(scores)
    # turn 0: task 0 takes row 0; turn 1: task 1's best is row 0 too (spent);
    # turn 2: task 0 takes row 1; turn 3: task 1 takes row 3; turn 4: task 0 takes row 2
    assert order.tolist() == [0, 1, 3, 2]
    assert taker.tolist() == [0, 0, 1, 0]


def test_one_task_is_plain_nearest_first_and_ties_go_to_the_lower_row():
    V = np.array([[1, 0], [0, 1], [1, 0], [0.6, 0.8]], dtype=np.float32)
    pool = Dataset.from_dict({"i": [0, 1, 2, 3]})
    target = Dataset.from_dict({"i": [0]})
    sel = TargetedSelector(
        PrecomputedEmbeddings(V),
        3,
        targets=target,
        target_embedder=PrecomputedEmbeddings(np.array([[1.0, 0.0]])),
    )
    assert sel.run(pool).ranked.tolist() == [0, 2, 3]


def test_bad_targets_are_one_line_errors():
    pool = Dataset.from_dict({"i": [0, 1]})
    emb = PrecomputedEmbeddings(np.eye(2))
    with pytest.raises(InvalidParameterError, match="'targets'"):
        TargetedSelector(emb, 1, targets="file.json").run(pool)
    with pytest.raises(InvalidParameterError, match="empty"):
        TargetedSelector(emb, 1, targets=Dataset.from_dict({"i": []})).run(pool)
    two = [Dataset.from_dict({"i": [0]}), Dataset.from_dict({"i": [1]})]
    with pytest.raises(InvalidParameterError, match="'target_embedder'"):
        TargetedSelector(emb, 1, targets=two).run(pool)


def reference_round_robin(scores: np.ndarray, output_size: int) -> list[int]:
    """get_top_aggregated_influences.py's round robin on per-task scores (already maxed)."""
    per_dataset = {
        t: sorted(enumerate(scores[t].tolist()), key=lambda x: x[1], reverse=True)
        for t in range(scores.shape[0])
    }
    chosen: dict[int, float] = {}
    while len(chosen) < output_size:
        for t in per_dataset:
            if len(chosen) >= output_size:
                break
            idx, score = per_dataset[t].pop(0)
            chosen[idx] = min(score, chosen.get(idx, float("inf")))
    return list(chosen)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda t: st.integers(1, 12).flatmap(
            lambda n: st.lists(st.integers(0, 4), min_size=t * n, max_size=t * n).map(
                lambda v: np.array(v, dtype=float).reshape(t, n)
            )
        )
    )
)
def test_round_robin_equals_the_reference_loop_with_ties(scores):
    order, _ = round_robin(scores)
    n = scores.shape[1]
    assert order.tolist() == reference_round_robin(scores, n)
