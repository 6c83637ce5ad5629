"""`--batch-size` left out: each selector keeps its library default, in `select` and `score`.

The embedding options register `--batch-size` first; it used to default to 32 there, so
`select --selector ifd` ran batches of 32 rows while `IFDSelector` (and `score`) used 16,
and `deita`/`reward` 32 against their engines' 8.
"""

from __future__ import annotations

import inspect

import pytest

from sftselect.cli import build_parser
from sftselect.cli._common import hf_embedder
from sftselect.cli.logprob import logprob_selector
from sftselect.cli.model_scores import _engines
from sftselect.embedding import HFEmbedder
from sftselect.models.next_token import NextTokenLogits
from sftselect.models.reward import RewardModel
from sftselect.selectors.ifd import IFDSelector, SuperfilteringSelector
from sftselect.selectors.perplexity import PerplexitySelector


def default_of(cls: type, name: str = "batch_size"):
    return inspect.signature(cls).parameters[name].default


def parse(command: str, *extra: str):
    argv = [command, "in.json", "-o", "out.json", *extra]
    return build_parser().parse_args(argv)


LOGPROB = {"ifd": IFDSelector, "superfiltering": SuperfilteringSelector}
LOGPROB["perplexity"] = PerplexitySelector


@pytest.mark.parametrize("command", ["select", "score"])
@pytest.mark.parametrize("name", sorted(LOGPROB))
def test_logprob_selectors_keep_their_library_default(command, name):
    args = parse(command, "--selector", name, "--model", "m.gguf")
    assert args.batch_size is None
    selector = logprob_selector(args, scoring=command == "score")
    assert selector.batch_size == default_of(LOGPROB[name]) == 16


@pytest.mark.parametrize("command", ["select", "score"])
@pytest.mark.parametrize("name", ["deita", "reward"])
def test_model_scorers_keep_their_engines_default(command, name):
    args = parse(command, "--selector", name, "--model", "some/model")
    engines = _engines(args)
    assert engines, name
    for engine in engines.values():
        cls = RewardModel if name == "reward" else NextTokenLogits
        assert isinstance(engine, cls)
        assert engine.batch_size == default_of(cls) == 8


def test_embedder_keeps_its_default_and_a_given_value_reaches_every_kind():
    args = parse("select", "--selector", "diversity", "--embed-model", "minilm")
    assert hf_embedder(args).batch_size == default_of(HFEmbedder) == 32
    args = parse(
        "select", "--selector", "diversity", "--embed-model", "minilm", "--batch-size", "5"
    )
    assert hf_embedder(args).batch_size == 5
    args = parse("select", "--selector", "ifd", "--model", "m.gguf", "--batch-size", "3")
    assert logprob_selector(args).batch_size == 3
    args = parse("score", "--selector", "deita", "--model", "m", "--batch-size", "4")
    assert {e.batch_size for e in _engines(args).values()} == {4}
