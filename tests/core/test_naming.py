"""One name per idea (issue 17): the public API spells a parameter one way.

Every class (its ``__init__``) and function in the ``__all__`` of every public
``sftselect`` module is walked: a seed is ``random_state``, a progress bar
``show_progress``, and a selector's embedder or judge backend comes first.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import warnings
from pathlib import Path

import pytest

import sftselect
from sftselect.core.base import Selector
from sftselect.exceptions import MissingExtraError

#: Old spellings that must not come back, with the public name that replaced them.
BANNED = {
    "seed": "random_state",
    "rng_seed": "random_state",
    "retry_seed": "random_state",
    "progress": "show_progress",
    "verbose_progress": "show_progress",
}

#: Records whose ``seed`` field is a data format, not a seed to draw from:
#: left as they are on purpose (the defining class's qualified name -> names allowed).
RECORD_FIELDS = {
    # The seed *record* of a run (an int, {"entropy": ...} or {"generator_state": ...}),
    # the value of the provenance's "seed" field.
    "sftselect.core.results.Selection": {"seed"},
    # The OpenAI chat-completions body's "seed", sent as is and part of the cache key.
    "sftselect.backends.base.ChatRequest": {"seed"},
    # A selection compared in the report: the seed its provenance records.
    "sftselect.report.inputs.Strategy": {"seed"},
}

#: The parameters that hold what a selector computes with: it takes one of them first.
FIRST_ARGUMENTS = ("embedder", "judge", "backend")


def public_module_names() -> list[str]:
    """``sftselect`` and every module under it with no part of its name starting with "_"."""
    root = Path(sftselect.__file__).parent
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if not any(part.startswith("_") for part in parts[1:]):
            names.append(".".join(parts))
    return names


def import_or_skip_extra(name: str):
    """The module, or None when it needs an optional extra that is not installed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return importlib.import_module(name)
    except MissingExtraError:
        return None
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] == "sftselect":
            raise
        return None


@functools.cache
def public_callables() -> dict[str, tuple[str, object]]:
    """``module.name`` -> (the defining qualified name, the class or function)."""
    found: dict[str, tuple[str, object]] = {}
    for module_name in public_module_names():
        module = import_or_skip_extra(module_name)
        if module is None:
            continue
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if not getattr(obj, "__module__", "").startswith("sftselect"):
                continue
            found[f"{module_name}.{name}"] = (f"{obj.__module__}.{obj.__qualname__}", obj)
    return found


def parameters(obj: object) -> list[inspect.Parameter]:
    """The parameters of a function, or of a class's constructor (none for a builtin one)."""
    try:
        return list(inspect.signature(obj).parameters.values())
    except (TypeError, ValueError):  # exceptions and other classes without a Python __init__
        return []


def test_the_walk_reaches_the_public_api():
    """The walk finds the selectors, the backends, generate, TrainConfig and the testing helpers
    (so an empty or broken walk cannot pass the checks below)."""
    for name in (
        "sftselect.DiversitySelector",
        "sftselect.QualitySelector",
        "sftselect.backends.run_requests",
        "sftselect.backends.openai_compat.OpenAICompatibleBackend",
        "sftselect.testing.hashed_faults",
        "sftselect.evaluate.combine.bootstrap_win_score_ci",
        "sftselect.selectors.coverage.kcenter_order",
    ):
        assert name in public_callables(), name


def test_no_public_parameter_uses_an_old_name():
    """No public class or function takes ``seed``, ``rng_seed``, ``retry_seed``, ``progress``
    or ``verbose_progress``: seeds are ``random_state``, progress bars ``show_progress``
    (records whose ``seed`` is a stored field are listed in RECORD_FIELDS)."""
    offenders = []
    for where, (defined, obj) in public_callables().items():
        allowed = RECORD_FIELDS.get(defined, set())
        for param in parameters(obj):
            if param.name in BANNED and param.name not in allowed:
                offenders.append(f"{where}({param.name}=...): use {BANNED[param.name]}")
    assert not offenders, "\n".join(sorted(offenders))


def test_record_exceptions_still_exist():
    """Every entry of RECORD_FIELDS names a public class that still takes that field
    (a stale exception would hide a later regression)."""
    by_definition = dict(public_callables().values())
    for defined, names in RECORD_FIELDS.items():
        assert defined in by_definition, defined
        taken = {p.name for p in parameters(by_definition[defined])}
        assert names <= taken, (defined, names - taken)


def test_selectors_take_their_embedder_or_backend_first():
    """A selector taking an embedder or a backend takes it first (positional or keyword),
    then ``k``: ``QualitySelector(judge, k)``, ``DiversitySelector(embedder, k)``."""
    selectors = {
        defined: obj
        for defined, obj in public_callables().values()
        if inspect.isclass(obj) and issubclass(obj, Selector)
    }
    checked = []
    for defined, cls in sorted(selectors.items()):
        params = parameters(cls)
        names = [p.name for p in params]
        held = [n for n in names if n in FIRST_ARGUMENTS]
        if not held:
            continue
        checked.append(cls.__name__)
        assert names[0] == held[0], f"{defined}{inspect.signature(cls)}: {held[0]} must be first"
        assert params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, defined
        if "k" in names:
            assert names[1] == "k", f"{defined}{inspect.signature(cls)}: k must be second"
            assert params[1].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, defined
    assert sorted(checked) == [
        "DiversitySelector",
        "FacilityLocationSelector",
        "KCenterSelector",
        "QualitySelector",
        "RepresentationFilter",
        "SemDeDup",
        "TargetedSelector",
    ]


@pytest.mark.parametrize("name", ["DiversitySelector", "KCenterSelector", "RepresentationFilter"])
def test_the_old_positional_k_fails_loudly(name):
    """``Selector(k, embedder=...)`` (the old order) is a TypeError, not a silent misuse;
    the new order and the all-keyword form build the same selector."""
    from sftselect.embedding import HashingEmbedder

    cls = getattr(sftselect, name)
    emb = HashingEmbedder(8)
    with pytest.raises(TypeError, match="embedder"):
        cls(100, embedder=emb)
    assert cls(emb, 100).get_params() == cls(k=100, embedder=emb).get_params()


def test_allocations_are_defined_once():
    """The allocation rules are one tuple (core.ranking), shared by both selectors."""
    from sftselect.core import ranking
    from sftselect.selectors import diversity, random

    assert diversity.ALLOCATIONS is ranking.ALLOCATIONS
    assert random.ALLOCATIONS is ranking.ALLOCATIONS
