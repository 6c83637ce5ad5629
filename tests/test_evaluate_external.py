"""The optional alpaca_eval / lm-eval wrappers: a clear error when absent, versions and flags recorded."""

from __future__ import annotations

import sys
import types

import pytest

from sftselect.evaluate.external import (
    OPEN_LLM_LEADERBOARD_V1,
    require_package,
    run_alpaca_eval,
    run_lm_eval,
)
from sftselect.exceptions import DataFormatError, InvalidParameterError, MissingExtraError


def test_alpaca_eval_not_installed_names_the_package(monkeypatch):
    """Without alpaca_eval importable the wrapper raises MissingExtraError (an ImportError) naming the pip package."""
    monkeypatch.setitem(sys.modules, "alpaca_eval", None)
    with pytest.raises(MissingExtraError, match="pip install alpaca-eval") as err:
        run_alpaca_eval("outputs.json")
    assert isinstance(err.value, ImportError)


def test_lm_eval_not_installed_names_the_package(monkeypatch):
    """Without lm_eval importable the wrapper raises MissingExtraError naming the pip package."""
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    with pytest.raises(MissingExtraError, match="pip install lm-eval"):
        run_lm_eval("pretrained=some/model")


def test_lm_eval_arguments_are_checked_before_importing(monkeypatch):
    """A bad task tuple is refused with the parameter template, whether or not lm_eval is installed."""
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    with pytest.raises(InvalidParameterError, match="The 'tasks' parameter of run_lm_eval"):
        run_lm_eval("pretrained=m", tasks=(("arc_challenge", -1, "acc"),))


def test_leaderboard_presets_are_the_papers_shot_counts():
    """ARC 25, HellaSwag 10, MMLU 5, TruthfulQA 0 and Winogrande 5 shots, with their metrics."""
    assert {t: (s, m) for t, s, m in OPEN_LLM_LEADERBOARD_V1} == {
        "arc_challenge": (25, "acc_norm"),
        "hellaswag": (10, "acc_norm"),
        "mmlu": (5, "acc"),
        "truthfulqa_mc2": (0, "acc"),
        "winogrande": (5, "acc"),
    }


def test_lm_eval_wrapper_records_version_flags_and_each_tasks_metric(monkeypatch):
    """With a stand-in lm_eval module, each preset task runs with its shots and the metric, version and flags are kept."""
    calls = []

    def simple_evaluate(*, model, model_args, tasks, num_fewshot, batch_size, device, limit):
        calls.append((tasks[0], num_fewshot))
        metric = dict((t, m) for t, _, m in OPEN_LLM_LEADERBOARD_V1)[tasks[0]]
        return {"results": {tasks[0]: {f"{metric},none": 0.5, f"{metric}_stderr,none": 0.01}}}

    fake = types.ModuleType("lm_eval")
    fake.__version__ = "0.0-test"
    fake.simple_evaluate = simple_evaluate
    monkeypatch.setitem(sys.modules, "lm_eval", fake)
    run = run_lm_eval("pretrained=m", batch_size=4, limit=10)
    assert calls == [(t, s) for t, s, _ in OPEN_LLM_LEADERBOARD_V1]
    assert run.version == "0.0-test" and run.flags["limit"] == 10 and run.flags["batch_size"] == 4
    assert run.results["hellaswag"] == {"num_fewshot": 10, "metric": "acc_norm", "value": 0.5}


def test_lm_eval_result_without_the_metric_is_an_error(monkeypatch):
    """A task result lacking the expected metric is an error listing what was found, not a silent gap."""
    fake = types.ModuleType("lm_eval")
    fake.simple_evaluate = lambda **kw: {"results": {kw["tasks"][0]: {"f1,none": 0.3}}}
    monkeypatch.setitem(sys.modules, "lm_eval", fake)
    with pytest.raises(DataFormatError, match="no 'acc_norm' metric"):
        run_lm_eval("pretrained=m", tasks=(("hellaswag", 10, "acc_norm"),))


def test_require_package_returns_module_and_version():
    """An installed package comes back with its distribution version."""
    mod, version = require_package("numpy", "numpy")
    assert mod.__name__ == "numpy" and version == mod.__version__
