"""The optional alpaca_eval / lm-eval wrappers: clear errors when absent, real offline runs when installed."""

from __future__ import annotations

import importlib.metadata
import json
import math
import re
import sys
import types
from pathlib import Path

import pytest

from sftselect.evaluate.external import (
    OPEN_LLM_LEADERBOARD_V1,
    require_package,
    run_alpaca_eval,
    run_lm_eval,
)
from sftselect.exceptions import DataFormatError, InvalidParameterError, MissingExtraError
from sftselect.testing import LoopbackServer
from tests.helpers.paths import SHARED_DATA


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


def _stand_in_lm_eval(monkeypatch, simple_evaluate, version=None):
    """Install a stand-in ``lm_eval`` (with ``tasks.TaskManager`` and ``utils``) in ``sys.modules``."""
    fake = types.ModuleType("lm_eval")
    if version is not None:
        fake.__version__ = version
    fake.simple_evaluate = simple_evaluate
    tasks_mod = types.ModuleType("lm_eval.tasks")
    tasks_mod.TaskManager = lambda **kw: types.SimpleNamespace(**kw)
    utils_mod = types.ModuleType("lm_eval.utils")
    utils_mod.simple_parse_args_string = lambda s: dict(kv.split("=", 1) for kv in s.split(","))
    fake.tasks, fake.utils = tasks_mod, utils_mod
    monkeypatch.setitem(sys.modules, "lm_eval", fake)
    monkeypatch.setitem(sys.modules, "lm_eval.tasks", tasks_mod)
    monkeypatch.setitem(sys.modules, "lm_eval.utils", utils_mod)
    return fake


def test_lm_eval_wrapper_records_version_flags_and_each_tasks_metric(monkeypatch):
    """With a stand-in lm_eval module, each preset task runs with its shots and the metric, version and flags are kept."""
    calls = []

    def simple_evaluate(
        *, model, model_args, tasks, num_fewshot, batch_size, device, limit, task_manager
    ):
        calls.append((tasks[0], num_fewshot, task_manager))
        metric = dict((t, m) for t, _, m in OPEN_LLM_LEADERBOARD_V1)[tasks[0]]
        return {"results": {tasks[0]: {f"{metric},none": 0.5, f"{metric}_stderr,none": 0.01}}}

    _stand_in_lm_eval(monkeypatch, simple_evaluate, version="0.0-test")
    run = run_lm_eval("pretrained=m", batch_size=4, limit=10)
    assert [c[:2] for c in calls] == [(t, s) for t, s, _ in OPEN_LLM_LEADERBOARD_V1]
    managers = {id(c[2]) for c in calls}
    assert len(managers) == 1 and calls[0][2].metadata == {"pretrained": "m"}
    try:  # the installed distribution's version wins over the module's __version__
        expected_version = importlib.metadata.version("lm-eval")
    except importlib.metadata.PackageNotFoundError:
        expected_version = "0.0-test"
    assert run.version == expected_version
    assert run.flags["limit"] == 10 and run.flags["batch_size"] == 4
    assert run.results["hellaswag"] == {
        "num_fewshot": 10,
        "metric": "acc_norm",
        "value": 0.5,
        "stderr": 0.01,
    }


def test_lm_eval_result_without_the_metric_is_an_error(monkeypatch):
    """A task result lacking the expected metric is an error listing what was found, not a silent gap."""
    _stand_in_lm_eval(monkeypatch, lambda **kw: {"results": {kw["tasks"][0]: {"f1,none": 0.3}}})
    with pytest.raises(DataFormatError, match="no 'acc_norm' metric"):
        run_lm_eval("pretrained=m", tasks=(("hellaswag", 10, "acc_norm"),))


def test_lm_eval_refuses_a_task_named_twice(monkeypatch):
    """Results are keyed by task, so a task listed twice (say 0- and 5-shot) is refused, not silently overwritten."""
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    with pytest.raises(InvalidParameterError, match="naming each task once"):
        run_lm_eval("pretrained=m", tasks=(("mmlu", 0, "acc"), ("mmlu", 5, "acc")))


def test_installed_package_with_a_missing_dependency_names_the_dependency(monkeypatch):
    """An installed package whose own import fails (alpaca_eval without pkg_resources) is not called 'not installed'."""

    def broken_import(name, *args, **kwargs):
        if name == "sftselect_broken_pkg":
            raise ModuleNotFoundError("No module named 'pkg_resources'", name="pkg_resources")
        return real_import(name, *args, **kwargs)

    real_import = importlib.import_module
    monkeypatch.setattr(importlib, "import_module", broken_import)
    with pytest.raises(MissingExtraError, match="installed but cannot be imported") as err:
        require_package("sftselect_broken_pkg", "sftselect-broken-pkg")
    assert "setuptools<82" in str(err.value) and "not installed" not in str(err.value)


def test_require_package_returns_module_and_version():
    """An installed package comes back with its distribution version."""
    mod, version = require_package("numpy", "numpy")
    assert mod.__name__ == "numpy" and version == mod.__version__


# --------------------------------------------------------------------------- real packages, offline

ALPACA_EVAL_DIR = SHARED_DATA / "alpaca_eval"


def _alpaca_eval_offline(monkeypatch):
    """Import the real alpaca_eval (or skip) with its judge unset before the import fixes it."""
    for var in ("OPENAI_API_BASE", "OPENAI_CLIENT_CONFIG_PATH", "OPENAI_API_KEYS"):
        monkeypatch.delenv(var, raising=False)
    if not (ALPACA_EVAL_DIR / "alpaca-7b.json").exists():
        pytest.skip(f"AlpacaEval outputs not found at {ALPACA_EVAL_DIR}")
    return pytest.importorskip("alpaca_eval")


def _logprob_judge(reply):
    """The loopback server, answering with the top logprobs AlpacaEval's weighted annotator
    parses: the judge's letter at probability 0.9, the other letter at 0.1 (scripted through
    the public :class:`~sftselect.testing.ScriptedReply`)."""
    from sftselect.testing import ScriptedReply

    def scripted(body):
        text = reply(body)
        other = "M" if text == "m" else "m"
        top = {0: {text: math.log(0.9), other: math.log(0.1)}}
        return ScriptedReply.from_tokens([(text, math.log(0.9))], top=top)

    return LoopbackServer(reply=scripted)


def _longer_output_judge(model_texts: set[str], model_probs: list[float]):
    """Reply with the identifier (m or M) of the longer output, noting P(model output wins)."""

    def reply(body):
        prompt = body["messages"][-1]["content"]
        pair = re.findall(r'"model_identifier": "(m|M)",\s*"output": """(.*?)"""', prompt, re.S)
        assert len(pair) == 2, prompt[-400:]
        winner = max(pair, key=lambda p: len(p[1]))
        model_side = next(p for p in pair if p[1].strip() in model_texts)
        model_probs.append(0.9 if winner is model_side else 0.1)
        return winner[0]

    return reply


def _package_files(module) -> set[str]:
    root = Path(module.__file__).parent
    return {str(p.relative_to(root)) for p in root.rglob("*") if "__pycache__" not in p.parts}


def test_alpaca_eval_runs_offline_against_a_loopback_judge(monkeypatch):
    """The real AlpacaEval judges through OPENAI_BASE_URL, and the win rate is its parse of the scripted logprobs."""
    alpaca_eval = _alpaca_eval_offline(monkeypatch)
    model_path = ALPACA_EVAL_DIR / "alpaca-7b.json"
    model_texts = {r["output"].strip() for r in json.loads(model_path.read_text())}
    probs: list[float] = []
    before = _package_files(alpaca_eval)
    with _logprob_judge(_longer_output_judge(model_texts, probs)) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
        run = run_alpaca_eval(
            str(model_path),
            reference_outputs=str(ALPACA_EVAL_DIR / "text_davinci_003.json"),
            max_instances=4,
            length_controlled=False,
        )
    assert server.request_count == 4 and len(probs) == 4
    body = server.requests[0].body
    assert body["model"] == "gpt-4-1106-preview"
    assert body["logprobs"] is True and body["top_logprobs"] == 5 and body["max_tokens"] == 1
    assert run.results["win_rate"] == pytest.approx(100 * sum(probs) / 4)
    assert run.results["n_total"] == 4 and run.results["leaderboard_row"] == "alpaca-7b"
    assert "length_controlled_winrate" not in run.results
    assert run.version == importlib.metadata.version("alpaca-eval")
    assert run.flags["annotators_config"] == "weighted_alpaca_eval_gpt4_turbo"
    assert run.flags["fn_metric"] == "get_winrate" and run.flags["max_instances"] == 4
    assert run.flags["reference_outputs"].endswith("text_davinci_003.json")
    assert _package_files(alpaca_eval) == before  # no annotation cache inside the package


def test_alpaca_eval_default_reference_judges_afresh_not_the_published_row(monkeypatch):
    """With the default reference, outputs named like a published leaderboard row (alpaca-7b) are judged, not looked up."""
    alpaca_eval = _alpaca_eval_offline(monkeypatch)
    from datasets import Dataset

    model = json.loads((ALPACA_EVAL_DIR / "alpaca-7b.json").read_text())
    baseline = json.loads((ALPACA_EVAL_DIR / "gpt4_1106_preview.json").read_text())
    asked = []

    def hub_stand_in(path, name=None, **kwargs):  # the one download: AlpacaEval 2's reference
        asked.append((path, name))
        return {"eval": Dataset.from_list(baseline)}

    stand_in = types.SimpleNamespace(load_dataset=hub_stand_in)
    monkeypatch.setattr(alpaca_eval.constants, "datasets", stand_in)
    probs: list[float] = []
    judge = _longer_output_judge({r["output"].strip() for r in model}, probs)
    with _logprob_judge(judge) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
        run = run_alpaca_eval(model, max_instances=3, length_controlled=False)
    assert asked == [("tatsu-lab/alpaca_eval", "alpaca_eval_gpt4_baseline")]
    assert server.request_count == 3 and run.results["n_total"] == 3  # not the published 805
    assert run.results["leaderboard_row"] == "alpaca-7b"
    assert run.results["win_rate"] == pytest.approx(100 * sum(probs) / 3)
    assert run.flags["reference_outputs"] == "alpaca_eval default"
    assert run.flags["model_outputs"] == "<list, 805 records>"


def test_alpaca_eval_length_controlled_fits_the_glm_and_writes_nothing_into_the_package(
    monkeypatch, tmp_path
):
    """The length-controlled win rate comes from AlpacaEval's GLM (df_gamed.csv: a stand-in), with no weights saved in the package."""
    alpaca_eval = _alpaca_eval_offline(monkeypatch)
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    gamed = pd.DataFrame(
        {
            "model": "stand-in",
            "index": np.tile(np.arange(805), 2),
            "preference": rng.uniform(0, 1, 1610),
            "std_delta_len": rng.normal(size=1610),
            "instruction_difficulty": np.tile(rng.normal(size=805), 2),
            "not_gamed_baseline": [False] * 805 + [True] * 805,
        }
    )
    gamed.to_csv(tmp_path / "df_gamed.csv", index=False)
    downloads = []

    def hub_stand_in(repo_id, filename, **kwargs):  # the length-controlled GLM's one download
        downloads.append((repo_id, filename))
        return str(tmp_path / filename)

    monkeypatch.setattr(alpaca_eval.metrics.glm_winrate, "hf_hub_download", hub_stand_in)
    model_path = ALPACA_EVAL_DIR / "alpaca-7b.json"
    probs: list[float] = []
    judge = _longer_output_judge(
        {r["output"].strip() for r in json.loads(model_path.read_text())}, probs
    )
    before = _package_files(alpaca_eval)
    with _logprob_judge(judge) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
        run = run_alpaca_eval(
            str(model_path),
            reference_outputs=str(ALPACA_EVAL_DIR / "text_davinci_003.json"),
            max_instances=8,
        )
    assert downloads == [("tatsu-lab/alpaca_eval", "df_gamed.csv")]
    assert run.results["n_total"] == 8 and run.results["win_rate"] == pytest.approx(
        100 * sum(probs) / 8
    )
    assert 0.0 <= run.results["length_controlled_winrate"] <= 100.0
    assert run.flags["fn_metric"] == "get_length_controlled_winrate"
    assert run.flags["metric_kwargs"] == {"save_weights_dir": None}
    assert _package_files(alpaca_eval) == before  # no GLM weights inside the package


def _tiny_task_folder(folder: Path, names: tuple[str, ...]) -> Path:
    """Two-choice lm-eval tasks read from local JSON lines (nothing to download)."""
    folder.mkdir()
    rows = [
        {"question": f"What is {i} plus {i}?", "choices": [str(2 * i), "a banana"], "answer": 0}
        for i in range(6)
    ]
    data = folder / "tiny.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    for name in names:
        (folder / f"{name}.yaml").write_text(
            f"task: {name}\n"
            "dataset_path: json\n"
            "dataset_kwargs:\n"
            f"  data_files:\n    test: {data}\n    validation: {data}\n"
            "test_split: test\n"
            "fewshot_split: validation\n"
            "output_type: multiple_choice\n"
            'doc_to_text: "Question: {{question}}\\nAnswer:"\n'
            'doc_to_choice: "{{choices}}"\n'
            "doc_to_target: answer\n"
            "metric_list:\n"
            "  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
            "  - metric: acc_norm\n    aggregation: mean\n    higher_is_better: true\n",
            encoding="utf-8",
        )
    return folder


def test_lm_eval_runs_local_tasks_on_a_tiny_llama(tmp_path, monkeypatch):
    """The real lm-eval scores a saved tiny LLaMA on local YAML tasks at each task's shot count, offline."""
    lm_eval = pytest.importorskip("lm_eval")
    pytest.importorskip("torch")
    from tests.helpers.tiny_llama import spm_tokenizer, tiny_llama

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    tok = spm_tokenizer(model_dir)
    tiny_llama(tok).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    tasks = (("sftselect_tiny_zero", 0, "acc"), ("sftselect_tiny_two", 2, "acc_norm"))
    tasks_dir = _tiny_task_folder(tmp_path / "tasks", tuple(t for t, _, _ in tasks))
    seen = []
    real = lm_eval.simple_evaluate

    def spy(**kwargs):
        out = real(**kwargs)
        task = kwargs["tasks"][0]
        seen.append((task, out["n-shot"][task], out["config"]["limit"], kwargs["task_manager"]))
        return out

    monkeypatch.setattr(lm_eval, "simple_evaluate", spy)
    args = f"pretrained={model_dir},dtype=float32"
    run = run_lm_eval(
        args, tasks=tasks, device="cpu", batch_size=2, limit=3, include_path=tasks_dir
    )
    assert [s[:3] for s in seen] == [("sftselect_tiny_zero", 0, 3), ("sftselect_tiny_two", 2, 3)]
    assert seen[0][3] is seen[1][3]  # one TaskManager for every task
    for task, shots, metric in tasks:
        result = run.results[task]
        assert (result["num_fewshot"], result["metric"]) == (shots, metric)
        assert result["value"] * 3 == pytest.approx(round(result["value"] * 3))  # k of 3 right
        assert 0.0 <= result["value"] <= 1.0 and "stderr" in result
    assert run.version == importlib.metadata.version("lm-eval")
    assert run.flags == {
        "model": "hf",
        "model_args": args,
        "tasks": [list(t) for t in tasks],
        "batch_size": 2,
        "device": "cpu",
        "limit": 3,
        "include_path": str(tasks_dir),
    }
