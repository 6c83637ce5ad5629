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
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass, field
from typing import Any

from .._validation import check_positive_int, param_error
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
    to install when it is not importable.
    """
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module!r} is not installed, so this wrapper cannot run; install it with "
            f"`pip install {distribution}` ({exc})."
        ) from None
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        version = str(getattr(mod, "__version__", "unknown"))
    return mod, version


def run_alpaca_eval(
    model_outputs: Any,
    *,
    reference_outputs: Any = None,
    annotators_config: str = "weighted_alpaca_eval_gpt4_turbo",
    name: str | None = None,
    output_path: str | None = None,
    max_instances: int | None = None,
) -> ExternalRun:
    """AlpacaEval's raw and length-controlled win rates for ``model_outputs``.

    Parameters
    ----------
    model_outputs, reference_outputs : path, list of dict or DataFrame
        As ``alpaca_eval.evaluate`` takes them (``instruction``, ``output``,
        ``generator``); ``reference_outputs=None`` uses AlpacaEval's default.
    annotators_config : str
        AlpacaEval's annotator (its default in 0.6: ``weighted_alpaca_eval_gpt4_turbo``).
    name : str or None
        The leaderboard row to report (default: the outputs' generator).
    output_path : str or None
        Where AlpacaEval writes its annotations (None: it writes nothing).
    max_instances : int or None
        Evaluate only the first instances (a smoke test).
    """
    if max_instances is not None:
        check_positive_int(max_instances, "max_instances", "run_alpaca_eval")
    alpaca_eval, version = require_package("alpaca_eval", "alpaca-eval")
    flags = {
        "annotators_config": annotators_config,
        "reference_outputs": reference_outputs if isinstance(reference_outputs, str) else None,
        "name": name,
        "output_path": output_path,
        "max_instances": max_instances,
        "is_return_instead_of_print": True,
    }
    leaderboard, _annotations = alpaca_eval.evaluate(
        model_outputs=model_outputs,
        reference_outputs=reference_outputs,
        annotators_config=annotators_config,
        name=name,
        output_path=output_path,
        max_instances=max_instances,
        is_return_instead_of_print=True,
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
    wanted = ("win_rate", "length_controlled_winrate", "standard_error", "n_total", "avg_length")
    results = {k: float(row[k]) for k in wanted if k in row.index}
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
) -> ExternalRun:
    """Run lm-eval's ``simple_evaluate`` once per ``(task, shots, metric)``.

    Parameters
    ----------
    model_args : str
        lm-eval's model arguments, e.g. ``"pretrained=path/to/model,dtype=bfloat16"``.
    model : str, default "hf"
        lm-eval's model type.
    tasks : tuple of (task, num_fewshot, metric)
        Default: :data:`OPEN_LLM_LEADERBOARD_V1`.
    batch_size, device, limit
        Passed to ``simple_evaluate`` (``limit``: examples per task, a smoke test).
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
    if limit is not None:
        check_positive_int(limit, "limit", owner)
    lm_eval, version = require_package("lm_eval", "lm-eval")
    flags = {
        "model": model,
        "model_args": model_args,
        "tasks": [list(t) for t in tasks],
        "batch_size": batch_size,
        "device": device,
        "limit": limit,
    }
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
        results[task] = {"num_fewshot": shots, "metric": metric, "value": float(task_results[key])}
    return ExternalRun("lm_eval", version, flags, results)
