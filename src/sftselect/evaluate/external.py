"""Optional, thin wrappers around external evaluation packages.

Nothing here is imported by the rest of sftselect, and nothing here runs
unless the package it wraps is installed (``pip install alpaca-eval``,
``pip install lm-eval``); otherwise the call raises
:class:`~sftselect.exceptions.MissingExtraError` naming the package. Each run
returns an :class:`ExternalRun` recording the package's version and every flag
passed, next to the numbers it reported.

* :func:`run_alpaca_eval`: AlpacaEval's win rate and length-controlled win rate
  of one ``model_outputs.json`` against a reference (the package's own
  annotator, prompts and parsing: not this package's judge).
* :func:`run_lm_eval`: the Open LLM Leaderboard (v1) tasks with the shot counts
  the paper reported: ARC-Challenge 25-shot (acc_norm), HellaSwag 10-shot
  (acc_norm), MMLU 5-shot (acc), TruthfulQA-MC2 0-shot (acc), Winogrande 5-shot
  (acc), under today's lm-eval task names. The leaderboard ran a pinned, older
  harness; numbers from a recent lm-eval may differ slightly.

Verified against alpaca_eval 0.6.6 and lm-eval 0.4.13 (see docs/evaluation.md).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from dataclasses import dataclass, field
from typing import Any

from ..core.validation import check_positive_int, param_error
from ..exceptions import DataFormatError, MissingExtraError

__all__ = [
    "OPEN_LLM_LEADERBOARD_V1",
    "ExternalRun",
    "require_package",
    "run_alpaca_eval",
    "run_lm_eval",
]

#: (lm-eval task, few-shot count, metric) of the Open LLM Leaderboard v1, as the paper used.
OPEN_LLM_LEADERBOARD_V1: tuple[tuple[str, int, str], ...] = (
    ("arc_challenge", 25, "acc_norm"),
    ("hellaswag", 10, "acc_norm"),
    ("mmlu", 5, "acc"),
    ("truthfulqa_mc2", 0, "acc"),
    ("winogrande", 5, "acc"),
)

# Hints for dependencies that an installed package imports but that are missing.
_MISSING_DEPENDENCY_HINTS = {
    # alpaca_eval 0.6.6 imports pkg_resources, which setuptools 82 removed.
    "pkg_resources": "`pip install 'setuptools<82'` (setuptools 82 removed pkg_resources)",
}


@dataclass
class ExternalRun:
    """What an external tool was asked (``flags``), its ``version`` and its ``results``."""

    tool: str
    version: str
    flags: dict[str, Any]
    results: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "version": self.version,
            "flags": dict(self.flags),
            "results": dict(self.results),
        }


def require_package(module: str, distribution: str) -> tuple[Any, str]:
    """Import ``module`` and return it with the installed ``distribution``'s version.

    Raises :class:`MissingExtraError` (an ``ImportError``) naming the package
    to install when it is not importable, or naming the missing dependency when
    the package is installed but one of its own imports fails.
    """
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        missing = getattr(exc, "name", None)
        if missing and missing != module and module.split(".")[0] != missing.split(".")[0]:
            hint = _MISSING_DEPENDENCY_HINTS.get(missing.split(".")[0], f"`pip install {missing}`")
            raise MissingExtraError(
                f"{module!r} is installed but cannot be imported: it needs {missing!r}, which "
                f"is missing; fix it with {hint} ({exc})."
            ) from None
        raise MissingExtraError(
            f"{module!r} is not installed, so this wrapper cannot run; install it with "
            f"`pip install {distribution}` ({exc})."
        ) from None
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        version = str(getattr(mod, "__version__", "unknown"))
    return mod, version


def _describe(data: Any, default: str) -> str:
    """How a flag names an input: its path, ``default`` for None, or its type for data."""
    if data is None:
        return default
    if isinstance(data, (str, os.PathLike)):
        return os.fspath(data)
    size = f", {len(data)} records" if hasattr(data, "__len__") else ""
    return f"<{type(data).__name__}{size}>"


def run_alpaca_eval(
    model_outputs: Any,
    *,
    reference_outputs: Any = None,
    annotators_config: str = "weighted_alpaca_eval_gpt4_turbo",
    name: str | None = None,
    output_path: str | None = None,
    max_instances: int | None = None,
    length_controlled: bool = True,
    caching_path: str | None = None,
) -> ExternalRun:
    """AlpacaEval's raw and length-controlled win rates for ``model_outputs``.

    The annotator reaches the judge through the ``openai`` client: set
    ``OPENAI_API_KEY`` (and ``OPENAI_BASE_URL`` for any OpenAI-compatible
    server), or point ``OPENAI_CLIENT_CONFIG_PATH`` at an AlpacaEval client
    config before ``alpaca_eval`` is first imported.

    The model is always evaluated afresh: AlpacaEval's precomputed leaderboard
    is not consulted (it would return the published numbers, unevaluated, for
    outputs whose generator shares a leaderboard name), and nothing is written
    inside the installed package (AlpacaEval's default annotation cache and GLM
    weights live there).

    Parameters
    ----------
    model_outputs, reference_outputs : path, list of dict or DataFrame
        As ``alpaca_eval.evaluate`` takes them (``instruction``, ``output``,
        ``generator``); ``reference_outputs=None`` uses AlpacaEval's default,
        which ``datasets`` downloads from the Hugging Face hub
        (``tatsu-lab/alpaca_eval``).
    annotators_config : str
        AlpacaEval's annotator (its default in 0.6: ``weighted_alpaca_eval_gpt4_turbo``).
    name : str or None
        The leaderboard row to report (default: the outputs' generator).
    output_path : str or None
        Where AlpacaEval writes its leaderboard and annotations (None: nothing).
    max_instances : int or None
        Evaluate only this many instances (a smoke test): AlpacaEval shuffles
        both files with its fixed seed (123) when they have the same length,
        then takes the first ``max_instances``.
    length_controlled : bool, default True
        Also fit AlpacaEval's length-controlled GLM. It downloads ``df_gamed.csv``
        from the hub dataset ``tatsu-lab/alpaca_eval`` (once, into the Hugging
        Face cache); False reports the raw win rate only and needs no download.
    caching_path : str or None
        AlpacaEval's annotation cache (reused judgments are not re-requested);
        None: no cache.
    """
    if max_instances is not None:
        check_positive_int(max_instances, "max_instances", "run_alpaca_eval")
    if not isinstance(length_controlled, bool):
        raise param_error("run_alpaca_eval", "length_controlled", "a bool", length_controlled)
    alpaca_eval, version = require_package("alpaca_eval", "alpaca-eval")
    fn_metric = "get_length_controlled_winrate" if length_controlled else "get_winrate"
    sort_by = "length_controlled_winrate" if length_controlled else "win_rate"
    metric_kwargs = {"save_weights_dir": None} if length_controlled else {}
    flags = {
        "model_outputs": _describe(model_outputs, "None"),
        "reference_outputs": _describe(reference_outputs, "alpaca_eval default"),
        "annotators_config": annotators_config,
        "name": name,
        "output_path": output_path,
        "max_instances": max_instances,
        "fn_metric": fn_metric,
        "metric_kwargs": dict(metric_kwargs),
        "sort_by": sort_by,
        "precomputed_leaderboard": None,
        "caching_path": caching_path,
        "is_return_instead_of_print": True,
    }
    optional = {} if reference_outputs is None else {"reference_outputs": reference_outputs}
    leaderboard, _annotations = alpaca_eval.evaluate(
        model_outputs=model_outputs,
        annotators_config=annotators_config,
        name=name,
        output_path=output_path,
        max_instances=max_instances,
        fn_metric=fn_metric,
        metric_kwargs=metric_kwargs,
        sort_by=sort_by,
        precomputed_leaderboard=None,
        is_return_instead_of_print=True,
        caching_path=caching_path,
        **optional,
    )
    row_name = name
    if row_name is None:
        if len(leaderboard.index) != 1:
            raise param_error(
                "run_alpaca_eval", "name", "the leaderboard row to report", list(leaderboard.index)
            )
        row_name = leaderboard.index[0]
    if row_name not in leaderboard.index:
        raise DataFormatError(
            f"run_alpaca_eval: AlpacaEval's leaderboard has no row {row_name!r} "
            f"(rows: {list(leaderboard.index)[:5]})."
        )
    row = leaderboard.loc[row_name]
    wanted = (
        "win_rate",
        "standard_error",
        "length_controlled_winrate",
        "lc_standard_error",
        "discrete_win_rate",
        "n_wins",
        "n_wins_base",
        "n_draws",
        "n_total",
        "avg_length",
    )
    results: dict[str, Any] = {k: float(row[k]) for k in wanted if k in row.index}
    results["leaderboard_row"] = str(row_name)
    return ExternalRun("alpaca_eval", version, flags, results)


def run_lm_eval(
    model_args: str,
    *,
    model: str = "hf",
    tasks: tuple[tuple[str, int, str], ...] = OPEN_LLM_LEADERBOARD_V1,
    batch_size: int | str = 1,
    device: str | None = None,
    limit: int | None = None,
    include_path: str | os.PathLike[str] | None = None,
) -> ExternalRun:
    """Run lm-eval's ``simple_evaluate`` once per ``(task, shots, metric)``.

    One lm-eval ``TaskManager`` (indexing its ~thousands of task configs takes
    seconds) serves every task.

    Parameters
    ----------
    model_args : str
        lm-eval's model arguments, e.g. ``"pretrained=path/to/model,dtype=bfloat16"``.
    model : str, default "hf"
        lm-eval's model type.
    tasks : tuple of (task, num_fewshot, metric)
        Default: :data:`OPEN_LLM_LEADERBOARD_V1`. Each task once (results are
        keyed by task name).
    batch_size, device, limit
        Passed to ``simple_evaluate`` (``limit``: examples per task, a smoke test).
    include_path : path or None
        A folder of extra task YAMLs (lm-eval's ``--include_path``), searched
        besides lm-eval's own tasks.
    """
    owner = "run_lm_eval"
    if not isinstance(model_args, str) or not model_args:
        raise param_error(
            owner, "model_args", "a non-empty string such as 'pretrained=...'", model_args
        )
    for item in tasks:
        if (
            not isinstance(item, tuple)
            or len(item) != 3
            or not isinstance(item[0], str)
            or isinstance(item[1], bool)
            or not isinstance(item[1], int)
            or item[1] < 0
            or not isinstance(item[2], str)
        ):
            raise param_error(owner, "tasks", "(task, num_fewshot >= 0, metric) tuples", item)
    names = [t[0] for t in tasks]
    if not names or len(set(names)) != len(names):
        # results are keyed by task name: a repeated task would overwrite the earlier run
        raise param_error(owner, "tasks", "a non-empty tuple naming each task once", names)
    if limit is not None:
        check_positive_int(limit, "limit", owner)
    if include_path is not None and not os.path.isdir(include_path):
        raise param_error(owner, "include_path", "an existing folder of task YAMLs", include_path)
    lm_eval, version = require_package("lm_eval", "lm-eval")
    include = None if include_path is None else os.fspath(include_path)
    flags = {
        "model": model,
        "model_args": model_args,
        "tasks": [list(t) for t in tasks],
        "batch_size": batch_size,
        "device": device,
        "limit": limit,
        "include_path": include,
    }
    # simple_evaluate builds this same TaskManager (metadata: the model args) on
    # every call unless given one; build it once.
    tasks_module = importlib.import_module("lm_eval.tasks")
    utils_module = importlib.import_module("lm_eval.utils")
    task_manager = tasks_module.TaskManager(
        include_path=include, metadata=utils_module.simple_parse_args_string(model_args)
    )
    results: dict[str, Any] = {}
    for task, shots, metric in tasks:
        out = lm_eval.simple_evaluate(
            model=model,
            model_args=model_args,
            tasks=[task],
            num_fewshot=shots,
            batch_size=batch_size,
            device=device,
            limit=limit,
            task_manager=task_manager,
        )
        task_results = (out or {}).get("results", {}).get(task)
        if task_results is None:
            raise DataFormatError(f"{owner}: lm-eval returned no results for task {task!r}.")
        key = next((k for k in (f"{metric},none", metric) if k in task_results), None)
        if key is None:
            raise DataFormatError(
                f"{owner}: lm-eval's results for {task!r} have no {metric!r} metric "
                f"(found {sorted(task_results)})."
            )
        entry = {"num_fewshot": shots, "metric": metric, "value": float(task_results[key])}
        stderr = task_results.get(key.replace(metric, f"{metric}_stderr", 1))
        if isinstance(stderr, (int, float)):
            entry["stderr"] = float(stderr)
        results[task] = entry
    return ExternalRun("lm_eval", version, flags, results)
